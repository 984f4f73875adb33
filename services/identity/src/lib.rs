//! The identity & tenancy service: organizations, users, memberships,
//! sessions, API keys and agent tokens, service accounts, and the access
//! tokens (EdDSA JWTs) every other service verifies.

pub mod api;
pub mod domain;
pub mod keys;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use foundry_platform::db::Db;
use foundry_platform::page::PageTokens;
use foundry_proto::foundry::identity::v1 as pb;
use foundry_tenancy::PrincipalType;
use sqlx::migrate::Migrator;
use tonic::service::RoutesBuilder;
use uuid::Uuid;

pub use keys::{Grant, KeyRing, RingSource, TokenConfig};

/// The identity schema's migrations, embedded.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/identity");

/// The Postgres schema of this service.
pub const SCHEMA: &str = "identity";

/// What the handlers share.
#[derive(Debug)]
pub struct State {
    /// The service's database.
    pub db: Db,
    /// Signing keys and minting.
    pub keys: Arc<KeyRing>,
    /// Page token signer.
    pub pages: PageTokens,
}

/// The running service.
#[derive(Clone, Debug)]
pub struct Identity {
    state: Arc<State>,
}

/// gRPC service names this crate serves (for health).
pub const SERVICE_NAMES: &[&str] = &[
    "foundry.identity.v1.OrganizationService",
    "foundry.identity.v1.MembershipService",
    "foundry.identity.v1.AuthService",
    "foundry.identity.v1.ApiKeyService",
];

/// A development principal created on first start.
#[derive(Clone, Debug)]
pub struct DevBootstrap {
    /// The organization.
    pub org_id: Uuid,
    /// Its owner.
    pub user_id: Uuid,
    /// A session refresh token of the owner (shown once).
    pub refresh_token: Option<String>,
}

impl Identity {
    /// Loads signing keys and returns the service.
    pub async fn new(db: Db, tokens: TokenConfig, pages: PageTokens) -> anyhow::Result<Identity> {
        let keys = KeyRing::load(db.clone(), tokens).await?;
        Ok(Identity {
            state: Arc::new(State { db, keys, pages }),
        })
    }

    /// The signing keys (for in-process verifiers and dev tokens).
    pub fn keys(&self) -> Arc<KeyRing> {
        self.state.keys.clone()
    }

    /// Adds the service's handlers.
    pub fn add_routes(&self, routes: &mut RoutesBuilder) {
        use pb::{
            api_key_service_server::ApiKeyServiceServer, auth_service_server::AuthServiceServer,
            membership_service_server::MembershipServiceServer,
            organization_service_server::OrganizationServiceServer,
        };
        let s = &self.state;
        routes
            .add_service(OrganizationServiceServer::new(
                api::organizations::Organizations(s.clone()),
            ))
            .add_service(MembershipServiceServer::new(api::memberships::Memberships(
                s.clone(),
            )))
            .add_service(AuthServiceServer::new(api::auth::Auth(s.clone())))
            .add_service(ApiKeyServiceServer::new(api::api_keys::ApiKeys(s.clone())));
    }

    /// Creates a user (no external login) with an organization they own.
    /// For development bootstrap and tests.
    pub async fn create_user_with_org(
        &self,
        email: &str,
        name: &str,
        org_slug: &str,
    ) -> anyhow::Result<DevBootstrap> {
        let org_id = Uuid::now_v7();
        let mut tx = self.state.db.tenant(org_id).await?;
        let user = store::insert_user(&mut tx, email, name).await?;
        store::insert_org(
            &mut tx,
            org_id,
            &format!("{name}'s organization"),
            org_slug,
            &serde_json::json!({}),
        )
        .await?;
        store::insert_membership(&mut tx, org_id, user.id, domain::Role::Owner.as_str(), None)
            .await?;
        tx.commit().await?;
        Ok(DevBootstrap {
            org_id,
            user_id: user.id,
            refresh_token: None,
        })
    }

    /// Creates a user without organizations.
    pub async fn create_user(&self, email: &str, name: &str) -> anyhow::Result<Uuid> {
        let mut tx = self.state.db.system().await?;
        let user = store::insert_user(&mut tx, email, name).await?;
        tx.commit().await?;
        Ok(user.id)
    }

    /// Adds a member with a role.
    pub async fn add_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        role: domain::Role,
    ) -> anyhow::Result<Uuid> {
        let mut tx = self.state.db.tenant(org_id).await?;
        let id = store::insert_membership(&mut tx, org_id, user_id, role.as_str(), None).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Starts a session for a user and returns its refresh token.
    pub async fn start_session(&self, user_id: Uuid) -> anyhow::Result<String> {
        let secret = domain::mint_secret(domain::SecretKind::Refresh);
        let expires =
            Utc::now() + chrono::Duration::from_std(self.state.keys.config().refresh_ttl)?;
        let mut tx = self.state.db.system().await?;
        store::insert_session(&mut tx, user_id, &secret.hash, expires, "foundry", "").await?;
        tx.commit().await?;
        Ok(secret.value)
    }

    /// Creates a service account and returns its id and key.
    pub async fn create_service_account(
        &self,
        name: &str,
        description: &str,
    ) -> anyhow::Result<(Uuid, String)> {
        let secret = domain::mint_secret(domain::SecretKind::Service);
        let mut tx = self.state.db.system().await?;
        let id = store::insert_service_account(&mut tx, name, description, &secret.hash).await?;
        tx.commit().await?;
        Ok((id, secret.value))
    }

    /// Mints an access token for a member acting in an organization, with
    /// the role's permissions (development tokens, tests).
    pub fn mint_member_token(
        &self,
        user_id: Uuid,
        org_id: Option<Uuid>,
        role: Option<domain::Role>,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let grant = Grant {
            sub: user_id,
            ptype: PrincipalType::User,
            org_id,
            org_role: role.map(|r| r.as_str().to_owned()),
            perms: role.map(|r| r.permissions()).unwrap_or_default(),
            project_id: None,
            sid: None,
        };
        Ok(self.state.keys.mint_for(grant, ttl)?.0)
    }

    /// Finds the development organization made by an earlier start.
    pub async fn find_org_by_slug(&self, slug: &str) -> anyhow::Result<Option<(Uuid, Uuid)>> {
        let mut tx = self.state.db.system().await?;
        let row: Option<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT o.id, m.user_id FROM organizations o JOIN memberships m ON m.org_id = o.id \
             WHERE o.slug = $1 AND m.role = 'owner' ORDER BY m.id LIMIT 1",
        )
        .bind(slug)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }
}

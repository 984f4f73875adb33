//! The identity & tenancy service: organizations, users, memberships,
//! sessions, API keys and agent tokens, service accounts, and the access
//! tokens (EdDSA JWTs) every other service verifies.

pub mod api;
pub mod domain;
pub mod keys;
pub mod oidc;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use foundry_platform::db::{self, Db};
use foundry_platform::page::PageTokens;
use foundry_proto::foundry::identity::v1 as pb;
use sqlx::migrate::Migrator;
use tonic::service::RoutesBuilder;
use uuid::Uuid;

use crate::api::memberships::add_member;

pub use keys::{Grant, KeyRing, RingSource, TokenConfig};
pub use oidc::{OidcArgs, OidcProvider};

/// The identity schema's migrations, embedded.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/identity");

/// The Postgres schema of this service.
pub const SCHEMA: &str = "identity";

/// The job that announces every membership once, for delivery's replica
/// (enqueued by the migration that started membership events, when there
/// were memberships: `migrations/identity/0010_membership_events.sql`).
pub const ANNOUNCE_MEMBERSHIPS_JOB: &str = "identity.memberships.snapshot";

/// How often [`Identity::sweep`] runs.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// What the handlers share.
#[derive(Debug)]
pub struct State {
    /// The service's database.
    pub db: Db,
    /// Signing keys and minting.
    pub keys: Arc<KeyRing>,
    /// Page token signer.
    pub pages: PageTokens,
    /// Trusted external OIDC issuers.
    pub oidc: oidc::Oidc,
    /// Refused exchanges of a real credential: one security event per
    /// credential per [`REFUSAL_WINDOW`], with the count held back.
    pub refusals: foundry_platform::throttle::Throttle,
}

/// How often a refused credential's exchange is recorded, at most.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(60);

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
    "foundry.identity.v1.InvitationService",
    "foundry.identity.v1.UserService",
    "foundry.identity.v1.ServiceAccountService",
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
    pub async fn new(
        db: Db,
        tokens: TokenConfig,
        pages: PageTokens,
        oidc: Vec<OidcProvider>,
        keyring: foundry_keyring::Keyring,
    ) -> anyhow::Result<Identity> {
        let keys = KeyRing::load(db.clone(), tokens, keyring).await?;
        Ok(Identity {
            state: Arc::new(State {
                db,
                keys,
                pages,
                oidc: oidc::Oidc::new(oidc),
                refusals: foundry_platform::throttle::Throttle::new(REFUSAL_WINDOW, 100_000),
            }),
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
            invitation_service_server::InvitationServiceServer,
            membership_service_server::MembershipServiceServer,
            organization_service_server::OrganizationServiceServer,
            service_account_service_server::ServiceAccountServiceServer,
            user_service_server::UserServiceServer,
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
            .add_service(ApiKeyServiceServer::new(api::api_keys::ApiKeys(s.clone())))
            .add_service(InvitationServiceServer::new(api::invitations::Invitations(
                s.clone(),
            )))
            .add_service(UserServiceServer::new(api::users::Users(s.clone())))
            .add_service(ServiceAccountServiceServer::new(
                api::service_accounts::ServiceAccounts(s.clone()),
            ));
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
        let org = store::insert_org(
            &mut tx,
            org_id,
            &domain::NewOrganization {
                name: format!("{name}'s organization"),
                slug: org_slug.to_owned(),
                settings: serde_json::json!({}),
            },
        )
        .await?;
        api::organizations::organization_created(&mut tx, &org, user.id.uuid()).await?;
        let system = foundry_outbox::Actor::system(api::SERVICE);
        system
            .event("identity.user.create", "identity.user", user.id)
            .org(org_id)
            .set("email", &user.email)
            .record(&mut tx)
            .await?;
        system
            .event(
                "identity.organization.create",
                "identity.organization",
                org_id,
            )
            .org(org_id)
            .set("slug", org_slug)
            .record(&mut tx)
            .await?;
        let owner = (org_id, user.id, domain::Role::Owner);
        add_member(&mut tx, &system, owner, None).await?;
        tx.commit().await?;
        Ok(DevBootstrap {
            org_id,
            user_id: user.id.uuid(),
            refresh_token: None,
        })
    }

    /// Creates a user without organizations.
    pub async fn create_user(&self, email: &str, name: &str) -> anyhow::Result<Uuid> {
        let mut tx = self.state.db.system().await?;
        let user = store::insert_user(&mut tx, email, name).await?;
        foundry_outbox::Actor::system(api::SERVICE)
            .event("identity.user.create", "identity.user", user.id)
            .set("email", &user.email)
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(user.id.uuid())
    }

    /// Adds a member with a role.
    pub async fn add_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        role: domain::Role,
    ) -> anyhow::Result<Uuid> {
        let mut tx = self.state.db.tenant(org_id).await?;
        let system = foundry_outbox::Actor::system(api::SERVICE);
        let member = (org_id, domain::UserId::from_uuid(user_id), role);
        let m = add_member(&mut tx, &system, member, None).await?;
        tx.commit().await?;
        Ok(m.id.uuid())
    }

    /// Starts a session for a user and returns its refresh token.
    pub async fn start_session(&self, user_id: Uuid) -> anyhow::Result<String> {
        let secret = domain::mint_secret(domain::SecretKind::Refresh);
        let expires =
            Utc::now() + chrono::Duration::from_std(self.state.keys.config().refresh_ttl)?;
        let mut tx = self.state.db.system().await?;
        let session =
            store::insert_session(&mut tx, user_id, &secret.hash, expires, "foundry", "").await?;
        foundry_outbox::Actor::system(api::SERVICE)
            .as_principal(foundry_outbox::ActorType::User, user_id)
            .event("identity.session.create", "identity.session", session.id)
            .set("expire_time", session.expires_at)
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(secret.value)
    }

    /// Creates a service account and returns its id and key.
    pub async fn create_service_account(
        &self,
        name: &str,
        description: &str,
        service: &str,
        capabilities: &[&str],
    ) -> anyhow::Result<(Uuid, String)> {
        let mut tx = self.state.db.system().await?;
        let actor = foundry_outbox::Actor::system(api::SERVICE);
        let new = domain::NewServiceAccount {
            name: name.to_owned(),
            description: description.to_owned(),
            service: service.to_owned(),
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
        };
        let (sa, key) = api::service_accounts::create(&mut tx, &actor, &new).await?;
        tx.commit().await?;
        Ok((sa.id.uuid(), key))
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
            org_id,
            org_role: role.map(|r| r.as_str().to_owned()),
            perms: role.map(|r| r.permissions()).unwrap_or_default(),
            ..Grant::user(user_id, None)
        };
        Ok(self.state.keys.mint_for(grant, ttl)?.0)
    }

    /// Mints an access token for a service account (internal methods: what
    /// `ExchangeToken` with its key grants), for in-process callers and
    /// tests.
    pub async fn mint_service_token(
        &self,
        service_account_id: Uuid,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        self.mint_service_token_for(service_account_id, None, ttl)
            .await
    }

    /// A service account's token acting for `on_behalf_of` (the user or
    /// agent whose request the service carries out): the events it causes
    /// record both.
    pub async fn mint_service_token_for(
        &self,
        service_account_id: Uuid,
        on_behalf_of: Option<foundry_tenancy::OnBehalfOf>,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let mut tx = self.state.db.system().await?;
        let sa = store::get_service_account(
            &mut tx,
            domain::ServiceAccountId::from_uuid(service_account_id),
        )
        .await?;
        tx.commit().await?;
        let sa = sa.filter(|sa| sa.disabled_at.is_none()).ok_or_else(|| {
            anyhow::anyhow!("service account {service_account_id} is missing or disabled")
        })?;
        let grant = Grant {
            obo: on_behalf_of,
            ..Grant::service(&sa)
        };
        Ok(self.state.keys.mint_for(grant, ttl)?.0)
    }

    /// The service's database (its outbox relay runs over it).
    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// The id of the service account `name`, created (with a key nobody
    /// holds) if missing, and granted those of `capabilities` it lacks (an
    /// account made by an earlier version, before a capability its work
    /// needs now). For the suite's own background work.
    pub async fn ensure_service_account(
        &self,
        name: &str,
        description: &str,
        service: &str,
        capabilities: &[String],
    ) -> anyhow::Result<Uuid> {
        let mut tx = self.state.db.system().await?;
        let actor = foundry_outbox::Actor::system(api::SERVICE);
        let id = match store::find_service_account_named(&mut tx, name, true).await? {
            Some(sa) => api::service_accounts::grant_missing(&mut tx, &actor, sa, capabilities)
                .await?
                .uuid(),
            None => {
                let new = domain::NewServiceAccount {
                    name: name.to_owned(),
                    description: description.to_owned(),
                    service: service.to_owned(),
                    capabilities: capabilities.to_vec(),
                };
                api::service_accounts::create(&mut tx, &actor, &new)
                    .await?
                    .0
                    .id
                    .uuid()
            }
        };
        tx.commit().await?;
        Ok(id)
    }

    /// The service account `service`'s outbox relay authenticates as,
    /// created if missing: running as `service`, holding only
    /// [`foundry_outbox::relay_capabilities`] (appending to the audit log,
    /// and delivering to the inboxes of the services that subscribe to
    /// `service`'s events).
    pub async fn ensure_relay_account(&self, service: &str) -> anyhow::Result<Uuid> {
        self.ensure_service_account(
            &foundry_outbox::relay_service_account(service),
            &format!("ships {service}'s outbox to its subscribers"),
            service,
            &foundry_outbox::relay_capabilities(service),
        )
        .await
    }

    /// Access tokens of a service account, minted in process from the
    /// signing keys and cached until shortly before they expire.
    pub fn service_tokens(&self, service_account_id: Uuid) -> Arc<dyn foundry_outbox::TokenSource> {
        let identity = self.clone();
        foundry_outbox::CachedToken::new(move || {
            let identity = identity.clone();
            async move {
                let ttl = identity.state.keys.config().access_ttl;
                Ok((
                    identity.mint_service_token(service_account_id, ttl).await?,
                    ttl,
                ))
            }
        })
    }

    /// Announces every membership as it stands
    /// ([`api::memberships::announce_all`]); how many.
    pub async fn announce_memberships(&self) -> anyhow::Result<u64> {
        Ok(api::memberships::announce_all(&self.state.db).await?)
    }

    /// Deletes what guards only credentials that are over: the spent
    /// refresh tokens of sessions past their expiry, and the used ID tokens
    /// past the last moment they could be accepted (no one can present
    /// either again). Returns how many rows went.
    pub async fn sweep(&self) -> anyhow::Result<u64> {
        let db = &self.state.db;
        let mut removed = 0;
        for table in ["spent_refresh_tokens", "used_id_tokens"] {
            removed += db::sweep(db, table, "expires_at", Duration::ZERO).await?;
        }
        Ok(removed)
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

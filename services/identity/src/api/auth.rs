//! `AuthService`: token exchange, JWKS, sessions, key rotation.

use std::sync::Arc;

use chrono::Utc;
use foundry_platform::Error;
use foundry_platform::convert::{opt_timestamp, timestamp};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::identity::v1::{self as pb, auth_service_server::AuthService};
use foundry_tenancy::{PrincipalType, caller, jwt};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::domain::{self, Role, SecretKind};
use crate::keys::Grant;
use crate::store::{self, SessionRow};

/// Handlers of `AuthService`.
#[derive(Clone, Debug)]
pub struct Auth(pub Arc<State>);

fn invalid_credential() -> Error {
    // One answer for unknown, revoked, expired and mistyped credentials.
    Error::unauthenticated("CREDENTIAL_INVALID", "the credential is not valid")
}

fn session_to_proto(r: SessionRow) -> pb::Session {
    pb::Session {
        id: r.id.to_string(),
        user_id: r.user_id.to_string(),
        user_agent: r.user_agent,
        client_ip: r.client_ip,
        create_time: Some(timestamp(r.created_at)),
        last_use_time: Some(timestamp(r.last_used_at)),
        expire_time: Some(timestamp(r.expires_at)),
        revoke_time: opt_timestamp(r.revoked_at),
    }
}

impl Auth {
    /// A user's grant for an organization, checked against the database:
    /// switching org always re-reads the membership.
    async fn user_grant(
        &self,
        user_id: Uuid,
        sid: Option<Uuid>,
        org: Option<Uuid>,
    ) -> Result<(Grant, Option<Role>), Error> {
        let Some(org_id) = org else {
            let grant = Grant {
                sub: user_id,
                ptype: PrincipalType::User,
                org_id: None,
                org_role: None,
                perms: vec![],
                project_id: None,
                sid,
            };
            return Ok((grant, None));
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let member = store::get_membership_of(&mut tx, org_id, user_id).await?;
        let live = store::get_org(&mut tx, org_id, false)
            .await?
            .is_some_and(|o| o.deleted_at.is_none());
        tx.commit().await?;
        let role = match member.and_then(|m| Role::parse(&m.role)) {
            Some(role) if live => role,
            _ => {
                return Err(Error::permission_denied(
                    "NOT_A_MEMBER",
                    "the user is not a member of that organization",
                ));
            }
        };
        let grant = Grant {
            sub: user_id,
            ptype: PrincipalType::User,
            org_id: Some(org_id),
            org_role: Some(role.as_str().to_owned()),
            perms: role.permissions(),
            project_id: None,
            sid,
        };
        Ok((grant, Some(role)))
    }

    async fn key_grant(
        &self,
        kind: SecretKind,
        secret: &str,
        org: Option<Uuid>,
    ) -> Result<Grant, Error> {
        let hash = domain::parse_secret(kind, secret).ok_or_else(invalid_credential)?;
        let mut tx = self.0.db.system().await?;
        let key = store::use_api_key(&mut tx, &hash).await?;
        let live_org = match &key {
            Some(k) => store::get_org(&mut tx, k.org_id, false)
                .await?
                .is_some_and(|o| o.deleted_at.is_none()),
            None => false,
        };
        tx.commit().await?;
        let want_kind = if kind == SecretKind::Agent {
            "agent"
        } else {
            "api_key"
        };
        let key = key
            .filter(|k| {
                k.kind == want_kind
                    && k.revoked_at.is_none()
                    && k.expires_at.is_none_or(|e| e > Utc::now())
                    && live_org
            })
            .ok_or_else(invalid_credential)?;
        if org.is_some_and(|o| o != key.org_id) {
            return Err(Error::permission_denied(
                "WRONG_ORGANIZATION",
                "the key is bound to another organization",
            ));
        }
        Ok(Grant {
            sub: key.id,
            ptype: if kind == SecretKind::Agent {
                PrincipalType::Agent
            } else {
                PrincipalType::ApiKey
            },
            org_id: Some(key.org_id),
            org_role: None,
            perms: key.scopes,
            project_id: key.project_id,
            sid: None,
        })
    }
}

#[tonic::async_trait]
impl AuthService for Auth {
    #[tracing::instrument(skip_all)]
    async fn exchange_token(
        &self,
        req: Request<pb::ExchangeTokenRequest>,
    ) -> Result<Response<pb::ExchangeTokenResponse>, Status> {
        use pb::exchange_token_request::Grant as G;
        let req = req.into_inner();
        let mut v = Violations::new();
        let org = v.opt_id("org_id", &req.org_id);
        if req.grant.is_none() {
            v.add("grant", "one of refresh_token, api_key, agent_token, id_token, service_account_key is required");
        }
        v.finish()?;
        let (grant, role) = match req.grant {
            Some(G::RefreshToken(t)) => {
                let hash =
                    domain::parse_secret(SecretKind::Refresh, &t).ok_or_else(invalid_credential)?;
                let mut tx = self.0.db.system().await?;
                let session = store::use_session(&mut tx, &hash)
                    .await?
                    .ok_or_else(invalid_credential)?;
                tx.commit().await.map_err(Error::from)?;
                self.user_grant(session.user_id, Some(session.id), org)
                    .await?
            }
            Some(G::ApiKey(k)) => (self.key_grant(SecretKind::ApiKey, &k, org).await?, None),
            Some(G::AgentToken(k)) => (self.key_grant(SecretKind::Agent, &k, org).await?, None),
            Some(G::ServiceAccountKey(k)) => {
                if org.is_some() {
                    return Err(Error::invalid_field(
                        "org_id",
                        "service accounts act in no organization",
                    )
                    .into());
                }
                let hash =
                    domain::parse_secret(SecretKind::Service, &k).ok_or_else(invalid_credential)?;
                let mut tx = self.0.db.system().await?;
                let sa = store::find_service_account(&mut tx, &hash).await?;
                tx.commit().await.map_err(Error::from)?;
                let sa = sa
                    .filter(|s| s.disabled_at.is_none())
                    .ok_or_else(invalid_credential)?;
                (
                    Grant {
                        sub: sa.id,
                        ptype: PrincipalType::Service,
                        org_id: None,
                        org_role: None,
                        perms: vec![],
                        project_id: None,
                        sid: None,
                    },
                    None,
                )
            }
            Some(G::IdToken(_)) => {
                return Err(Error::failed_precondition(
                    "OIDC_NOT_CONFIGURED",
                    "no external OIDC issuer is configured on this server",
                )
                .into());
            }
            None => return Err(Error::invalid_field("grant", "is required").into()),
        };
        let (token, claims) = self.0.keys.mint(grant)?;
        Ok(Response::new(pb::ExchangeTokenResponse {
            access_token: token,
            token_type: "Bearer".into(),
            expire_time: Some(prost_types::Timestamp {
                seconds: claims.exp,
                nanos: 0,
            }),
            refresh_token: String::new(),
            session_id: claims.sid.map(|s| s.to_string()).unwrap_or_default(),
            org_id: claims.org_id.map(|o| o.to_string()).unwrap_or_default(),
            org_role: role.map(|r| pb::Role::from(r) as i32).unwrap_or_default(),
            subject: claims.sub.to_string(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_jwks(
        &self,
        _req: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::Jwks>, Status> {
        Ok(Response::new(jwks(&self.0)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_sessions(
        &self,
        req: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let user_id = caller(&req)?.user_id()?;
        let req = req.into_inner();
        let page = self.0.pages.parse(req.page_size, &req.page_token, "")?;
        let mut tx = self.0.db.user(user_id).await?;
        let mut rows = store::list_sessions(&mut tx, user_id, page.after, page.limit()).await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.id);
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: rows.into_iter().map(session_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_session(
        &self,
        req: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let user_id = caller(&req)?.user_id()?;
        let mut v = Violations::new();
        let id = v.id("id", &req.get_ref().id);
        v.finish()?;
        let not_found = || Error::not_found("SESSION_NOT_FOUND", "session");
        let Some(id) = id else {
            return Err(not_found().into());
        };
        let mut tx = self.0.db.user(user_id).await?;
        let row = store::revoke_session(&mut tx, user_id, id)
            .await?
            .ok_or_else(not_found)?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(session_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_signing_key(
        &self,
        _req: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::Jwks>, Status> {
        self.0.keys.rotate().await?;
        Ok(Response::new(jwks(&self.0)))
    }
}

fn jwks(state: &State) -> pb::Jwks {
    pb::Jwks {
        keys: state
            .keys
            .published()
            .into_iter()
            .map(|k| pb::Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: jwt::jwk_x(&k.key),
                kid: k.kid,
                alg: "EdDSA".into(),
                r#use: "sig".into(),
            })
            .collect(),
    }
}

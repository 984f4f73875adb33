//! `AuthService`: token exchange, JWKS, sessions, key rotation.

use std::sync::Arc;

use chrono::Utc;
use foundry_platform::Error;
use foundry_platform::convert::{opt_timestamp, timestamp};
use foundry_platform::db::{Lock, Tx};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::identity::v1::{self as pb, auth_service_server::AuthService};
use foundry_tenancy::{PrincipalType, caller, jwt};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{actor, page_of, recorded};
use crate::domain::Session;
use crate::domain::{self, Role, SecretKind, UserId};
use crate::keys::Grant;
use crate::oidc::Verified;
use crate::store;
use foundry_outbox::{Actor, ActorType, EventBuilder};

/// Handlers of `AuthService`.
#[derive(Clone, Debug)]
pub struct Auth(pub Arc<State>);

fn invalid_credential() -> Error {
    // One answer for unknown, revoked, expired and mistyped credentials.
    Error::unauthenticated("CREDENTIAL_INVALID", "the credential is not valid")
}

fn session_to_proto(r: &Session) -> pb::Session {
    pb::Session {
        id: r.id.to_string(),
        user_id: r.user_id.to_string(),
        user_agent: r.user_agent.clone(),
        client_ip: r.client_ip.clone(),
        create_time: Some(timestamp(r.created_at)),
        last_use_time: Some(timestamp(r.last_used_at)),
        expire_time: Some(timestamp(r.expires_at)),
        revoke_time: opt_timestamp(r.revoked_at),
    }
}

impl Auth {
    /// Records a security event on its own (the call it belongs to fails,
    /// so there is no transaction to join). A failure to record is logged;
    /// the refusal stands either way.
    /// Records `event`, the refused exchange of credential `credential`:
    /// once per credential per [`crate::REFUSAL_WINDOW`] (the next one
    /// says how many were held back, `suppressed`), so presenting a dead
    /// credential in a loop cannot flood the log.
    async fn security_event(&self, credential: Uuid, event: EventBuilder) {
        let Some(held) = self.0.refusals.admit(credential) else {
            tracing::debug!(%credential, "refused exchange not recorded: one was recorded within the window");
            return;
        };
        let event = if held > 0 {
            event.set("suppressed", held)
        } else {
            event
        };
        let result = async {
            let tx = self.0.db.system().await?;
            event.commit(tx).await?;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "recording a security audit event failed");
        }
    }

    /// The `id_token` grant: verifies the external token and spends it
    /// ([`spend_id_token`]: a token signs in once), finds the user by
    /// linked account, or on a first sign-in creates the user, or joins
    /// the existing user with its verified email where the issuer may link
    /// by email ([`crate::oidc::OidcProvider::links_email`]; elsewhere that
    /// user links the account from a session, `UserService.LinkAccount`),
    /// and starts a session. Nothing is written, the token not spent, when
    /// the sign-in or the requested organization is refused.
    async fn id_token_grant(
        &self,
        token: &str,
        org: Option<Uuid>,
        actor: &Actor,
    ) -> Result<(Grant, Option<Role>, String), Error> {
        let verified = self.0.oidc.verify(token).await?;
        let claims = &verified.claims;
        let provider = verified.provider.name.clone();
        let email = claims.verified_email().unwrap_or_default().to_owned();
        let mut tx = self.0.db.system().await?;
        spend_id_token(&mut tx, &verified).await?;
        let linked = store::touch_linked_account(&mut tx, &claims.iss, &claims.sub, &email).await?;
        let user_id = match linked {
            Some(user_id) => user_id,
            None => {
                if email.is_empty() {
                    return Err(Error::unauthenticated(
                        "ID_TOKEN_EMAIL_UNVERIFIED",
                        "a first sign-in needs an ID token with a verified email",
                    ));
                }
                let user_id = match store::find_user_by_email(&mut tx, &email).await? {
                    Some(id) if verified.provider.links_email(&email) => id,
                    Some(_) => {
                        return Err(Error::failed_precondition(
                            "LINK_REQUIRED",
                            "a user with this email exists, and this issuer is not trusted to \
                             link by email: sign in as that user and link this account \
                             (UserService.LinkAccount)",
                        ));
                    }
                    None => {
                        let name = claims
                            .name
                            .clone()
                            .filter(|n| !n.trim().is_empty())
                            .unwrap_or_else(|| {
                                email.split('@').next().unwrap_or(&email).to_owned()
                            });
                        let name: String = name.chars().take(200).collect();
                        let user = store::insert_user(&mut tx, &email, &name).await?;
                        actor
                            .clone()
                            .as_principal(ActorType::User, user.id.uuid())
                            .event("identity.user.create", "identity.user", user.id)
                            .set("email", &user.email)
                            .set("display_name", &user.display_name)
                            .record(&mut tx)
                            .await?;
                        user.id.uuid()
                    }
                };
                if let Some(picture) = claims
                    .picture
                    .as_deref()
                    .filter(|p| p.starts_with("https://") && p.len() <= 2048)
                {
                    store::default_avatar(&mut tx, user_id, picture).await?;
                }
                let signing_in = actor.clone().as_principal(ActorType::User, user_id);
                link_account(&mut tx, &signing_in, user_id, &verified).await?;
                user_id
            }
        };
        let secret = domain::mint_secret(SecretKind::Refresh);
        let expires = Utc::now()
            + chrono::Duration::from_std(self.0.keys.config().refresh_ttl)
                .map_err(Error::internal)?;
        let session = store::insert_session(
            &mut tx,
            user_id,
            &secret.hash,
            expires,
            actor.user_agent(),
            actor.client_ip(),
        )
        .await?;
        actor
            .clone()
            .as_principal(ActorType::User, user_id)
            .event("identity.session.create", "identity.session", session.id)
            .set("provider", &provider)
            .set("expire_time", session.expires_at)
            .record(&mut tx)
            .await?;
        let (grant, role) = user_grant_in(&mut tx, user_id, Some(session.id), org).await?;
        tx.commit().await?;
        Ok((grant, role, secret.value))
    }

    /// The `refresh_token` grant: the session's token is rotated (the
    /// answer carries the next one) once the membership in `org` is
    /// checked. A refused organization rotates nothing, so the token the
    /// client holds stays good. A token rotated away before is a reuse:
    /// its session is revoked, with a security event, in one transaction
    /// committed before the call is refused.
    async fn refresh_grant(
        &self,
        token: &str,
        org: Option<Uuid>,
        actor: &Actor,
    ) -> Result<(Grant, Option<Role>, String), Error> {
        let hash =
            domain::parse_secret(SecretKind::Refresh, token).ok_or_else(invalid_credential)?;
        // The session is not known before its token is read: system scope.
        let mut tx = self.0.db.system().await?;
        let Some(session) = store::lock_session_by_token(&mut tx, &hash).await? else {
            let Some(before) = store::spent_token_session(&mut tx, &hash).await? else {
                return Err(invalid_credential());
            };
            let after = store::revoke_session(&mut tx, before.user_id, before.id)
                .await?
                .ok_or_else(invalid_credential)?;
            let who = (ActorType::User, before.user_id);
            let what = ("identity.session.reuse_detected", "identity.session");
            refusal(actor, who, what, before.id, "refresh_token_reused")
                .org(foundry_outbox::PLATFORM_ORG)
                .change("revoke_time", before.revoked_at, after.revoked_at)
                .commit(tx)
                .await?;
            return Err(Error::unauthenticated(
                "REFRESH_TOKEN_REUSED",
                "the refresh token was already used; its session is revoked, sign in again",
            ));
        };
        if !session.live(Utc::now()) {
            return Err(invalid_credential());
        }
        // Switching organization always re-reads the membership.
        match user_grant_in(&mut tx, session.user_id, Some(session.id), org).await {
            Ok((grant, role)) => {
                let next = domain::mint_secret(SecretKind::Refresh);
                let after = store::rotate_session(&mut tx, &session, &hash, &next.hash).await?;
                actor
                    .clone()
                    .as_principal(ActorType::User, session.user_id)
                    .event("identity.session.refresh", "identity.session", session.id)
                    .org(foundry_outbox::PLATFORM_ORG)
                    .change("last_use_time", session.last_used_at, after.last_used_at)
                    .commit(tx)
                    .await?;
                Ok((grant, role, next.value))
            }
            Err(e) => {
                // The use is recorded even when the organization is refused.
                store::touch_session(&mut tx, session.id).await?;
                tx.commit().await?;
                if e.reason() == "NOT_A_MEMBER" {
                    // A real session reaching for an organization it is not
                    // in. Recorded on the platform chain: the id may name no
                    // organization at all.
                    let who = (ActorType::User, session.user_id);
                    let what = ("identity.token.exchange_refused", "identity.session");
                    let event = refusal(actor, who, what, session.id, "not_a_member")
                        .org(foundry_outbox::PLATFORM_ORG)
                        .set("org_id", org);
                    self.security_event(session.id, event).await;
                }
                Err(e)
            }
        }
    }

    async fn key_grant(
        &self,
        kind: SecretKind,
        secret: &str,
        org: Option<Uuid>,
        actor: &Actor,
    ) -> Result<Grant, Error> {
        let hash = domain::parse_secret(kind, secret).ok_or_else(invalid_credential)?;
        let mut tx = self.0.db.system().await?;
        let key = store::use_api_key(&mut tx, &hash).await?;
        let live_org = match &key {
            Some(k) => store::org_live(&mut tx, k.org_id, Lock::None).await?,
            None => false,
        };
        tx.commit().await?;
        let key = key
            .filter(|k| k.fields.kind.secret_kind() == kind)
            .ok_or_else(invalid_credential)?;
        let refused = if key.revoked_at.is_some() {
            Some("revoked")
        } else if key.fields.expires_at.is_some_and(|e| e <= Utc::now()) {
            Some("expired")
        } else if !live_org {
            Some("organization_deleted")
        } else {
            None
        };
        if let Some(why) = refused {
            // A real key that no longer works: worth a security event in
            // its organization (unknown strings are not: they would let
            // anyone flood the log).
            let what = ("identity.api_key.exchange_refused", "identity.api_key");
            let event = refusal(
                actor,
                (ActorType::ApiKey, key.id.uuid()),
                what,
                key.id.uuid(),
                why,
            )
            .org(key.org_id)
            .project(key.fields.project_id);
            self.security_event(key.id.uuid(), event).await;
            return Err(invalid_credential());
        }
        if org.is_some_and(|o| o != key.org_id) {
            return Err(Error::permission_denied(
                "WRONG_ORGANIZATION",
                "the key is bound to another organization",
            ));
        }
        let ptype = if kind == SecretKind::Agent {
            PrincipalType::Agent
        } else {
            PrincipalType::ApiKey
        };
        Ok(Grant {
            org_id: Some(key.org_id),
            perms: key.fields.scopes,
            project_id: key.fields.project_id,
            resource_id: key.fields.resource_id,
            expires_at: key.fields.expires_at,
            ..Grant::of(key.id.uuid(), ptype)
        })
    }
}

/// A security event for a refused exchange: `who` presented a real
/// credential that no longer works; `what` is the event's action and
/// resource type, `id` its resource.
fn refusal(
    actor: &Actor,
    who: (ActorType, Uuid),
    what: (&str, &str),
    id: Uuid,
    reason: &str,
) -> EventBuilder {
    actor
        .clone()
        .as_principal(who.0, who.1)
        .event(what.0, what.1, id)
        .set("reason", reason)
}

#[tonic::async_trait]
impl AuthService for Auth {
    #[tracing::instrument(skip_all)]
    async fn exchange_token(
        &self,
        req: Request<pb::ExchangeTokenRequest>,
    ) -> Result<Response<pb::ExchangeTokenResponse>, Status> {
        use pb::exchange_token_request::Grant as G;
        let actor = actor(&req);
        let req = req.into_inner();
        let mut v = Violations::new();
        let org = v.opt_id("org_id", &req.org_id);
        match &req.grant {
            None => v.add(
                "grant",
                "one of refresh_token, api_key, agent_token, id_token, service_account_key is required",
            ),
            Some(g) => {
                let (field, value) = match g {
                    G::RefreshToken(t) => ("refresh_token", t),
                    G::ApiKey(t) => ("api_key", t),
                    G::AgentToken(t) => ("agent_token", t),
                    G::IdToken(t) => ("id_token", t),
                    G::ServiceAccountKey(t) => ("service_account_key", t),
                };
                credential(&mut v, field, value);
            }
        }
        v.finish()?;
        let mut refresh_token = String::new();
        let (grant, role) = match req.grant {
            Some(G::RefreshToken(t)) => {
                let (grant, role, next) = self.refresh_grant(&t, org, &actor).await?;
                refresh_token = next;
                (grant, role)
            }
            Some(G::ApiKey(k)) => (
                self.key_grant(SecretKind::ApiKey, &k, org, &actor).await?,
                None,
            ),
            Some(G::AgentToken(k)) => (
                self.key_grant(SecretKind::Agent, &k, org, &actor).await?,
                None,
            ),
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
                let sa = sa.ok_or_else(invalid_credential)?;
                if sa.disabled_at.is_some() {
                    let who = (ActorType::Service, sa.id.uuid());
                    let what = (
                        "identity.service_account.exchange_refused",
                        "identity.service_account",
                    );
                    let event = refusal(&actor, who, what, sa.id.uuid(), "disabled")
                        .org(foundry_outbox::PLATFORM_ORG);
                    self.security_event(sa.id.uuid(), event).await;
                    return Err(invalid_credential().into());
                }
                (Grant::service(&sa), None)
            }
            Some(G::IdToken(t)) => {
                let (grant, role, refresh) = self.id_token_grant(&t, org, &actor).await?;
                refresh_token = refresh;
                (grant, role)
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
            refresh_token,
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
        let keys = self.0.keys.published().into_iter().map(|k| pb::Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: jwt::jwk_x(&k.key),
            kid: k.kid,
            alg: "EdDSA".into(),
            r#use: "sig".into(),
            retire_time: k
                .retires_at
                .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
        });
        Ok(Response::new(pb::Jwks {
            keys: keys.collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_session(
        &self,
        req: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let user_id = caller(&req)?.user_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let not_found = || Error::not_found("SESSION_NOT_FOUND", "session");
        let mut tx = self.0.db.user(user_id).await?;
        let row = store::revoke_session(&mut tx, user_id, id)
            .await?
            .ok_or_else(not_found)?;
        let event = actor
            .event("identity.session.revoke", "identity.session", id)
            .org(foundry_outbox::PLATFORM_ORG)
            .change("revoke_time", None::<()>, row.revoked_at);
        Ok(recorded(tx, event, &row, session_to_proto).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_signing_key(
        &self,
        req: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::Jwks>, Status> {
        self.0.keys.rotate(&actor(&req)).await?;
        // Answered as GetJwks is: the keys now published.
        self.get_jwks(req.map(|_| pb::GetJwksRequest {})).await
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_signing_key(
        &self,
        req: Request<pb::RevokeSigningKeyRequest>,
    ) -> Result<Response<pb::Jwks>, Status> {
        let mut v = Violations::new();
        let kid = v.text("kid", &req.get_ref().kid, 1, 64);
        let kid = v.finish_with(|| kid)?;
        self.0.keys.revoke(&actor(&req), &kid).await?;
        self.get_jwks(req.map(|_| pb::GetJwksRequest {})).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_sessions(
        &self,
        req: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let user_id = caller(&req)?.user_id()?;
        let req = req.into_inner();
        let page = self.0.pages.parse(req.page_size, &req.page_token, "")?;
        let mut out = pb::ListSessionsResponse::default();
        let mut tx = self.0.db.user(user_id).await?;
        let rows = store::list_sessions(&mut tx, user_id, page).await?;
        tx.commit().await.map_err(Error::from)?;
        (out.sessions, out.next_page_token) =
            page_of(&self.0, &page, rows, |s| s.id, session_to_proto);
        Ok(Response::new(out))
    }
}

/// Spends a verified ID token in `tx`: `UNAUTHENTICATED`
/// `ID_TOKEN_REPLAYED` when it was used before. Its use commits with what
/// it was used for.
pub(crate) async fn spend_id_token(tx: &mut Tx, verified: &Verified) -> Result<(), Error> {
    let (iss, id) = (&verified.claims.iss, &verified.token_id);
    if store::claim_id_token(tx, iss, id, verified.usable_until).await? {
        Ok(())
    } else {
        Err(Error::unauthenticated(
            "ID_TOKEN_REPLAYED",
            "ID token refused: it was used before; get a new one from the issuer",
        ))
    }
}

/// Checks a credential as received: present, and at most 16 KiB.
pub(crate) fn credential(v: &mut Violations, field: &str, value: &str) {
    if value.is_empty() {
        v.add(field, "is required");
    } else if value.len() > 16 * 1024 {
        v.add(field, "is longer than 16384 bytes");
    }
}

/// Links the external account of a verified ID token to `user_id` and
/// records it (`identity.linked_account.create`, by `actor`, on the
/// platform chain); returns the linked account's id.
pub(crate) async fn link_account(
    tx: &mut Tx,
    actor: &Actor,
    user_id: Uuid,
    verified: &Verified,
) -> Result<Uuid, Error> {
    let (provider, claims) = (&verified.provider.name, &verified.claims);
    let email = claims.verified_email().unwrap_or_default();
    let id = store::insert_linked_account(tx, user_id, provider, &claims.iss, &claims.sub, email)
        .await?;
    actor
        .event(
            "identity.linked_account.create",
            "identity.linked_account",
            id,
        )
        .org(foundry_outbox::PLATFORM_ORG)
        .set("provider", provider)
        .set("issuer", &claims.iss)
        .set("subject", &claims.sub)
        .record(tx)
        .await?;
    Ok(id)
}

/// A user's grant in `org` (none: user scope only), read in `tx`.
async fn user_grant_in(
    tx: &mut foundry_platform::db::Tx,
    user_id: Uuid,
    sid: Option<Uuid>,
    org: Option<Uuid>,
) -> Result<(Grant, Option<Role>), Error> {
    let Some(org_id) = org else {
        return Ok((Grant::user(user_id, sid), None));
    };
    let member =
        store::get_membership_of(tx, org_id, UserId::from_uuid(user_id), Lock::None).await?;
    let live = store::org_live(tx, org_id, Lock::None).await?;
    let role = match member.map(|m| m.role) {
        Some(role) if live => role,
        _ => {
            return Err(Error::permission_denied(
                "NOT_A_MEMBER",
                "the user is not a member of that organization",
            ));
        }
    };
    let grant = Grant {
        org_id: Some(org_id),
        org_role: Some(role.as_str().to_owned()),
        perms: role.permissions(),
        ..Grant::user(user_id, sid)
    };
    Ok((grant, Some(role)))
}

//! `ApiKeyService`: API keys and agent tokens.

use std::sync::Arc;

use chrono::Utc;
use foundry_platform::Error;
use foundry_platform::convert::{from_timestamp, opt_timestamp, timestamp};
use foundry_platform::db::{check_etag, etag, idempotency};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::identity::v1::{self as pb, api_key_service_server::ApiKeyService};
use foundry_tenancy::access::granted;
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::actor;
use crate::domain::{self, SecretKind};
use crate::store::{self, ApiKeyRow, NewApiKey};

/// Handlers of `ApiKeyService`.
#[derive(Clone, Debug)]
pub struct ApiKeys(pub Arc<State>);

const MAX_SCOPES: usize = 64;

fn kind_str(k: pb::ApiKeyKind) -> &'static str {
    if k == pb::ApiKeyKind::Agent {
        "agent"
    } else {
        "api_key"
    }
}

fn key_to_proto(r: ApiKeyRow) -> pb::ApiKey {
    let state = if r.revoked_at.is_some() {
        pb::ApiKeyState::Revoked
    } else if r.expires_at.is_some_and(|e| e <= Utc::now()) {
        pb::ApiKeyState::Expired
    } else {
        pb::ApiKeyState::Active
    };
    pb::ApiKey {
        id: r.id.to_string(),
        org_id: r.org_id.to_string(),
        kind: if r.kind == "agent" {
            pb::ApiKeyKind::Agent
        } else {
            pb::ApiKeyKind::ApiKey
        } as i32,
        display_name: r.display_name,
        scopes: r.scopes,
        project_id: r.project_id.map(|p| p.to_string()).unwrap_or_default(),
        expire_time: opt_timestamp(r.expires_at),
        state: state as i32,
        prefix: r.prefix,
        created_by: r.created_by.to_string(),
        create_time: Some(timestamp(r.created_at)),
        last_use_time: opt_timestamp(r.last_used_at),
        revoke_time: opt_timestamp(r.revoked_at),
        etag: etag(r.version),
        secret: String::new(),
    }
}

fn not_found() -> Error {
    Error::not_found("API_KEY_NOT_FOUND", "API key")
}

fn valid_scope(s: &str) -> bool {
    s == "*"
        || (s.split('.').count() == 3
            && s.split('.').all(|seg| {
                seg == "*"
                    || (!seg.is_empty() && seg.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            }))
}

#[tonic::async_trait]
impl ApiKeyService for ApiKeys {
    #[tracing::instrument(skip_all)]
    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let k = req.api_key.unwrap_or_default();
        let mut v = Violations::new();
        let kind: Option<pb::ApiKeyKind> = v.enum_value("api_key.kind", k.kind);
        let name = v.text("api_key.display_name", &k.display_name, 1, 200);
        let project_id = v.opt_id("api_key.project_id", &k.project_id);
        let expires_at = match &k.expire_time {
            None => None,
            Some(t) => match from_timestamp(t) {
                Some(e) if e > Utc::now() => Some(e),
                _ => {
                    v.add("api_key.expire_time", "must be a valid time in the future");
                    None
                }
            },
        };
        let scopes = if k.scopes.is_empty() {
            vec!["*.*.read".to_owned()]
        } else {
            k.scopes.clone()
        };
        if scopes.len() > MAX_SCOPES {
            v.add("api_key.scopes", format!("at most {MAX_SCOPES} scopes"));
        }
        for (i, s) in scopes.iter().enumerate() {
            if !valid_scope(s) {
                v.add(
                    format!("api_key.scopes[{i}]"),
                    "must be `*` or `service.resource.verb` with `*` for any segment",
                );
            } else if !caller.permissions().iter().any(|p| p == "*")
                && !covers(caller.permissions(), s)
            {
                v.add(
                    format!("api_key.scopes[{i}]"),
                    "grants more than the caller holds",
                );
            }
        }
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (Some(kind), Some(name)) = (kind, name) else {
            return Err(Error::invalid_field("api_key", "is required").into());
        };

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::ApiKey>(&mut tx, org_id, "CreateApiKey", rid).await?
        {
            return Ok(Response::new(prev));
        }
        let secret = domain::mint_secret(if kind == pb::ApiKeyKind::Agent {
            SecretKind::Agent
        } else {
            SecretKind::ApiKey
        });
        let row = store::insert_api_key(
            &mut tx,
            NewApiKey {
                org_id,
                kind: kind_str(kind),
                display_name: &name,
                scopes: &scopes,
                project_id,
                prefix: &secret.prefix,
                secret_hash: &secret.hash,
                created_by: caller.principal_id(),
                expires_at,
            },
        )
        .await?;
        // Never the secret or its hash: the display prefix identifies it.
        actor
            .event("identity.api_key.create", "identity.api_key", row.id)
            .project(row.project_id)
            .set("display_name", &row.display_name)
            .set("kind", &row.kind)
            .set("scopes", &row.scopes)
            .set("prefix", &row.prefix)
            .set("expire_time", row.expires_at)
            .record(&mut tx)
            .await?;
        let stored = key_to_proto(row);
        if let Some(rid) = request_id {
            // The replay never carries the secret: it is shown once.
            idempotency::complete(&mut tx, org_id, "CreateApiKey", rid, &stored).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ApiKey {
            secret: secret.value,
            ..stored
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_api_key(
        &self,
        req: Request<pb::GetApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let org_id = caller(&req)?.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = store::get_api_key(&mut tx, org_id, id, false)
            .await?
            .ok_or_else(not_found)?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(key_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let org_id = caller(&req)?.org_id()?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let kind: Option<pb::ApiKeyKind> = v.opt_enum_value("kind", req.kind);
        v.finish()?;
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!("kind={}", req.kind),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut rows = store::list_api_keys(
            &mut tx,
            org_id,
            kind.map(kind_str),
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.id);
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: rows.into_iter().map(key_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_api_key(
        &self,
        req: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let org_id = caller(&req)?.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = store::get_api_key(&mut tx, org_id, id, true)
            .await?
            .ok_or_else(not_found)?;
        check_etag(&req.get_ref().etag, row.version, "API key")?;
        let before = row.revoked_at;
        let row = store::revoke_api_key(&mut tx, org_id, id).await?;
        if before != row.revoked_at {
            actor
                .event("identity.api_key.revoke", "identity.api_key", id)
                .project(row.project_id)
                .change("revoke_time", before, row.revoked_at)
                .record(&mut tx)
                .await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(key_to_proto(row)))
    }
}

/// Whether the caller's patterns cover a requested scope pattern: every
/// permission the scope could match is granted. Checked segment-wise: a
/// granted `*` covers anything; otherwise the segments must be equal.
fn covers(held: &[String], scope: &str) -> bool {
    held.iter().any(|h| {
        let hs: Vec<&str> = h.split('.').collect();
        let ss: Vec<&str> = scope.split('.').collect();
        hs.len() == ss.len() && hs.iter().zip(&ss).all(|(h, s)| *h == "*" || h == s)
    }) || granted(held, scope) && !scope.contains('*')
}

//! `ApiKeyService`: API keys and agent tokens.

use std::sync::Arc;

use chrono::Utc;
use foundry_domain::Id;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::{from_timestamp, opt_timestamp};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::identity::v1::{self as pb, api_key_service_server::ApiKeyService};
use foundry_resource::{self as resource, Creation, Resource, WireStamp};
use foundry_tenancy::LimitFields;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::{Check, Standing};
use crate::api::{SERVICE, committed, create_with_secret, filtered_page, locked, page_of};
use crate::domain::{ApiKey, ApiKeyKind, NewApiKey};
use crate::store;

/// Handlers of `ApiKeyService`.
#[derive(Clone, Debug)]
pub struct ApiKeys(pub Arc<State>);

const MAX_SCOPES: usize = 64;

fn key_to_proto(k: &ApiKey) -> pb::ApiKey {
    let WireStamp {
        created_by,
        create_time,
        update_time: _,
        etag,
    } = (&k.stamp).into();
    pb::ApiKey {
        id: k.id.to_string(),
        org_id: k.org_id.to_string(),
        kind: pb::ApiKeyKind::from(k.fields.kind) as i32,
        display_name: k.fields.display_name.clone(),
        scopes: k.fields.scopes.clone(),
        project_id: k
            .fields
            .project_id
            .map(|p| p.to_string())
            .unwrap_or_default(),
        resource_id: k
            .fields
            .resource_id
            .map(|r| r.to_string())
            .unwrap_or_default(),
        expire_time: opt_timestamp(k.fields.expires_at),
        state: pb::ApiKeyState::from(k.state(Utc::now())) as i32,
        prefix: k.prefix.clone(),
        created_by,
        create_time,
        last_use_time: opt_timestamp(k.last_used_at),
        revoke_time: opt_timestamp(k.revoked_at),
        etag,
        secret: String::new(),
    }
}

fn valid_scope(s: &str) -> bool {
    s == "*"
        || (s.split('.').count() == 3
            && s.split('.').all(|seg| {
                seg == "*"
                    || (!seg.is_empty() && seg.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            }))
}

/// A key's expiry: unset, or a valid time in the future.
fn expiry(
    v: &mut Violations,
    t: Option<&prost_types::Timestamp>,
) -> Option<Option<chrono::DateTime<Utc>>> {
    match t {
        None => Some(None),
        Some(t) => match from_timestamp(t) {
            Some(e) if e > Utc::now() => Some(Some(e)),
            _ => {
                v.add("api_key.expire_time", "must be a valid time in the future");
                None
            }
        },
    }
}

/// A key's scopes (`*.*.read` when none are given), each well formed
/// (whether the creator holds them is [`within_limits`]'s to decide).
fn scopes(v: &mut Violations, given: &[String]) -> Option<Vec<String>> {
    let scopes = if given.is_empty() {
        vec!["*.*.read".to_owned()]
    } else {
        given.to_vec()
    };
    let mut ok = true;
    if scopes.len() > MAX_SCOPES {
        v.add("api_key.scopes", format!("at most {MAX_SCOPES} scopes"));
        ok = false;
    }
    for (i, s) in scopes.iter().enumerate() {
        if !valid_scope(s) {
            v.add(
                format!("api_key.scopes[{i}]"),
                "must be `*` or `service.resource.verb` with `*` for any segment",
            );
            ok = false;
        }
    }
    ok.then_some(scopes)
}

/// A key gets at most what its creator may hand on now
/// ([`foundry_tenancy::Limits::narrow`]):
/// scopes within the creator's [`Standing`] (its role as it is, not as its
/// token says), and, from a bound or expiring key, its binding and expiry
/// (unset: the creator's).
fn within_limits(new: NewApiKey, standing: &Standing) -> Result<NewApiKey, Error> {
    let limits = standing.limits.narrow(new.limits(), LIMIT_FIELDS)?;
    Ok(new.with_limits(limits))
}

/// The fields of a `CreateApiKeyRequest` that ask for a key's limits.
const LIMIT_FIELDS: LimitFields<'static> = LimitFields {
    project: "api_key.project_id",
    resource: "api_key.resource_id",
    scopes: "api_key.scopes",
    expiry: "api_key.expire_time",
};

/// A `CreateApiKeyRequest` as the create of a [`NewApiKey`].
fn parse_create<'r>(
    req: &'r pb::CreateApiKeyRequest,
) -> Result<Creation<'r, pb::CreateApiKeyRequest, NewApiKey>, Error> {
    let empty = pb::ApiKey::default();
    let k = req.api_key.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let kind: Option<ApiKeyKind> = v.enum_value("api_key.kind", k.kind);
    let display_name = v.text("api_key.display_name", &k.display_name, 1, 200);
    let project_id = v.maybe_id::<()>("api_key.project_id", &k.project_id);
    let resource_id = v.maybe_id::<()>("api_key.resource_id", &k.resource_id);
    if !k.resource_id.is_empty() && k.project_id.is_empty() {
        v.add("api_key.resource_id", "requires project_id");
    }
    let expires_at = expiry(&mut v, k.expire_time.as_ref());
    let scopes = scopes(&mut v, &k.scopes);
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some(Creation {
            method: "CreateApiKey",
            request: req,
            request_id: request_id?,
            new: NewApiKey {
                kind: kind?,
                display_name: display_name?,
                scopes: scopes?,
                project_id: project_id?.map(Id::uuid),
                resource_id: resource_id?.map(Id::uuid),
                expires_at: expires_at?,
            },
        })
    })
}

#[tonic::async_trait]
impl ApiKeyService for ApiKeys {
    #[tracing::instrument(skip_all)]
    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let c = parse_create(req.get_ref())?;
        let reveal = |k, secret| pb::ApiKey { secret, ..k };
        let c = (c, within_limits as Check<NewApiKey>);
        let key = create_with_secret(&self.0, &call, c, key_to_proto, reveal).await?;
        Ok(Response::new(key))
    }

    #[tracing::instrument(skip_all)]
    async fn get_api_key(
        &self,
        req: Request<pb::GetApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id_of("id", &req.get_ref().id)?;
        let key = resource::get::<ApiKey>(&self.0.db, &call, id).await?;
        Ok(Response::new(key_to_proto(&key)))
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_api_key(
        &self,
        req: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id_of("id", &req.get_ref().id)?;
        let (mut tx, before) = locked::<ApiKey>(&self.0.db, &call, id, &req.get_ref().etag).await?;
        let key = store::revoke_api_key(&mut tx, call.org_id, id).await?;
        if before.revoked_at != key.revoked_at {
            call.actor
                .event("identity.api_key.revoke", ApiKey::KIND, id)
                .project(key.fields.project_id)
                .diff(&before, &key)
                .record(&mut tx)
                .await?;
        }
        Ok(committed(tx, &key, key_to_proto).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (org_id, project) = (call.org_id, call.caller.confine("project_id", None)?);
        let req = req.into_inner();
        let (kind, page): (Option<ApiKeyKind>, _) =
            filtered_page(&self.0, "kind", req.kind, (req.page_size, &req.page_token))?;
        let mut out = pb::ListApiKeysResponse::default();
        let mut conn = self.0.db.read(org_id).await?;
        let rows = store::list_api_keys(&mut conn, org_id, (kind, project), page).await?;
        (out.api_keys, out.next_page_token) =
            page_of(&self.0, &page, rows, |k| k.id.uuid(), key_to_proto);
        Ok(Response::new(out))
    }
}

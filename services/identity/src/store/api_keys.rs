//! API keys and agent tokens.

use chrono::{DateTime, Utc};
use foundry_domain::{Id, StoredEnum};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_platform::page::Page;
use foundry_resource::{Resource, StampRow};
use uuid::Uuid;

use super::{Walk, of_org, page_of};

use crate::domain::{ApiKey, ApiKeyId, ApiKeyKind, NewApiKey, Secret};

/// An API key row, as read (never its hash; public only as
/// [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    org_id: Uuid,
    id: Uuid,
    kind: String,
    display_name: String,
    scopes: Vec<String>,
    project_id: Option<Uuid>,
    prefix: String,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    stamp: StampRow,
}

impl Resource for ApiKey {
    type Key = ApiKeyId;
    type Row = ApiKeyRow;
    const KIND: &'static str = "identity.api_key";
    const NAME: &'static str = "API key";
    const TABLE: &'static str = "api_keys";
    const COLUMNS: &'static str = KEY_COLS;
    const NOT_FOUND: &'static str = "API_KEY_NOT_FOUND";

    fn from_row(r: ApiKeyRow) -> Result<ApiKey> {
        Ok(ApiKey {
            org_id: r.org_id,
            id: Id::from_uuid(r.id),
            kind: ApiKeyKind::decode("api_keys", "kind", &r.kind)?,
            display_name: r.display_name,
            scopes: r.scopes,
            project_id: r.project_id,
            prefix: r.prefix,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            stamp: r.stamp.into(),
        })
    }

    fn key(&self) -> ApiKeyId {
        self.id
    }

    fn version(&self) -> i64 {
        self.stamp.version
    }
}

const KEY_COLS: &str = "org_id, id, kind, display_name, scopes, project_id, prefix, expires_at, \
     last_used_at, revoked_at, created_by, version, created_at, updated_at";

/// Inserts a key whose secret is `secret` (only its hash and prefix are
/// stored), made by `created_by`.
pub async fn insert_api_key(
    tx: &mut Tx,
    org_id: Uuid,
    k: &NewApiKey,
    secret: &Secret,
    created_by: Uuid,
) -> Result<ApiKey> {
    let row: ApiKeyRow = sqlx::query_as(&format!(
        "INSERT INTO api_keys (org_id, id, kind, display_name, scopes, project_id, prefix, secret_hash, created_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {KEY_COLS}"
    ))
    .bind(org_id)
    .bind(Uuid::now_v7())
    .bind(k.kind.as_str())
    .bind(&k.display_name)
    .bind(&k.scopes)
    .bind(k.project_id)
    .bind(&secret.prefix)
    .bind(&secret.hash)
    .bind(created_by)
    .bind(k.expires_at)
    .fetch_one(&mut **tx)
    .await?;
    ApiKey::from_row(row)
}

pub async fn list_api_keys(
    tx: &mut Tx,
    org_id: Uuid,
    kind: Option<ApiKeyKind>,
    page: Page,
) -> Result<Vec<ApiKey>> {
    let select = format!("SELECT {KEY_COLS} FROM api_keys");
    let q = of_org(
        &select,
        ("org_id", org_id),
        ("kind", kind.map(ApiKeyKind::as_str)),
    );
    page_of::<ApiKeyRow, _>(tx, q, ("id", Walk::Newest), page, ApiKey::from_row).await
}

pub async fn revoke_api_key(tx: &mut Tx, org_id: Uuid, id: ApiKeyId) -> Result<ApiKey> {
    let row: ApiKeyRow = sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()), version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {KEY_COLS}"
    ))
    .bind(org_id)
    .bind(id.uuid())
    .fetch_one(&mut **tx)
    .await?;
    ApiKey::from_row(row)
}

/// Resolves a key by its hash across tenants (the caller does not know its
/// org yet: system transaction) and records the use at most once a minute,
/// so a busy key does not write on every exchange.
pub async fn use_api_key(tx: &mut Tx, hash: &[u8]) -> Result<Option<ApiKey>> {
    let row: Option<ApiKeyRow> = sqlx::query_as(&format!(
        "SELECT {KEY_COLS} FROM api_keys WHERE secret_hash = $1"
    ))
    .bind(hash)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(r) = &row {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = now() WHERE org_id = $1 AND id = $2 \
             AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        )
        .bind(r.org_id)
        .bind(r.id)
        .execute(&mut **tx)
        .await?;
    }
    row.map(ApiKey::from_row).transpose()
}

//! API keys and agent tokens.

use chrono::{DateTime, Utc};
use foundry_domain::StoredEnum;
use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use uuid::Uuid;

use crate::domain::{ApiKey, ApiKeyKind, NewApiKey, Secret};

/// An API key row, as read (never its hash).
#[derive(Debug, Clone, sqlx::FromRow)]
struct ApiKeyRow {
    org_id: Uuid,
    id: Uuid,
    kind: String,
    display_name: String,
    scopes: Vec<String>,
    project_id: Option<Uuid>,
    prefix: String,
    created_by: Uuid,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    version: i64,
    created_at: DateTime<Utc>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = Error;

    fn try_from(r: ApiKeyRow) -> Result<ApiKey> {
        Ok(ApiKey {
            org_id: r.org_id,
            id: r.id,
            kind: ApiKeyKind::decode("api_keys", "kind", &r.kind)?,
            display_name: r.display_name,
            scopes: r.scopes,
            project_id: r.project_id,
            prefix: r.prefix,
            created_by: r.created_by,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            version: r.version,
            created_at: r.created_at,
        })
    }
}

const KEY_COLS: &str = "org_id, id, kind, display_name, scopes, project_id, prefix, created_by, expires_at, \
     last_used_at, revoked_at, version, created_at";

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
    row.try_into()
}

pub async fn get_api_key(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<Option<ApiKey>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row: Option<ApiKeyRow> = sqlx::query_as(&format!(
        "SELECT {KEY_COLS} FROM api_keys WHERE org_id = $1 AND id = $2{lock}"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(ApiKey::try_from).transpose()
}

pub async fn list_api_keys(
    tx: &mut Tx,
    org_id: Uuid,
    kind: Option<ApiKeyKind>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ApiKey>> {
    let rows: Vec<ApiKeyRow> = sqlx::query_as(&format!(
        "SELECT {KEY_COLS} FROM api_keys WHERE org_id = $1 AND ($2::text IS NULL OR kind = $2) \
         AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    ))
    .bind(org_id)
    .bind(kind.map(ApiKeyKind::as_str))
    .bind(before)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter().map(ApiKey::try_from).collect()
}

pub async fn revoke_api_key(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<ApiKey> {
    let row: ApiKeyRow = sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()), version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {KEY_COLS}"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    row.try_into()
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
    row.map(ApiKey::try_from).transpose()
}

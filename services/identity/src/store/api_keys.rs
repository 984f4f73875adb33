//! API keys and agent tokens.

use async_trait::async_trait;
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_platform::page::Page;
use foundry_resource::Resource;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{InsertWithSecret, Walk, find_by, of_org, one, page_of, select};

use crate::domain::{ApiKey, ApiKeyId, ApiKeyKind, NewApiKey, Secret, SecretKind};

impl Resource for ApiKey {
    type New = NewApiKey;
    const KIND: &'static str = "identity.api_key";
    const NAME: &'static str = "API key";
    const TABLE: &'static str = "api_keys";
    const COLUMNS: &'static str = KEY_COLS;
    const NOT_FOUND: &'static str = "API_KEY_NOT_FOUND";
}

/// Every column but the secret's hash, which is never read.
const KEY_COLS: &str = "org_id, id, kind, display_name, scopes, project_id, resource_id, prefix, expires_at, \
     last_used_at, revoked_at, created_by, version, created_at, updated_at";

#[async_trait]
impl InsertWithSecret for ApiKey {
    fn secret_kind(k: &NewApiKey) -> SecretKind {
        k.kind.secret_kind()
    }

    async fn insert(
        k: &NewApiKey,
        secret: &Secret,
        tx: &mut Tx,
        org_id: Uuid,
        created_by: Uuid,
    ) -> Result<ApiKey> {
        let sql = format!(
            "INSERT INTO api_keys (org_id, id, kind, display_name, scopes, project_id, resource_id, prefix, secret_hash, created_by, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {KEY_COLS}"
        );
        let q = sqlx::query(&sql)
            .bind(org_id)
            .bind(Uuid::now_v7())
            .bind(k.kind.as_str())
            .bind(&k.display_name)
            .bind(&k.scopes)
            .bind(k.project_id)
            .bind(k.resource_id)
            .bind(&secret.prefix)
            .bind(&secret.hash)
            .bind(created_by)
            .bind(k.expires_at);
        one(tx, q).await
    }
}

/// A page of the organization's keys, of `kind` if given, bound to
/// `project` if given (a bound caller's list).
pub async fn list_api_keys(
    conn: &mut PgConnection,
    org_id: Uuid,
    (kind, project): (Option<ApiKeyKind>, Option<Uuid>),
    page: Page,
) -> Result<Vec<ApiKey>> {
    let mut q = of_org(
        &select::<ApiKey>(),
        ("org_id", org_id),
        ("kind", kind.map(ApiKeyKind::as_str)),
    );
    if let Some(project) = project {
        q.push(" AND project_id = ").push_bind(project);
    }
    page_of(conn, q, ("id", Walk::Newest), page).await
}

pub async fn revoke_api_key(tx: &mut Tx, org_id: Uuid, id: ApiKeyId) -> Result<ApiKey> {
    let sql = format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()), version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {KEY_COLS}"
    );
    one(tx, sqlx::query(&sql).bind(org_id).bind(id.uuid())).await
}

/// Resolves a key by its hash across tenants (the caller does not know its
/// org yet: system transaction) and records the use at most once a minute,
/// so a busy key does not write on every exchange.
pub async fn use_api_key(tx: &mut Tx, hash: &[u8]) -> Result<Option<ApiKey>> {
    let Some(key) = find_by::<ApiKey, _>(tx, ("secret_hash", hash), false).await? else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now() WHERE org_id = $1 AND id = $2 \
         AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(key.org_id)
    .bind(key.id.uuid())
    .execute(&mut **tx)
    .await?;
    Ok(Some(key))
}

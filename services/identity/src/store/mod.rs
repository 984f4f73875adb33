//! SQL of the identity service: runtime `query_as` into `FromRow` rows,
//! columns listed, every tenant query led by `org_id`. Constraint names map
//! to errors here and nowhere else.

use chrono::{DateTime, Utc};
use foundry_platform::db::Tx;
use foundry_platform::error::is_unique_violation;
use foundry_platform::{Error, Result};
use uuid::Uuid;

/// An organization row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub settings: serde_json::Value,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// The columns every organization read returns, in `OrgRow` order.
pub const ORG_COLUMNS: &str =
    "id, name, slug, settings, version, created_at, updated_at, deleted_at";

fn slug_taken(e: sqlx::Error) -> Error {
    if is_unique_violation(&e, "organizations_slug_key") {
        Error::already_exists(
            "SLUG_TAKEN",
            "organization.slug",
            "an organization with this slug exists",
        )
    } else {
        e.into()
    }
}

pub async fn insert_org(
    tx: &mut Tx,
    id: Uuid,
    name: &str,
    slug: &str,
    settings: &serde_json::Value,
) -> Result<OrgRow> {
    sqlx::query_as(&format!(
        "INSERT INTO organizations (id, name, slug, settings) VALUES ($1, $2, $3, $4) RETURNING {ORG_COLUMNS}"
    ))
    .bind(id)
    .bind(name)
    .bind(slug)
    .bind(settings)
    .fetch_one(&mut **tx)
    .await
    .map_err(slug_taken)
}

pub async fn get_org(tx: &mut Tx, id: Uuid, lock: bool) -> Result<Option<OrgRow>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    Ok(sqlx::query_as(&format!(
        "SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1{lock}"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn list_user_orgs(
    tx: &mut Tx,
    user_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<OrgRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {cols} FROM organizations o \
         WHERE o.id IN (SELECT m.org_id FROM memberships m WHERE m.user_id = $1) \
           AND o.deleted_at IS NULL AND ($2::uuid IS NULL OR o.id > $2) \
         ORDER BY o.id LIMIT $3",
        cols = ORG_COLUMNS
            .split(", ")
            .map(|c| format!("o.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind(user_id)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn update_org(tx: &mut Tx, row: &OrgRow) -> Result<OrgRow> {
    sqlx::query_as(&format!(
        "UPDATE organizations SET name = $2, slug = $3, settings = $4, version = version + 1, updated_at = now() \
         WHERE id = $1 RETURNING {ORG_COLUMNS}"
    ))
    .bind(row.id)
    .bind(&row.name)
    .bind(&row.slug)
    .bind(&row.settings)
    .fetch_one(&mut **tx)
    .await
    .map_err(slug_taken)
}

pub async fn set_org_deleted(tx: &mut Tx, id: Uuid, deleted: bool) -> Result<OrgRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE organizations SET deleted_at = CASE WHEN $2 THEN now() END, version = version + 1, updated_at = now() \
         WHERE id = $1 RETURNING {ORG_COLUMNS}"
    ))
    .bind(id)
    .bind(deleted)
    .fetch_one(&mut **tx)
    .await?)
}

/// A user row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
}

pub async fn insert_user(tx: &mut Tx, email: &str, display_name: &str) -> Result<UserRow> {
    sqlx::query_as(
        "INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3) RETURNING id, email, display_name",
    )
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(display_name)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "users_email_key") {
            Error::already_exists("EMAIL_TAKEN", "email", "a user with this email exists")
        } else {
            e.into()
        }
    })
}

/// A membership row, with the member's display fields.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub role: String,
    pub invited_by: Option<Uuid>,
    pub email: String,
    pub display_name: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const MEMBER_SELECT: &str = "SELECT m.id, m.org_id, m.user_id, m.role, m.invited_by, u.email, u.display_name, \
     m.version, m.created_at, m.updated_at FROM memberships m JOIN users u ON u.id = m.user_id";

pub async fn insert_membership(
    tx: &mut Tx,
    org_id: Uuid,
    user_id: Uuid,
    role: &str,
    invited_by: Option<Uuid>,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO memberships (org_id, id, user_id, role, invited_by) VALUES ($1, $2, $3, $4, $5)")
        .bind(org_id)
        .bind(id)
        .bind(user_id)
        .bind(role)
        .bind(invited_by)
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e, "memberships_org_user_key") {
                Error::already_exists("ALREADY_MEMBER", "user_id", "the user is already a member")
            } else {
                e.into()
            }
        })?;
    Ok(id)
}

pub async fn get_membership(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<Option<MemberRow>> {
    let lock = if lock { " FOR UPDATE OF m" } else { "" };
    Ok(sqlx::query_as(&format!(
        "{MEMBER_SELECT} WHERE m.org_id = $1 AND m.id = $2{lock}"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn get_membership_of(
    tx: &mut Tx,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<Option<MemberRow>> {
    Ok(sqlx::query_as(&format!(
        "{MEMBER_SELECT} WHERE m.org_id = $1 AND m.user_id = $2"
    ))
    .bind(org_id)
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn list_memberships(
    tx: &mut Tx,
    org_id: Uuid,
    role: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<MemberRow>> {
    Ok(sqlx::query_as(&format!(
        "{MEMBER_SELECT} WHERE m.org_id = $1 AND ($2::text IS NULL OR m.role = $2) \
         AND ($3::uuid IS NULL OR m.id > $3) ORDER BY m.id LIMIT $4"
    ))
    .bind(org_id)
    .bind(role)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

/// Counts owners, locking their rows so two concurrent demotions cannot both
/// see two owners and leave none.
pub async fn lock_owner_count(tx: &mut Tx, org_id: Uuid) -> Result<i64> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM memberships WHERE org_id = $1 AND role = 'owner' ORDER BY id FOR UPDATE",
    )
    .bind(org_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(ids.len() as i64)
}

pub async fn set_membership_role(tx: &mut Tx, org_id: Uuid, id: Uuid, role: &str) -> Result<()> {
    sqlx::query("UPDATE memberships SET role = $3, version = version + 1, updated_at = now() WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .bind(role)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn delete_membership(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A session row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub user_agent: String,
    pub client_ip: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const SESSION_COLS: &str =
    "id, user_id, user_agent, client_ip, created_at, last_used_at, expires_at, revoked_at";

pub async fn insert_session(
    tx: &mut Tx,
    user_id: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
    user_agent: &str,
    client_ip: &str,
) -> Result<SessionRow> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO sessions (id, user_id, token_hash, expires_at, user_agent, client_ip) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SESSION_COLS}"
    ))
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(token_hash)
    .bind(expires_at)
    .bind(user_agent)
    .bind(client_ip)
    .fetch_one(&mut **tx)
    .await?)
}

/// Finds a live session by its refresh token hash and records the use.
pub async fn use_session(tx: &mut Tx, token_hash: &[u8]) -> Result<Option<SessionRow>> {
    Ok(sqlx::query_as(&format!(
        "UPDATE sessions SET last_used_at = now() WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now() \
         RETURNING {SESSION_COLS}"
    ))
    .bind(token_hash)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn list_sessions(
    tx: &mut Tx,
    user_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<SessionRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SESSION_COLS} FROM sessions WHERE user_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(user_id)
    .bind(before)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn revoke_session(tx: &mut Tx, user_id: Uuid, id: Uuid) -> Result<Option<SessionRow>> {
    Ok(sqlx::query_as(&format!(
        "UPDATE sessions SET revoked_at = coalesce(revoked_at, now()) WHERE user_id = $1 AND id = $2 RETURNING {SESSION_COLS}"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// An API key row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub org_id: Uuid,
    pub id: Uuid,
    pub kind: String,
    pub display_name: String,
    pub scopes: Vec<String>,
    pub project_id: Option<Uuid>,
    pub prefix: String,
    pub created_by: Uuid,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

const KEY_COLS: &str = "org_id, id, kind, display_name, scopes, project_id, prefix, created_by, expires_at, \
     last_used_at, revoked_at, version, created_at";

/// What a new key is.
pub struct NewApiKey<'a> {
    pub org_id: Uuid,
    pub kind: &'a str,
    pub display_name: &'a str,
    pub scopes: &'a [String],
    pub project_id: Option<Uuid>,
    pub prefix: &'a str,
    pub secret_hash: &'a [u8],
    pub created_by: Uuid,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert_api_key(tx: &mut Tx, k: NewApiKey<'_>) -> Result<ApiKeyRow> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO api_keys (org_id, id, kind, display_name, scopes, project_id, prefix, secret_hash, created_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {KEY_COLS}"
    ))
    .bind(k.org_id)
    .bind(Uuid::now_v7())
    .bind(k.kind)
    .bind(k.display_name)
    .bind(k.scopes)
    .bind(k.project_id)
    .bind(k.prefix)
    .bind(k.secret_hash)
    .bind(k.created_by)
    .bind(k.expires_at)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn get_api_key(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<Option<ApiKeyRow>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    Ok(sqlx::query_as(&format!(
        "SELECT {KEY_COLS} FROM api_keys WHERE org_id = $1 AND id = $2{lock}"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn list_api_keys(
    tx: &mut Tx,
    org_id: Uuid,
    kind: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ApiKeyRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {KEY_COLS} FROM api_keys WHERE org_id = $1 AND ($2::text IS NULL OR kind = $2) \
         AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    ))
    .bind(org_id)
    .bind(kind)
    .bind(before)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn revoke_api_key(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<ApiKeyRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()), version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {KEY_COLS}"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?)
}

/// Resolves a key by its hash across tenants (the caller does not know its
/// org yet: system transaction) and records the use at most once a minute,
/// so a busy key does not write on every exchange.
pub async fn use_api_key(tx: &mut Tx, hash: &[u8]) -> Result<Option<ApiKeyRow>> {
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
    Ok(row)
}

/// A service account resolved by its key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServiceAccountRow {
    pub id: Uuid,
    pub name: String,
    pub disabled_at: Option<DateTime<Utc>>,
}

pub async fn insert_service_account(
    tx: &mut Tx,
    name: &str,
    description: &str,
    key_hash: &[u8],
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO service_accounts (id, name, description, key_hash) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(name)
    .bind(description)
    .bind(key_hash)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "service_accounts_name_key") {
            Error::already_exists(
                "NAME_TAKEN",
                "service_account.name",
                "a service account with this name exists",
            )
        } else {
            e.into()
        }
    })?;
    Ok(id)
}

pub async fn find_service_account(
    tx: &mut Tx,
    key_hash: &[u8],
) -> Result<Option<ServiceAccountRow>> {
    Ok(
        sqlx::query_as("SELECT id, name, disabled_at FROM service_accounts WHERE key_hash = $1")
            .bind(key_hash)
            .fetch_optional(&mut **tx)
            .await?,
    )
}

mod invitations;
mod linked;
mod users;

pub use invitations::*;
pub use linked::*;
pub use users::*;

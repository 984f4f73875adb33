//! Users, linked accounts, service accounts listing.

use chrono::{DateTime, Utc};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use uuid::Uuid;

/// A user's full row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserFull {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub avatar_url: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const USER_COLS: &str = "id, email, display_name, avatar_url, version, created_at, updated_at";

pub async fn get_user(tx: &mut Tx, id: Uuid, lock: bool) -> Result<Option<UserFull>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    Ok(sqlx::query_as(&format!(
        "SELECT {USER_COLS} FROM users WHERE id = $1{lock}"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn update_user(
    tx: &mut Tx,
    id: Uuid,
    display_name: &str,
    avatar_url: &str,
) -> Result<UserFull> {
    Ok(sqlx::query_as(&format!(
        "UPDATE users SET display_name = $2, avatar_url = $3, version = version + 1, updated_at = now() \
         WHERE id = $1 RETURNING {USER_COLS}"
    ))
    .bind(id)
    .bind(display_name)
    .bind(avatar_url)
    .fetch_one(&mut **tx)
    .await?)
}

/// A linked account row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LinkedAccountRow {
    pub id: Uuid,
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_login_at: DateTime<Utc>,
}

pub async fn list_linked_accounts(tx: &mut Tx, user_id: Uuid) -> Result<Vec<LinkedAccountRow>> {
    Ok(sqlx::query_as(
        "SELECT id, provider, issuer, subject, email, created_at, last_login_at FROM linked_accounts \
         WHERE user_id = $1 ORDER BY id FOR UPDATE",
    )
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn delete_linked_account(tx: &mut Tx, user_id: Uuid, id: Uuid) -> Result<bool> {
    Ok(
        sqlx::query("DELETE FROM linked_accounts WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected()
            == 1,
    )
}

/// A service account as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServiceAccountFull {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

const SA_COLS: &str = "id, name, description, created_at, disabled_at";

pub async fn get_service_account(tx: &mut Tx, id: Uuid) -> Result<Option<ServiceAccountFull>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SA_COLS} FROM service_accounts WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn list_service_accounts(
    tx: &mut Tx,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ServiceAccountFull>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SA_COLS} FROM service_accounts WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn disable_service_account(tx: &mut Tx, id: Uuid) -> Result<Option<ServiceAccountFull>> {
    Ok(sqlx::query_as(&format!(
        "UPDATE service_accounts SET disabled_at = coalesce(disabled_at, now()) WHERE id = $1 RETURNING {SA_COLS}"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

//! Sessions.

use chrono::{DateTime, Utc};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_platform::page::Page;
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::{Stored, Walk, maybe, one, page_of, select};

use crate::domain::Session;

impl Stored for Session {
    const TABLE: &'static str = "sessions";
    const COLUMNS: &'static str = SESSION_COLS;
}

/// Every column but the refresh token's hash, which is never read.
const SESSION_COLS: &str =
    "id, user_id, user_agent, client_ip, created_at, last_used_at, expires_at, revoked_at";

pub async fn insert_session(
    tx: &mut Tx,
    user_id: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
    user_agent: &str,
    client_ip: &str,
) -> Result<Session> {
    let sql = format!(
        "INSERT INTO sessions (id, user_id, token_hash, expires_at, user_agent, client_ip) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SESSION_COLS}"
    );
    let q = sqlx::query(&sql)
        .bind(Uuid::now_v7())
        .bind(user_id)
        .bind(token_hash)
        .bind(expires_at)
        .bind(user_agent)
        .bind(client_ip);
    one(tx, q).await
}

/// The session whose current refresh token hashes to `token_hash`, live
/// or not, locked `FOR UPDATE`: of two exchanges of one token, the second
/// waits here and then finds the token rotated away.
pub async fn lock_session_by_token(tx: &mut Tx, token_hash: &[u8]) -> Result<Option<Session>> {
    let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE token_hash = $1 FOR UPDATE");
    maybe(tx, sqlx::query(&sql).bind(token_hash)).await
}

/// Records a use of the session `id` without rotating its token (an
/// exchange refused for its organization).
pub async fn touch_session(tx: &mut Tx, id: Uuid) -> Result<()> {
    sqlx::query("UPDATE sessions SET last_used_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Replaces the session's refresh token (`spent`, as locked by
/// [`lock_session_by_token`]) with the one hashing to `next`, records the
/// use, and keeps `spent` until the session expires, so that presenting it
/// again is known as a reuse.
pub async fn rotate_session(
    tx: &mut Tx,
    session: &Session,
    spent: &[u8],
    next: &[u8],
) -> Result<Session> {
    sqlx::query(
        "INSERT INTO spent_refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(spent)
    .bind(session.id)
    .bind(session.expires_at)
    .execute(&mut **tx)
    .await?;
    let sql = format!(
        "UPDATE sessions SET token_hash = $2, last_used_at = now() WHERE id = $1 RETURNING {SESSION_COLS}"
    );
    one(tx, sqlx::query(&sql).bind(session.id).bind(next)).await
}

/// The session a spent (rotated away) refresh token belonged to, if the
/// token is one.
pub async fn spent_token_session(tx: &mut Tx, token_hash: &[u8]) -> Result<Option<Session>> {
    let sql = format!(
        "SELECT {SESSION_COLS} FROM sessions WHERE id = \
         (SELECT session_id FROM spent_refresh_tokens WHERE token_hash = $1) FOR UPDATE"
    );
    maybe(tx, sqlx::query(&sql).bind(token_hash)).await
}

pub async fn list_sessions(tx: &mut Tx, user_id: Uuid, page: Page) -> Result<Vec<Session>> {
    let mut q = QueryBuilder::new(format!("{} WHERE user_id = ", select::<Session>()));
    q.push_bind(user_id);
    page_of(tx, q, ("id", Walk::Newest), page).await
}

pub async fn revoke_session(tx: &mut Tx, user_id: Uuid, id: Uuid) -> Result<Option<Session>> {
    let sql = format!(
        "UPDATE sessions SET revoked_at = coalesce(revoked_at, now()) WHERE user_id = $1 AND id = $2 RETURNING {SESSION_COLS}"
    );
    maybe(tx, sqlx::query(&sql).bind(user_id).bind(id)).await
}

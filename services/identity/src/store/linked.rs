//! Linked accounts: external sign-in by (issuer, subject).

use chrono::{DateTime, Utc};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use uuid::Uuid;

use super::{Stored, refused};

use crate::domain::{LinkedAccount, UserId};

impl Stored for LinkedAccount {
    const TABLE: &'static str = "linked_accounts";
}

/// Records the use of the ID token `token_id` of `issuer`, remembered until
/// `until`; `false` when it was used before (a replay). Of two uses at once
/// the second waits for the first to commit and then finds it.
pub async fn claim_id_token(
    tx: &mut Tx,
    issuer: &str,
    token_id: &str,
    until: DateTime<Utc>,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO used_id_tokens (issuer, token_id, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(issuer)
    .bind(token_id)
    .bind(until)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Records a sign-in through a linked account; returns its user, if linked.
pub async fn touch_linked_account(
    tx: &mut Tx,
    issuer: &str,
    subject: &str,
    email: &str,
) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "UPDATE linked_accounts SET last_login_at = now(), email = CASE WHEN $3 = '' THEN email ELSE $3 END \
         WHERE issuer = $1 AND subject = $2 RETURNING user_id",
    )
    .bind(issuer)
    .bind(subject)
    .bind(email)
    .fetch_optional(&mut **tx)
    .await?)
}

/// The user the external account (`issuer`, `subject`) is linked to, if
/// any.
pub async fn linked_user(tx: &mut Tx, issuer: &str, subject: &str) -> Result<Option<Uuid>> {
    Ok(
        sqlx::query_scalar(
            "SELECT user_id FROM linked_accounts WHERE issuer = $1 AND subject = $2",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&mut **tx)
        .await?,
    )
}

/// Links an external account to a user.
pub async fn insert_linked_account(
    tx: &mut Tx,
    user_id: Uuid,
    provider: &str,
    issuer: &str,
    subject: &str,
    email: &str,
) -> Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO linked_accounts (id, user_id, provider, issuer, subject, email) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(provider)
    .bind(issuer)
    .bind(subject)
    .bind(email)
    .fetch_one(&mut **tx)
    .await
    .map_err(refused)
}

/// A user's linked accounts, locked (the last one is never removed).
pub async fn list_linked_accounts(tx: &mut Tx, user_id: UserId) -> Result<Vec<LinkedAccount>> {
    let rows = sqlx::query(
        "SELECT id, provider, issuer, subject, email, created_at, last_login_at FROM linked_accounts \
         WHERE user_id = $1 ORDER BY id FOR UPDATE",
    )
    .bind(user_id.uuid())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(LinkedAccount::read).collect()
}

pub async fn delete_linked_account(tx: &mut Tx, user_id: UserId, id: Uuid) -> Result<bool> {
    Ok(
        sqlx::query("DELETE FROM linked_accounts WHERE user_id = $1 AND id = $2")
            .bind(user_id.uuid())
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected()
            == 1,
    )
}

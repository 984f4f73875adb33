//! External sign-in: linked accounts by (issuer, subject), users by email.

use foundry_platform::db::Tx;
use foundry_platform::error::is_unique_violation;
use foundry_platform::{Error, Result};
use uuid::Uuid;

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
    .map_err(|e| {
        if is_unique_violation(&e, "linked_accounts_issuer_subject_key") {
            Error::aborted(
                "CONCURRENT_SIGN_IN",
                "the same account signed in twice at once; retry",
            )
        } else {
            e.into()
        }
    })
}

/// The user with this email (case-insensitive), if any.
pub async fn find_user_by_email(tx: &mut Tx, email: &str) -> Result<Option<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM users WHERE lower(email) = lower($1) FOR UPDATE")
            .bind(email)
            .fetch_optional(&mut **tx)
            .await?,
    )
}

/// Sets a user's avatar if none is set yet.
pub async fn default_avatar(tx: &mut Tx, user_id: Uuid, avatar_url: &str) -> Result<()> {
    sqlx::query("UPDATE users SET avatar_url = $2 WHERE id = $1 AND avatar_url = ''")
        .bind(user_id)
        .bind(avatar_url)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

//! Users.

use foundry_platform::Result;
use foundry_platform::db::Tx;
use uuid::Uuid;

use super::{Stored, find_by, one};

use crate::domain::{User, UserId};

impl Stored for User {
    const TABLE: &'static str = "users";
}

pub async fn insert_user(tx: &mut Tx, email: &str, display_name: &str) -> Result<User> {
    let sql = "INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3) RETURNING *";
    let q = sqlx::query(sql)
        .bind(Uuid::now_v7())
        .bind(email)
        .bind(display_name);
    one(tx, q).await
}

pub async fn get_user(tx: &mut Tx, id: UserId, lock: bool) -> Result<Option<User>> {
    find_by(tx, ("id", id.uuid()), lock).await
}

/// Writes a user's updatable fields.
pub async fn update_user(tx: &mut Tx, u: &User) -> Result<User> {
    let sql = "UPDATE users SET display_name = $2, avatar_url = $3, \
               version = version + 1, updated_at = now() WHERE id = $1 RETURNING *";
    let q = sqlx::query(sql)
        .bind(u.id.uuid())
        .bind(&u.display_name)
        .bind(&u.avatar_url);
    one(tx, q).await
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

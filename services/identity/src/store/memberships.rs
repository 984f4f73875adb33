//! Memberships, with the member's display fields.

use foundry_domain::Id;
use foundry_platform::db::{Lock, Tx};
use foundry_platform::page::Page;
use foundry_platform::{Error, Result};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Stored, Walk, maybe, of_org, page_of, refused};

use crate::domain::{Membership, MembershipId, Role, UserId};

impl Stored for Membership {
    const TABLE: &'static str = "memberships";
}

/// A membership with its member's display fields.
const MEMBER_SELECT: &str = "SELECT m.id, m.org_id, m.user_id, m.role, m.invited_by, u.email, u.display_name, \
     m.version, m.created_at, m.updated_at FROM memberships m JOIN users u ON u.id = m.user_id";

/// Inserts a membership; returns it with the member's display fields.
pub async fn insert_membership(
    tx: &mut Tx,
    org_id: Uuid,
    user_id: UserId,
    role: Role,
    invited_by: Option<Uuid>,
) -> Result<Membership> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO memberships (org_id, id, user_id, role, invited_by) VALUES ($1, $2, $3, $4, $5)")
        .bind(org_id)
        .bind(id)
        .bind(user_id.uuid())
        .bind(role.as_str())
        .bind(invited_by)
        .execute(&mut **tx)
        .await
        .map_err(refused)?;
    get_membership(tx, org_id, Id::from_uuid(id), false)
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("inserted membership missing")))
}

pub async fn get_membership(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: MembershipId,
    lock: bool,
) -> Result<Option<Membership>> {
    let lock = if lock { Lock::Update } else { Lock::None };
    member_where(conn, org_id, ("m.id", id.uuid()), lock).await
}

/// The membership of `user_id` in `org_id`, its row read with `lock`.
pub async fn get_membership_of(
    tx: &mut Tx,
    org_id: Uuid,
    user_id: UserId,
    lock: Lock,
) -> Result<Option<Membership>> {
    member_where(tx, org_id, ("m.user_id", user_id.uuid()), lock).await
}

/// The membership of `org_id` whose `column` is `value`, its row (not its
/// user's) read with `lock`.
async fn member_where(
    conn: &mut PgConnection,
    org_id: Uuid,
    (column, value): (&str, Uuid),
    lock: Lock,
) -> Result<Option<Membership>> {
    let of = if lock == Lock::None { "" } else { " OF m" };
    let sql = format!(
        "{MEMBER_SELECT} WHERE m.org_id = $1 AND {column} = $2{}{of}",
        lock.sql()
    );
    maybe(conn, sqlx::query(&sql).bind(org_id).bind(value)).await
}

pub async fn list_memberships(
    conn: &mut PgConnection,
    org_id: Uuid,
    role: Option<Role>,
    page: Page,
) -> Result<Vec<Membership>> {
    let q = of_org(
        MEMBER_SELECT,
        ("m.org_id", org_id),
        ("m.role", role.map(Role::as_str)),
    );
    page_of(conn, q, ("m.id", Walk::Oldest), page).await
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

/// Writes a membership's updatable fields.
pub async fn update_membership(tx: &mut Tx, m: &Membership) -> Result<()> {
    sqlx::query("UPDATE memberships SET role = $3, version = version + 1, updated_at = now() WHERE org_id = $1 AND id = $2")
        .bind(m.org_id)
        .bind(m.id.uuid())
        .bind(m.role.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn delete_membership(tx: &mut Tx, org_id: Uuid, id: MembershipId) -> Result<()> {
    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id.uuid())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The first organization after `after` (by id) that has members, under
/// system scope.
pub async fn next_org_with_members(tx: &mut Tx, after: Uuid) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT org_id FROM memberships WHERE org_id > $1 ORDER BY org_id LIMIT 1",
    )
    .bind(after)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Up to `limit` memberships of `org_id` after `after` (by id), their
/// rows (not their users') held `FOR SHARE` until the transaction ends: a
/// change to one of them waits for it, or was committed before it read.
pub async fn share_memberships_after(
    tx: &mut Tx,
    org_id: Uuid,
    after: Uuid,
    limit: i64,
) -> Result<Vec<Membership>> {
    let sql = format!(
        "{MEMBER_SELECT} WHERE m.org_id = $1 AND m.id > $2 ORDER BY m.id LIMIT $3{} OF m",
        Lock::Share.sql()
    );
    let rows = sqlx::query(&sql)
        .bind(org_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(Membership::read).collect()
}

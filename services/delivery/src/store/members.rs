//! Delivery's replica of identity's memberships (`members`): written by
//! the inbox under system scope from identity's membership events, read by
//! the mutations that reference users.

use chrono::{DateTime, Utc};
use foundry_outbox::membership::Membership;
use foundry_platform::Result;
use foundry_platform::db::Tx;
use uuid::Uuid;

/// One membership event, as the replica keeps it.
#[derive(Clone, Debug)]
pub struct MemberEvent {
    /// Its id.
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// Its place in the organization's commit order at identity.
    pub seq: i64,
    /// When identity made the change.
    pub change_time: DateTime<Utc>,
    /// The membership after it.
    pub membership: Membership,
}

/// Applies `e` (under system scope) if it is newer than what the replica
/// holds for its member: an older one, redelivered or late, changes
/// nothing. Whether it changed the replica.
pub async fn apply_member_event(tx: &mut Tx, e: &MemberEvent) -> Result<bool> {
    let m = &e.membership;
    let n = sqlx::query(
        "INSERT INTO members (org_id, user_id, membership_id, role, active, seq, event_id, change_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (org_id, user_id) DO UPDATE SET \
           membership_id = EXCLUDED.membership_id, role = EXCLUDED.role, active = EXCLUDED.active, \
           seq = EXCLUDED.seq, event_id = EXCLUDED.event_id, change_time = EXCLUDED.change_time, \
           receive_time = now() \
         WHERE members.seq < EXCLUDED.seq",
    )
    .bind(e.org_id)
    .bind(m.user_id)
    .bind(m.membership_id)
    .bind(&m.role)
    .bind(m.active)
    .bind(e.seq)
    .bind(e.id)
    .bind(e.change_time)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The positions in `users` of those that are not active members of
/// `org_id` as the replica has them, in one statement (the primary key,
/// once per user).
pub async fn not_members(tx: &mut Tx, org_id: Uuid, users: &[Uuid]) -> Result<Vec<usize>> {
    if users.is_empty() {
        return Ok(vec![]);
    }
    let positions: Vec<i64> = sqlx::query_scalar(
        "SELECT u.n - 1 FROM unnest($2::uuid[]) WITH ORDINALITY AS u(user_id, n) \
         WHERE NOT EXISTS (SELECT 1 FROM members m \
                           WHERE m.org_id = $1 AND m.user_id = u.user_id AND m.active) \
         ORDER BY u.n",
    )
    .bind(org_id)
    .bind(users)
    .fetch_all(&mut **tx)
    .await?;
    Ok(positions
        .into_iter()
        .filter_map(|n| usize::try_from(n).ok())
        .collect())
}

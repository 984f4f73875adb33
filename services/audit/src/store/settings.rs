//! SQL of settings and retention. The service's role keeps settings; it
//! removes events only through `remove_retained_prefix` (see the
//! migration), which also moves the watermark.

use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::row;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::domain::settings::Settings;

/// A settings row, read by the names of its fields.
fn read(row: &PgRow) -> Result<Settings> {
    row::decode(row, "settings")
}

/// An organization's settings, locked for update if `for_update`.
pub async fn get_settings(
    conn: &mut PgConnection,
    org_id: Uuid,
    for_update: bool,
) -> Result<Option<Settings>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = sqlx::query(&format!(
        "SELECT retention_days, pending_retention_days, pending_effective_at, version, updated_at \
         FROM settings WHERE org_id = $1{lock}"
    ))
    .bind(org_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(read).transpose()
}

/// Creates an organization's settings row with the defaults (version 0)
/// if it has none, waiting for a concurrent creation to commit.
pub async fn ensure_settings(tx: &mut Tx, org_id: Uuid) -> Result<()> {
    sqlx::query(
        "INSERT INTO settings (org_id, retention_days, version) VALUES ($1, NULL, 0) \
         ON CONFLICT (org_id) DO NOTHING",
    )
    .bind(org_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes an organization's settings as the next version of `s`.
pub async fn put_settings(tx: &mut Tx, org_id: Uuid, s: &Settings) -> Result<Settings> {
    let row = sqlx::query(
        "INSERT INTO settings (org_id, retention_days, pending_retention_days, \
                               pending_effective_at, version) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (org_id) DO UPDATE \
         SET retention_days = EXCLUDED.retention_days, \
             pending_retention_days = EXCLUDED.pending_retention_days, \
             pending_effective_at = EXCLUDED.pending_effective_at, \
             version = EXCLUDED.version, updated_at = now() \
         RETURNING retention_days, pending_retention_days, pending_effective_at, version, updated_at",
    )
    .bind(org_id)
    .bind(s.retention_days)
    .bind(s.pending_retention_days)
    .bind(s.pending_effective_at)
    .bind(s.version + 1)
    .fetch_one(&mut **tx)
    .await?;
    read(&row)
}

/// Organizations with a retention (system scope).
pub async fn orgs_with_retention(tx: &mut Tx) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT org_id FROM settings WHERE retention_days IS NOT NULL ORDER BY org_id",
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// Organizations whose pending reduction is due (system scope).
pub async fn orgs_with_due_reduction(tx: &mut Tx) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT org_id FROM settings WHERE pending_effective_at <= now() ORDER BY org_id",
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// Where retention last cut a chain.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Watermark {
    /// The last removed position.
    pub sequence: i64,
    /// That event's hash (the first retained event links to it).
    pub hash: Vec<u8>,
}

/// An organization's watermark, if retention ever removed events.
pub async fn get_watermark(conn: &mut PgConnection, org_id: Uuid) -> Result<Option<Watermark>> {
    Ok(
        sqlx::query_as("SELECT sequence, hash FROM retention_watermarks WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// The end of the prefix retention may remove: the position before the
/// first event after `after` that occurred within the last `days` days
/// (the head if none did). Uses the transaction's `now()`, as the removal
/// does. Walks the primary key from `after`, so it reads about as many
/// events as it finds old.
pub async fn retention_end(tx: &mut Tx, org_id: Uuid, after: i64, days: i32) -> Result<i64> {
    let end: Option<i64> = sqlx::query_scalar(
        "SELECT coalesce( \
           (SELECT min(sequence) - 1 FROM events WHERE org_id = $1 AND sequence > $2 \
              AND occurred_at >= now() - make_interval(days => $3)), \
           (SELECT sequence FROM chain_heads WHERE org_id = $1))",
    )
    .bind(org_id)
    .bind(after)
    .bind(days)
    .fetch_one(&mut **tx)
    .await?;
    Ok(end.unwrap_or(after))
}

/// Removes events up to `through` (a whole prefix) and moves the
/// watermark, through the definer function; returns how many went.
pub async fn remove_prefix(tx: &mut Tx, org_id: Uuid, through: i64) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT remove_retained_prefix($1, $2)")
        .bind(org_id)
        .bind(through)
        .fetch_one(&mut **tx)
        .await?)
}

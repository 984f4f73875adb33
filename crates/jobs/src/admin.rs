//! Reading and steering jobs: a job by id (what a long-running operation
//! shows), cancellation, the dead letter (list, retry, discard), and the
//! queue's numbers.

use chrono::{DateTime, Utc};
use foundry_platform::clock::Clock;
use foundry_platform::db::{Db, Tx};
use serde::Serialize;
use uuid::Uuid;

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
pub struct Job {
    /// Its id.
    pub id: Uuid,
    /// Its organization.
    pub org_id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Its arguments.
    pub args: serde_json::Value,
    /// Its state (`crate::state`).
    pub state: String,
    /// When it may run (next).
    pub run_at: DateTime<Utc>,
    /// Attempts so far.
    pub attempt: i32,
    /// Attempts before the dead letter.
    pub max_attempts: i32,
    /// Its unique key, if any.
    pub unique_key: Option<String>,
    /// Served as a long-running operation.
    pub operation: bool,
    /// Cancellation was asked for.
    pub cancel_requested: bool,
    /// Every failed attempt: `{attempt, at, error}`.
    pub errors: serde_json::Value,
    /// What its handler last reported.
    pub progress: Option<serde_json::Value>,
    /// Its result, once completed.
    pub result: Option<serde_json::Value>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it ended, if it did.
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, org_id, kind, args, state, run_at, attempt, max_attempts, unique_key, \
                       operation, cancel_requested, errors, progress, result, created_at, \
                       finished_at";

/// The job `id` as `tx` may see it (a tenant's transaction sees only its
/// organization's jobs).
pub async fn get(tx: &mut Tx, id: Uuid) -> Result<Option<Job>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

/// The operations of `org_id` visible to `tx`, newest first, after the
/// one `after` (a page's last), at most `limit`.
pub async fn operations(
    tx: &mut Tx,
    org_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Job>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE operation AND org_id = $1 \
         AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(org_id)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Deletes the ended job `id` of `org_id`; `false` if there is none.
pub async fn delete_ended(db: &Db, org_id: Uuid, id: Uuid) -> anyhow::Result<bool> {
    let mut tx = db.system().await?;
    let n = sqlx::query(
        "DELETE FROM jobs WHERE id = $1 AND org_id = $2 \
         AND state IN ('completed', 'cancelled', 'dead', 'discarded')",
    )
    .bind(id)
    .bind(org_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}

/// What [`cancel`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancel {
    /// It was pending: cancelled now.
    Cancelled,
    /// It is running: its handler is told, and it ends cancelled when it
    /// stops (or when its lease runs out).
    Requested,
    /// It had ended already (its state is unchanged).
    Ended,
    /// No such job in that organization.
    NotFound,
}

/// Cancels the job `id` of `org_id`.
pub async fn cancel(db: &Db, clock: &dyn Clock, org_id: Uuid, id: Uuid) -> anyhow::Result<Cancel> {
    let mut tx = db.system().await?;
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1 AND org_id = $2 FOR UPDATE")
            .bind(id)
            .bind(org_id)
            .fetch_optional(&mut *tx)
            .await?;
    let out = match state.as_deref() {
        None => Cancel::NotFound,
        Some("available" | "scheduled" | "retryable") => {
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', cancel_requested = true, finished_at = $2 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(clock.now())
            .execute(&mut *tx)
            .await?;
            Cancel::Cancelled
        }
        Some("running") => {
            sqlx::query("UPDATE jobs SET cancel_requested = true WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Cancel::Requested
        }
        Some(_) => Cancel::Ended,
    };
    tx.commit().await?;
    Ok(out)
}

/// The dead jobs of `org_id` (`None`: of every organization), newest
/// first, at most `limit`.
pub async fn dead(db: &Db, org_id: Option<Uuid>, limit: i64) -> anyhow::Result<Vec<Job>> {
    let mut tx = db.system().await?;
    let jobs = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE state = 'dead' AND ($1::uuid IS NULL OR org_id = $1) \
         ORDER BY finished_at DESC, id DESC LIMIT $2"
    ))
    .bind(org_id)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(jobs)
}

/// Gives the dead job `id` one more attempt, now; `false` if it is not
/// dead.
pub async fn retry(db: &Db, clock: &dyn Clock, id: Uuid) -> anyhow::Result<bool> {
    let mut tx = db.system().await?;
    let n = sqlx::query(
        "UPDATE jobs SET state = 'available', run_at = $2, finished_at = NULL, \
           max_attempts = GREATEST(max_attempts, attempt + 1) \
         WHERE id = $1 AND state = 'dead'",
    )
    .bind(id)
    .bind(clock.now())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}

/// Sets the dead job `id` aside for good; `false` if it is not dead.
pub async fn discard(db: &Db, id: Uuid) -> anyhow::Result<bool> {
    let mut tx = db.system().await?;
    let n = sqlx::query("UPDATE jobs SET state = 'discarded' WHERE id = $1 AND state = 'dead'")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}

/// The queue's numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Jobs by state.
    pub depth: Vec<(String, i64)>,
    /// How long the oldest available job has waited, in seconds.
    pub oldest_available_seconds: f64,
}

/// The queue's numbers now.
pub async fn stats(db: &Db, clock: &dyn Clock) -> anyhow::Result<Stats> {
    let mut tx = db.system().await?;
    let depth: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state")
            .fetch_all(&mut *tx)
            .await?;
    let oldest: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT min(run_at) FROM jobs WHERE state = 'available'")
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    let oldest_available_seconds = oldest.map_or(0.0, |t| {
        (clock.now() - t).num_milliseconds().max(0) as f64 / 1000.0
    });
    Ok(Stats {
        depth,
        oldest_available_seconds,
    })
}

/// Deletes ended jobs (completed, cancelled, discarded) that ended more
/// than `keep` ago by `clock`; dead jobs stay until discarded. It walks the
/// primary key up to the id minted at that time (ids are UUID v7): only
/// jobs made before it can have ended before it.
pub async fn sweep(db: &Db, clock: &dyn Clock, keep: std::time::Duration) -> anyhow::Result<u64> {
    let before = clock.now() - crate::queue::delta(keep);
    let millis = u64::try_from(before.timestamp_millis()).unwrap_or(0);
    let bound = Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        millis / 1000,
        u32::try_from(millis % 1000).unwrap_or(0) * 1_000_000,
    ));
    let mut total = 0;
    loop {
        let mut tx = db.system().await?;
        let n = sqlx::query(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
               WHERE id < $2 AND state IN ('completed', 'cancelled', 'discarded') \
                 AND finished_at < $1 \
               ORDER BY id LIMIT 5000)",
        )
        .bind(before)
        .bind(bound)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        total += n;
        if n < 5000 {
            return Ok(total);
        }
    }
}

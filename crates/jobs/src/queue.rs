//! Claiming, running and finishing jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use foundry_platform::clock::SharedClock;
use foundry_platform::db::Db;
use foundry_platform::server::StopSignal;
use rand::Rng;
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

/// How a queue's workers claim and run.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// This worker's name (in `jobs.worker` while it holds a job).
    pub worker: String,
    /// Jobs run at once by this worker.
    pub concurrency: usize,
    /// Of [`QueueConfig::concurrency`], the workers held back for
    /// organizations with nothing running here: when such an organization
    /// enqueues, its notification claims its jobs at once on these, beside
    /// the claim loop, instead of waiting for the loop's next round behind
    /// another organization's backlog (at least one worker is left to the
    /// loop).
    pub reserved: usize,
    /// Jobs claimed at most per round trip.
    pub batch: usize,
    /// How long a claim lasts without a heartbeat; heartbeats come every
    /// third of it.
    pub lease: Duration,
    /// How often to look for work when no notification comes.
    pub poll: Duration,
    /// Jobs of one organization running at once across every worker of
    /// the queue (`None`: no limit). The service's own jobs ([`SYSTEM`])
    /// count as one organization.
    ///
    /// [`SYSTEM`]: crate::SYSTEM
    pub max_running_per_org: Option<i64>,
    /// The first retry's delay; each next one doubles, up to
    /// [`QueueConfig::backoff_max`], with ±20 % jitter.
    pub backoff_base: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
    /// On stop, how long running jobs may go on before they are released
    /// for another worker.
    pub shutdown_grace: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            worker: format!("worker-{}", Uuid::now_v7().simple()),
            concurrency: 16,
            reserved: 4,
            batch: 64,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            max_running_per_org: None,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Why an attempt did not complete.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Try again after the backoff (the dead letter once out of attempts).
    #[error("{0}")]
    Retry(String),
    /// Never try again: the job is dead at once (bad arguments, a refusal
    /// no retry changes).
    #[error("{0}")]
    Fail(String),
}

impl From<anyhow::Error> for JobError {
    fn from(e: anyhow::Error) -> Self {
        JobError::Retry(format!("{e:#}"))
    }
}

/// Runs the jobs of one kind.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// One attempt at `job`: its result (kept on the job), or why not.
    async fn run(&self, job: &JobContext) -> Result<Option<serde_json::Value>, JobError>;
}

/// A claimed job: what its handler is given.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// The job.
    pub id: Uuid,
    /// Its organization.
    pub org_id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Its arguments.
    pub args: serde_json::Value,
    /// This attempt (1 for the first).
    pub attempt: i32,
    /// Its attempts before the dead letter.
    pub max_attempts: i32,
    /// The fencing token of this claim.
    pub lease: i64,
}

/// A running job, as its handler sees it.
#[derive(Debug)]
pub struct JobContext {
    /// The claim.
    pub job: Claimed,
    db: Db,
    clock: SharedClock,
    cancelled: watch::Receiver<bool>,
}

impl JobContext {
    /// The arguments as `T`; arguments that do not parse fail the job for
    /// good.
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.job.args.clone())
            .map_err(|e| JobError::Fail(format!("arguments of {}: {e}", self.job.kind)))
    }

    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    /// Resolves once cancellation is asked for (never, if it is not).
    pub async fn cancelled(&self) {
        let mut rx = self.cancelled.clone();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Records progress (what a long-running operation's metadata shows);
    /// `false` if the lease was lost meanwhile.
    pub async fn progress(&self, progress: serde_json::Value) -> anyhow::Result<bool> {
        let mut tx = self.db.system().await?;
        let n = sqlx::query(
            "UPDATE jobs SET progress = $3 WHERE id = $1 AND lease = $2 AND state = 'running'",
        )
        .bind(self.job.id)
        .bind(self.job.lease)
        .bind(progress)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// The queue's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// How an attempt ended, for [`Queue::finish`].
#[derive(Debug)]
pub enum Finish {
    /// Done, with its result.
    Completed(Option<serde_json::Value>),
    /// Failed ([`JobError`]).
    Failed(JobError),
    /// Stopped because cancellation was asked for.
    Cancelled,
}

/// A service's job queue: its handlers by kind, and the loop that claims
/// and runs.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    clock: SharedClock,
    cfg: QueueConfig,
    handlers: HashMap<String, Arc<dyn Handler>>,
    /// Where the next claim's walk of organizations starts.
    cursor: Mutex<Uuid>,
    /// The claims' statements for this schema: [`WALK`] then [`TAKE`], and
    /// [`ONE_ORG`] then [`TAKE`].
    claim_sql: String,
    claim_org_sql: String,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("schema", &self.inner.db.schema())
            .field("kinds", &self.inner.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The claim's choice of organizations ([`Queue::claim`], then [`TAKE`]):
/// `$1` the cursor (the organization the last claim ended with), `$2` the
/// jobs wanted, `$3` the running limit per organization, `$4` the lease's
/// end, `$5` now, `$6` the worker, `$7` no limit (no advisory locks, no
/// counts).
///
/// `walk` is a loose index scan of `jobs_available`: each step finds the
/// next organization's oldest available job (one probe, whatever its
/// backlog), first after the cursor, then (`wrapped`) from the start up to
/// it. `picked` reads each organization's share from that job on (a row
/// comparison on the index, so it starts where the probe stopped), passing
/// over a job whose concurrency key runs its limit or is being claimed by
/// another worker at this moment (an advisory lock per key, held to
/// commit); [`TRIM`] then sees to jobs of one key claimed together.
///
/// `o` holds each organization's claim lock (a worker claiming it now
/// passes it over), `shares` says how many each may take.
const WALK: &str = "\
WITH RECURSIVE walk(org_id, run_at, id, wrapped, k) AS ( \
  (SELECT * FROM ( \
     (SELECT org_id, run_at, id, false, 1 FROM jobs \
       WHERE state = 'available' AND org_id > $1 ORDER BY org_id, run_at, id LIMIT 1) \
     UNION ALL \
     (SELECT org_id, run_at, id, true, 1 FROM jobs \
       WHERE state = 'available' AND org_id <= $1 ORDER BY org_id, run_at, id LIMIT 1)) f LIMIT 1) \
  UNION ALL \
  SELECT nx.* FROM walk w CROSS JOIN LATERAL ( \
    SELECT * FROM ( \
      (SELECT j.org_id, j.run_at, j.id, w.wrapped, w.k + 1 FROM jobs j \
        WHERE j.state = 'available' AND j.org_id > w.org_id \
        ORDER BY j.org_id, j.run_at, j.id LIMIT 1) \
      UNION ALL \
      (SELECT j.org_id, j.run_at, j.id, true, w.k + 1 FROM jobs j \
        WHERE NOT w.wrapped AND j.state = 'available' AND j.org_id <= $1 \
        ORDER BY j.org_id, j.run_at, j.id LIMIT 1)) c LIMIT 1) nx \
  WHERE w.k < $2 AND NOT (nx.wrapped AND nx.org_id > $1)), \
o AS ( \
  SELECT org_id, run_at, id, k FROM walk \
  WHERE $7::bool OR pg_try_advisory_xact_lock( \
    hashtextextended('foundry_jobs_{schema}_' || org_id::text, 0)) \
  OFFSET 0), \
shares AS ( \
  SELECT o.*, ceil($2::numeric / count(*) OVER ())::int8 AS per, \
    max(k) OVER () = k AS last FROM o), \
";

/// The express claim's one organization ([`Queue::claim_org`], then
/// [`TAKE`]): `$1` the organization, its share all `$2` jobs wanted, from
/// its oldest; the other parameters as in [`WALK`].
const ONE_ORG: &str = "\
WITH o AS ( \
  SELECT $1::uuid AS org_id, '-infinity'::timestamptz AS run_at, \
    '00000000-0000-0000-0000-000000000000'::uuid AS id, 1 AS k \
  WHERE $7::bool OR pg_try_advisory_xact_lock( \
    hashtextextended('foundry_jobs_{schema}_' || $1::text, 0))), \
shares AS (SELECT o.*, $2::int8 AS per, true AS last FROM o), \
";

/// What either claim takes of the organizations in `shares` ([`WALK`],
/// [`ONE_ORG`]): each one's share, oldest first, read from its first job
/// on, passing over jobs whose concurrency key runs its limit and, with a
/// running limit per organization (`$3`), what is over it; then leases them.
const TAKE: &str = "\
picked AS ( \
  SELECT j.id FROM shares s CROSS JOIN LATERAL ( \
    SELECT id FROM jobs a \
    WHERE state = 'available' AND org_id = s.org_id AND (run_at, id) >= (s.run_at, s.id) \
      AND (a.concurrency_key IS NULL OR ( \
        pg_try_advisory_xact_lock(hashtextextended( \
          'foundry_jobs_key_{schema}_' || a.org_id::text || '_' || a.concurrency_key, 0)) \
        AND (SELECT count(*) FROM jobs r \
             WHERE r.lease_until IS NOT NULL AND r.state = 'running' \
               AND r.org_id = a.org_id AND r.concurrency_key = a.concurrency_key) \
            < a.concurrency_limit)) \
    ORDER BY run_at, id \
    LIMIT CASE WHEN $7 THEN s.per ELSE GREATEST(0, LEAST(s.per, $3 - ( \
      SELECT count(*) FROM jobs r \
      WHERE r.lease_until IS NOT NULL AND r.state = 'running' AND r.org_id = s.org_id))) END \
    FOR UPDATE SKIP LOCKED) j \
  ORDER BY s.k LIMIT $2) \
UPDATE jobs SET state = 'running', attempt = jobs.attempt + 1, lease = jobs.lease + 1, \
  lease_until = $4, attempted_at = $5, worker = $6 \
FROM picked WHERE jobs.id = picked.id \
RETURNING jobs.id, jobs.org_id, jobs.kind, jobs.args, jobs.attempt, jobs.max_attempts, jobs.lease, \
  jobs.concurrency_key, (SELECT org_id FROM shares WHERE last) AS last_org";

/// After a claim that took jobs with concurrency keys (`$1`), in its
/// transaction: puts back, unstarted, those over their key's limit. Its
/// snapshot is taken after the claim's key locks were granted, so it sees
/// every other worker's claim of those keys (each held the lock until it
/// committed); the claim's own count did not see its fellow jobs.
const TRIM: &str = "\
WITH mine AS ( \
  SELECT j.id, j.concurrency_limit AS lim, \
    row_number() OVER (PARTITION BY j.org_id, j.concurrency_key ORDER BY j.run_at, j.id) AS nth, \
    (SELECT count(*) FROM jobs r \
     WHERE r.lease_until IS NOT NULL AND r.state = 'running' AND r.org_id = j.org_id \
       AND r.concurrency_key = j.concurrency_key AND r.id <> ALL($1)) AS others \
  FROM jobs j WHERE j.id = ANY($1)) \
UPDATE jobs SET state = 'available', attempt = jobs.attempt - 1, lease_until = NULL, worker = NULL \
FROM mine WHERE jobs.id = mine.id AND mine.others + mine.nth > mine.lim \
RETURNING jobs.id";

fn claimed(row: &sqlx::postgres::PgRow) -> Result<Claimed, sqlx::Error> {
    use sqlx::Row;
    Ok(Claimed {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        kind: row.try_get("kind")?,
        args: row.try_get("args")?,
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        lease: row.try_get("lease")?,
    })
}

impl Queue {
    /// A queue over `db`'s schema with no handlers yet.
    pub fn new(db: Db, clock: SharedClock, cfg: QueueConfig) -> Queue {
        let schema = db.schema();
        Queue {
            inner: Arc::new(Inner {
                db,
                clock,
                cfg,
                handlers: HashMap::new(),
                cursor: Mutex::new(Uuid::nil()),
                claim_sql: format!("{WALK}{TAKE}").replace("{schema}", schema),
                claim_org_sql: format!("{ONE_ORG}{TAKE}").replace("{schema}", schema),
            }),
        }
    }

    /// Runs jobs of `kind` with `handler`.
    ///
    /// # Panics
    /// After the queue was cloned, or when `kind` has a handler already
    /// (programming errors, at start).
    #[must_use]
    pub fn register(mut self, kind: &str, handler: impl Handler) -> Queue {
        let inner = Arc::get_mut(&mut self.inner).expect("register handlers before cloning");
        let old = inner.handlers.insert(kind.to_string(), Arc::new(handler));
        assert!(old.is_none(), "jobs of kind {kind} have two handlers");
        self
    }

    /// The queue's database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The queue's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// Makes the jobs whose time has come available: run-at jobs and
    /// retries past their backoff. Returns how many.
    pub async fn promote(&self) -> anyhow::Result<u64> {
        let mut tx = self.inner.db.system().await?;
        let n = sqlx::query(
            "UPDATE jobs SET state = 'available' \
             WHERE state IN ('scheduled', 'retryable') AND run_at <= $1",
        )
        .bind(self.inner.clock.now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Takes back the jobs whose lease ran out (their worker died or
    /// stalled): retried, dead if out of attempts, cancelled if that was
    /// asked for. The old holder's lease no longer finishes them.
    pub async fn rescue(&self) -> anyhow::Result<u64> {
        let now = self.inner.clock.now();
        let mut tx = self.inner.db.system().await?;
        let n = sqlx::query(
            "UPDATE jobs SET \
               state = CASE WHEN cancel_requested THEN 'cancelled' \
                            WHEN attempt >= max_attempts THEN 'dead' ELSE 'retryable' END, \
               finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts \
                                  THEN $1::timestamptz END, \
               run_at = $1, lease_until = NULL, worker = NULL, \
               errors = errors || jsonb_build_array(jsonb_build_object( \
                 'attempt', attempt, 'at', $1::timestamptz, \
                 'error', 'lease expired: its worker stopped answering')) \
             WHERE state = 'running' AND lease_until < $1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n > 0 {
            tracing::warn!(
                jobs = n,
                schema = self.inner.db.schema(),
                "jobs: leases expired; taken back"
            );
        }
        Ok(n)
    }

    /// Claims up to `n` available jobs, fairly across organizations: the
    /// walk of organizations with available jobs goes on from where the
    /// last claim stopped (wrapping around), takes an equal share of `n`
    /// (rounded up, the last ones cut to `n` in all) from each of at most
    /// `n` of them, oldest first, and passes over an organization running
    /// its limit or being claimed by another worker at this moment.
    ///
    /// One statement (see [`WALK`]): the walk finds each organization's
    /// oldest available job, and its share is read from there on, so the
    /// index entries of the jobs claimed before (dead until a vacuum) are
    /// stepped over once per organization and claim, not three times.
    pub async fn claim(&self, n: usize) -> anyhow::Result<Vec<Claimed>> {
        let cursor = *self.inner.cursor.lock().unwrap_or_else(|e| e.into_inner());
        let (jobs, last) = self.take(&self.inner.claim_sql, cursor, n).await?;
        if let Some(last) = last {
            *self.inner.cursor.lock().unwrap_or_else(|e| e.into_inner()) = last;
        }
        Ok(jobs)
    }

    /// Claims up to `n` available jobs of `org` alone, oldest first, within
    /// its running limit and its jobs' concurrency keys: the express claim
    /// of an organization with nothing running ([`QueueConfig::reserved`]).
    /// The round robin's cursor does not move.
    pub async fn claim_org(&self, org: Uuid, n: usize) -> anyhow::Result<Vec<Claimed>> {
        Ok(self.take(&self.inner.claim_org_sql, org, n).await?.0)
    }

    /// Runs `sql` (a claim's statement, given `from`) and, for jobs with
    /// concurrency keys, [`TRIM`], in one transaction: the jobs claimed, by
    /// id, and the last organization served.
    async fn take(
        &self,
        sql: &str,
        from: Uuid,
        n: usize,
    ) -> anyhow::Result<(Vec<Claimed>, Option<Uuid>)> {
        if n == 0 {
            return Ok((vec![], None));
        }
        let cfg = &self.inner.cfg;
        let now = self.inner.clock.now();
        // No plan with a sort: the walk's probes and the shares must read
        // `jobs_available` in its order. Statistics taken on a queue that
        // was nearly empty (or before a burst) make a bitmap scan of every
        // available job and a sort look cheaper, and each probe then reads
        // the whole backlog (found with auto_explain in foundry-bench). No
        // JIT either: the sort's penalty lifts the plan's cost over its
        // threshold, and compiling took half a second a claim.
        let mut tx = self
            .inner
            .db
            .pool()
            .begin_with(
                "BEGIN; SET LOCAL app.system = 'on'; SET LOCAL enable_sort = off; \
                 SET LOCAL jit = off",
            )
            .await?;
        let rows = sqlx::query(sql)
            .bind(from)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(cfg.max_running_per_org.unwrap_or(i64::MAX))
            .bind(now + delta(cfg.lease))
            .bind(now)
            .bind(&cfg.worker)
            .bind(cfg.max_running_per_org.is_none())
            .fetch_all(&mut *tx)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut keyed = Vec::new();
        let mut last = None;
        for row in &rows {
            use sqlx::Row;
            if let Some(org) = row.try_get::<Option<Uuid>, _>("last_org")? {
                last = Some(org);
            }
            let job = claimed(row)?;
            if row
                .try_get::<Option<String>, _>("concurrency_key")?
                .is_some()
            {
                keyed.push(job.id);
            }
            out.push(job);
        }
        if !keyed.is_empty() {
            let back: Vec<Uuid> = sqlx::query_scalar(TRIM)
                .bind(&keyed)
                .fetch_all(&mut *tx)
                .await?;
            out.retain(|c| !back.contains(&c.id));
        }
        tx.commit().await?;
        out.sort_by_key(|c| c.id);
        Ok((out, last))
    }

    /// Extends the lease of `job`: `Some(cancel asked)` while it holds it,
    /// `None` once it lost it.
    pub async fn heartbeat(&self, job: &Claimed) -> anyhow::Result<Option<bool>> {
        let now = self.inner.clock.now();
        let mut tx = self.inner.db.system().await?;
        let cancel: Option<bool> = sqlx::query_scalar(
            "UPDATE jobs SET lease_until = $3 \
             WHERE id = $1 AND lease = $2 AND state = 'running' RETURNING cancel_requested",
        )
        .bind(job.id)
        .bind(job.lease)
        .bind(now + delta(self.inner.cfg.lease))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(cancel)
    }

    /// Ends the attempt of `job` as `how`: `false` (nothing written) when
    /// its lease is no longer current, so a worker that lost its job cannot
    /// finish it too.
    pub async fn finish(&self, job: &Claimed, how: Finish) -> anyhow::Result<bool> {
        let now = self.inner.clock.now();
        let q = match how {
            // One way to complete: the batch statement, for one.
            Finish::Completed(result) => {
                return Ok(self.complete_all(&[(job.clone(), result)]).await? == 1);
            }
            Finish::Cancelled => sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_at = $3, lease_until = NULL \
                 WHERE id = $1 AND lease = $2 AND state = 'running'",
            )
            .bind(job.id)
            .bind(job.lease)
            .bind(now),
            Finish::Failed(e) => {
                let dead = matches!(e, JobError::Fail(_)) || job.attempt >= job.max_attempts;
                let retry_at = now + self.backoff(job.attempt);
                let error = serde_json::json!([{
                    "attempt": job.attempt,
                    "at": now,
                    "error": e.to_string(),
                }]);
                sqlx::query(
                    "UPDATE jobs SET state = CASE WHEN $3 THEN 'dead' ELSE 'retryable' END, \
                     run_at = CASE WHEN $3 THEN run_at ELSE $4 END, \
                     finished_at = CASE WHEN $3 THEN $5::timestamptz END, \
                     lease_until = NULL, worker = NULL, errors = errors || $6 \
                     WHERE id = $1 AND lease = $2 AND state = 'running'",
                )
                .bind(job.id)
                .bind(job.lease)
                .bind(dead)
                .bind(retry_at)
                .bind(now)
                .bind(error)
            }
        };
        let mut tx = self.inner.db.system().await?;
        let n = q.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        if n == 0 {
            tracing::warn!(job = %job.id, kind = %job.kind, lease = job.lease,
                "jobs: lease lost; this attempt's ending is refused");
        }
        Ok(n == 1)
    }

    /// Gives `jobs` back unstarted (a stopping worker): available again,
    /// the attempt not counted.
    pub async fn release(&self, jobs: &[Claimed]) -> anyhow::Result<u64> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
        let leases: Vec<i64> = jobs.iter().map(|j| j.lease).collect();
        let mut tx = self.inner.db.system().await?;
        let n = sqlx::query(
            "UPDATE jobs SET state = 'available', attempt = jobs.attempt - 1, \
               lease_until = NULL, worker = NULL \
             FROM unnest($1::uuid[], $2::int8[]) AS t(id, lease) \
             WHERE jobs.id = t.id AND jobs.lease = t.lease AND jobs.state = 'running'",
        )
        .bind(&ids)
        .bind(&leases)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// The delay before retry `attempt + 1`: `backoff_base · 2^(attempt-1)`
    /// up to `backoff_max`, ±20 % jitter.
    fn backoff(&self, attempt: i32) -> TimeDelta {
        let cfg = &self.inner.cfg;
        let exp = u32::try_from(attempt.clamp(1, 31) - 1).unwrap_or(0);
        let base = cfg.backoff_base.saturating_mul(2u32.saturating_pow(exp));
        let capped = base.min(cfg.backoff_max);
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        delta(capped.mul_f64(jitter))
    }

    /// Runs one attempt of `job` with its handler while heartbeating its
    /// lease, then finishes it. An unknown kind fails it for good.
    pub async fn run_one(&self, job: Claimed) -> anyhow::Result<bool> {
        match self.attempt(&job).await {
            Some(how) => self.finish(&job, how).await,
            None => Ok(false),
        }
    }

    /// One attempt of `job` with its handler while heartbeating its lease:
    /// how it ended, or `None` when the lease was lost meanwhile (the job
    /// is abandoned: another worker has it).
    async fn attempt(&self, job: &Claimed) -> Option<Finish> {
        let Some(handler) = self.inner.handlers.get(&job.kind).cloned() else {
            let e = JobError::Fail(format!("no handler for jobs of kind {}", job.kind));
            return Some(Finish::Failed(e));
        };
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let ctx = JobContext {
            job: job.clone(),
            db: self.inner.db.clone(),
            clock: self.inner.clock.clone(),
            cancelled: cancel_rx,
        };
        let beat = self.inner.cfg.lease / 3;
        let run = handler.run(&ctx);
        tokio::pin!(run);
        let outcome = loop {
            tokio::select! {
                r = &mut run => break Some(r),
                () = tokio::time::sleep(beat) => match self.heartbeat(job).await {
                    Ok(Some(cancel)) => { if cancel { let _ = cancel_tx.send(true); } }
                    Ok(None) => break None,
                    Err(e) => tracing::warn!(error = %e, job = %job.id, "jobs: heartbeat failed"),
                },
            }
        };
        let Some(outcome) = outcome else {
            tracing::warn!(job = %job.id, kind = %job.kind, "jobs: lease lost while running; abandoned");
            return None;
        };
        let how = match outcome {
            Ok(result) => Finish::Completed(result),
            Err(_) if ctx.is_cancelled() => Finish::Cancelled,
            Err(e) => Finish::Failed(e),
        };
        let outcome_name = match &how {
            Finish::Completed(_) => "completed",
            Finish::Cancelled => "cancelled",
            Finish::Failed(JobError::Fail(_)) => "dead",
            Finish::Failed(_) if job.attempt >= job.max_attempts => "dead",
            Finish::Failed(_) => "retry",
        };
        record_attempt(self.inner.db.schema(), &job.kind, outcome_name);
        Some(how)
    }

    /// Completes `done` in one statement (each still fenced by its lease);
    /// how many were completed.
    pub async fn complete_all(
        &self,
        done: &[(Claimed, Option<serde_json::Value>)],
    ) -> anyhow::Result<u64> {
        if done.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = done.iter().map(|(c, _)| c.id).collect();
        let leases: Vec<i64> = done.iter().map(|(c, _)| c.lease).collect();
        let results: Vec<Option<serde_json::Value>> = done.iter().map(|(_, r)| r.clone()).collect();
        let mut tx = self.inner.db.system().await?;
        let n = sqlx::query(
            "UPDATE jobs SET state = 'completed', result = t.result, finished_at = $4, \
               lease_until = NULL \
             FROM unnest($1::uuid[], $2::int8[], $3::jsonb[]) AS t(id, lease, result) \
             WHERE jobs.id = t.id AND jobs.lease = t.lease AND jobs.state = 'running'",
        )
        .bind(&ids)
        .bind(&leases)
        .bind(&results)
        .bind(self.inner.clock.now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n < ids.len() as u64 {
            tracing::warn!(
                refused = ids.len() as u64 - n,
                "jobs: leases lost; those completions are refused"
            );
        }
        Ok(n)
    }

    /// Claims and runs jobs until `stop` resolves; then lets running jobs
    /// finish for the grace period and releases the rest. Promotes due
    /// jobs, takes back expired leases and fires due schedules as it goes,
    /// and claims at once for an organization with nothing running here
    /// when its jobs' notification comes ([`QueueConfig::reserved`]).
    pub async fn run(self, stop: StopSignal) {
        let cfg = self.inner.cfg.clone();
        let schema = self.inner.db.schema();
        let reserved = cfg.reserved.min(cfg.concurrency.saturating_sub(1));
        let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1) - reserved));
        let express = Arc::new(Semaphore::new(reserved));
        // Completions go out in batches: one statement for what finished
        // together, instead of a transaction per job. A job's worker is
        // free once its ending is written (the permit travels with it), so
        // claims never run ahead of the completer: a lagging completer
        // would let leases run out on jobs that are done.
        let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
        let runner = Arc::new(Runner {
            queue: self.clone(),
            held: Arc::default(),
            running: Mutex::default(),
            done: done_tx,
        });
        let completer = tokio::spawn(self.clone().complete_batches(done_rx, runner.held.clone()));
        // Beside the loop, so that no claim waits for them: the queue's
        // numbers (counting a big backlog takes a while), housekeeping
        // (which wakes the loop when it made jobs available), and the
        // notifications of new jobs (which wake it too, and claim at once
        // for an organization with nothing running here).
        let (halt, halted) = watch::channel(false);
        let woken = Arc::new(tokio::sync::Notify::new());
        let mut beside = JoinSet::new();
        beside.spawn(self.clone().record_stats_every(stopped(&halted)));
        beside.spawn(self.clone().maintain_every(stopped(&halted), woken.clone()));
        // Without a listener the loop polls, and nothing claims beside it.
        let channel = format!("jobs_{schema}");
        if let Some(listener) = foundry_platform::db::listen(&self.inner.db, &channel, "jobs").await
        {
            let lane = Express {
                runner: runner.clone(),
                permits: express,
                woken: woken.clone(),
            };
            beside.spawn(self.clone().listen(listener, lane, stopped(&halted)));
        }
        tokio::pin!(stop);
        // Claim when at least this many workers are free: a busy queue
        // claims in batches, not a job at a time as each one ends.
        let main = permits.available_permits();
        let low_water = (main / 2).clamp(1, cfg.batch.max(1));
        loop {
            runner.reap();
            if permits.available_permits() < low_water {
                let want = u32::try_from(low_water).unwrap_or(u32::MAX);
                let freed = async {
                    let _ = permits.acquire_many(want).await;
                };
                tokio::select! {
                    () = &mut stop => break,
                    () = freed => {}
                }
            }
            let free = permits.available_permits().min(cfg.batch);
            let claimed = match self.claim(free).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, schema, "jobs: claim failed");
                    vec![]
                }
            };
            // Go again while claims find jobs: a claim short of `free` may
            // only mean that some organizations had less than their share.
            let more = !claimed.is_empty();
            for job in claimed {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                runner.start(job, permit);
            }
            if more {
                continue;
            }
            tokio::select! {
                () = &mut stop => break,
                _ = tokio::time::timeout(cfg.poll, woken.notified()) => {}
            }
        }
        // Stop: no more claims, by the loop or beside it; let running jobs
        // finish for the grace period, write what finished, then release
        // what is left.
        let _ = halt.send(true);
        while beside.join_next().await.is_some() {}
        let mut running =
            std::mem::take(&mut *runner.running.lock().unwrap_or_else(|e| e.into_inner()));
        let held = runner.held.clone();
        // The last sender of endings goes with the runner (the jobs' own
        // go as they end or are aborted), so the completer ends.
        drop(runner);
        let _ = tokio::time::timeout(cfg.shutdown_grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        running.abort_all();
        while running.join_next().await.is_some() {}
        if let Err(e) = completer.await {
            tracing::warn!(error = %e, schema, "jobs: the completer failed");
        }
        let left: Vec<Claimed> = held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        match self.release(&left).await {
            Ok(n) if n > 0 => tracing::info!(jobs = n, schema, "jobs: released on stop"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, schema, "jobs: release on stop failed"),
        }
    }

    /// Takes each notification of new jobs until `stop`: wakes the claim
    /// loop, and claims at once (on the reserved workers) for the
    /// organization it names when nothing of that organization runs here.
    /// A notification names the organizations of a statement's available
    /// jobs, or none when they were many (the loop's round robin serves
    /// them).
    async fn listen(
        self,
        mut listener: sqlx::postgres::PgListener,
        lane: Express,
        stop: impl std::future::Future<Output = ()> + Send,
    ) {
        let schema = self.inner.db.schema();
        tokio::pin!(stop);
        loop {
            let got = tokio::select! {
                () = &mut stop => break,
                got = listener.recv() => got,
            };
            let org = match got {
                Ok(n) => n.payload().parse::<Uuid>().ok(),
                Err(e) => {
                    // sqlx reconnects on the next receive; meanwhile the
                    // loop polls.
                    tracing::warn!(error = %e, schema, "jobs: listening failed");
                    tokio::select! {
                        () = &mut stop => break,
                        () = tokio::time::sleep(self.inner.cfg.poll) => {}
                    }
                    None
                }
            };
            lane.woken.notify_one();
            if let Some(org) = org {
                lane.claim_for(org).await;
            }
        }
    }

    /// Records the queue's numbers ([`record_stats`]) now and every
    /// [`STATS_EVERY`] until `stop`.
    async fn record_stats_every(self, stop: impl std::future::Future<Output = ()> + Send) {
        let schema = self.inner.db.schema();
        let tick = || async {
            let stats = crate::admin::stats(&self.inner.db, &*self.inner.clock).await?;
            record_stats(schema, &stats);
            Ok(())
        };
        if let Err(e) = tick().await {
            tracing::warn!(error = %format!("{e:#}"), schema, "jobs: reading the queue's numbers failed");
        }
        foundry_platform::server::every("jobs stats", STATS_EVERY, stop, tick).await;
    }

    /// Writes attempts' endings as they come: completions together (up to
    /// a batch at a time), the rest one by one; each job leaves `held`, and
    /// its permit is given back, once written. Returns when every sender is
    /// gone and all is written.
    async fn complete_batches(
        self,
        mut done: tokio::sync::mpsc::UnboundedReceiver<(
            Claimed,
            Finish,
            tokio::sync::OwnedSemaphorePermit,
        )>,
        held: Arc<Mutex<HashMap<Uuid, Claimed>>>,
    ) {
        let batch = self.inner.cfg.batch.max(1);
        let mut buf = Vec::with_capacity(batch);
        while done.recv_many(&mut buf, batch).await > 0 {
            let mut completed = Vec::new();
            let mut permits = Vec::new();
            for (job, how, permit) in buf.drain(..) {
                match how {
                    Finish::Completed(result) => {
                        completed.push((job, result));
                        permits.push(permit);
                    }
                    other => {
                        if let Err(e) = self.finish(&job, other).await {
                            tracing::warn!(error = %e, job = %job.id, "jobs: finishing failed");
                        }
                        held.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&job.id);
                    }
                }
            }
            if let Err(e) = self.complete_all(&completed).await {
                tracing::warn!(error = %e, jobs = completed.len(), "jobs: completing failed; their leases will run out and they run again");
            }
            let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
            for (job, _) in &completed {
                held.remove(&job.id);
            }
            drop(permits);
        }
    }

    /// A round's housekeeping: due schedules fire, expired leases are
    /// taken back, due jobs (those retries among them) become available.
    /// Returns how many became available.
    pub async fn maintain(&self) -> anyhow::Result<u64> {
        crate::schedule::fire_due(&self.inner.db, &*self.inner.clock).await?;
        self.rescue().await?;
        self.promote().await
    }

    /// Runs [`Queue::maintain`] now and every [`QueueConfig::poll`] until
    /// `stop`, waking the claim loop through `woken` when jobs became
    /// available (an insert notifies by itself; a promotion does not).
    async fn maintain_every(
        self,
        stop: impl std::future::Future<Output = ()> + Send,
        woken: Arc<tokio::sync::Notify>,
    ) {
        let tick = || async {
            if self.maintain().await? > 0 {
                woken.notify_one();
            }
            Ok(())
        };
        if let Err(e) = tick().await {
            tracing::warn!(error = %format!("{e:#}"), schema = self.inner.db.schema(), "jobs: maintenance failed");
        }
        foundry_platform::server::every("jobs maintenance", self.inner.cfg.poll, stop, tick).await;
    }
}

/// Resolves once `halted` says so (or its sender is gone).
fn stopped(halted: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + use<> {
    let mut halted = halted.clone();
    async move {
        let _ = halted.wait_for(|h| *h).await;
    }
}

/// Where claimed jobs start, for the claim loop and the express claims
/// beside it alike.
struct Runner {
    queue: Queue,
    /// The jobs claimed here and not yet ended (released on stop).
    held: Arc<Mutex<HashMap<Uuid, Claimed>>>,
    running: Mutex<JoinSet<()>>,
    done: tokio::sync::mpsc::UnboundedSender<(Claimed, Finish, tokio::sync::OwnedSemaphorePermit)>,
}

impl Runner {
    /// Runs `job` on the worker `permit` holds; its ending goes to the
    /// completer with the permit.
    fn start(&self, job: Claimed, permit: tokio::sync::OwnedSemaphorePermit) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.id, job.clone());
        let (queue, done) = (self.queue.clone(), self.done.clone());
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawn(async move {
                if let Some(how) = queue.attempt(&job).await {
                    let _ = done.send((job, how, permit));
                }
            });
    }

    /// Forgets the tasks that ended.
    fn reap(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        while running.try_join_next().is_some() {}
    }

    /// Whether a job of `org` is held here.
    fn holds(&self, org: Uuid) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|c| c.org_id == org)
    }
}

/// The express claims: workers held back ([`QueueConfig::reserved`]) for
/// organizations with nothing running here.
struct Express {
    runner: Arc<Runner>,
    permits: Arc<Semaphore>,
    woken: Arc<tokio::sync::Notify>,
}

impl Express {
    /// Claims `org`'s jobs on the free reserved workers (at most a batch),
    /// unless a job of `org` is held here already.
    async fn claim_for(&self, org: Uuid) {
        let queue = &self.runner.queue;
        let free = self.permits.available_permits().min(queue.inner.cfg.batch);
        if free == 0 || self.runner.holds(org) {
            return;
        }
        let claimed = match queue.claim_org(org, free).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, schema = queue.inner.db.schema(), "jobs: express claim failed");
                return;
            }
        };
        for job in claimed {
            // Only this lane takes these permits, so the free ones counted
            // above are still free.
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                break;
            };
            self.runner.start(job, permit);
        }
    }
}

pub(crate) fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// How often a running queue records its depth and oldest job's age.
const STATS_EVERY: Duration = Duration::from_secs(10);

/// Records `stats` as gauges: `foundry.jobs.depth` by schema and state
/// (every state, zero included), `foundry.jobs.oldest_available_age`.
fn record_stats(schema: &'static str, stats: &crate::admin::Stats) {
    use opentelemetry::KeyValue;
    let meter = opentelemetry::global::meter("foundry-jobs");
    let depth = meter
        .i64_gauge("foundry.jobs.depth")
        .with_description("Jobs by schema and state")
        .build();
    for state in crate::state::ALL {
        let n = stats
            .depth
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        depth.record(
            n,
            &[
                KeyValue::new("schema", schema),
                KeyValue::new("state", *state),
            ],
        );
    }
    meter
        .f64_gauge("foundry.jobs.oldest_available_age")
        .with_unit("s")
        .with_description("How long the oldest available job has waited")
        .build()
        .record(
            stats.oldest_available_seconds,
            &[KeyValue::new("schema", schema)],
        );
}

fn record_attempt(schema: &'static str, kind: &str, outcome: &'static str) {
    static ATTEMPTS: std::sync::OnceLock<opentelemetry::metrics::Counter<u64>> =
        std::sync::OnceLock::new();
    ATTEMPTS
        .get_or_init(|| {
            opentelemetry::global::meter("foundry-jobs")
                .u64_counter("foundry.jobs.attempts")
                .with_description("Job attempts ended, by schema, kind and outcome")
                .build()
        })
        .add(
            1,
            &[
                opentelemetry::KeyValue::new("schema", schema),
                opentelemetry::KeyValue::new("kind", kind.to_string()),
                opentelemetry::KeyValue::new("outcome", outcome),
            ],
        );
}

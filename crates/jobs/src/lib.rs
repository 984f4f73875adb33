//! The durable job queue. Every service has one in its own schema (the
//! `jobs` and `job_schedules` tables of `foundry_platform::db::JOBS_DDL`,
//! applied with the outbox), and runs a [`Queue`] over it.
//!
//! - **Enqueue in the caller's transaction** ([`enqueue`], [`enqueue_many`]):
//!   a job exists if and only if the change that asked for it committed. A
//!   job with a unique key is enqueued once while one with that key is
//!   pending or running; a second enqueue returns the first's id.
//! - **Claims are leases** ([`Queue::claim`]): `FOR UPDATE SKIP LOCKED`, a
//!   deadline the worker extends by heartbeats, and a fencing token (the
//!   job's `lease`, incremented by every claim). Finishing a job names its
//!   token, so a worker that lost its lease (it stalled, the lease expired
//!   and another worker took the job) cannot complete it too.
//! - **Fair across organizations**: a claim walks the organizations with
//!   ready jobs round-robin from where the last claim stopped and takes an
//!   equal share from each, and an organization already running its limit
//!   ([`QueueConfig::max_running_per_org`]) is passed over; one tenant's
//!   backlog of 100,000 jobs does not delay another's 100. Workers held
//!   back ([`QueueConfig::reserved`]) start an organization's jobs the
//!   moment they are committed when nothing of it runs here, beside the
//!   claim loop, so its first jobs do not wait for the loop's next round
//!   behind a busy tenant.
//! - **Concurrency keys** ([`NewJob::concurrency`]): at most N jobs of an
//!   organization with a key run at once, across every worker.
//! - **Retries** with exponential backoff and jitter up to the job's
//!   `max_attempts`, then the dead letter state, where a job can be read,
//!   retried or discarded ([`admin`]). Pending jobs are cancelled at once,
//!   running ones are told through their [`JobContext`].
//! - **Run-at jobs and cron schedules** ([`schedule`]) in a stated time zone,
//!   with a policy for runs missed while no worker ran.
//! - **One clock** (`foundry_platform::clock`): every time the queue
//!   writes or compares comes from it, so tests drive leases, backoffs and
//!   schedules by hand.
//! - Wake-ups by `LISTEN jobs_<schema>` (an insert trigger notifies, naming
//!   the organizations of the statement's available jobs), with
//!   polling as the fallback; a graceful stop lets running jobs finish for
//!   a grace period, then releases the rest for another worker.

pub mod admin;
pub mod operations;
mod queue;
pub mod schedule;
mod task;

use chrono::{DateTime, Utc};
use foundry_platform::Error;
use foundry_platform::clock::Clock;
use foundry_platform::db::Tx;
use serde::Serialize;
use uuid::Uuid;

pub use queue::{Claimed, Finish, Handler, JobContext, JobError, Queue, QueueConfig};
pub use task::{Task, task};

/// The organization of a service's own jobs (sweeps, schedules): the nil id.
pub const SYSTEM: Uuid = Uuid::nil();

/// A job's states. `available` jobs are claimed; `scheduled` (a run-at job)
/// and `retryable` (a failed attempt in backoff) become `available` when
/// their time comes; `running` jobs hold a lease; the rest are final.
pub mod state {
    /// Ready to be claimed.
    pub const AVAILABLE: &str = "available";
    /// Waiting for its run-at time.
    pub const SCHEDULED: &str = "scheduled";
    /// An attempt failed; waiting for its retry time.
    pub const RETRYABLE: &str = "retryable";
    /// Claimed by a worker.
    pub const RUNNING: &str = "running";
    /// Done.
    pub const COMPLETED: &str = "completed";
    /// Cancelled before or while it ran.
    pub const CANCELLED: &str = "cancelled";
    /// Out of attempts (or failed for good): the dead letter.
    pub const DEAD: &str = "dead";
    /// A dead job set aside for good.
    pub const DISCARDED: &str = "discarded";
    /// Every state.
    pub const ALL: &[&str] = &[
        AVAILABLE, SCHEDULED, RETRYABLE, RUNNING, COMPLETED, CANCELLED, DEAD, DISCARDED,
    ];
}

/// The attempts a job gets unless it says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 20;

/// A job to enqueue.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// What runs it (the name a handler is registered under).
    pub kind: String,
    /// The organization it works for ([`SYSTEM`] for the service's own).
    pub org_id: Uuid,
    /// Its arguments.
    pub args: serde_json::Value,
    /// Not before this time (`None`: now).
    pub run_at: Option<DateTime<Utc>>,
    /// At most one pending or running job of this kind with this key.
    pub unique_key: Option<String>,
    /// Attempts before the dead letter.
    pub max_attempts: i32,
    /// Served to its organization as a long-running operation
    /// ([`operations`]).
    pub operation: bool,
    /// A concurrency key and its limit: at most that many jobs of the
    /// organization with the key run at once, across every worker.
    pub concurrency: Option<(String, i32)>,
}

impl NewJob {
    /// A job of `kind` for `org_id` with `args` (serialized to JSON).
    ///
    /// # Panics
    /// When `args` does not serialize (a type whose `Serialize` fails, such
    /// as a map with non-string keys: a programming error).
    pub fn new(kind: impl Into<String>, org_id: Uuid, args: impl Serialize) -> NewJob {
        NewJob {
            kind: kind.into(),
            org_id,
            args: serde_json::to_value(args).expect("job arguments serialize to JSON"),
            run_at: None,
            unique_key: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            operation: false,
            concurrency: None,
        }
    }

    /// Served to its organization as a long-running operation.
    #[must_use]
    pub fn operation(mut self) -> NewJob {
        self.operation = true;
        self
    }

    /// Not before `at`.
    #[must_use]
    pub fn at(mut self, at: DateTime<Utc>) -> NewJob {
        self.run_at = Some(at);
        self
    }

    /// Once per `key` (in its organization) while pending or running.
    #[must_use]
    pub fn unique(mut self, key: impl Into<String>) -> NewJob {
        self.unique_key = Some(key.into());
        self
    }

    /// At most `limit` (at least 1) jobs of its organization with `key` run
    /// at once, across every worker of the queue; the others wait, and
    /// jobs behind them in the queue go first. Keys are the organization's
    /// own: another's jobs with the same key do not count.
    #[must_use]
    pub fn concurrency(mut self, key: impl Into<String>, limit: i32) -> NewJob {
        self.concurrency = Some((key.into(), limit.max(1)));
        self
    }

    /// At most `n` attempts (at least 1).
    #[must_use]
    pub fn attempts(mut self, n: i32) -> NewJob {
        self.max_attempts = n.max(1);
        self
    }
}

/// What an enqueue did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enqueued {
    /// The job's id: the new job's, or the pending one's with the same
    /// unique key.
    pub id: Uuid,
    /// A job with the same unique key was pending: nothing was added.
    pub duplicate: bool,
}

/// Enqueues `job` in `tx`: it exists once `tx` commits, and never if it
/// rolls back.
pub async fn enqueue(tx: &mut Tx, clock: &dyn Clock, job: NewJob) -> Result<Enqueued, Error> {
    let mut out = enqueue_many(tx, clock, vec![job]).await?;
    Ok(out.remove(0))
}

/// Enqueues every job of `jobs` in `tx` in one statement, in order; a job
/// whose unique key is pending (or appears earlier in `jobs`) is a
/// duplicate of that one.
pub async fn enqueue_many(
    tx: &mut Tx,
    clock: &dyn Clock,
    jobs: Vec<NewJob>,
) -> Result<Vec<Enqueued>, Error> {
    if jobs.is_empty() {
        return Ok(vec![]);
    }
    let now = clock.now();
    let n = jobs.len();
    let mut ids = Vec::with_capacity(n);
    let (mut orgs, mut kinds, mut args) = (vec![], vec![], vec![]);
    let (mut states, mut run_ats, mut attempts, mut keys) = (vec![], vec![], vec![], vec![]);
    let (mut operations, mut ckeys, mut climits) = (vec![], vec![], vec![]);
    for j in &jobs {
        ids.push(Uuid::now_v7());
        orgs.push(j.org_id);
        kinds.push(j.kind.clone());
        args.push(j.args.clone());
        let run_at = j.run_at.unwrap_or(now);
        states.push(if run_at > now {
            state::SCHEDULED
        } else {
            state::AVAILABLE
        });
        run_ats.push(run_at);
        attempts.push(j.max_attempts.max(1));
        keys.push(j.unique_key.clone());
        operations.push(j.operation);
        ckeys.push(j.concurrency.as_ref().map(|(k, _)| k.clone()));
        climits.push(j.concurrency.as_ref().map(|(_, n)| *n));
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO jobs (id, org_id, kind, args, state, run_at, max_attempts, unique_key, \
                           operation, created_at, concurrency_key, concurrency_limit) \
         SELECT id, org_id, kind, args, state, run_at, max_attempts, unique_key, operation, $9, \
                concurrency_key, concurrency_limit \
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[], \
                     $6::timestamptz[], $7::int4[], $8::text[], $10::bool[], $11::text[], \
                     $12::int4[]) \
              AS t(id, org_id, kind, args, state, run_at, max_attempts, unique_key, operation, \
                   concurrency_key, concurrency_limit) \
         ON CONFLICT (org_id, kind, unique_key) WHERE unique_key IS NOT NULL \
             AND state IN ('available', 'scheduled', 'retryable', 'running') DO NOTHING \
         RETURNING id",
    )
    .bind(&ids)
    .bind(&orgs)
    .bind(&kinds)
    .bind(&args)
    .bind(&states)
    .bind(&run_ats)
    .bind(&attempts)
    .bind(&keys)
    .bind(now)
    .bind(&operations)
    .bind(&ckeys)
    .bind(&climits)
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::with_capacity(n);
    for (i, j) in jobs.iter().enumerate() {
        if inserted.contains(&ids[i]) {
            out.push(Enqueued {
                id: ids[i],
                duplicate: false,
            });
            continue;
        }
        let first: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE org_id = $3 AND kind = $1 AND unique_key = $2 \
             AND state IN ('available', 'scheduled', 'retryable', 'running')",
        )
        .bind(&j.kind)
        .bind(&j.unique_key)
        .bind(j.org_id)
        .fetch_optional(&mut **tx)
        .await?;
        match first {
            Some(id) => out.push(Enqueued {
                id,
                duplicate: true,
            }),
            // The pending job it met ended since: the key is free again.
            None => out.extend(Box::pin(enqueue_many(tx, clock, vec![j.clone()])).await?),
        }
    }
    Ok(out)
}

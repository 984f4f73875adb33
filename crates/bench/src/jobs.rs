//! The job queue: no-op jobs per second end to end, pickup latency
//! (enqueue → start) at a stated rate, and fairness (one organization's
//! backlog beside another's few jobs), on two clusters: the ephemeral one
//! the tests use (fsync and synchronous_commit off) and a durable one
//! (both on, as in production).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use foundry_jobs::{Handler, JobContext, JobError, NewJob, Queue, QueueConfig, enqueue_many};
use foundry_pgembed::{EmbeddedPg, PgOptions};
use foundry_platform::clock::{self, SharedClock};
use foundry_platform::db::Db;
use serde::Serialize;
use uuid::Uuid;

/// Knobs of the job benchmark.
#[derive(Clone, Debug)]
pub struct Params {
    /// No-op jobs in the throughput run.
    pub jobs: usize,
    /// Jobs per `enqueue_many` (and per claim).
    pub batch: usize,
    /// Jobs a worker runs at once.
    pub concurrency: usize,
    /// Of those, the workers held back for organizations with nothing
    /// running.
    pub reserved: usize,
    /// Offered jobs per second in the latency run.
    pub rate: f64,
    /// Length of the latency run.
    pub duration: Duration,
    /// The big organization's backlog in the fairness run.
    pub backlog: usize,
    /// The small organization's jobs in the fairness run.
    pub few: usize,
    /// How many times it enqueues them (one transaction each, after the
    /// last ran).
    pub rounds: usize,
}

/// One cluster's figures.
#[derive(Debug, Serialize)]
pub struct Run {
    /// Which cluster.
    pub cluster: &'static str,
    /// No-op jobs per second, enqueue of the first to completion of the
    /// last.
    pub jobs_per_second: f64,
    /// Jobs run in the throughput run.
    pub jobs: usize,
    /// The batch size (enqueue and claim).
    pub batch: usize,
    /// The worker's held-back workers (beside the claim loop's).
    pub reserved: usize,
    /// Offered rate in the latency run.
    pub rate: f64,
    /// Pickup latency (enqueue commit → start), p50, milliseconds.
    pub pickup_p50_ms: f64,
    /// p99.
    pub pickup_p99_ms: f64,
    /// The small organization's p95 wait (enqueue call → start) beside
    /// the backlog, ms.
    pub fair_p95_ms: f64,
    /// Its p95 wait on an idle queue, ms.
    pub idle_p95_ms: f64,
    /// Its p95 wait from its transaction's commit (the database's commit
    /// timestamp) beside the backlog, ms.
    pub fair_commit_p95_ms: f64,
    /// The same on an idle queue, ms.
    pub idle_commit_p95_ms: f64,
}

/// The figures.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Per cluster.
    pub runs: Vec<Run>,
}

struct Noop(Arc<AtomicU64>);

#[async_trait]
impl Handler for Noop {
    async fn run(&self, _: &JobContext) -> Result<Option<serde_json::Value>, JobError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(None)
    }
}

/// Runs the scenarios on both clusters.
pub async fn run(p: &Params) -> anyhow::Result<Report> {
    let mut runs = Vec::new();
    for (cluster, ephemeral) in [
        ("ephemeral (fsync off)", true),
        ("durable (fsync on)", false),
    ] {
        let dir = tempfile::Builder::new()
            .prefix("foundry-bench-jobs")
            .tempdir()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        }
        let mut opts = if ephemeral {
            PgOptions::ephemeral(dir.path().join("pg"))
        } else {
            PgOptions::persistent(dir.path().join("pg"))
        };
        // The fairness run reads when the small organization's jobs
        // committed from the database itself.
        opts.settings.push("track_commit_timestamp=on".into());
        let pg = EmbeddedPg::start(opts).await?;
        foundry::ensure_database(&pg.url("postgres"), "bench").await?;
        let url = pg.url("bench");
        foundry::migrate(&url).await?;
        let db = Db::connect(&url, "delivery", 32).await?;
        tracing::info!(cluster, "jobs: throughput");
        let jobs_per_second = throughput(&db, p).await?;
        tracing::info!(cluster, "jobs: pickup latency");
        let (pickup_p50_ms, pickup_p99_ms) = latency(&db, p).await?;
        tracing::info!(cluster, "jobs: fairness");
        let (idle_p95_ms, idle_commit_p95_ms) = fairness(&db, p, 0).await?;
        let (fair_p95_ms, fair_commit_p95_ms) = fairness(&db, p, p.backlog).await?;
        runs.push(Run {
            cluster,
            jobs_per_second,
            jobs: p.jobs,
            batch: p.batch,
            reserved: p.reserved,
            rate: p.rate,
            pickup_p50_ms,
            pickup_p99_ms,
            fair_p95_ms,
            idle_p95_ms,
            fair_commit_p95_ms,
            idle_commit_p95_ms,
        });
        db.close().await;
        drop(pg);
    }
    Ok(Report { runs })
}

fn queue(db: &Db, p: &Params, clock: &SharedClock, ran: &Arc<AtomicU64>) -> Queue {
    Queue::new(
        db.clone(),
        clock.clone(),
        QueueConfig {
            concurrency: p.concurrency,
            reserved: p.reserved,
            batch: p.batch,
            poll: Duration::from_millis(200),
            ..QueueConfig::default()
        },
    )
    .register("noop", Noop(ran.clone()))
}

/// Runs `queue` until `done` returns true, then stops it.
async fn with_worker<F>(q: Queue, until: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(q.run(Box::pin(async {
        let _ = stopped.await;
    })));
    let r = until.await;
    let _ = stop.send(());
    worker.await?;
    r
}

async fn enqueue(db: &Db, org: Uuid, n: usize, batch: usize) -> anyhow::Result<()> {
    let clock = clock::SystemClock;
    let mut left = n;
    while left > 0 {
        let k = left.min(batch);
        let mut tx = db.tenant(org).await?;
        enqueue_many(
            &mut tx,
            &clock,
            (0..k)
                .map(|_| NewJob::new("noop", org, serde_json::json!({})))
                .collect(),
        )
        .await?;
        tx.commit().await?;
        left -= k;
    }
    Ok(())
}

async fn wait_for(ran: &AtomicU64, n: u64, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while ran.load(Ordering::Relaxed) < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "jobs did not finish in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

async fn clear(db: &Db) -> anyhow::Result<()> {
    let mut tx = db.system().await?;
    sqlx::query("DELETE FROM jobs").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// No-op jobs of 10 organizations enqueued in batches while the worker
/// runs; jobs per second from the first enqueue to the last completion.
async fn throughput(db: &Db, p: &Params) -> anyhow::Result<f64> {
    clear(db).await?;
    let clock = clock::system();
    let ran = Arc::new(AtomicU64::new(0));
    let q = queue(db, p, &clock, &ran);
    let started = Instant::now();
    with_worker(q, async {
        let orgs: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();
        let per = p.jobs / orgs.len();
        for org in &orgs {
            enqueue(db, *org, per, p.batch).await?;
        }
        wait_for(&ran, (per * orgs.len()) as u64, Duration::from_secs(600)).await
    })
    .await?;
    Ok(ran.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// `attempted_at - created_at` of the completed jobs of `org`,
/// milliseconds, sorted.
async fn waits(db: &Db, org: Uuid) -> anyhow::Result<Vec<f64>> {
    let mut ms: Vec<f64> = starts(db, org)
        .await?
        .values()
        .map(|(c, a)| ms(*a - *c))
        .collect();
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

/// When each of `xids` committed, by the database's clock
/// (`track_commit_timestamp`).
async fn commit_times(db: &Db, xids: Vec<String>) -> anyhow::Result<Vec<DateTime<Utc>>> {
    let mut tx = db.system().await?;
    let times: Vec<Option<DateTime<Utc>>> = sqlx::query_scalar(
        "SELECT pg_xact_commit_timestamp(x::xid) FROM unnest($1::text[]) WITH ORDINALITY AS t(x, n) \
         ORDER BY n",
    )
    .bind(&xids)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    times
        .into_iter()
        .map(|t| {
            t.ok_or_else(|| anyhow::anyhow!("no commit timestamp: is track_commit_timestamp on?"))
        })
        .collect()
}

/// `created_at` and `attempted_at` of the completed jobs of `org`, by id.
async fn starts(
    db: &Db,
    org: Uuid,
) -> anyhow::Result<HashMap<Uuid, (DateTime<Utc>, DateTime<Utc>)>> {
    let mut tx = db.system().await?;
    let rows: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, created_at, attempted_at FROM jobs WHERE org_id = $1 AND state = 'completed'",
    )
    .bind(org)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|(id, c, a)| (id, (c, a))).collect())
}

fn ms(d: chrono::TimeDelta) -> f64 {
    d.num_microseconds().unwrap_or(0) as f64 / 1000.0
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Single jobs enqueued at `rate` (each its own transaction) while the
/// worker runs.
async fn latency(db: &Db, p: &Params) -> anyhow::Result<(f64, f64)> {
    clear(db).await?;
    let clock = clock::system();
    let ran = Arc::new(AtomicU64::new(0));
    let q = queue(db, p, &clock, &ran);
    let org = Uuid::now_v7();
    let mut sent = 0u64;
    with_worker(q, async {
        let gap = Duration::from_secs_f64(1.0 / p.rate);
        let started = Instant::now();
        let mut next = started;
        while started.elapsed() < p.duration {
            enqueue(db, org, 1, 1).await?;
            sent += 1;
            next += gap;
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                tokio::time::sleep(d).await;
            }
        }
        wait_for(&ran, sent, Duration::from_secs(60)).await
    })
    .await?;
    let w = waits(db, org).await?;
    Ok((pct(&w, 0.5), pct(&w, 0.99)))
}

/// The small organization's waits: its `few` jobs enqueued in one
/// transaction, `rounds` times, while a big one's `backlog` is being
/// worked (0 backlog: on an idle queue). The rounds start once the worker
/// has run a tenth of the backlog (claims in their steady state, not the
/// first claim on a freshly loaded table), and the run fails if the
/// backlog ran out before the last round ended. p95 of the waits from the
/// enqueue call (`created_at`) and from its commit (the database's commit
/// timestamp), to the start.
async fn fairness(db: &Db, p: &Params, backlog: usize) -> anyhow::Result<(f64, f64)> {
    clear(db).await?;
    let (big, small) = (Uuid::now_v7(), Uuid::now_v7());
    enqueue(db, big, backlog, 5_000).await?;
    let clock = clock::system();
    let ran = Arc::new(AtomicU64::new(0));
    // The small organization's jobs are a kind of their own, counted
    // apart (no query polls the table while it is measured).
    let few = Arc::new(AtomicU64::new(0));
    let q = queue(db, p, &clock, &ran).register("few", Noop(few.clone()));
    let mut commits = Vec::with_capacity(p.rounds);
    with_worker(q, async {
        wait_for(&ran, (backlog / 10) as u64, Duration::from_secs(120)).await?;
        let clock = clock::SystemClock;
        for round in 1..=p.rounds {
            let mut tx = db.tenant(small).await?;
            let xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::xid::text")
                .fetch_one(&mut *tx)
                .await?;
            let jobs = (0..p.few)
                .map(|_| NewJob::new("few", small, serde_json::json!({})))
                .collect();
            let ids = enqueue_many(&mut tx, &clock, jobs).await?;
            tx.commit().await?;
            commits.push((ids, xid));
            wait_for(&few, (p.few * round) as u64, Duration::from_secs(120)).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::ensure!(
            ran.load(Ordering::Relaxed) < backlog as u64 || backlog == 0,
            "the backlog of {backlog} ran out before the last round: raise --backlog"
        );
        // Their completions are written in batches: wait for the last.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    })
    .await?;
    let started = starts(db, small).await?;
    let committed = commit_times(db, commits.iter().map(|(_, xid)| xid.clone()).collect()).await?;
    let mut from_call = Vec::new();
    let mut from_commit = Vec::new();
    for ((ids, _), committed) in commits.iter().zip(&committed) {
        for job in ids {
            let id = job.id;
            let (created, attempted) = started
                .get(&id)
                .ok_or_else(|| anyhow::anyhow!("job {id} of the small organization did not run"))?;
            from_call.push(ms(*attempted - *created));
            from_commit.push(ms(*attempted - *committed));
        }
    }
    from_call.sort_by(f64::total_cmp);
    from_commit.sort_by(f64::total_cmp);
    Ok((pct(&from_call, 0.95), pct(&from_commit, 0.95)))
}

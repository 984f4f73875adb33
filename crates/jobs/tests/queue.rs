//! The job queue on the real embedded PostgreSQL, in delivery's schema (as
//! its role, row-level security forced), with a clock the tests move.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use foundry_jobs::admin::{self, Cancel};
use foundry_jobs::schedule::{self, Missed, Schedule, When};
use foundry_jobs::{
    Claimed, Finish, Handler, JobContext, JobError, NewJob, Queue, QueueConfig, SYSTEM, enqueue,
    enqueue_many,
};
use foundry_platform::clock::{Clock, ManualClock};
use foundry_platform::db::Db;
use uuid::Uuid;

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-27T12:00:00Z")
        .expect("a time")
        .with_timezone(&Utc)
}

struct Env {
    db: Db,
    clock: ManualClock,
}

async fn env() -> Env {
    env_at(start()).await
}

/// For a running worker: its clock starts at the wall clock's time, so
/// that what it enqueues is due now.
async fn env_now() -> Env {
    env_at(Utc::now()).await
}

async fn env_at(at: DateTime<Utc>) -> Env {
    let url = foundry_testkit::fresh_database().await;
    let db = Db::connect(&url, "delivery", 8).await.expect("pool");
    Env {
        db,
        clock: ManualClock::at(at),
    }
}

impl Env {
    fn queue(&self, cfg: QueueConfig) -> Queue {
        Queue::new(self.db.clone(), self.clock.shared(), cfg)
    }

    async fn enqueue_for(&self, org: Uuid, jobs: Vec<NewJob>) -> Vec<foundry_jobs::Enqueued> {
        let mut tx = self.db.tenant(org).await.expect("tx");
        let out = enqueue_many(&mut tx, &self.clock, jobs)
            .await
            .expect("enqueue");
        tx.commit().await.expect("commit");
        out
    }

    async fn job(&self, id: Uuid) -> admin::Job {
        let mut tx = self.db.system().await.expect("tx");
        let job = admin::get(&mut tx, id).await.expect("read").expect("a job");
        tx.commit().await.expect("commit");
        job
    }
}

fn noop(org: Uuid) -> NewJob {
    NewJob::new("noop", org, serde_json::json!({}))
}

/// Completes at once.
struct Noop;

#[async_trait]
impl Handler for Noop {
    async fn run(&self, _: &JobContext) -> Result<Option<serde_json::Value>, JobError> {
        Ok(None)
    }
}

/// Fails every attempt.
struct Failing;

#[async_trait]
impl Handler for Failing {
    async fn run(&self, job: &JobContext) -> Result<Option<serde_json::Value>, JobError> {
        Err(JobError::Retry(format!(
            "attempt {} broke",
            job.job.attempt
        )))
    }
}

#[tokio::test]
async fn a_job_exists_only_if_its_change_committed() {
    let e = env().await;
    let org = Uuid::now_v7();
    let mut tx = e.db.tenant(org).await.expect("tx");
    let rolled_back = enqueue(&mut tx, &e.clock, noop(org))
        .await
        .expect("enqueue");
    tx.rollback().await.expect("rollback");
    let mut tx = e.db.tenant(org).await.expect("tx");
    let committed = enqueue(&mut tx, &e.clock, noop(org))
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");

    let mut sys = e.db.system().await.expect("tx");
    assert!(
        admin::get(&mut sys, rolled_back.id)
            .await
            .expect("read")
            .is_none()
    );
    let job = admin::get(&mut sys, committed.id)
        .await
        .expect("read")
        .expect("the job");
    assert_eq!((job.state.as_str(), job.org_id), ("available", org));

    // A tenant enqueues for itself only, and sees only its own jobs.
    let other = Uuid::now_v7();
    let mut tx = e.db.tenant(org).await.expect("tx");
    let refused = enqueue(&mut tx, &e.clock, noop(other)).await;
    assert!(refused.is_err(), "enqueued a job for another organization");
    tx.rollback().await.expect("rollback");
    let mut tx = e.db.tenant(other).await.expect("tx");
    assert!(
        admin::get(&mut tx, committed.id)
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test]
async fn a_unique_key_enqueues_once_while_its_job_is_pending() {
    let e = env().await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let keyed = |org| noop(org).unique("sync:1");
    let first = e.enqueue_for(a, vec![keyed(a), keyed(a), noop(a)]).await;
    assert!(!first[0].duplicate);
    assert_eq!((first[1].id, first[1].duplicate), (first[0].id, true));
    assert!(!first[2].duplicate, "a job without a key is always new");
    let again = e.enqueue_for(a, vec![keyed(a)]).await;
    assert_eq!((again[0].id, again[0].duplicate), (first[0].id, true));
    // Another organization's key is its own.
    let theirs = e.enqueue_for(b, vec![keyed(b)]).await;
    assert!(!theirs[0].duplicate);

    // Once the job has run, the key is free again.
    let q = e.queue(QueueConfig::default()).register("noop", Noop);
    for job in q.claim(10).await.expect("claim") {
        assert!(q.run_one(job).await.expect("run"));
    }
    let after = e.enqueue_for(a, vec![keyed(a)]).await;
    assert!(!after[0].duplicate);
    assert_ne!(after[0].id, first[0].id);
}

#[tokio::test]
async fn a_killed_workers_late_completion_is_refused() {
    let e = env().await;
    let org = Uuid::now_v7();
    let id = e.enqueue_for(org, vec![noop(org)]).await[0].id;
    let lease = Duration::from_secs(30);
    let first = e.queue(QueueConfig {
        worker: "first".into(),
        lease,
        ..QueueConfig::default()
    });
    let second = e.queue(QueueConfig {
        worker: "second".into(),
        lease,
        ..QueueConfig::default()
    });
    let held: Vec<Claimed> = first.claim(1).await.expect("claim");
    assert_eq!(held.len(), 1);
    // While the lease holds, nobody else gets the job.
    assert!(second.claim(1).await.expect("claim").is_empty());
    assert_eq!(second.rescue().await.expect("rescue"), 0);

    // The first worker stops answering; its lease runs out.
    e.clock.advance(TimeDelta::seconds(31));
    assert_eq!(second.rescue().await.expect("rescue"), 1);
    second.promote().await.expect("promote");
    let taken = second.claim(1).await.expect("claim");
    assert_eq!(taken.len(), 1);
    assert!(
        taken[0].lease > held[0].lease,
        "a new claim, a new fencing token"
    );

    // The first worker wakes up and finishes: refused, nothing written.
    let late = first
        .finish(
            &held[0],
            Finish::Completed(Some(serde_json::json!("first"))),
        )
        .await
        .expect("finish");
    assert!(!late, "the old lease finished the job");
    assert_eq!(first.heartbeat(&held[0]).await.expect("beat"), None);
    assert_eq!(e.job(id).await.state, "running");
    let done = second
        .finish(
            &taken[0],
            Finish::Completed(Some(serde_json::json!("second"))),
        )
        .await
        .expect("finish");
    assert!(done);
    let job = e.job(id).await;
    assert_eq!(job.state, "completed");
    assert_eq!(job.result, Some(serde_json::json!("second")));
    assert_eq!(job.attempt, 2);
    assert_eq!(
        job.errors[0]["error"],
        "lease expired: its worker stopped answering"
    );
}

#[tokio::test]
async fn retries_back_off_then_the_dead_letter_can_be_retried_or_discarded() {
    let e = env().await;
    let org = Uuid::now_v7();
    let id = e.enqueue_for(org, vec![noop(org).attempts(3)]).await[0].id;
    let q = e
        .queue(QueueConfig {
            backoff_base: Duration::from_secs(10),
            ..QueueConfig::default()
        })
        .register("noop", Failing);
    let mut waits = vec![];
    for attempt in 1..=3 {
        q.promote().await.expect("promote");
        let job = q.claim(1).await.expect("claim").pop().expect("a job");
        assert_eq!(job.attempt, attempt);
        assert!(q.run_one(job).await.expect("run"));
        let j = e.job(id).await;
        if attempt < 3 {
            assert_eq!(j.state, "retryable");
            let wait = j.run_at - e.clock.now();
            waits.push(wait);
            // Not before its time.
            q.promote().await.expect("promote");
            assert!(q.claim(1).await.expect("claim").is_empty());
            e.clock.advance(wait);
        }
    }
    // 10 s then 20 s, each ±20 %.
    let secs: Vec<i64> = waits.iter().map(|w| w.num_milliseconds()).collect();
    assert!((8_000..=12_000).contains(&secs[0]), "{secs:?}");
    assert!((16_000..=24_000).contains(&secs[1]), "{secs:?}");
    let dead = e.job(id).await;
    assert_eq!(dead.state, "dead");
    let errors: Vec<&str> = dead
        .errors
        .as_array()
        .expect("errors")
        .iter()
        .map(|x| x["error"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        errors,
        ["attempt 1 broke", "attempt 2 broke", "attempt 3 broke"]
    );
    let letters = admin::dead(&e.db, Some(org), 10).await.expect("dead");
    assert_eq!(letters.iter().map(|j| j.id).collect::<Vec<_>>(), [id]);
    assert!(
        admin::dead(&e.db, Some(Uuid::now_v7()), 10)
            .await
            .expect("dead")
            .is_empty()
    );

    // Retried: one more attempt.
    assert!(admin::retry(&e.db, &e.clock, id).await.expect("retry"));
    let job = q
        .claim(1)
        .await
        .expect("claim")
        .pop()
        .expect("the retried job");
    assert_eq!(job.attempt, 4);
    q.run_one(job).await.expect("run");
    assert_eq!(e.job(id).await.state, "dead");
    // Discarded: set aside; no longer retryable.
    assert!(admin::discard(&e.db, id).await.expect("discard"));
    assert_eq!(e.job(id).await.state, "discarded");
    assert!(!admin::retry(&e.db, &e.clock, id).await.expect("retry"));
    assert!(
        admin::dead(&e.db, Some(org), 10)
            .await
            .expect("dead")
            .is_empty()
    );
}

#[tokio::test]
async fn a_job_that_can_never_succeed_is_dead_at_once() {
    let e = env().await;
    let org = Uuid::now_v7();
    let id = e
        .enqueue_for(
            org,
            vec![NewJob::new("typed", org, serde_json::json!({"n": "x"}))],
        )
        .await[0]
        .id;
    struct Typed;
    #[derive(serde::Deserialize)]
    struct Args {
        #[allow(dead_code)]
        n: i64,
    }
    #[async_trait]
    impl Handler for Typed {
        async fn run(&self, job: &JobContext) -> Result<Option<serde_json::Value>, JobError> {
            job.args::<Args>()?;
            Ok(None)
        }
    }
    let q = e.queue(QueueConfig::default()).register("typed", Typed);
    let job = q.claim(1).await.expect("claim").pop().expect("a job");
    q.run_one(job).await.expect("run");
    let j = e.job(id).await;
    assert_eq!((j.state.as_str(), j.attempt), ("dead", 1));
    assert!(
        j.errors[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("arguments of typed")
    );
}

/// Waits until cancelled, then says so.
struct UntilCancelled;

#[async_trait]
impl Handler for UntilCancelled {
    async fn run(&self, job: &JobContext) -> Result<Option<serde_json::Value>, JobError> {
        job.cancelled().await;
        Err(JobError::Retry("cancelled".into()))
    }
}

#[tokio::test]
async fn pending_jobs_cancel_at_once_and_running_ones_are_told() {
    let e = env().await;
    let org = Uuid::now_v7();
    let later = e.clock.now() + TimeDelta::hours(1);
    let ids = e
        .enqueue_for(org, vec![noop(org).at(later), noop(org)])
        .await;
    let (pending, running) = (ids[0].id, ids[1].id);
    assert_eq!(e.job(pending).await.state, "scheduled");
    assert_eq!(
        admin::cancel(&e.db, &e.clock, org, pending)
            .await
            .expect("cancel"),
        Cancel::Cancelled
    );
    e.clock.advance(TimeDelta::hours(2));
    let q = e
        .queue(QueueConfig {
            lease: Duration::from_millis(300),
            ..QueueConfig::default()
        })
        .register("noop", UntilCancelled);
    q.promote().await.expect("promote");
    let claimed = q.claim(10).await.expect("claim");
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), [running]);
    let job = claimed.into_iter().next().expect("a job");
    let run = tokio::spawn({
        let q = q.clone();
        async move { q.run_one(job).await }
    });
    // Another organization cannot cancel it.
    assert_eq!(
        admin::cancel(&e.db, &e.clock, Uuid::now_v7(), running)
            .await
            .expect("cancel"),
        Cancel::NotFound
    );
    assert_eq!(
        admin::cancel(&e.db, &e.clock, org, running)
            .await
            .expect("cancel"),
        Cancel::Requested
    );
    let finished = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the handler heard of the cancellation")
        .expect("join")
        .expect("run");
    assert!(finished);
    assert_eq!(e.job(running).await.state, "cancelled");
    assert_eq!(e.job(pending).await.state, "cancelled");
    assert_eq!(
        admin::cancel(&e.db, &e.clock, org, running)
            .await
            .expect("cancel"),
        Cancel::Ended
    );
}

#[tokio::test]
async fn one_organizations_backlog_does_not_starve_another() {
    let e = env().await;
    let (big, small) = (Uuid::now_v7(), Uuid::now_v7());
    // The big backlog is enqueued first: oldest first alone would serve it
    // entirely before the small one.
    for _ in 0..4 {
        e.enqueue_for(big, (0..500).map(|_| noop(big)).collect())
            .await;
    }
    e.enqueue_for(small, (0..100).map(|_| noop(small)).collect())
        .await;
    let q = e.queue(QueueConfig::default()).register("noop", Noop);
    let mut claims = 0;
    let mut small_left = 100;
    while small_left > 0 {
        let batch = q.claim(50).await.expect("claim");
        claims += 1;
        let of_small = batch.iter().filter(|c| c.org_id == small).count();
        let of_big = batch.len() - of_small;
        assert_eq!(
            (of_small, of_big),
            (25, 25),
            "claim {claims}: an equal share each"
        );
        small_left -= of_small;
        for c in batch {
            q.finish(&c, Finish::Completed(None)).await.expect("finish");
        }
    }
    assert_eq!(
        claims, 4,
        "the small organization waited for 4 claims, not 40"
    );
}

#[tokio::test]
async fn an_organization_at_its_concurrency_limit_is_passed_over() {
    let e = env().await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    e.enqueue_for(a, (0..20).map(|_| noop(a)).collect()).await;
    e.enqueue_for(b, (0..20).map(|_| noop(b)).collect()).await;
    let cfg = QueueConfig {
        max_running_per_org: Some(3),
        ..QueueConfig::default()
    };
    let (w1, w2) = (e.queue(cfg.clone()), e.queue(cfg));
    let first = w1.claim(50).await.expect("claim");
    let second = w2.claim(50).await.expect("claim");
    let count = |c: &[Claimed], org| c.iter().filter(|j| j.org_id == org).count();
    assert_eq!((count(&first, a), count(&first, b)), (3, 3));
    assert!(second.is_empty(), "both organizations run their limit");
    w1.finish(&first[0], Finish::Completed(None))
        .await
        .expect("finish");
    let third = w2.claim(50).await.expect("claim");
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].org_id, first[0].org_id);
}

async fn drain(e: &Env) {
    let q = e.queue(QueueConfig::default());
    for job in q.claim(100).await.expect("claim") {
        q.finish(&job, Finish::Completed(None))
            .await
            .expect("finish");
    }
}

/// The runs of the schedules so far: their unique keys and times.
async fn schedule_runs(e: &Env) -> Vec<(String, String)> {
    let mut tx = e.db.system().await.expect("tx");
    let runs: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT unique_key, run_at FROM jobs WHERE org_id = $1 AND unique_key LIKE 'schedule:%' \
         ORDER BY unique_key, run_at",
    )
    .bind(SYSTEM)
    .fetch_all(&mut *tx)
    .await
    .expect("runs");
    tx.commit().await.expect("commit");
    runs.into_iter().map(|(k, t)| (k, t.to_rfc3339())).collect()
}

fn run(key: &str, at: &str) -> (String, String) {
    (key.to_string(), at.to_string())
}

#[tokio::test]
async fn a_schedule_fires_across_a_daylight_saving_change_and_keeps_its_missed_policy() {
    let e = env().await;
    let daily = |name: &str, missed| Schedule {
        name: name.into(),
        when: When::Cron("30 2 * * *".into(), chrono_tz::Europe::Berlin),
        kind: "noop".into(),
        args: serde_json::json!({"from": name}),
        missed,
    };
    schedule::upsert(&e.db, &e.clock, &daily("nightly", Missed::Skip))
        .await
        .expect("schedule");
    // 2026-03-28 02:30 CET, on time.
    e.clock.set(utc("2026-03-28T01:30:10Z"));
    assert_eq!(schedule::fire_due(&e.db, &e.clock).await.expect("fire"), 1);
    assert_eq!(schedule::fire_due(&e.db, &e.clock).await.expect("fire"), 0);
    drain(&e).await;
    // The night the clock skips 02:00-03:00: once, at 03:30 CEST.
    e.clock.set(utc("2026-03-29T01:29:00Z"));
    assert_eq!(schedule::fire_due(&e.db, &e.clock).await.expect("fire"), 0);
    e.clock.set(utc("2026-03-29T01:30:05Z"));
    assert_eq!(schedule::fire_due(&e.db, &e.clock).await.expect("fire"), 1);
    drain(&e).await;
    assert_eq!(
        schedule_runs(&e).await,
        [
            run("schedule:nightly", "2026-03-28T01:30:00+00:00"),
            run("schedule:nightly", "2026-03-29T01:30:00+00:00"),
        ]
    );

    // Down for four nights: skip drops them, once runs one, all runs each.
    schedule::upsert(&e.db, &e.clock, &daily("once", Missed::Once))
        .await
        .expect("schedule");
    schedule::upsert(&e.db, &e.clock, &daily("all", Missed::All))
        .await
        .expect("schedule");
    e.clock.set(utc("2026-04-02T12:00:00Z"));
    let fired = schedule::fire_due(&e.db, &e.clock).await.expect("fire");
    assert_eq!(fired, 5, "skip 0, once 1, all 4");
    let runs = schedule_runs(&e).await;
    assert!(
        runs.contains(&run("schedule:once", "2026-04-02T00:30:00+00:00")),
        "{runs:?}"
    );
    for day in ["03-30", "03-31", "04-01", "04-02"] {
        let at = format!("2026-{day}T00:30:00+00:00");
        assert!(
            runs.contains(&run(&format!("schedule:all:{at}"), &at)),
            "{runs:?}"
        );
    }
    assert_eq!(
        runs.iter().filter(|(k, _)| k == "schedule:nightly").count(),
        2
    );
    // Redefining a schedule with the same times keeps its next run.
    schedule::upsert(&e.db, &e.clock, &daily("all", Missed::All))
        .await
        .expect("schedule");
    assert_eq!(schedule::fire_due(&e.db, &e.clock).await.expect("fire"), 0);
    let bad = Schedule {
        when: When::Cron("every night".into(), chrono_tz::UTC),
        ..daily("bad", Missed::Skip)
    };
    let refused = schedule::upsert(&e.db, &e.clock, &bad)
        .await
        .expect_err("refused");
    assert!(refused.to_string().contains("every night"), "{refused}");
}

#[tokio::test]
async fn runs_of_one_schedule_never_overlap() {
    let e = env().await;
    let tick = Schedule::every("tick", Duration::from_secs(10), "noop");
    schedule::upsert(&e.db, &e.clock, &tick)
        .await
        .expect("schedule");
    e.clock.advance(TimeDelta::seconds(10));
    assert_eq!(schedule::fire_due(&e.db, &e.clock).await.expect("fire"), 1);
    // The first run has not finished: the next is absorbed.
    e.clock.advance(TimeDelta::seconds(10));
    assert_eq!(schedule::fire_due(&e.db, &e.clock).await.expect("fire"), 0);
    drain(&e).await;
    e.clock.advance(TimeDelta::seconds(10));
    assert_eq!(schedule::fire_due(&e.db, &e.clock).await.expect("fire"), 1);
    assert_eq!(schedule_runs(&e).await.len(), 2);
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("a time")
        .with_timezone(&Utc)
}

/// Counts its runs; sleeps as long as the arguments say.
struct Counting(Arc<AtomicUsize>);

#[async_trait]
impl Handler for Counting {
    async fn run(&self, job: &JobContext) -> Result<Option<serde_json::Value>, JobError> {
        let ms = job.job.args["sleep_ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Some(serde_json::json!({"slept_ms": ms})))
    }
}

async fn states(e: &Env) -> Vec<(String, i64)> {
    admin::stats(&e.db, &e.clock).await.expect("stats").depth
}

#[tokio::test]
async fn the_worker_runs_what_is_enqueued_and_a_stop_releases_what_it_could_not_finish() {
    let e = env_now().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let q = e
        .queue(QueueConfig {
            poll: Duration::from_secs(30),
            shutdown_grace: Duration::from_millis(300),
            ..QueueConfig::default()
        })
        .register("count", Counting(runs.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(q.run(Box::pin(async {
        let _ = stopped.await;
    })));
    let org = Uuid::now_v7();
    let job = |ms: u64| NewJob::new("count", org, serde_json::json!({"sleep_ms": ms}));
    // Woken by the insert's notification, not the 30 s poll.
    e.enqueue_for(org, (0..20).map(|_| job(0)).collect()).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while runs.load(Ordering::SeqCst) < 20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("twenty jobs ran");
    // One job that outlives the grace period, one that ends within it.
    let ids = e.enqueue_for(org, vec![job(60_000), job(100)]).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while e.job(ids[0].id).await.state != "running" || e.job(ids[1].id).await.state != "running"
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("both started");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stopped within its grace period")
        .expect("join");
    let long = e.job(ids[0].id).await;
    assert_eq!(
        (long.state.as_str(), long.attempt),
        ("available", 0),
        "released, not counted"
    );
    assert_eq!(e.job(ids[1].id).await.state, "completed");
    assert_eq!(
        states(&e).await,
        [("available".to_string(), 1), ("completed".to_string(), 21)]
    );
}

#[tokio::test]
async fn jobs_sharing_a_concurrency_key_run_at_most_its_limit_at_once() {
    let e = env().await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let keyed = |org, key: &str, limit| noop(org).concurrency(key, limit);
    // Five jobs of one key (limit 2) ahead of two without a key and two of
    // another key (limit 1); another organization's key of the same name is
    // its own.
    let mut jobs: Vec<NewJob> = (0..5).map(|_| keyed(a, "sync", 2)).collect();
    jobs.extend([noop(a), noop(a), keyed(a, "mail", 1), keyed(a, "mail", 1)]);
    let ids: Vec<Uuid> = e.enqueue_for(a, jobs).await.iter().map(|j| j.id).collect();
    let other = e.enqueue_for(b, vec![keyed(b, "sync", 1)]).await[0].id;

    let (w1, w2) = (
        e.queue(QueueConfig::default()),
        e.queue(QueueConfig::default()),
    );
    // One claim meets all five of the key: two start, and the jobs behind
    // them are not held up.
    let first = w1.claim(50).await.expect("claim");
    let mut got: Vec<Uuid> = first.iter().map(|c| c.id).collect();
    got.sort();
    let mut want = vec![ids[0], ids[1], ids[5], ids[6], ids[7], other];
    want.sort();
    assert_eq!(
        got, want,
        "two of sync, both without a key, one of mail, b's"
    );
    for id in &ids[2..5] {
        let job = e.job(*id).await;
        assert_eq!(
            (job.state.as_str(), job.attempt),
            ("available", 0),
            "put back unstarted"
        );
    }
    // Another worker finds every key at its limit.
    assert!(w2.claim(50).await.expect("claim").is_empty());

    // One of sync ends: one more of it starts, and no more.
    let done = first.iter().find(|c| c.id == ids[0]).expect("sync job");
    w1.finish(done, Finish::Completed(None))
        .await
        .expect("finish");
    let next = w2.claim(50).await.expect("claim");
    assert_eq!(
        next.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![ids[2]],
        "the oldest waiting one"
    );
    assert!(w1.claim(50).await.expect("claim").is_empty());

    // A failed attempt frees its place too (the retry waits its backoff).
    let mail = first.iter().find(|c| c.id == ids[7]).expect("mail job");
    w1.finish(mail, Finish::Failed(JobError::Retry("later".into())))
        .await
        .expect("finish");
    let next = w1.claim(50).await.expect("claim");
    assert_eq!(next.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ids[8]]);
}

/// Holds its worker until the gate lets it through.
struct Gated(Arc<tokio::sync::Semaphore>, Arc<AtomicUsize>);

#[async_trait]
impl Handler for Gated {
    async fn run(&self, _: &JobContext) -> Result<Option<serde_json::Value>, JobError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        let pass = self
            .0
            .acquire()
            .await
            .map_err(|e| JobError::Fail(e.to_string()))?;
        pass.forget();
        Ok(None)
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within 10 s"));
}

#[tokio::test]
async fn an_organization_with_nothing_running_starts_at_once_while_another_holds_every_worker() {
    let e = env_now().await;
    let big = Uuid::now_v7();
    e.enqueue_for(
        big,
        (0..10)
            .map(|_| NewJob::new("gated", big, serde_json::json!({})))
            .collect(),
    )
    .await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (entered, ran) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    // Three workers for the claim loop, one held back; no poll within the
    // test's time, so only notifications start anything.
    let q = e
        .queue(QueueConfig {
            concurrency: 4,
            reserved: 1,
            batch: 4,
            poll: Duration::from_secs(60),
            shutdown_grace: Duration::from_millis(100),
            ..QueueConfig::default()
        })
        .register("gated", Gated(gate.clone(), entered.clone()))
        .register("count", Counting(ran.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(q.run(Box::pin(async {
        let _ = stopped.await;
    })));
    until(
        "the big organization's jobs take the loop's three workers",
        || entered.load(Ordering::SeqCst) == 3,
    )
    .await;

    // Another organization's job starts on the held-back worker while the
    // loop's are all taken; then a third's, once that worker is back.
    for (n, org) in [(1, Uuid::now_v7()), (2, Uuid::now_v7())] {
        let id = e
            .enqueue_for(org, vec![NewJob::new("count", org, serde_json::json!({}))])
            .await[0]
            .id;
        until("the small organization's job ran", || {
            ran.load(Ordering::SeqCst) == n
        })
        .await;
        tokio::time::timeout(Duration::from_secs(10), async {
            while e.job(id).await.state != "completed" {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("its completion was written, and its worker given back");
    }
    assert_eq!(
        entered.load(Ordering::SeqCst),
        3,
        "the big organization did not take the held-back worker"
    );
    gate.add_permits(10);
    until("the backlog ran", || entered.load(Ordering::SeqCst) == 10).await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("stopped")
        .expect("join");
}

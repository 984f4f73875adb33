//! Each service's job queue as the suite and the split binaries run it:
//! its handlers and its schedules. The maintenance that used to run in
//! loops of its own (request-id sweeps, identity's sweep of spent
//! credentials, audit's checkpoints and retention) runs here as schedules,
//! once per schema however many replicas run, and ended jobs are swept.

use std::time::Duration;

use foundry_audit::Audit;
use foundry_delivery::Delivery;
use foundry_identity::Identity;
use foundry_jobs::schedule::{self, Schedule};
use foundry_jobs::{Queue, QueueConfig, task};
use foundry_platform::clock::SharedClock;
use foundry_platform::db::Db;
use foundry_platform::idempotency;
use foundry_platform::server::Background;

/// How long ended jobs (completed, cancelled, discarded) are kept.
pub const JOB_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often ended jobs are swept.
pub const JOB_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// A service's queue and the schedules it keeps.
pub struct ServiceJobs {
    queue: Queue,
    schedules: Vec<Schedule>,
}

impl ServiceJobs {
    /// `db`'s queue with the sweep of ended jobs; the service adds its own.
    fn new(db: &Db, clock: &SharedClock) -> ServiceJobs {
        let (swept, clock2) = (db.clone(), clock.clone());
        let queue = Queue::new(db.clone(), clock.clone(), QueueConfig::default()).register(
            "jobs.sweep",
            task(move || {
                let (db, clock) = (swept.clone(), clock2.clone());
                async move {
                    let removed = foundry_jobs::admin::sweep(&db, &*clock, JOB_RETENTION).await?;
                    Ok(serde_json::json!({ "removed": removed }))
                }
            }),
        );
        ServiceJobs {
            queue,
            schedules: vec![Schedule::every(
                "jobs.sweep",
                JOB_SWEEP_INTERVAL,
                "jobs.sweep",
            )],
        }
    }

    /// Adds the sweep of request ids older than `retention`, every
    /// [`idempotency::sweep_interval`] of it.
    fn with_request_id_sweep(mut self, retention: Duration) -> ServiceJobs {
        let db = self.queue.db().clone();
        self.queue = self.queue.register(
            "request_ids.sweep",
            task(move || {
                let db = db.clone();
                async move {
                    let removed = idempotency::sweep(&db, retention).await?;
                    Ok(serde_json::json!({ "removed": removed }))
                }
            }),
        );
        self.schedules.push(Schedule::every(
            "request_ids.sweep",
            idempotency::sweep_interval(retention),
            "request_ids.sweep",
        ));
        self
    }

    /// Identity's: request ids, spent refresh and ID tokens, and the
    /// announcement of every membership (enqueued once, by the migration
    /// that started membership events, for delivery's replica).
    pub fn identity(identity: &Identity, clock: &SharedClock, retention: Duration) -> ServiceJobs {
        let mut jobs = Self::new(identity.db(), clock).with_request_id_sweep(retention);
        let announcing = identity.clone();
        jobs.queue = jobs.queue.register(
            foundry_identity::ANNOUNCE_MEMBERSHIPS_JOB,
            task(move || {
                let identity = announcing.clone();
                async move {
                    let announced = identity.announce_memberships().await?;
                    tracing::info!(
                        announced,
                        "every membership announced to delivery's replica"
                    );
                    Ok(serde_json::json!({ "announced": announced }))
                }
            }),
        );
        let swept = identity.clone();
        jobs.queue = jobs.queue.register(
            "identity.credentials.sweep",
            task(move || {
                let identity = swept.clone();
                async move {
                    let removed = identity.sweep().await?;
                    Ok(serde_json::json!({ "removed": removed }))
                }
            }),
        );
        jobs.schedules.push(Schedule::every(
            "identity.credentials.sweep",
            foundry_identity::SWEEP_INTERVAL,
            "identity.credentials.sweep",
        ));
        jobs
    }

    /// Delivery's: request ids.
    pub fn delivery(delivery: &Delivery, clock: &SharedClock, retention: Duration) -> ServiceJobs {
        Self::new(delivery.db(), clock).with_request_id_sweep(retention)
    }

    /// Audit's: background chain verifications (long-running operations),
    /// and a checkpointer round (retention, then a signed checkpoint of
    /// every chain that grew) every `checkpoint`, if set.
    pub fn audit(audit: &Audit, clock: &SharedClock, checkpoint: Option<Duration>) -> ServiceJobs {
        let mut jobs = Self::new(audit.db(), clock);
        let a = audit.clone();
        jobs.queue = jobs.queue.register(
            "audit.checkpoint",
            task(move || {
                let audit = a.clone();
                async move {
                    let r = audit.checkpoint_round().await?;
                    if r.checkpoints > 0 || r.removed > 0 || r.failed > 0 {
                        tracing::info!(
                            checkpoints = r.checkpoints,
                            removed = r.removed,
                            failed = r.failed,
                            "audit checkpointer round"
                        );
                    }
                    Ok(serde_json::json!({
                        "checkpoints": r.checkpoints,
                        "removed": r.removed,
                        "failed": r.failed,
                    }))
                }
            }),
        );
        jobs.queue = jobs.queue.register(
            foundry_audit::api::verify::VERIFY_JOB,
            audit.verification_job(),
        );
        if let Some(every) = checkpoint {
            jobs.schedules.push(Schedule::every(
                "audit.checkpoint",
                every,
                "audit.checkpoint",
            ));
        }
        jobs
    }

    /// Makes its schedules the schema's, then runs the queue beside the
    /// server (stopping, and releasing what it could not finish, first).
    pub async fn start(self, background: &mut Background) -> anyhow::Result<()> {
        let (db, clock) = (self.queue.db().clone(), self.queue.clock().clone());
        schedule::sync(&db, &*clock, &self.schedules).await?;
        let queue = self.queue;
        background.spawn(move |stop| queue.run(stop));
        Ok(())
    }
}

//! The suite's maintenance runs as schedules on each service's job queue.

use std::time::Duration;

use foundry_testkit::TestApp;

/// The schedules of `schema` once the suite has set them (it does as it
/// starts, beside the server).
async fn schedules(app: &TestApp, schema: &str) -> Vec<(String, String)> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database_url)
        .await
        .expect("connect");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT name, cron FROM {schema}.job_schedules ORDER BY name"
        ))
        .fetch_all(&mut conn)
        .await
        .expect("schedules");
        if !found.is_empty() || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn every(name: &str, interval: Duration) -> (String, String) {
    (
        name.to_string(),
        format!("@every {}ms", interval.as_millis()),
    )
}

#[tokio::test]
async fn each_service_keeps_its_maintenance_as_schedules_and_runs_them() {
    let app = TestApp::start_configured(|c| {
        c.audit_checkpoint_interval = Some(Duration::from_millis(200));
    })
    .await;
    let sweep = every("jobs.sweep", foundry::jobs::JOB_SWEEP_INTERVAL);
    let request_ids = every(
        "request_ids.sweep",
        foundry_platform::idempotency::sweep_interval(
            foundry_platform::idempotency::DEFAULT_RETENTION,
        ),
    );
    assert_eq!(
        schedules(&app, "identity").await,
        [
            every(
                "identity.credentials.sweep",
                foundry_identity::SWEEP_INTERVAL
            ),
            sweep.clone(),
            request_ids.clone(),
        ]
    );
    assert_eq!(
        schedules(&app, "delivery").await,
        [sweep.clone(), request_ids]
    );
    assert_eq!(
        schedules(&app, "audit").await,
        [every("audit.checkpoint", Duration::from_millis(200)), sweep]
    );
    // The checkpoint schedule's runs are jobs that complete, one at a time.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database_url)
        .await
        .expect("connect");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit.jobs WHERE kind = 'audit.checkpoint' \
             AND state = 'completed'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("count");
        if done >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the checkpoint schedule did not run twice"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let overlapping: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.jobs WHERE kind = 'audit.checkpoint' \
         AND state IN ('available', 'running')",
    )
    .fetch_one(&mut conn)
    .await
    .expect("count");
    assert!(overlapping <= 1, "{overlapping} runs at once");
}

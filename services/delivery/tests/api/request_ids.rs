//! Idempotency keys (AIP-155) as the platform keeps them for every
//! service: a replay inside the retention window is answered, a reuse with
//! another body is refused, old keys are swept, and a key is visible only
//! to its organization.

use std::time::Duration;

use foundry_platform::idempotency;
use foundry_testkit::delivery::*;
use foundry_testkit::{TestApp, assert_status, authed, violated_fields};
use sqlx::Connection;
use tonic::Code;

use crate::{new_task, program, rid};

fn create(program_id: &str, title: &str, request_id: &str) -> CreateTaskRequest {
    CreateTaskRequest {
        request_id: request_id.into(),
        ..new_task(program_id, title)
    }
}

#[tokio::test]
async fn a_request_id_is_answered_in_its_window_refused_for_another_body_and_swept_after() {
    let app = TestApp::start().await;
    let token = &app.alice.token;
    let p = program(&app, token, "keys").await;
    let key = rid();

    let first = app
        .tasks()
        .create_task(authed(token, create(&p.id, "Write the plan", &key)))
        .await
        .expect("create")
        .into_inner();
    let again = app
        .tasks()
        .create_task(authed(token, create(&p.id, "Write the plan", &key)))
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(again, first, "a replay answers with the first response");

    let reused = app
        .tasks()
        .create_task(authed(token, create(&p.id, "Something else", &key)))
        .await;
    let status = assert_status(reused, Code::InvalidArgument, "REQUEST_ID_REUSED");
    assert_eq!(violated_fields(&status), vec!["request_id"]);

    // Another organization's identical key is its own.
    let q = program(&app, &app.bob.token, "keys").await;
    let bobs = app
        .tasks()
        .create_task(authed(
            &app.bob.token,
            create(&q.id, "Write the plan", &key),
        ))
        .await
        .expect("bob's create")
        .into_inner();
    assert_ne!(bobs.id, first.id);

    // Row-level security: the service's role sees only its org's keys.
    let mut db = app.admin_db().await;
    let mut tx = db.begin().await.expect("begin");
    sqlx::query("SET LOCAL ROLE foundry_delivery")
        .execute(&mut *tx)
        .await
        .expect("role");
    sqlx::query(&format!("SET LOCAL app.org_id = '{}'", app.bob.org_id))
        .execute(&mut *tx)
        .await
        .expect("org");
    let seen: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT scope_id FROM delivery.request_ids")
        .fetch_all(&mut *tx)
        .await
        .expect("read as bob");
    assert_eq!(seen, vec![app.bob.org_id]);
    tx.rollback().await.expect("rollback");

    // Inside the window the sweep keeps the key; past it, the key goes and
    // the same request runs anew.
    let delivery_db = app.suite.delivery.db();
    let kept = idempotency::sweep(delivery_db, idempotency::DEFAULT_RETENTION)
        .await
        .expect("sweep");
    assert_eq!(kept, 0);
    sqlx::query(
        "UPDATE delivery.request_ids SET created_at = now() - interval '25 hours' WHERE scope_id = $1",
    )
    .bind(app.alice.org_id)
    .execute(&mut db)
    .await
    .expect("age alice's key");
    let swept = idempotency::sweep(delivery_db, Duration::from_secs(24 * 3600))
        .await
        .expect("sweep");
    assert_eq!(swept, 1, "only alice's aged key");
    let fresh = app
        .tasks()
        .create_task(authed(token, create(&p.id, "Something else", &key)))
        .await
        .expect("a swept key is free again")
        .into_inner();
    assert_ne!(fresh.id, first.id);
    assert_eq!(fresh.title, "Something else");
}

#[test]
fn sweeps_run_a_twelfth_of_the_window_apart_within_bounds() {
    assert_eq!(
        idempotency::sweep_interval(idempotency::DEFAULT_RETENTION),
        Duration::from_secs(3600)
    );
    assert_eq!(
        idempotency::sweep_interval(Duration::from_secs(120)),
        Duration::from_secs(10)
    );
    assert_eq!(
        idempotency::sweep_interval(Duration::from_secs(2)),
        Duration::from_secs(1)
    );
}

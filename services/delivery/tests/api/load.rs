//! Issue 15, finding 5: deadlines (the caller's `grpc-timeout` and the
//! server's own), a bound on the calls a server runs at once that sheds
//! instead of queueing, and bounds per organization and per principal,
//! each refusal with `RetryInfo`. Calls are held in flight by a row lock
//! the test takes on the program they update.

use std::time::Duration;

use foundry_identity::domain::Role as R;
use foundry_platform::load::Limits;
use foundry_testkit::delivery::*;
use foundry_testkit::{Code, Member, TestApp, assert_status, authed};
use sqlx::Connection;
use tonic_types::StatusExt;

use crate::{mask, program};

/// A transaction of the superuser holding the row lock of `program`: every
/// update of it waits until the transaction ends.
async fn hold(app: &TestApp, program: &Program) -> sqlx::PgConnection {
    let mut db = app.admin_db().await;
    sqlx::query("BEGIN").execute(&mut db).await.unwrap();
    sqlx::query("SELECT 1 FROM delivery.programs WHERE id = $1::uuid FOR UPDATE")
        .bind(&program.id)
        .execute(&mut db)
        .await
        .unwrap();
    db
}

async fn release(mut db: sqlx::PgConnection) {
    sqlx::query("ROLLBACK").execute(&mut db).await.unwrap();
    db.close().await.unwrap();
}

/// Waits until `n` backends wait on a lock (the held calls are in flight).
async fn waiting(app: &TestApp, n: i64) {
    let mut db = app.admin_db().await;
    for _ in 0..200 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        if waiting == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{n} calls never waited on the held row");
}

fn rename(program: &Program, description: &str) -> UpdateProgramRequest {
    UpdateProgramRequest {
        program: Some(Program {
            id: program.id.clone(),
            description: description.into(),
            ..Default::default()
        }),
        update_mask: mask(&["description"]),
    }
}

/// An update of `program` by `who`, spawned (it waits on the held row).
fn update_in_flight(
    app: &TestApp,
    who: &Member,
    program: &Program,
    description: &str,
) -> tokio::task::JoinHandle<Result<tonic::Response<Program>, tonic::Status>> {
    let mut client = app.programs();
    let req = authed(&who.token, rename(program, description));
    tokio::spawn(async move { client.update_program(req).await })
}

async fn get(app: &TestApp, who: &Member, id: &str) -> Result<Program, tonic::Status> {
    app.programs()
        .get_program(authed(&who.token, GetProgramRequest { id: id.into() }))
        .await
        .map(tonic::Response::into_inner)
}

fn retry_after(status: &tonic::Status) -> Duration {
    status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("a load refusal carries RetryInfo")
}

#[tokio::test]
async fn a_call_past_its_grpc_timeout_ends_deadline_exceeded_and_changes_nothing() {
    let app = TestApp::start().await;
    let p = program(&app, &app.alice.token, "deadline").await;
    let held = hold(&app, &p).await;
    let mut req = authed(&app.alice.token, rename(&p, "never written"));
    req.set_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let r = app.programs().update_program(req).await;
    let status = assert_status(r, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    assert!(
        status.message().contains("deadline of 275 ms"),
        "the server answers just before the caller's deadline, and says so: {status:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    release(held).await;
    // The abandoned statement may still finish after the lock goes: it
    // must not commit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = get(&app, &app.alice, &p.id).await.unwrap();
    assert_eq!(after.etag, p.etag, "nothing was written");
    assert_eq!(after.description, p.description);
}

#[tokio::test]
async fn without_a_grpc_timeout_the_servers_deadline_ends_the_call() {
    let app = TestApp::start_configured(|c| {
        c.limits = Limits {
            deadline: Duration::from_millis(400),
            ..Limits::default()
        }
    })
    .await;
    let p = program(&app, &app.alice.token, "server-deadline").await;
    let held = hold(&app, &p).await;
    let r = app
        .programs()
        .update_program(authed(&app.alice.token, rename(&p, "never written")))
        .await;
    assert_status(r, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    // A caller's longer grpc-timeout does not lift the server's.
    let mut req = authed(&app.alice.token, rename(&p, "never written"));
    req.set_timeout(Duration::from_secs(60));
    let started = std::time::Instant::now();
    let r = app.programs().update_program(req).await;
    assert_status(r, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    assert!(started.elapsed() < Duration::from_secs(5));
    release(held).await;
    let after = get(&app, &app.alice, &p.id).await.unwrap();
    assert_eq!(after.etag, p.etag);
}

#[tokio::test]
async fn past_its_concurrency_bound_a_server_sheds_the_next_call_with_retry_info() {
    let app = TestApp::start_configured(|c| {
        c.limits = Limits {
            concurrent: 2,
            retry_after: Duration::from_millis(750),
            ..Limits::default()
        }
    })
    .await;
    let p = program(&app, &app.alice.token, "shed").await;
    let held = hold(&app, &p).await;
    let first = update_in_flight(&app, &app.alice, &p, "first");
    let second = update_in_flight(&app, &app.alice, &p, "second");
    waiting(&app, 2).await;

    // The third call, a quick read, is refused at once rather than queued.
    let started = std::time::Instant::now();
    let status = assert_status(
        get(&app, &app.alice, &p.id).await,
        Code::ResourceExhausted,
        "SERVER_BUSY",
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(retry_after(&status), Duration::from_millis(750));
    // Health is never shed.
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health answers while the server is at its bound");

    release(held).await;
    first.await.unwrap().expect("the held calls finish");
    second.await.unwrap().expect("the held calls finish");
    // Their places are free again.
    let now = get(&app, &app.alice, &p.id).await.unwrap();
    assert_eq!(now.etag, "3");
}

#[tokio::test]
async fn one_organization_or_principal_at_its_bound_is_refused_while_another_is_served() {
    let app = TestApp::start_configured(|c| {
        c.limits = Limits {
            per_org: 2,
            per_principal: 1,
            ..Limits::default()
        }
    })
    .await;
    let p = program(&app, &app.alice.token, "crowded").await;
    let bob = app.new_member(&app.alice, R::Admin).await;
    let carol = app.new_member(&app.alice, R::Admin).await;
    let other = app.new_org("other").await;
    let theirs = program(&app, &other.token, "theirs").await;

    let held = hold(&app, &p).await;
    let alices = update_in_flight(&app, &app.alice, &p, "alice");
    waiting(&app, 1).await;
    let status = assert_status(
        get(&app, &app.alice, &p.id).await,
        Code::ResourceExhausted,
        "PRINCIPAL_BUSY",
    );
    assert_eq!(retry_after(&status), Limits::default().retry_after);
    let bobs = update_in_flight(&app, &bob, &p, "bob");
    waiting(&app, 2).await;
    let status = assert_status(
        get(&app, &carol, &p.id).await,
        Code::ResourceExhausted,
        "ORGANIZATION_BUSY",
    );
    assert_eq!(retry_after(&status), Limits::default().retry_after);
    // Another organization is served meanwhile.
    let got = get(&app, &other, &theirs.id)
        .await
        .expect("another organization is not held back");
    assert_eq!(got.id, theirs.id);

    release(held).await;
    alices.await.unwrap().expect("alice's call finishes");
    bobs.await.unwrap().expect("bob's call finishes");
    get(&app, &carol, &p.id)
        .await
        .expect("the organization's places are free again");
}

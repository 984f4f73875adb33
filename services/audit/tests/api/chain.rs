//! `VerifyAuditChain` against a log tampered with behind the service's back
//! (the superuser connection bypasses row-level security and grants), and
//! the grants that keep the service itself from tampering.

use foundry_audit::domain::Event;
use foundry_audit::store::EventRow;
use foundry_platform::convert::json_to_struct;
use foundry_testkit::audit::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};
use sqlx::Executor;
use uuid::Uuid;

use super::*;

/// An organization with `n` events appended; returns it and the events'
/// ids by sequence.
async fn seeded(app: &TestApp, n: usize) -> (Org, Vec<String>) {
    let svc = app.service_token().await;
    let o = org(app);
    let events: Vec<AuditEvent> = (0..n).map(|_| event(o.id)).collect();
    append(app, &svc, events.clone()).await;
    (o, events.into_iter().map(|e| e.id).collect())
}

async fn exec(app: &TestApp, sql: &str, org: Uuid) {
    sqlx::query(sql)
        .bind(org)
        .execute(&mut app.admin_db().await)
        .await
        .expect(sql);
}

fn problem(v: &VerifyAuditChainResponse) -> (bool, ChainProblem, i64) {
    (
        v.valid,
        ChainProblem::try_from(v.problem).expect("problem"),
        v.problem_sequence,
    )
}

#[tokio::test]
async fn a_clean_chain_verifies_whole_and_in_ranges() {
    let app = TestApp::start().await;
    let (o, _) = seeded(&app, 20).await;
    let head = list_all(&app, &o.token, ListAuditEventsRequest::default()).await;
    let hash_of = |s: i64| {
        head.iter()
            .find(|e| e.sequence == s)
            .expect("event")
            .hash
            .clone()
    };

    let v = verify(&app, &o.token, 0, 0).await;
    assert_eq!(problem(&v), (true, ChainProblem::Unspecified, 0));
    assert_eq!(v.events_checked, 20);
    assert_eq!(v.head_hash, hash_of(20));

    let v = verify(&app, &o.token, 5, 10).await;
    assert!(v.valid, "{v:?}");
    assert_eq!(v.events_checked, 6);
    assert_eq!(v.head_hash, hash_of(10));
    let v = verify(&app, &o.token, 15, 0).await;
    assert!(v.valid && v.events_checked == 6, "{v:?}");
    let v = verify(&app, &o.token, 0, 500).await;
    assert!(v.valid && v.events_checked == 20, "{v:?}");
    let v = verify(&app, &o.token, 20, 20).await;
    assert!(v.valid && v.events_checked == 1, "{v:?}");

    for (start, end, field) in [
        (-1, 0, "start_sequence"),
        (0, -1, "end_sequence"),
        (10, 5, "end_sequence"),
        (21, 0, "start_sequence"),
    ] {
        let r = app
            .audit()
            .verify_audit_chain(authed(
                &o.token,
                VerifyAuditChainRequest {
                    start_sequence: start,
                    end_sequence: end,
                    ..Default::default()
                },
            ))
            .await;
        let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&status), [field], "{start}..{end}");
    }
}

#[tokio::test]
async fn an_edited_event_is_a_hash_mismatch_at_its_position() {
    let app = TestApp::start().await;
    let (o, ids) = seeded(&app, 12).await;
    exec(
        &app,
        "UPDATE audit.events SET action = 'identity.membership.delete' \
         WHERE org_id = $1 AND sequence = 7",
        o.id,
    )
    .await;
    let v = verify(&app, &o.token, 0, 0).await;
    assert_eq!(problem(&v), (false, ChainProblem::HashMismatch, 7));
    assert_eq!(v.problem_event_id, ids[6]);
    assert_eq!(v.events_checked, 6);
    assert!(!v.detail.is_empty());
    // A range that ends before it still verifies.
    assert!(verify(&app, &o.token, 1, 6).await.valid);
}

#[tokio::test]
async fn a_deleted_event_is_missing_at_its_position() {
    let app = TestApp::start().await;
    let (o, _) = seeded(&app, 12).await;
    exec(
        &app,
        "DELETE FROM audit.events WHERE org_id = $1 AND sequence = 7",
        o.id,
    )
    .await;
    let v = verify(&app, &o.token, 0, 0).await;
    assert_eq!(problem(&v), (false, ChainProblem::MissingEvents, 7));
    assert_eq!(v.problem_event_id, "");
    // A range starting after the hole cannot link to its predecessor.
    let v = verify(&app, &o.token, 8, 0).await;
    assert_eq!(problem(&v), (false, ChainProblem::MissingEvents, 7));
    assert!(verify(&app, &o.token, 9, 0).await.valid);
}

#[tokio::test]
async fn reordered_events_are_found() {
    let app = TestApp::start().await;
    let (o, _) = seeded(&app, 8).await;
    for sql in [
        "UPDATE audit.events SET sequence = 1000000 WHERE org_id = $1 AND sequence = 4",
        "UPDATE audit.events SET sequence = 4 WHERE org_id = $1 AND sequence = 5",
        "UPDATE audit.events SET sequence = 5 WHERE org_id = $1 AND sequence = 1000000",
    ] {
        exec(&app, sql, o.id).await;
    }
    let v = verify(&app, &o.token, 0, 0).await;
    assert!(!v.valid);
    assert_eq!(v.problem_sequence, 4, "{v:?}");
    assert_ne!(v.problem, ChainProblem::Unspecified as i32);
}

#[tokio::test]
async fn removed_newest_events_are_a_head_mismatch() {
    let app = TestApp::start().await;
    let (o, _) = seeded(&app, 10).await;
    exec(
        &app,
        "DELETE FROM audit.events WHERE org_id = $1 AND sequence > 8",
        o.id,
    )
    .await;
    let v = verify(&app, &o.token, 0, 0).await;
    assert_eq!(problem(&v), (false, ChainProblem::HeadMismatch, 9));
    assert_eq!(v.events_checked, 8);
    // Naming the head as the end is verifying to the head.
    let v = verify(&app, &o.token, 0, 10).await;
    assert_eq!(problem(&v), (false, ChainProblem::HeadMismatch, 9));
    // What is left verifies as a range.
    assert!(verify(&app, &o.token, 1, 8).await.valid);
}

#[tokio::test]
async fn events_added_behind_the_service_are_a_head_mismatch() {
    // A forger who computes a correct hash and link, but cannot move the
    // head without it being noticed by whoever holds the head hash.
    let app = TestApp::start().await;
    let (o, _) = seeded(&app, 5).await;
    let mut db = app.admin_db().await;
    let last: EventRow = sqlx::query_as(&format!(
        "SELECT {} FROM audit.events WHERE org_id = $1 AND sequence = 5",
        foundry_audit::store::events::EVENT_COLS
    ))
    .bind(o.id)
    .fetch_one(&mut db)
    .await
    .expect("last");
    let forged = Event {
        sequence: 6,
        id: Uuid::now_v7(),
        action: "identity.membership.delete".into(),
        prev_hash: last.hash.clone(),
        ..last.event.clone()
    };
    sqlx::query(
        "INSERT INTO audit.events (org_id, sequence, id, occurred_at, service, actor_type, \
         action, resource_type, resource_id, changes, request_id, trace_id, client_ip, \
         user_agent, actor_id, project_id, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(forged.org_id)
    .bind(forged.sequence)
    .bind(forged.id)
    .bind(forged.occurred_at)
    .bind(&forged.service)
    .bind(&forged.actor_type)
    .bind(&forged.action)
    .bind(&forged.resource_type)
    .bind(&forged.resource_id)
    .bind(&forged.changes)
    .bind(&forged.request_id)
    .bind(&forged.trace_id)
    .bind(&forged.client_ip)
    .bind(&forged.user_agent)
    .bind(forged.actor_id)
    .bind(forged.project_id)
    .bind(&forged.prev_hash)
    .bind(forged.hash().as_slice())
    .execute(&mut db)
    .await
    .expect("forge");
    let v = verify(&app, &o.token, 0, 0).await;
    assert_eq!(problem(&v), (false, ChainProblem::HeadMismatch, 6));
    assert_eq!(v.problem_event_id, forged.id.to_string());
    assert!(verify(&app, &o.token, 1, 4).await.valid);
}

#[tokio::test]
async fn changes_survive_jsonb_and_still_verify() {
    // jsonb reorders keys and keeps numbers as decimals; the canonical form
    // must read back exactly what was hashed.
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let o = org(&app);
    let mut e = event(o.id);
    e.changes = Some(json_to_struct(&serde_json::json!({
        "zeta": {"old": 5.0, "new": -0.0},
        "alpha": {"old": 1e20, "new": 0.30000000000000004},
        "big": {"old": 12345678901234567890.0, "new": 1e-7},
        "list": [3, "é\n\"quoted\"\\", null, true, {"b": 1, "a": [2.5e300]}],
        "": {"empty key": ""},
    })));
    e.resource_id = "tab\there \u{1F600} ünïcode".into();
    e.user_agent = "Mozilla/5.0 (X11)\t\"quoted\"".into();
    append(&app, &svc, vec![e, event(o.id)]).await;
    let v = verify(&app, &o.token, 0, 0).await;
    assert!(v.valid && v.events_checked == 2, "{v:?}");
}

#[tokio::test]
async fn the_service_role_cannot_change_or_remove_events() {
    let app = TestApp::start().await;
    let (o, _) = seeded(&app, 3).await;
    let mut db = app.admin_db().await;
    db.execute("SET ROLE foundry_audit; SET search_path TO audit; SET app.system = 'on'")
        .await
        .expect("act as the service");
    let code = |r: Result<sqlx::postgres::PgQueryResult, sqlx::Error>| {
        r.expect_err("refused")
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()))
    };
    for sql in [
        "UPDATE events SET action = 'identity.membership.delete' WHERE org_id = $1",
        "DELETE FROM events WHERE org_id = $1",
        "UPDATE events SET hash = prev_hash WHERE org_id = $1",
    ] {
        let r = sqlx::query(sql).bind(o.id).execute(&mut db).await;
        assert_eq!(code(r).as_deref(), Some("42501"), "{sql}");
    }
    let r = sqlx::query("TRUNCATE events").execute(&mut db).await;
    assert_eq!(code(r).as_deref(), Some("42501"));
    let r = sqlx::query("DELETE FROM chain_heads WHERE org_id = $1")
        .bind(o.id)
        .execute(&mut db)
        .await;
    assert_eq!(code(r).as_deref(), Some("42501"));

    // It reads what the system scope admits, and nothing without a scope.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE org_id = $1")
        .bind(o.id)
        .fetch_one(&mut db)
        .await
        .expect("count");
    assert_eq!(n, 3);
    db.execute("RESET app.system").await.expect("reset");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut db)
        .await
        .expect("count");
    assert_eq!(n, 0, "row-level security without a scope");
    assert!(verify(&app, &o.token, 0, 0).await.valid);
}

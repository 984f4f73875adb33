//! Audit service integration tests: real gRPC clients against the real
//! suite on a real PostgreSQL (one database per test). One binary, modules
//! per concern.
//!
//! Each test appends to organizations of its own (fresh ids with an owner
//! token minted for them), so events other services record for the test
//! kit's seeded organizations never disturb the counts here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod activity;
mod binding;
mod chain;
mod checkpoints;
mod events;
mod export;
mod ingest;
mod operations;
mod records;
mod retention;

use chrono::{DateTime, Utc};
use foundry_identity::domain::Role;
use foundry_platform::convert::{json_to_struct, timestamp};
use foundry_testkit::audit::*;
use foundry_testkit::{TestApp, authed};
use uuid::Uuid;

/// An organization of the test's own and an owner token acting in it.
pub struct Org {
    pub id: Uuid,
    pub token: String,
}

pub fn org(app: &TestApp) -> Org {
    org_with(app, Role::Owner)
}

pub fn org_with(app: &TestApp, role: Role) -> Org {
    let id = Uuid::now_v7();
    Org {
        id,
        token: app.token(Uuid::now_v7(), Some(id), Some(role)),
    }
}

/// A v7 id minted at `t`.
pub fn id_at(t: DateTime<Utc>) -> Uuid {
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        t.timestamp() as u64,
        t.timestamp_subsec_nanos(),
    ))
}

/// The time of a v7 id (its millisecond).
pub fn time_of(id: &str) -> DateTime<Utc> {
    let (secs, nanos) = Uuid::parse_str(id)
        .expect("id")
        .get_timestamp()
        .expect("v7")
        .to_unix();
    DateTime::from_timestamp(secs as i64, nanos).expect("time")
}

/// A complete, valid event of `org`, occurring now (ids minted in this
/// process increase, so events made one after another list in order).
pub fn event(org: Uuid) -> AuditEvent {
    let mut e = event_at(org, Utc::now());
    e.id = Uuid::now_v7().to_string();
    e.occur_time = Some(timestamp(time_of(&e.id)));
    e
}

/// A complete, valid event of `org` that occurred at `t`.
pub fn event_at(org: Uuid, t: DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        id: id_at(t).to_string(),
        org_id: org.to_string(),
        occur_time: Some(timestamp(t)),
        actor_type: ActorType::User as i32,
        actor_id: Uuid::now_v7().to_string(),
        action: "identity.membership.update".into(),
        resource_type: "identity.membership".into(),
        resource_id: Uuid::now_v7().to_string(),
        changes: Some(json_to_struct(
            &serde_json::json!({"role": {"old": "viewer", "new": "admin"}}),
        )),
        request_id: Uuid::now_v7().to_string(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        client_ip: "203.0.113.7".into(),
        user_agent: "grpc-rust/tests".into(),
        service: "identity".into(),
        ..Default::default()
    }
}

/// Appends as a service account.
pub async fn append(
    app: &TestApp,
    token: &str,
    events: Vec<AuditEvent>,
) -> AppendAuditEventsResponse {
    app.audit_ingest()
        .append_audit_events(authed(
            token,
            AppendAuditEventsRequest {
                audit_events: events,
            },
        ))
        .await
        .expect("append")
        .into_inner()
}

/// `(sequence, id)` of an organization's stored events, by sequence.
pub async fn rows(app: &TestApp, org: Uuid) -> Vec<(i64, Uuid)> {
    sqlx::query_as("SELECT sequence, id FROM audit.events WHERE org_id = $1 ORDER BY sequence")
        .bind(org)
        .fetch_all(&mut app.admin_db().await)
        .await
        .expect("rows")
}

/// Every event a list request returns, following page tokens.
pub async fn list_all(app: &TestApp, token: &str, req: ListAuditEventsRequest) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    let mut req = req;
    loop {
        let page = app
            .audit()
            .list_audit_events(authed(token, req.clone()))
            .await
            .expect("list")
            .into_inner();
        out.extend(page.audit_events);
        if page.next_page_token.is_empty() {
            return out;
        }
        req.page_token = page.next_page_token;
    }
}

/// Verifies an organization's chain over a range.
pub async fn verify(app: &TestApp, token: &str, start: i64, end: i64) -> VerifyAuditChainResponse {
    app.audit()
        .verify_audit_chain(authed(
            token,
            VerifyAuditChainRequest {
                start_sequence: start,
                end_sequence: end,
                ..Default::default()
            },
        ))
        .await
        .expect("verify")
        .into_inner()
}

/// Verifies an organization's whole chain against a checkpoint.
pub async fn verify_against(
    app: &TestApp,
    token: &str,
    checkpoint: &AuditCheckpoint,
) -> VerifyAuditChainResponse {
    app.audit()
        .verify_audit_chain(authed(
            token,
            VerifyAuditChainRequest {
                checkpoint: Some(checkpoint.clone()),
                ..Default::default()
            },
        ))
        .await
        .expect("verify")
        .into_inner()
}

/// Signs a checkpoint of the caller's organization now.
pub async fn checkpoint(app: &TestApp, token: &str) -> AuditCheckpoint {
    app.audit()
        .create_audit_checkpoint(authed(token, CreateAuditCheckpointRequest {}))
        .await
        .expect("checkpoint")
        .into_inner()
}

/// An organization of the test's own with `n` events appended now; returns
/// it and the events, by sequence.
pub async fn org_with_events(app: &TestApp, n: usize) -> (Org, Vec<AuditEvent>) {
    let svc = app.service_token().await;
    let o = org(app);
    let events: Vec<AuditEvent> = (0..n).map(|_| event(o.id)).collect();
    for batch in events.chunks(1000) {
        append(app, &svc, batch.to_vec()).await;
    }
    (o, events)
}

/// `(valid, problem, problem_sequence)` of a verification.
pub fn outcome(v: &VerifyAuditChainResponse) -> (bool, ChainProblem, i64) {
    (
        v.valid,
        ChainProblem::try_from(v.problem).expect("problem"),
        v.problem_sequence,
    )
}

/// Runs SQL as the superuser (bypassing row-level security and grants),
/// with the organization bound to `$1`: tampering behind the service.
pub async fn tamper(app: &TestApp, sql: &str, org: Uuid) {
    sqlx::query(sql)
        .bind(org)
        .execute(&mut app.admin_db().await)
        .await
        .expect(sql);
}

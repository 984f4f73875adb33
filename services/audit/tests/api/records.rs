//! Execution audit records: written once by delivery (internal), listed
//! by program and task, immutable, and each organization's own.

use chrono::{Duration, SubsecRound, Utc};
use foundry_platform::convert::{json_to_struct, struct_to_json, timestamp};
use foundry_testkit::audit::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};
use uuid::Uuid;

use super::*;

fn record(org: Uuid, program: Uuid, task: Uuid) -> ExecutionAuditRecord {
    let end = Utc::now().trunc_subsecs(6);
    ExecutionAuditRecord {
        id: Uuid::now_v7().to_string(),
        org_id: org.to_string(),
        execution_id: Uuid::now_v7().to_string(),
        program_id: program.to_string(),
        task_id: task.to_string(),
        task_title: "Migrate the billing tables".into(),
        skill_name: "postgres-migrations".into(),
        skill_version: "3".into(),
        user_id: Uuid::now_v7().to_string(),
        user_display_name: "Ada Lovelace".into(),
        environment: Some(json_to_struct(&serde_json::json!({
            "sandbox": "standard", "timeout_s": 900, "tools": ["git", "psql"],
        }))),
        model: "claude-sonnet".into(),
        outcome: ExecutionOutcome::Succeeded as i32,
        start_time: Some(timestamp(end - Duration::seconds(90))),
        end_time: Some(timestamp(end)),
        duration: None,
        record_time: None,
    }
}

async fn create(
    app: &TestApp,
    token: &str,
    r: Option<ExecutionAuditRecord>,
) -> Result<ExecutionAuditRecord, tonic::Status> {
    app.audit_ingest()
        .create_execution_audit_record(authed(
            token,
            CreateExecutionAuditRecordRequest {
                execution_audit_record: r,
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn list(
    app: &TestApp,
    token: &str,
    req: ListExecutionAuditRecordsRequest,
) -> Result<ListExecutionAuditRecordsResponse, tonic::Status> {
    app.audit()
        .list_execution_audit_records(authed(token, req))
        .await
        .map(tonic::Response::into_inner)
}

fn ids(page: &ListExecutionAuditRecordsResponse) -> Vec<&str> {
    page.execution_audit_records
        .iter()
        .map(|r| r.id.as_str())
        .collect()
}

#[tokio::test]
async fn records_are_stored_once_and_listed_by_program_and_task() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let o = org(&app);
    let (apollo, gemini) = (Uuid::now_v7(), Uuid::now_v7());
    let (t1, t2, t3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let sent1 = record(o.id, apollo, t1);
    let r1 = create(&app, &svc, Some(sent1.clone())).await.expect("r1");
    assert!(r1.record_time.is_some());
    assert_eq!(
        r1,
        ExecutionAuditRecord {
            duration: Some(prost_types::Duration {
                seconds: 90,
                nanos: 0
            }),
            record_time: r1.record_time,
            ..sent1.clone()
        }
    );
    let mut sent2 = record(o.id, apollo, t2);
    sent2.outcome = ExecutionOutcome::TimedOut as i32;
    sent2.duration = Some(prost_types::Duration {
        seconds: 12,
        nanos: 500_000_000,
    });
    sent2.user_id = String::new();
    sent2.user_display_name = String::new();
    let r2 = create(&app, &svc, Some(sent2)).await.expect("r2");
    assert_eq!(
        r2.duration.as_ref().map(|d| (d.seconds, d.nanos)),
        Some((12, 500_000_000))
    );
    let r3 = create(&app, &svc, Some(record(o.id, gemini, t3)))
        .await
        .expect("r3");

    // A repeat (a redelivery) returns the first record, unchanged.
    let mut again = sent1.clone();
    again.task_title = "Renamed later".into();
    let repeat = create(&app, &svc, Some(again)).await.expect("repeat");
    assert_eq!(repeat, r1);
    assert_eq!(
        struct_to_json(repeat.environment.as_ref().expect("environment"))["tools"][1],
        "psql"
    );

    let by = |program: &str, task: &str| ListExecutionAuditRecordsRequest {
        program_id: program.into(),
        task_id: task.into(),
        ..Default::default()
    };
    let all = list(&app, &o.token, by("", "")).await.expect("list");
    assert_eq!(ids(&all), [r3.id.as_str(), r2.id.as_str(), r1.id.as_str()]);
    let page = list(&app, &o.token, by(&apollo.to_string(), ""))
        .await
        .expect("list");
    assert_eq!(ids(&page), [r2.id.as_str(), r1.id.as_str()]);
    let page = list(&app, &o.token, by("", &t1.to_string()))
        .await
        .expect("list");
    assert_eq!(ids(&page), [r1.id.as_str()]);
    let page = list(&app, &o.token, by(&gemini.to_string(), &t1.to_string()))
        .await
        .expect("list");
    assert!(page.execution_audit_records.is_empty());

    let first = list(
        &app,
        &o.token,
        ListExecutionAuditRecordsRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await
    .expect("page");
    assert_eq!(ids(&first), [r3.id.as_str(), r2.id.as_str()]);
    let second = list(
        &app,
        &o.token,
        ListExecutionAuditRecordsRequest {
            page_size: 2,
            page_token: first.next_page_token,
            ..Default::default()
        },
    )
    .await
    .expect("page");
    assert_eq!(ids(&second), [r1.id.as_str()]);
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.execution_records WHERE org_id = $1")
            .bind(o.id)
            .fetch_one(&mut app.admin_db().await)
            .await
            .expect("count");
    assert_eq!(n, 3);
}

#[tokio::test]
async fn a_record_is_refused_field_by_field() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let o = org(&app);
    let status = assert_status(
        create(&app, &svc, None).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["execution_audit_record"]);

    let mut bad = record(o.id, Uuid::now_v7(), Uuid::now_v7());
    bad.id = "6ba7b810-9dad-41d1-80b4-00c04fd430c8".into(); // v4
    bad.program_id = String::new();
    bad.task_title = "   ".into();
    bad.skill_version = "v".repeat(65);
    bad.model = "m\u{7}".into();
    bad.outcome = 0;
    bad.end_time = Some(timestamp(Utc::now() - Duration::hours(1)));
    bad.duration = Some(prost_types::Duration {
        seconds: -1,
        nanos: 0,
    });
    let status = assert_status(
        create(&app, &svc, Some(bad)).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let f = |s: &str| format!("execution_audit_record.{s}");
    assert_eq!(
        violated_fields(&status),
        [
            f("id"),
            f("program_id"),
            f("task_title"),
            f("skill_version"),
            f("model"),
            f("outcome"),
            f("end_time"),
            f("duration"),
        ]
    );
    let mut bad = record(o.id, Uuid::now_v7(), Uuid::now_v7());
    bad.start_time = None;
    bad.environment = Some(json_to_struct(&serde_json::json!({"k": "a\u{0}b"})));
    let status = assert_status(
        create(&app, &svc, Some(bad)).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(
        violated_fields(&status),
        [f("environment"), f("start_time")]
    );
    let r = list(
        &app,
        &o.token,
        ListExecutionAuditRecordsRequest {
            program_id: "apollo".into(),
            task_id: "t1".into(),
            ..Default::default()
        },
    )
    .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["program_id", "task_id"]);
}

#[tokio::test]
async fn records_are_written_internally_and_each_organizations_own() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let (acme, globex) = (org(&app), org(&app));
    let r = record(acme.id, Uuid::now_v7(), Uuid::now_v7());
    let stored = create(&app, &svc, Some(r.clone())).await.expect("create");

    // A user's token cannot write records.
    let mut mine = record(acme.id, Uuid::now_v7(), Uuid::now_v7());
    mine.id = Uuid::now_v7().to_string();
    assert_status(
        create(&app, &acme.token, Some(mine)).await,
        Code::PermissionDenied,
        "INTERNAL_METHOD",
    );
    // Another organization sees none of them, and cannot take the id.
    let page = list(
        &app,
        &globex.token,
        ListExecutionAuditRecordsRequest::default(),
    )
    .await
    .expect("list");
    assert!(page.execution_audit_records.is_empty());
    let mut stolen = r.clone();
    stolen.org_id = globex.id.to_string();
    let status = assert_status(
        create(&app, &svc, Some(stolen)).await,
        Code::AlreadyExists,
        "EXECUTION_AUDIT_RECORD_EXISTS",
    );
    assert!(status.message().contains("another record"));
    let page = list(
        &app,
        &acme.token,
        ListExecutionAuditRecordsRequest::default(),
    )
    .await
    .expect("list");
    assert_eq!(page.execution_audit_records, [stored]);
}

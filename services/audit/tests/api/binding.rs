//! A credential bound to a project reads only that project's events, and
//! no organization-wide method of the audit log.

use foundry_testkit::audit::*;
use foundry_testkit::identity as id;
use foundry_testkit::{Code, TestApp, assert_status, authed};
use uuid::Uuid;

use super::*;

/// A key of alice's bound to `project`, granting every audit permission,
/// and an access token acting as it.
async fn bound(app: &TestApp, project: &str) -> String {
    let key = id::ApiKey {
        kind: id::ApiKeyKind::ApiKey as i32,
        display_name: "bound".into(),
        scopes: vec!["audit.*.*".into()],
        project_id: project.into(),
        ..Default::default()
    };
    app.key_and_token(&app.alice.token, key).await.1
}

#[tokio::test]
async fn a_project_bound_key_cannot_read_the_org_audit_log() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let (apollo, gemini) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let in_project = |project: &str| {
        let mut e = event(app.alice.org_id);
        e.project_id = project.into();
        e
    };
    let (mine, theirs, org_wide) = (in_project(&apollo), in_project(&gemini), in_project(""));
    append(
        &app,
        &svc,
        vec![mine.clone(), theirs.clone(), org_wide.clone()],
    )
    .await;
    let token = bound(&app, &apollo).await;

    // Lists narrow to the project; another project is refused.
    let listed = list_all(&app, &token, ListAuditEventsRequest::default()).await;
    assert!(listed.iter().any(|e| e.id == mine.id), "{listed:?}");
    assert!(listed.iter().all(|e| e.project_id == apollo), "{listed:?}");
    let r = app
        .audit()
        .list_audit_events(authed(
            &token,
            ListAuditEventsRequest {
                project_id: gemini.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");

    // One event: only the project's.
    let got = app
        .audit()
        .get_audit_event(authed(&token, GetAuditEventRequest { id: mine.id }))
        .await
        .expect("its project's event");
    assert_eq!(got.into_inner().project_id, apollo);
    for e in [&theirs, &org_wide] {
        let r = app
            .audit()
            .get_audit_event(authed(&token, GetAuditEventRequest { id: e.id.clone() }))
            .await;
        assert_status(r, Code::NotFound, "AUDIT_EVENT_NOT_FOUND");
    }

    // The export, as the list.
    let mut stream = app
        .audit()
        .export_audit_events(authed(&token, ExportAuditEventsRequest::default()))
        .await
        .expect("export")
        .into_inner();
    let mut body = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        body.extend_from_slice(&chunk.data);
    }
    let body = String::from_utf8(body).expect("utf-8");
    assert!(body.contains(&apollo) && !body.contains(&theirs.id) && !body.contains(&org_wide.id));

    // Organization-wide methods it cannot narrow.
    let r = app
        .audit()
        .verify_audit_chain(authed(&token, VerifyAuditChainRequest::default()))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");
    let r = app
        .audit()
        .list_audit_checkpoints(authed(&token, ListAuditCheckpointsRequest::default()))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");
    let r = app
        .audit()
        .get_audit_settings(authed(&token, GetAuditSettingsRequest {}))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");
}

#[tokio::test]
async fn a_project_bound_key_cannot_read_other_programs_activity_or_records() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let (apollo, gemini) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let mut theirs = event(app.alice.org_id);
    theirs.project_id = gemini.clone();
    append(&app, &svc, vec![theirs]).await;
    let token = bound(&app, &apollo).await;

    let r = app
        .audit()
        .list_activity(authed(
            &token,
            ListActivityRequest {
                project_id: gemini.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");
    app.audit()
        .list_activity(authed(
            &token,
            ListActivityRequest {
                project_id: apollo.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("its own program's activity");

    let r = app
        .audit()
        .list_execution_audit_records(authed(
            &token,
            ListExecutionAuditRecordsRequest {
                program_id: gemini,
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");
    app.audit()
        .list_execution_audit_records(authed(&token, ListExecutionAuditRecordsRequest::default()))
        .await
        .expect("its own program's records");
}

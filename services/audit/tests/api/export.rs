//! `ExportAuditEvents`: newline-delimited JSON, oldest first, in chunks.

use chrono::{Duration, Utc};
use foundry_identity::domain::Role;
use foundry_platform::convert::{json_to_struct, timestamp};
use foundry_testkit::audit::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};
use serde_json::Value;

use super::*;

/// The exported chunks: `(content types, lines as JSON)`.
async fn export(
    app: &TestApp,
    token: &str,
    req: ExportAuditEventsRequest,
) -> Result<(Vec<(String, usize)>, Vec<Value>), tonic::Status> {
    let mut stream = app
        .audit()
        .export_audit_events(authed(token, req))
        .await?
        .into_inner();
    let mut chunks = Vec::new();
    let mut body = Vec::new();
    while let Some(chunk) = stream.message().await? {
        chunks.push((chunk.content_type.clone(), chunk.data.len()));
        body.extend_from_slice(&chunk.data);
    }
    let text = String::from_utf8(body).expect("utf-8");
    assert!(text.is_empty() || text.ends_with('\n'));
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    Ok((chunks, lines))
}

#[tokio::test]
async fn export_streams_every_event_oldest_first_in_chunks() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let o = org(&app);
    let padding = "x".repeat(600);
    let events: Vec<AuditEvent> = (0..2500)
        .map(|i| {
            let mut e = event(o.id);
            e.changes = Some(json_to_struct(&serde_json::json!({
                "note": {"old": i, "new": padding},
            })));
            e
        })
        .collect();
    for batch in events.chunks(1000) {
        append(&app, &svc, batch.to_vec()).await;
    }
    let (chunks, lines) = export(&app, &o.token, ExportAuditEventsRequest::default())
        .await
        .expect("export");
    assert!(chunks.len() > 3, "{} chunks", chunks.len());
    for (content_type, len) in &chunks {
        assert_eq!(content_type, "application/x-ndjson");
        assert!(*len <= 256 * 1024 + 4096, "chunk of {len} bytes");
    }
    assert_eq!(lines.len(), 2500);
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["id"].as_str().expect("id"))
        .collect();
    let sent: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, sent, "every event once, oldest first");

    let stored = list_all(
        &app,
        &o.token,
        ListAuditEventsRequest {
            page_size: 1000,
            ..Default::default()
        },
    )
    .await;
    let first = stored.last().expect("first");
    let line = &lines[0];
    assert_eq!(line["orgId"], o.id.to_string());
    assert_eq!(line["sequence"], "1");
    assert_eq!(line["actorType"], "ACTOR_TYPE_USER");
    assert_eq!(line["action"], first.action);
    assert_eq!(line["resourceId"], first.resource_id);
    assert_eq!(line["hash"], first.hash);
    assert_eq!(line["previousHash"], "0".repeat(64));
    assert_eq!(line["changes"]["note"]["old"], 0.0);
    assert!(line["occurTime"].as_str().expect("time").ends_with('Z'));
    assert_eq!(lines[2499]["sequence"], "2500");
}

#[tokio::test]
async fn export_takes_the_filters_and_time_range_of_list() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let o = org(&app);
    let now = Utc::now();
    let at = |minutes: i64, action: &str| {
        let mut e = event_at(o.id, now - Duration::minutes(minutes));
        e.action = action.into();
        e
    };
    let events = vec![
        at(50, "delivery.task.create"),
        at(40, "delivery.task.update"),
        at(30, "delivery.task.update"),
        at(20, "delivery.task.delete"),
        at(10, "delivery.task.update"),
    ];
    append(&app, &svc, events.clone()).await;
    let (_, lines) = export(
        &app,
        &o.token,
        ExportAuditEventsRequest {
            action: "delivery.task.update".into(),
            start_time: Some(timestamp(now - Duration::minutes(45))),
            end_time: Some(timestamp(now - Duration::minutes(15))),
            ..Default::default()
        },
    )
    .await
    .expect("export");
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [events[1].id.as_str(), events[2].id.as_str()]);

    // Nothing matches: one empty chunk, which still names its type.
    let (chunks, lines) = export(
        &app,
        &o.token,
        ExportAuditEventsRequest {
            action: "identity.organization.delete".into(),
            ..Default::default()
        },
    )
    .await
    .expect("export");
    assert!(lines.is_empty());
    assert_eq!(chunks, [("application/x-ndjson".to_owned(), 0)]);
}

#[tokio::test]
async fn export_refuses_bad_filters_and_shows_no_other_organization() {
    let app = TestApp::start().await;
    let (o, _) = org_with_events(&app, 3).await;
    let other = org(&app);
    let (_, lines) = export(&app, &other.token, ExportAuditEventsRequest::default())
        .await
        .expect("export");
    assert!(lines.is_empty());
    let (_, lines) = export(&app, &o.token, ExportAuditEventsRequest::default())
        .await
        .expect("export");
    assert_eq!(lines.len(), 3);

    let now = Utc::now();
    for (req, fields) in [
        (
            ExportAuditEventsRequest {
                resource_id: "t1".into(),
                ..Default::default()
            },
            vec!["resource_id"],
        ),
        (
            ExportAuditEventsRequest {
                actor_id: "me".into(),
                action: "Delete".into(),
                ..Default::default()
            },
            vec!["actor_id", "action"],
        ),
        (
            ExportAuditEventsRequest {
                start_time: Some(timestamp(now)),
                end_time: Some(timestamp(now - Duration::seconds(1))),
                ..Default::default()
            },
            vec!["end_time"],
        ),
    ] {
        let status = assert_status(
            export(&app, &o.token, req).await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&status), fields);
    }
    let billing = org_with(&app, Role::Billing);
    let r = export(&app, &billing.token, ExportAuditEventsRequest::default()).await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
}

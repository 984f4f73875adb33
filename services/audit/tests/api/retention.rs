//! Settings and retention: only a whole prefix of old events goes, after a
//! checkpoint, and what remains still verifies (and tampering with it is
//! still found).

use chrono::{Duration, Utc};
use foundry_identity::domain::Role;
use foundry_platform::convert::struct_to_json;
use foundry_testkit::audit::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};
use sqlx::Executor;
use uuid::Uuid;

use super::*;

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

async fn update(
    app: &TestApp,
    token: &str,
    days: i32,
    etag: &str,
    paths: &[&str],
) -> Result<AuditSettings, tonic::Status> {
    app.audit()
        .update_audit_settings(authed(
            token,
            UpdateAuditSettingsRequest {
                audit_settings: Some(AuditSettings {
                    retention_days: days,
                    etag: etag.into(),
                    ..Default::default()
                }),
                update_mask: mask(paths),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn settings(app: &TestApp, token: &str) -> AuditSettings {
    app.audit()
        .get_audit_settings(authed(token, GetAuditSettingsRequest {}))
        .await
        .expect("settings")
        .into_inner()
}

async fn apply(app: &TestApp, svc: &str, org: Uuid) -> ApplyAuditRetentionResponse {
    app.audit_ingest()
        .apply_audit_retention(authed(
            svc,
            ApplyAuditRetentionRequest {
                org_id: org.to_string(),
            },
        ))
        .await
        .expect("retention")
        .into_inner()
}

/// Events of `org` that occurred `days` days ago, a millisecond apart.
fn old_events(org: Uuid, days: i64, n: usize) -> Vec<AuditEvent> {
    let base = Utc::now() - Duration::days(days);
    (0..n)
        .map(|i| event_at(org, base + Duration::milliseconds(i as i64)))
        .collect()
}

#[tokio::test]
async fn settings_default_to_forever_and_change_with_mask_and_etag() {
    let app = TestApp::start().await;
    let o = org(&app);
    let s = settings(&app, &o.token).await;
    assert_eq!((s.retention_days, s.etag.as_str()), (0, "0"));
    assert!(s.update_time.is_none());
    assert_eq!(s.org_id, o.id.to_string());

    let s = update(&app, &o.token, 30, "0", &["retention_days"])
        .await
        .expect("update");
    assert_eq!((s.retention_days, s.etag.as_str()), (30, "1"));
    assert!(s.update_time.is_some());
    assert_eq!(settings(&app, &o.token).await, s);
    let r = update(&app, &o.token, 60, "0", &["retention_days"]).await;
    assert_status(r, Code::Aborted, "ETAG_MISMATCH");
    let s = update(&app, &o.token, 0, "", &["*"])
        .await
        .expect("forever");
    assert_eq!((s.retention_days, s.etag.as_str()), (0, "2"));

    // Each change is an event of the organization's own chain, which
    // still verifies.
    let events = list_all(
        &app,
        &o.token,
        ListAuditEventsRequest {
            action: "audit.settings.update".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].resource_id, o.id.to_string());
    assert_eq!(events[1].actor_type, ActorType::User as i32);
    assert_eq!(
        struct_to_json(events[1].changes.as_ref().expect("changes")),
        serde_json::json!({"retention_days": {"old": 0.0, "new": 30.0}})
    );
    assert!(verify(&app, &o.token, 0, 0).await.valid);

    for (days, paths, field) in [
        (-1, vec!["retention_days"], "audit_settings.retention_days"),
        (
            36_501,
            vec!["retention_days"],
            "audit_settings.retention_days",
        ),
        (7, vec![], "update_mask"),
        (7, vec!["etag"], "update_mask"),
        (7, vec!["color"], "update_mask"),
    ] {
        let r = update(&app, &o.token, days, "", &paths).await;
        let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&status), [field], "{days} {paths:?}");
    }
    let r = app
        .audit()
        .update_audit_settings(authed(
            &o.token,
            UpdateAuditSettingsRequest {
                audit_settings: None,
                update_mask: mask(&["retention_days"]),
            },
        ))
        .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["audit_settings"]);

    // Another organization's settings are its own; admins may change
    // them, viewers only read.
    let other = org(&app);
    assert_eq!(settings(&app, &other.token).await.etag, "0");
    let admin = org_with(&app, Role::Admin);
    update(&app, &admin.token, 90, "", &["retention_days"])
        .await
        .expect("admin");
    let viewer = org_with(&app, Role::Viewer);
    settings(&app, &viewer.token).await;
    let r = update(&app, &viewer.token, 90, "", &["retention_days"]).await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
}

#[tokio::test]
async fn retention_removes_only_the_old_prefix_and_what_remains_verifies() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let o = org(&app);
    // Sequences 1-3 and 4-6: 100 days old; 7-8 recent; 9 old again (it
    // arrived late: not part of the prefix); 10 recent.
    let mut old = old_events(o.id, 100, 7);
    append(&app, &svc, old.drain(..3).collect()).await;
    let early = checkpoint(&app, &o.token).await;
    assert_eq!(early.sequence, 3);
    append(&app, &svc, old.drain(..3).collect()).await;
    append(&app, &svc, vec![event(o.id), event(o.id)]).await;
    append(&app, &svc, old).await;
    append(&app, &svc, vec![event(o.id)]).await;
    let before = checkpoint(&app, &o.token).await;
    assert_eq!(before.sequence, 10);

    // Keeping forever, nothing goes.
    let r = apply(&app, &svc, o.id).await;
    assert_eq!((r.removed_count, r.retained_after_sequence), (0, 0));
    assert!(r.checkpoint.is_none());

    // 30 days (the change is event 11).
    update(&app, &o.token, 30, "", &["retention_days"])
        .await
        .expect("retention");
    let r = apply(&app, &svc, o.id).await;
    assert_eq!((r.removed_count, r.retained_after_sequence), (6, 6));
    let cp = r.checkpoint.expect("checkpoint first");
    assert_eq!(cp.reason, CheckpointReason::Retention as i32);
    assert_eq!((cp.sequence, cp.event_count), (11, 11));
    let kept: Vec<i64> = rows(&app, o.id).await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(kept, [7, 8, 9, 10, 11]);
    assert_eq!(settings(&app, &o.token).await.retained_after_sequence, 6);

    // What remains verifies: alone, and against checkpoints taken before
    // the removal (the watermark links it); a checkpoint of a removed
    // position cannot be checked any more, and says so.
    let v = verify(&app, &o.token, 0, 0).await;
    assert!(v.valid && v.events_checked == 5, "{v:?}");
    assert!(verify(&app, &o.token, 7, 9).await.valid);
    for c in [&before, &cp] {
        let v = verify_against(&app, &o.token, c).await;
        assert!(v.valid, "{v:?}");
    }
    let r = app
        .audit()
        .verify_audit_chain(authed(
            &o.token,
            VerifyAuditChainRequest {
                checkpoint: Some(early.clone()),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::FailedPrecondition, "CHECKPOINT_BEFORE_RETENTION");
    let r = app
        .audit()
        .verify_audit_chain(authed(
            &o.token,
            VerifyAuditChainRequest {
                start_sequence: 3,
                ..Default::default()
            },
        ))
        .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["start_sequence"]);

    // Again: nothing more is old enough as a prefix.
    let r = apply(&app, &svc, o.id).await;
    assert_eq!((r.removed_count, r.retained_after_sequence), (0, 6));
    // The next checkpoint counts the retained chain only.
    append(&app, &svc, vec![event(o.id)]).await;
    let next = checkpoint(&app, &o.token).await;
    assert_eq!((next.sequence, next.event_count), (12, 6));

    // A deleted event in the middle of what remains is still found, and
    // so is the first retained one.
    tamper(
        &app,
        "DELETE FROM audit.events WHERE org_id = $1 AND sequence = 9",
        o.id,
    )
    .await;
    let v = verify(&app, &o.token, 0, 0).await;
    assert_eq!(outcome(&v), (false, ChainProblem::MissingEvents, 9));
    tamper(
        &app,
        "DELETE FROM audit.events WHERE org_id = $1 AND sequence = 7",
        o.id,
    )
    .await;
    let v = verify(&app, &o.token, 0, 0).await;
    assert_eq!(outcome(&v), (false, ChainProblem::MissingEvents, 7));
}

#[tokio::test]
async fn the_checkpointer_applies_retention() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let o = org(&app);
    append(&app, &svc, old_events(o.id, 10, 4)).await;
    append(&app, &svc, vec![event(o.id)]).await;
    update(&app, &o.token, 5, "", &["retention_days"])
        .await
        .expect("retention");
    let round = app.suite.audit.checkpoint_round().await.expect("round");
    assert_eq!(round.removed, 4, "{round:?}");
    let kept: Vec<i64> = rows(&app, o.id).await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(kept, [5, 6]);
    assert!(verify(&app, &o.token, 0, 0).await.valid);
}

#[tokio::test]
async fn the_service_role_cannot_remove_recent_events_through_retention() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let o = org(&app);
    append(&app, &svc, old_events(o.id, 10, 2)).await;
    append(&app, &svc, vec![event(o.id), event(o.id)]).await;
    let other = Uuid::now_v7();
    let mut db = app.admin_db().await;
    db.execute(
        format!(
            "SET ROLE foundry_audit; SET search_path TO audit; SET app.org_id = '{}'",
            o.id
        )
        .as_str(),
    )
    .await
    .expect("act as the service");
    let code = |r: Result<i64, sqlx::Error>| {
        r.expect_err("refused")
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()))
    };
    let remove = |org: Uuid, through: i64| {
        sqlx::query_scalar::<_, i64>("SELECT remove_retained_prefix($1, $2)")
            .bind(org)
            .bind(through)
    };
    // No retention set: nothing may go.
    assert_eq!(
        code(remove(o.id, 1).fetch_one(&mut db).await).as_deref(),
        Some("55000")
    );
    db.execute("RESET ROLE").await.expect("reset");
    update(&app, &o.token, 1, "", &["retention_days"])
        .await
        .expect("retention");
    db.execute("SET ROLE foundry_audit").await.expect("role");
    // The recent events (3, 4) may not go, nor another organization's.
    assert_eq!(
        code(remove(o.id, 3).fetch_one(&mut db).await).as_deref(),
        Some("55000")
    );
    assert_eq!(
        code(remove(other, 1).fetch_one(&mut db).await).as_deref(),
        Some("42501")
    );
    assert_eq!(
        code(remove(o.id, 99).fetch_one(&mut db).await).as_deref(),
        Some("22023")
    );
    // The old prefix may.
    let removed = remove(o.id, 2).fetch_one(&mut db).await.expect("prefix");
    assert_eq!(removed, 2);
    let r = sqlx::query("DELETE FROM events WHERE org_id = $1")
        .bind(o.id)
        .execute(&mut db)
        .await;
    assert!(r.is_err(), "still no DELETE for the service's role");
    drop(db);
    assert!(verify(&app, &o.token, 0, 0).await.valid);
}

#[tokio::test]
async fn apply_audit_retention_is_internal_and_validated() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let o = org(&app);
    let r = app
        .audit_ingest()
        .apply_audit_retention(authed(
            &o.token,
            ApplyAuditRetentionRequest {
                org_id: o.id.to_string(),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "INTERNAL_METHOD");
    for org_id in ["", "nope"] {
        let r = app
            .audit_ingest()
            .apply_audit_retention(authed(
                &svc,
                ApplyAuditRetentionRequest {
                    org_id: org_id.into(),
                },
            ))
            .await;
        let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&status), ["org_id"]);
    }
    // An organization unknown to the log: nothing to do.
    let r = apply(&app, &svc, Uuid::now_v7()).await;
    assert_eq!((r.removed_count, r.retained_after_sequence), (0, 0));
}

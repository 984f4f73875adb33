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

/// The suite with retention as the operator may configure it for tests of
/// retention itself: a floor of one day, and reductions at once.
async fn immediate() -> TestApp {
    TestApp::start_configured(|c| {
        c.audit_retention = foundry_audit::RetentionPolicy::new(1, chrono::TimeDelta::zero());
    })
    .await
}

/// The organization's `audit.settings.update` events, newest first.
async fn settings_changes(app: &TestApp, token: &str) -> Vec<AuditEvent> {
    list_all(
        app,
        token,
        ListAuditEventsRequest {
            action: "audit.settings.update".into(),
            ..Default::default()
        },
    )
    .await
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
    let app = immediate().await;
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
    let events = settings_changes(&app, &o.token).await;
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

    // Another organization's settings are its own; only owners change
    // them, admins and viewers read.
    let other = org(&app);
    assert_eq!(settings(&app, &other.token).await.etag, "0");
    let admin = org_with(&app, Role::Admin);
    settings(&app, &admin.token).await;
    let r = update(&app, &admin.token, 90, "", &["retention_days"]).await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let viewer = org_with(&app, Role::Viewer);
    settings(&app, &viewer.token).await;
    let r = update(&app, &viewer.token, 90, "", &["retention_days"]).await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
}

#[tokio::test]
async fn retention_removes_only_the_old_prefix_and_what_remains_verifies() {
    let app = immediate().await;
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
    // The late one is another service's (its relay was away).
    let late: Vec<AuditEvent> = old
        .into_iter()
        .map(|mut e| {
            e.service = "delivery".into();
            e.action = "delivery.task.update".into();
            e.resource_type = "delivery.task".into();
            e
        })
        .collect();
    let delivery = app
        .service_token_with("delivery", &["audit.events.append"])
        .await;
    append(&app, &delivery, late).await;
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
    let app = immediate().await;
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
    let app = immediate().await;
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

/// Issue 13, finding 3: an admin set the organization's audit retention to
/// one day, and the next maintenance round removed the record of the very
/// change. Now retention is the owners' (`audit.retention.write`), the
/// operator's floor (30 days by default) bounds it, and a reduction waits
/// (7 days by default) in `pending_retention_days`, where an owner can
/// revert it, before any event goes.
#[tokio::test]
async fn admins_can_set_audit_retention_to_one_day() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let owner = org(&app);
    let admin = Org {
        id: owner.id,
        token: app.token(Uuid::now_v7(), Some(owner.id), Some(Role::Admin)),
    };
    append(&app, &svc, old_events(owner.id, 100, 3)).await;

    let r = update(&app, &admin.token, 1, "", &["retention_days"]).await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let r = update(&app, &owner.token, 1, "", &["retention_days"]).await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["audit_settings.retention_days"]);
    assert!(status.message().contains("30"), "{status:?}");

    // 90 days is shorter than forever: it waits.
    let before = Utc::now();
    let s = update(&app, &owner.token, 90, "", &["retention_days"])
        .await
        .expect("a reduction");
    assert_eq!((s.retention_days, s.pending_retention_days), (0, 90));
    let at = foundry_platform::convert::from_timestamp(
        s.pending_retention_effective_time.as_ref().expect("when"),
    )
    .expect("time");
    assert!(at >= before + Duration::days(7) && at <= Utc::now() + Duration::days(7));
    let r = apply(&app, &svc, owner.id).await;
    assert_eq!(r.removed_count, 0, "nothing goes while it waits");
    let round = app.suite.audit.checkpoint_round().await.expect("round");
    assert_eq!(round.removed, 0);

    // The owner reverts it (today's retention again).
    let s = update(&app, &owner.token, 0, "", &["retention_days"])
        .await
        .expect("revert");
    assert_eq!((s.retention_days, s.pending_retention_days), (0, 0));
    assert!(s.pending_retention_effective_time.is_none());

    // Both are in the log, with who asked.
    let events = settings_changes(&app, &owner.token).await;
    let changes: Vec<serde_json::Value> = events
        .iter()
        .map(|e| struct_to_json(e.changes.as_ref().expect("changes")))
        .collect();
    // Newest first: the revert, then the request.
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[1]["pending_retention_days"]["new"], 90.0);
    assert_eq!(changes[0]["pending_retention_days"]["new"], 0.0);
    assert!(
        events
            .iter()
            .all(|e| e.actor_type == ActorType::User as i32)
    );
    assert_eq!(rows(&app, owner.id).await.len(), 5, "every event is kept");
}

/// A reduction takes effect once its delay has passed (here 1 second): the
/// maintenance round makes it the retention, as the system's change in the
/// log, and retention then applies; a retention stored below the floor
/// (set before there was one) removes nothing younger than the floor.
#[tokio::test]
async fn a_retention_reduction_takes_effect_after_its_delay_and_never_below_the_floor() {
    let app = TestApp::start_configured(|c| {
        c.audit_retention = foundry_audit::RetentionPolicy::new(30, chrono::TimeDelta::seconds(1));
    })
    .await;
    let svc = app.service_token().await;
    let o = org(&app);
    append(&app, &svc, old_events(o.id, 100, 3)).await;
    append(&app, &svc, old_events(o.id, 10, 2)).await;
    let s = update(&app, &o.token, 60, "", &["retention_days"])
        .await
        .expect("a reduction");
    assert_eq!(s.pending_retention_days, 60);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let round = app.suite.audit.checkpoint_round().await.expect("round");
    assert_eq!(round.removed, 3, "{round:?}");
    let s = settings(&app, &o.token).await;
    assert_eq!((s.retention_days, s.pending_retention_days), (60, 0));
    let events = settings_changes(&app, &o.token).await;
    // Newest first: the promotion, then the request.
    assert_eq!(events.len(), 2);
    let taken = &events[0];
    assert_eq!(taken.actor_type, ActorType::System as i32);
    assert_eq!(
        struct_to_json(taken.changes.as_ref().expect("changes"))["retention_days"],
        serde_json::json!({"old": 0.0, "new": 60.0})
    );
    assert!(verify(&app, &o.token, 0, 0).await.valid);

    // One day stored (as an admin could set before this fix): 30 days hold.
    let old = org(&app);
    append(&app, &svc, old_events(old.id, 10, 2)).await;
    let mut db = app.admin_db().await;
    sqlx::query("INSERT INTO audit.settings (org_id, retention_days, version) VALUES ($1, 1, 1)")
        .bind(old.id)
        .execute(&mut db)
        .await
        .expect("an old setting");
    let r = apply(&app, &svc, old.id).await;
    assert_eq!(r.removed_count, 0, "nothing younger than the floor goes");
}

//! `AuditIngestService`: who may append, what is refused, and exactly-once.

use std::collections::HashSet;

use chrono::{SubsecRound, Utc};
use foundry_platform::convert::{from_timestamp, json_to_struct, struct_to_json};
use foundry_testkit::audit::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};
use uuid::Uuid;

use super::*;

#[tokio::test]
async fn appended_events_are_listed_and_got_with_their_chain() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let acme = org(&app);
    let mut first = event(acme.id);
    // Nanoseconds are cut to the microseconds the log keeps.
    let first_time = time_of(&first.id);
    first.occur_time = Some(prost_types::Timestamp {
        seconds: first_time.timestamp(),
        nanos: first_time.timestamp_subsec_nanos() as i32 + 456_789,
    });
    first.project_id = Uuid::now_v7().to_string();
    first.changes = Some(json_to_struct(&serde_json::json!({
        "role": {"old": "viewer", "new": "admin"},
        "limits": {"old": [1, 2.5, null], "new": {"deep": true}},
    })));
    let mut system = event(acme.id);
    system.actor_type = ActorType::System as i32;
    system.actor_id = String::new();
    system.occur_time = None; // the id's time
    let third = event(acme.id);
    let sent = vec![first.clone(), system.clone(), third.clone()];
    let r = append(&app, &svc, sent.clone()).await;
    assert_eq!((r.appended, r.duplicates), (3, 0));

    let listed = list_all(&app, &acme.token, ListAuditEventsRequest::default()).await;
    let ids: Vec<&str> = listed.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [&third.id, &system.id, &first.id], "newest first");
    let by_seq = |s: i64| listed.iter().find(|e| e.sequence == s).expect("sequence");
    assert_eq!(by_seq(1).id, first.id, "sequences in arrival order");
    assert_eq!(by_seq(1).previous_hash, "0".repeat(64));
    assert_eq!(by_seq(2).previous_hash, by_seq(1).hash);
    assert_eq!(by_seq(3).previous_hash, by_seq(2).hash);

    let got = app
        .audit()
        .get_audit_event(authed(
            &acme.token,
            GetAuditEventRequest {
                id: first.id.clone(),
            },
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(&got, by_seq(1));
    assert_eq!(got.org_id, acme.id.to_string());
    assert_eq!(
        got.occur_time.as_ref().map(|t| t.nanos),
        Some(first_time.timestamp_subsec_nanos() as i32 + 456_000)
    );
    assert!(got.record_time.is_some());
    assert_eq!(got.project_id, first.project_id);
    assert_eq!(
        struct_to_json(got.changes.as_ref().expect("changes")),
        struct_to_json(first.changes.as_ref().expect("changes"))
    );
    for field in [
        (&got.actor_id, &first.actor_id),
        (&got.action, &first.action),
        (&got.resource_type, &first.resource_type),
        (&got.resource_id, &first.resource_id),
        (&got.request_id, &first.request_id),
        (&got.trace_id, &first.trace_id),
        (&got.client_ip, &first.client_ip),
        (&got.user_agent, &first.user_agent),
        (&got.service, &first.service),
    ] {
        assert_eq!(field.0, field.1);
    }
    assert_eq!(got.actor_type, ActorType::User as i32);

    let sys = by_seq(2);
    assert_eq!(sys.actor_type, ActorType::System as i32);
    assert_eq!(sys.actor_id, "");
    let occur = from_timestamp(sys.occur_time.as_ref().expect("time")).expect("time");
    assert_eq!(
        occur,
        time_of(&system.id),
        "without occur_time, the id's time"
    );

    let v = verify(&app, &acme.token, 0, 0).await;
    assert!(v.valid, "{v:?}");
    assert_eq!(v.events_checked, 3);
    assert_eq!(v.head_hash, by_seq(3).hash);
}

#[tokio::test]
async fn only_service_accounts_may_append() {
    let app = TestApp::start().await;
    let acme = org(&app);
    let req = || AppendAuditEventsRequest {
        audit_events: vec![event(acme.id)],
    };
    let r = app
        .audit_ingest()
        .append_audit_events(authed(&acme.token, req()))
        .await;
    assert_status(r, Code::PermissionDenied, "INTERNAL_METHOD");
    let r = app.audit_ingest().append_audit_events(req()).await;
    assert_status(r, Code::Unauthenticated, "TOKEN_MISSING");
    assert!(rows(&app, acme.id).await.is_empty());
}

#[tokio::test]
async fn invalid_events_are_refused_whole_with_every_field_path() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let acme = org(&app);
    let ok = event(acme.id);
    let mut bad_action = event(acme.id);
    bad_action.action = "Identity.Member".into();
    let mut bad_ids = event(acme.id);
    bad_ids.id = "nope".into();
    bad_ids.org_id = String::new();
    bad_ids.actor_id = "x".into();
    let mut v4 = event(acme.id);
    v4.id = "6ba7b810-9dad-41d1-80b4-00c04fd430c8".into();
    let mut elsewhen = event(acme.id);
    elsewhen.occur_time = Some(foundry_platform::convert::timestamp(
        time_of(&elsewhen.id) + chrono::Duration::seconds(2),
    ));
    let mut unknown = event(acme.id);
    unknown.actor_type = 0;
    unknown.resource_type = String::new();
    unknown.service = "Identity Service".into();
    let mut long = event(acme.id);
    long.user_agent = "u".repeat(2000);
    long.client_ip = "1.2.3.4\0".into();
    long.changes = Some(json_to_struct(&serde_json::json!({"k": "nul\u{0}"})));
    long.occur_time = Some(prost_types::Timestamp {
        seconds: -100,
        nanos: 0,
    });
    let r = app
        .audit_ingest()
        .append_audit_events(authed(
            &svc,
            AppendAuditEventsRequest {
                audit_events: vec![ok, bad_action, bad_ids, v4, unknown, long, elsewhen],
            },
        ))
        .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    let fields: HashSet<String> = violated_fields(&status).into_iter().collect();
    let expected: HashSet<String> = [
        "audit_events[1].action",
        "audit_events[2].id",
        "audit_events[2].org_id",
        "audit_events[2].actor_id",
        "audit_events[3].id",
        "audit_events[4].actor_type",
        "audit_events[4].resource_type",
        "audit_events[4].service",
        "audit_events[5].user_agent",
        "audit_events[5].client_ip",
        "audit_events[5].changes",
        "audit_events[5].occur_time",
        "audit_events[6].occur_time",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(fields, expected);
    assert!(rows(&app, acme.id).await.is_empty(), "nothing of the batch");

    let too_many = (0..1001).map(|_| event(acme.id)).collect();
    let r = app
        .audit_ingest()
        .append_audit_events(authed(
            &svc,
            AppendAuditEventsRequest {
                audit_events: too_many,
            },
        ))
        .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["audit_events"]);

    let r = append(&app, &svc, vec![]).await;
    assert_eq!((r.appended, r.duplicates), (0, 0));
}

#[tokio::test]
async fn redelivered_events_are_appended_once() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let acme = org(&app);
    let a = event(acme.id);
    let b = event(acme.id);
    let r = append(&app, &svc, vec![a.clone(), b.clone(), a.clone()]).await;
    assert_eq!((r.appended, r.duplicates), (2, 1));
    let r = append(&app, &svc, vec![a.clone(), b.clone(), a.clone()]).await;
    assert_eq!((r.appended, r.duplicates), (0, 3));
    let c = event(acme.id);
    let r = append(&app, &svc, vec![b.clone(), c.clone()]).await;
    assert_eq!((r.appended, r.duplicates), (1, 1));
    let stored = rows(&app, acme.id).await;
    let ids: Vec<String> = stored.iter().map(|(_, id)| id.to_string()).collect();
    assert_eq!(ids, [a.id, b.id, c.id]);
    assert_eq!(
        stored.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(verify(&app, &acme.token, 0, 0).await.valid);
}

#[tokio::test]
async fn concurrent_overlapping_appends_never_double_append() {
    let app = TestApp::start().await;
    let (relay_a, relay_b) = (app.service_token().await, app.service_token().await);
    let (acme, globex) = (org(&app), org(&app));
    let mut expected: HashSet<Uuid> = HashSet::new();
    for round in 0..6 {
        // Two relays deliver overlapping batches spanning both
        // organizations, in opposite organization order.
        let events: Vec<AuditEvent> = (0..300)
            .map(|i| event(if i % 2 == 0 { acme.id } else { globex.id }))
            .collect();
        expected.extend(events.iter().map(|e| Uuid::parse_str(&e.id).expect("id")));
        let one: Vec<AuditEvent> = events[..200].to_vec();
        let mut two: Vec<AuditEvent> = events[100..].to_vec();
        two.reverse();
        let (r1, r2) = tokio::join!(append(&app, &relay_a, one), append(&app, &relay_b, two));
        assert_eq!(
            r1.appended + r2.appended,
            300,
            "round {round}: {r1:?} {r2:?}"
        );
        assert_eq!(r1.duplicates + r2.duplicates, 100, "round {round}");
    }
    for o in [&acme, &globex] {
        let stored = rows(&app, o.id).await;
        assert_eq!(stored.len(), 900);
        let sequences: Vec<i64> = stored.iter().map(|(s, _)| *s).collect();
        assert_eq!(sequences, (1..=900).collect::<Vec<i64>>(), "gapless");
        assert_eq!(
            stored
                .iter()
                .map(|(_, id)| *id)
                .collect::<HashSet<_>>()
                .len(),
            900
        );
        let v = verify(&app, &o.token, 0, 0).await;
        assert!(v.valid && v.events_checked == 900, "{v:?}");
    }
    let mut all = rows(&app, acme.id).await;
    all.extend(rows(&app, globex.id).await);
    assert_eq!(
        all.into_iter().map(|(_, id)| id).collect::<HashSet<_>>(),
        expected
    );
}

#[tokio::test]
async fn microsecond_times_round_trip_into_the_hash() {
    // A time with sub-microsecond digits is stored cut, and the hash is of
    // the cut time: verification recomputes it from the row.
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let acme = org(&app);
    let mut e = event(acme.id);
    let t = time_of(&e.id);
    e.occur_time = Some(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32 + 999_999,
    });
    append(&app, &svc, vec![e]).await;
    let stored: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT occurred_at FROM audit.events WHERE org_id = $1")
            .bind(acme.id)
            .fetch_one(&mut app.admin_db().await)
            .await
            .expect("row");
    assert_eq!(
        stored.timestamp_subsec_nanos(),
        t.timestamp_subsec_nanos() + 999_000
    );
    assert_eq!(stored, stored.trunc_subsecs(6));
    assert!(verify(&app, &acme.token, 0, 0).await.valid);
}

/// Issue 13, finding 9: an event says whom its actor acted for (a service
/// carrying out a user's request) beside the actor; it is chained, so
/// changing it afterwards is found, and an event without it hashes as
/// before.
#[tokio::test]
async fn whom_the_actor_acted_for_is_kept_and_chained() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let o = org(&app);
    let user = Uuid::now_v7();
    let mut e = event(o.id);
    e.actor_type = ActorType::Service as i32;
    e.on_behalf_of_type = ActorType::User as i32;
    e.on_behalf_of_id = user.to_string();
    append(&app, &svc, vec![e, event(o.id)]).await;
    let listed = list_all(&app, &o.token, ListAuditEventsRequest::default()).await;
    let acted = listed
        .iter()
        .find(|e| e.on_behalf_of_id == user.to_string())
        .expect("listed with whom it acted for");
    assert_eq!(acted.on_behalf_of_type, ActorType::User as i32);
    assert_eq!(acted.actor_type, ActorType::Service as i32);
    assert!(verify(&app, &o.token, 0, 0).await.valid);

    // Half of it, or an unknown kind, is refused.
    let mut half = event(o.id);
    half.on_behalf_of_id = user.to_string();
    let mut kind = event(o.id);
    kind.on_behalf_of_type = 99;
    kind.on_behalf_of_id = user.to_string();
    let r = app
        .audit_ingest()
        .append_audit_events(authed(
            &svc,
            AppendAuditEventsRequest {
                audit_events: vec![half, kind],
            },
        ))
        .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&status),
        [
            "audit_events[0].on_behalf_of_type",
            "audit_events[1].on_behalf_of_type"
        ]
    );

    // Changing whom it was for is found.
    tamper(
        &app,
        "UPDATE audit.events SET on_behalf_of_id = gen_random_uuid() WHERE org_id = $1 AND sequence = 1",
        o.id,
    )
    .await;
    let v = verify(&app, &o.token, 0, 0).await;
    assert_eq!(outcome(&v), (false, ChainProblem::HashMismatch, 1));
}

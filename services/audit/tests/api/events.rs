//! `AuditService` reads: tenancy, filters, time ranges, pagination.

use std::collections::HashSet;

use chrono::{Duration, Utc};
use foundry_identity::domain::Role;
use foundry_platform::convert::timestamp;
use foundry_testkit::audit::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};
use uuid::Uuid;

use super::*;

fn ids(events: &[AuditEvent]) -> Vec<String> {
    events.iter().map(|e| e.id.clone()).collect()
}

#[tokio::test]
async fn another_organizations_events_are_invisible() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let (acme, globex) = (org(&app), org(&app));
    let e = event(acme.id);
    append(&app, &svc, vec![e.clone()]).await;

    assert!(
        list_all(&app, &globex.token, ListAuditEventsRequest::default())
            .await
            .is_empty()
    );
    let r = app
        .audit()
        .get_audit_event(authed(
            &globex.token,
            GetAuditEventRequest { id: e.id.clone() },
        ))
        .await;
    assert_status(r, Code::NotFound, "AUDIT_EVENT_NOT_FOUND");
    let v = verify(&app, &globex.token, 0, 0).await;
    assert!(v.valid && v.events_checked == 0, "{v:?}");

    // The owner sees it; a malformed or unknown id is refused or not found.
    assert_eq!(
        ids(&list_all(&app, &acme.token, ListAuditEventsRequest::default()).await),
        std::slice::from_ref(&e.id)
    );
    let r = app
        .audit()
        .get_audit_event(authed(&acme.token, GetAuditEventRequest { id: "x".into() }))
        .await;
    assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    let r = app
        .audit()
        .get_audit_event(authed(
            &acme.token,
            GetAuditEventRequest {
                id: Uuid::now_v7().to_string(),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "AUDIT_EVENT_NOT_FOUND");
}

#[tokio::test]
async fn reading_the_log_takes_audit_events_read() {
    let app = TestApp::start().await;
    for role in [Role::Owner, Role::Admin] {
        let t = org_with(&app, role);
        app.audit()
            .list_audit_events(authed(&t.token, ListAuditEventsRequest::default()))
            .await
            .expect("granted");
    }
    let billing = org_with(&app, Role::Billing);
    let r = app
        .audit()
        .list_audit_events(authed(&billing.token, ListAuditEventsRequest::default()))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let r = app
        .audit()
        .verify_audit_chain(authed(&billing.token, VerifyAuditChainRequest::default()))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    // A service account acts in no organization.
    let svc = app.service_token().await;
    let r = app
        .audit()
        .list_audit_events(authed(&svc, ListAuditEventsRequest::default()))
        .await;
    assert_status(r, Code::PermissionDenied, "NO_ACTIVE_ORGANIZATION");
}

#[tokio::test]
async fn every_filter_selects_its_events() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let acme = org(&app);
    let (alice, bob) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let (apollo, gemini) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let mk = |actor: &str, action: &str, rtype: &str, rid: &str, project: &str| {
        let mut e = event(acme.id);
        e.actor_id = actor.into();
        e.action = action.into();
        e.resource_type = rtype.into();
        e.resource_id = rid.into();
        e.project_id = project.into();
        e
    };
    let events = vec![
        mk(
            &alice,
            "delivery.task.create",
            "delivery.task",
            "t1",
            &apollo,
        ),
        mk(
            &alice,
            "delivery.task.update",
            "delivery.task",
            "t1",
            &apollo,
        ),
        mk(&bob, "delivery.task.update", "delivery.task", "t2", &gemini),
        mk(
            &bob,
            "identity.membership.update",
            "identity.membership",
            "t1",
            "",
        ),
        mk(&alice, "delivery.task.delete", "delivery.task", "t2", ""),
    ];
    append(&app, &svc, events.clone()).await;
    let id = |i: usize| events[i].id.clone();
    let check = |req: ListAuditEventsRequest, want: Vec<String>| {
        let app = &app;
        let token = acme.token.clone();
        async move {
            let got = list_all(app, &token, req.clone()).await;
            assert_eq!(ids(&got), want, "{req:?}");
        }
    };
    check(
        ListAuditEventsRequest {
            actor_id: alice.clone(),
            ..Default::default()
        },
        vec![id(4), id(1), id(0)],
    )
    .await;
    check(
        ListAuditEventsRequest {
            action: "delivery.task.update".into(),
            ..Default::default()
        },
        vec![id(2), id(1)],
    )
    .await;
    check(
        ListAuditEventsRequest {
            resource_type: "delivery.task".into(),
            ..Default::default()
        },
        vec![id(4), id(2), id(1), id(0)],
    )
    .await;
    check(
        ListAuditEventsRequest {
            resource_type: "delivery.task".into(),
            resource_id: "t1".into(),
            ..Default::default()
        },
        vec![id(1), id(0)],
    )
    .await;
    check(
        ListAuditEventsRequest {
            project_id: gemini.clone(),
            ..Default::default()
        },
        vec![id(2)],
    )
    .await;
    check(
        ListAuditEventsRequest {
            actor_id: alice.clone(),
            resource_type: "delivery.task".into(),
            resource_id: "t2".into(),
            ..Default::default()
        },
        vec![id(4)],
    )
    .await;
    check(
        ListAuditEventsRequest {
            action: "identity.organization.delete".into(),
            ..Default::default()
        },
        vec![],
    )
    .await;

    let r = app
        .audit()
        .list_audit_events(authed(
            &acme.token,
            ListAuditEventsRequest {
                resource_id: "t1".into(),
                actor_id: "nope".into(),
                action: "Nope".into(),
                project_id: "x".into(),
                page_size: -1,
                ..Default::default()
            },
        ))
        .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    let fields: HashSet<String> = violated_fields(&status).into_iter().collect();
    assert_eq!(
        fields,
        ["resource_id", "actor_id", "action", "project_id"]
            .into_iter()
            .map(String::from)
            .collect()
    );

    // A page token is bound to its filters.
    let page = app
        .audit()
        .list_audit_events(authed(
            &acme.token,
            ListAuditEventsRequest {
                actor_id: alice.clone(),
                page_size: 1,
                ..Default::default()
            },
        ))
        .await
        .expect("page")
        .into_inner();
    assert!(!page.next_page_token.is_empty());
    let r = app
        .audit()
        .list_audit_events(authed(
            &acme.token,
            ListAuditEventsRequest {
                actor_id: bob.clone(),
                page_size: 1,
                page_token: page.next_page_token,
                ..Default::default()
            },
        ))
        .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["page_token"]);
}

#[tokio::test]
async fn time_ranges_select_what_occurred_in_them() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let acme = org(&app);
    let t0 = Utc::now() - Duration::hours(1);
    let at = |s: i64| t0 + Duration::seconds(s);
    let events: Vec<AuditEvent> = (0..4).map(|s| event_at(acme.id, at(s))).collect();
    // Appended out of time order: the list is by occurrence, not arrival.
    append(
        &app,
        &svc,
        vec![
            events[2].clone(),
            events[0].clone(),
            events[3].clone(),
            events[1].clone(),
        ],
    )
    .await;
    let id = |i: usize| events[i].id.clone();
    let range = |start: Option<i64>, end: Option<i64>| ListAuditEventsRequest {
        start_time: start.map(|s| timestamp(at(s))),
        end_time: end.map(|s| timestamp(at(s))),
        ..Default::default()
    };
    let cases = [
        (range(None, None), vec![id(3), id(2), id(1), id(0)]),
        (range(Some(1), Some(3)), vec![id(2), id(1)]),
        (range(Some(1), None), vec![id(3), id(2), id(1)]),
        (range(None, Some(1)), vec![id(0)]),
        (range(Some(2), Some(2)), vec![]),
        (range(Some(4), None), vec![]),
    ];
    for (req, want) in cases {
        let got = list_all(&app, &acme.token, req.clone()).await;
        assert_eq!(ids(&got), want, "{req:?}");
    }
    // With a filter too, and a millisecond inside an event's own one.
    let mut req = range(Some(1), None);
    req.action = "identity.membership.update".into();
    req.end_time = Some(timestamp(at(3) + Duration::microseconds(1)));
    let got = list_all(&app, &acme.token, req).await;
    assert_eq!(ids(&got), vec![id(3), id(2), id(1)]);

    let r = app
        .audit()
        .list_audit_events(authed(&acme.token, range(Some(3), Some(1))))
        .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["end_time"]);
}

#[tokio::test]
async fn ten_thousand_events_page_newest_first_each_exactly_once() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let acme = org(&app);
    let mut sent: Vec<Uuid> = Vec::with_capacity(10_000);
    for _ in 0..10 {
        let batch: Vec<AuditEvent> = (0..1000).map(|_| event(acme.id)).collect();
        sent.extend(batch.iter().map(|e| Uuid::parse_str(&e.id).expect("id")));
        let r = append(&app, &svc, batch).await;
        assert_eq!(r.appended, 1000);
    }
    sent.sort();
    sent.reverse();

    for page_size in [0, 777, 1000, 5000] {
        let mut got: Vec<Uuid> = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = app
                .audit()
                .list_audit_events(authed(
                    &acme.token,
                    ListAuditEventsRequest {
                        page_size,
                        page_token: token.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .expect("page")
                .into_inner();
            pages += 1;
            let expected_len = match page_size {
                0 => 50,
                n => n.min(1000) as usize,
            };
            assert!(page.audit_events.len() <= expected_len);
            got.extend(
                page.audit_events
                    .iter()
                    .map(|e| Uuid::parse_str(&e.id).expect("id")),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(got.len(), 10_000, "page_size {page_size}");
        assert_eq!(got, sent, "newest first, no overlap, no gap");
        let want_pages = 10_000usize.div_ceil(match page_size {
            0 => 50,
            n => n.min(1000) as usize,
        });
        assert_eq!(pages, want_pages, "page_size {page_size}");
    }

    // The whole chain verifies across several read chunks.
    let v = verify(&app, &acme.token, 0, 0).await;
    assert!(v.valid && v.events_checked == 10_000, "{v:?}");
}

/// Every List filter is served by an index: with 100k events over 20
/// organizations, `EXPLAIN` of each query shape `list_events` builds shows
/// no sequential scan of the events table.
#[tokio::test]
async fn every_list_filter_is_index_backed() {
    let app = TestApp::start().await;
    let mut db = app.admin_db().await;
    // Synthetic rows (plans do not care about hashes): 20 orgs × 5000.
    sqlx::query(
        "INSERT INTO audit.events (org_id, sequence, id, occurred_at, service, actor_type, actor_id, \
           action, resource_type, resource_id, project_id, request_id, trace_id, client_ip, user_agent, \
           prev_hash, hash) \
         SELECT ('00000000-0000-7000-8000-' || lpad((g % 20)::text, 12, '0'))::uuid, g / 20 + 1, \
                gen_random_uuid(), now() - (g || ' seconds')::interval, 'identity', 'user', \
                ('00000000-0000-7000-9000-' || lpad((g % 97)::text, 12, '0'))::uuid, \
                'identity.thing.v' || (g % 13), 'identity.thing', (g % 500)::text, \
                ('00000000-0000-7000-a000-' || lpad((g % 50)::text, 12, '0'))::uuid, \
                '', '', '', '', '\\x00', '\\x00' \
         FROM generate_series(0, 99999) g",
    )
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::query("ANALYZE audit.events")
        .execute(&mut db)
        .await
        .unwrap();
    let org = "'00000000-0000-7000-8000-000000000003'";
    let cols = "id, sequence, action";
    let shapes = [
        format!("SELECT {cols} FROM audit.events WHERE org_id = {org} ORDER BY id DESC LIMIT 51"),
        format!(
            "SELECT {cols} FROM audit.events WHERE org_id = {org} AND actor_id = '00000000-0000-7000-9000-000000000005' ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT {cols} FROM audit.events WHERE org_id = {org} AND action = 'identity.thing.v3' ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT {cols} FROM audit.events WHERE org_id = {org} AND resource_type = 'identity.thing' ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT {cols} FROM audit.events WHERE org_id = {org} AND resource_type = 'identity.thing' AND resource_id = '7' ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT {cols} FROM audit.events WHERE org_id = {org} AND project_id = '00000000-0000-7000-a000-000000000003' ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT {cols} FROM audit.events WHERE org_id = {org} AND id >= '01900000-0000-7000-8000-000000000000' AND id < 'ffffffff-0000-7000-8000-000000000000' ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT {cols} FROM audit.events WHERE org_id = {org} AND id < 'ffffffff-0000-7000-8000-000000000000' ORDER BY id DESC LIMIT 51"
        ),
    ];
    for sql in shapes {
        let plan: serde_json::Value = sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {sql}"))
            .fetch_one(&mut db)
            .await
            .unwrap();
        let text = plan.to_string();
        assert!(
            !text.contains("\"Seq Scan\""),
            "sequential scan for {sql}:\n{text}"
        );
        assert!(text.contains("Index"), "no index for {sql}:\n{text}");
    }
}

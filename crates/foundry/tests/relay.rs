//! The outbox relay end to end, in the suite: identity's and delivery's
//! mutations reach the audit log over gRPC with the relay's service-account
//! token; with
//! the audit service away, mutations still succeed and every event arrives,
//! once, when it is back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use foundry::AuditDelivery;
use foundry_testkit::{TestApp, audit, authed, identity as pb};

fn rename(id: &str, name: &str) -> pb::UpdateOrganizationRequest {
    pb::UpdateOrganizationRequest {
        organization: Some(pb::Organization {
            id: id.into(),
            name: name.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["name".into()],
        }),
    }
}

async fn renames(app: &TestApp, n: usize) {
    let org = app.alice.org_id.to_string();
    for i in 0..n {
        app.orgs()
            .update_organization(authed(&app.alice.token, rename(&org, &format!("n{i}"))))
            .await
            .unwrap();
    }
}

const RENAME: &str = "identity.organization.update";

fn renamed(events: &[audit::AuditEvent]) -> usize {
    events.iter().filter(|e| e.action == RENAME).count()
}

/// Alice's audit events (her organization's bootstrap and renames), all pages.
async fn alice_events(app: &TestApp) -> Vec<audit::AuditEvent> {
    alice_events_in_pages_of(app, 1000).await
}

/// [`alice_events`], read `page_size` at a time (large events: a page stays
/// under the client's 4 MiB).
async fn alice_events_in_pages_of(app: &TestApp, page_size: i32) -> Vec<audit::AuditEvent> {
    let mut out = vec![];
    let mut page_token = String::new();
    loop {
        let page = app
            .audit()
            .list_audit_events(authed(
                &app.alice.token,
                audit::ListAuditEventsRequest {
                    page_size,
                    page_token,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        out.extend(page.audit_events);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

/// `VerifyAuditChain` of the token's organization, whole.
async fn verify(app: &TestApp, token: &str) -> audit::VerifyAuditChainResponse {
    app.audit()
        .verify_audit_chain(authed(token, audit::VerifyAuditChainRequest::default()))
        .await
        .unwrap()
        .into_inner()
}

async fn wait_for(app: &TestApp, n: usize) -> Vec<audit::AuditEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = alice_events(app).await;
        if renamed(&events) >= n {
            // Settle: nothing more (no duplicates) arrives.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return alice_events(app).await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} events arrived",
            renamed(&events)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The suite's audit service, serving on `port` (where the relay points)
/// until `stop` is sent.
async fn audit_comes_up(
    app: &TestApp,
    port: u16,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let audit_svc = app.suite.audit.clone();
    let tenancy = app.suite.tenancy.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        foundry_tenancy::server::serve_services(
            listener,
            |routes| audit_svc.add_routes(routes),
            foundry_audit::SERVICE_NAMES,
            tenancy,
            async {
                let _ = stopped.await;
            },
        )
        .await
    });
    (stop, server)
}

async fn pending(app: &TestApp) -> i64 {
    let mut db = app.admin_db().await;
    sqlx::query_scalar("SELECT count(*) FROM identity.outbox")
        .fetch_one(&mut db)
        .await
        .unwrap()
}

#[tokio::test]
async fn identity_mutations_reach_the_audit_log_through_the_relay() {
    let app = TestApp::start_configured(|c| c.audit_delivery = AuditDelivery::Local).await;
    renames(&app, 3).await;
    let all = wait_for(&app, 3).await;
    let events: Vec<_> = all.iter().filter(|e| e.action == RENAME).collect();
    assert_eq!(events.len(), 3);
    assert!(
        all.iter()
            .any(|e| e.action == "identity.organization.create"),
        "bootstrap recorded too"
    );
    assert!(
        events[0]
            .changes
            .as_ref()
            .unwrap()
            .fields
            .contains_key("name")
    );
    assert_eq!(events[0].actor_id, app.alice.user_id.to_string());
    let verified = verify(&app, &app.alice.token).await;
    assert!(verified.valid, "{verified:?}");
    assert_eq!(verified.events_checked, all.len() as i64);
    assert_eq!(pending(&app).await, 0, "delivered events leave the outbox");
}

#[tokio::test]
async fn with_the_audit_service_away_mutations_succeed_and_events_arrive_once_when_it_is_back() {
    let port = foundry::tools::free_port().unwrap();
    let app = TestApp::start_configured(|c| {
        c.audit_delivery = AuditDelivery::Endpoint(format!("http://127.0.0.1:{port}"));
    })
    .await;
    renames(&app, 25).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        pending(&app).await >= 25,
        "events wait in the outbox while audit is away"
    );
    assert_eq!(renamed(&alice_events(&app).await), 0);

    // The audit service comes up where the relay points.
    let (stop, server) = audit_comes_up(&app, port).await;
    renames(&app, 5).await;
    let events = wait_for(&app, 30).await;
    assert_eq!(renamed(&events), 30, "none lost, none doubled");
    let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "each event once");
    let mut seqs: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "a gapless chain"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn delivery_mutations_reach_the_audit_log_through_its_own_relay() {
    use foundry_testkit::delivery as d;
    let app = TestApp::start_configured(|c| c.audit_delivery = AuditDelivery::Local).await;
    let program = app
        .programs()
        .create_program(authed(
            &app.alice.token,
            d::CreateProgramRequest {
                program: Some(d::Program {
                    name: "Relayed".into(),
                    slug: "relayed".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let event = loop {
        let events = alice_events(&app).await;
        if let Some(e) = events
            .into_iter()
            .find(|e| e.action == "delivery.program.create")
        {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(event.service, "delivery");
    assert_eq!(event.project_id, program.id);
    // The relay removes what audit acknowledged (just after the append).
    let mut db = app.admin_db().await;
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery.outbox")
            .fetch_one(&mut db)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivered events leave delivery's outbox"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 13, finding 1: a task whose description is 20,000 emoji (80,000
/// bytes, within its 20,000-character limit) made an event over audit's
/// 64 KiB; audit refused it, the relay parked it, and the change stayed
/// out of the audit log. Now the event carries the description's digest,
/// length and prefix, and arrives.
#[tokio::test]
async fn a_change_can_escape_the_audit_log() {
    use foundry_testkit::delivery as d;
    use sha2::{Digest, Sha256};
    let app = TestApp::start_configured(|c| c.audit_delivery = AuditDelivery::Local).await;
    let program = app
        .programs()
        .create_program(authed(
            &app.alice.token,
            d::CreateProgramRequest {
                program: Some(d::Program {
                    name: "Long".into(),
                    slug: "long".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let description = "🦀".repeat(20_000);
    let task = app
        .tasks()
        .create_task(authed(
            &app.alice.token,
            d::CreateTaskRequest {
                task: Some(d::Task {
                    program_id: program.id.clone(),
                    title: "Long description".into(),
                    description: description.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut db = app.admin_db().await;
    let event = loop {
        let events = alice_events(&app).await;
        if let Some(e) = events
            .into_iter()
            .find(|e| e.action == "delivery.task.create" && e.resource_id == task.id)
        {
            break e;
        }
        let parked: Vec<String> = sqlx::query_scalar("SELECT reason FROM delivery.outbox_parked")
            .fetch_all(&mut db)
            .await
            .unwrap();
        assert!(
            parked.is_empty(),
            "the task's event was parked, out of the audit log: {parked:?}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task's event did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let changes = foundry_platform::convert::struct_to_json(&event.changes.unwrap());
    let recorded = &changes["description"]["new"];
    let sha: String = Sha256::digest(description.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(recorded["sha256"], serde_json::json!(sha), "{recorded}");
    assert_eq!(recorded["bytes"], serde_json::json!(80_000.0));
    assert!(
        description.starts_with(recorded["prefix"].as_str().unwrap()),
        "a prefix of the description"
    );
    assert_eq!(
        changes["title"]["new"],
        serde_json::json!("Long description")
    );
    let verified = verify(&app, &app.alice.token).await;
    assert!(verified.valid, "{verified:?}");
}

/// Identity's events of the test below: `n` updates of Alice's
/// organization, each changing 30 fields of 2,000 bytes (an event of about
/// 62 KB), written straight into identity's outbox.
async fn large_events(app: &TestApp, n: usize) {
    let db = foundry_platform::db::Db::connect(&app.database_url, "identity", 2)
        .await
        .unwrap();
    let actor = foundry_outbox::Actor::system("identity");
    let org = app.alice.org_id;
    let mut tx = db.tenant(org).await.unwrap();
    for i in 0..n {
        let mut e = actor.event(RENAME, "identity.organization", org).org(org);
        for f in 0..30 {
            e = e.set(&format!("field_{f}"), format!("{i:04}{}", "x".repeat(1996)));
        }
        e.record(&mut tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Checks that the `n` events of [`large_events`] are in Alice's log, each
/// once, in the order they were made.
async fn large_events_arrived_once_in_order(app: &TestApp, n: usize) {
    // Read back in small pages (each event is about 62 KB).
    let mut large: Vec<_> = alice_events_in_pages_of(app, 20)
        .await
        .into_iter()
        .filter(|e| e.action == RENAME && e.actor_id.is_empty())
        .collect();
    assert_eq!(large.len(), n, "each event once");
    large.sort_by_key(|e| e.sequence);
    let order: Vec<String> = large
        .iter()
        .map(|e| {
            let changes = foundry_platform::convert::struct_to_json(e.changes.as_ref().unwrap());
            changes["field_0"]["new"].as_str().unwrap()[..4].to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..n).map(|i| format!("{i:04}")).collect();
    assert_eq!(order, expected, "in the order they were made");
}

/// Issue 13, finding 2: the relay sent up to 500 events per batch; above
/// tonic's 4 MiB the audit service answered `OUT_OF_RANGE`, which the relay
/// retried forever, and no later event of any tenant got through. Now
/// batches are cut by bytes: 80 events of about 62 KB each (5 MB), queued
/// while audit is away, all arrive once, in order, when it is back.
#[tokio::test]
async fn one_backlog_jams_audit_delivery_for_every_tenant() {
    let port = foundry::tools::free_port().unwrap();
    let app = TestApp::start_configured(|c| {
        c.audit_delivery = AuditDelivery::Endpoint(format!("http://127.0.0.1:{port}"));
    })
    .await;
    large_events(&app, 80).await;
    assert!(
        pending(&app).await >= 80,
        "the backlog waits while audit is away"
    );

    let (stop, server) = audit_comes_up(&app, port).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while pending(&app).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backlog did not drain: {} left",
            pending(&app).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    large_events_arrived_once_in_order(&app, 80).await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// Inserts `events` into identity's outbox as they are (no bounding: what a
/// producer of an older version, or one with a bug, could have written).
async fn raw_events(app: &TestApp, events: &[foundry_outbox::AuditEvent]) {
    let mut db = app.admin_db().await;
    let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
    let orgs: Vec<uuid::Uuid> = events.iter().map(|e| e.org_id).collect();
    let payloads: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    sqlx::query(
        "INSERT INTO identity.outbox (id, org_id, payload) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[])",
    )
    .bind(&ids)
    .bind(&orgs)
    .bind(&payloads)
    .execute(&mut db)
    .await
    .unwrap();
}

/// An update of `org`'s name by the system, as identity records one.
fn system_rename(org: uuid::Uuid, name: &str) -> foundry_outbox::AuditEvent {
    foundry_outbox::Actor::system("identity")
        .event(RENAME, "identity.organization", org)
        .org(org)
        .set("name", name)
        .build()
}

/// Issue 13, finding 1 (visibility): an event the audit service refuses
/// (here: changes of 70 KB, over its 64 KiB, as a producer that does not
/// bound its events would write) was parked in the outbox with nothing in
/// the organization's log to say a change was missing, and
/// `VerifyAuditChain` said all was well. Now its stand-in (who, what, when,
/// with the changes withheld) is in the log, and verification counts it.
#[tokio::test]
async fn a_parked_event_is_visible_in_the_log_and_to_verification() {
    let app = TestApp::start_configured(|c| c.audit_delivery = AuditDelivery::Local).await;
    let org = app.alice.org_id;
    let mut refused = system_rename(org, "refused");
    refused.changes.insert(
        "name".into(),
        serde_json::json!({ "new": "x".repeat(70_000) }),
    );
    let refused_bytes = serde_json::Value::Object(refused.changes.clone())
        .to_string()
        .len();
    raw_events(&app, std::slice::from_ref(&refused)).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let stand_in = loop {
        if let Some(e) = alice_events(&app)
            .await
            .into_iter()
            .find(|e| e.id == refused.id.to_string())
        {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing of the refused event reached the organization's log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(stand_in.action, RENAME, "who did what, when, is kept");
    assert_eq!(stand_in.resource_id, org.to_string());
    let changes = foundry_platform::convert::struct_to_json(stand_in.changes.as_ref().unwrap());
    let withheld = &changes["_withheld"];
    assert_eq!(
        changes.as_object().unwrap().len(),
        1,
        "only the withheld marker: {changes}"
    );
    assert!(
        withheld["reason"].as_str().unwrap().contains("changes"),
        "{withheld}"
    );
    assert_eq!(withheld["bytes"], serde_json::json!(refused_bytes as f64));
    assert_eq!(withheld["sha256"].as_str().unwrap().len(), 64);

    // The whole event stays in the producer's outbox, parked with the reason.
    let mut db = app.admin_db().await;
    let parked: Option<String> = sqlx::query_scalar(
        "SELECT p.reason FROM identity.outbox_parked p JOIN identity.outbox o ON o.id = p.event_id \
         WHERE p.event_id = $1 AND p.subscriber = 'audit'",
    )
    .bind(refused.id)
    .fetch_optional(&mut db)
    .await
    .unwrap();
    assert!(parked.is_some_and(|r| r.contains("changes")), "parked");

    let verified = verify(&app, &app.alice.token).await;
    assert!(verified.valid, "{verified:?}");
    assert_eq!(verified.withheld_events, 1, "{verified:?}");
    let bobs = verify(&app, &app.bob.token).await;
    assert_eq!(bobs.withheld_events, 0, "another organization's count");
}

/// Issue 13, finding 2 (fairness): the relay sent the outbox oldest first,
/// so one organization's backlog (5,000 events here) held back every event
/// another organization made after it. Now each batch takes every waiting
/// organization's oldest events in turn: Bob's rename arrives with the
/// first batch, while most of Alice's backlog still waits.
#[tokio::test]
async fn one_organizations_backlog_holds_back_another_organizations_events() {
    let port = foundry::tools::free_port().unwrap();
    let app = TestApp::start_configured(|c| {
        c.audit_delivery = AuditDelivery::Endpoint(format!("http://127.0.0.1:{port}"));
    })
    .await;
    let backlog: Vec<_> = (0..5_000)
        .map(|i| system_rename(app.alice.org_id, &format!("backlog {i}")))
        .collect();
    raw_events(&app, &backlog).await;
    let bob_org = app.bob.org_id.to_string();
    app.orgs()
        .update_organization(authed(
            &app.bob.token,
            rename(&bob_org, "after the backlog"),
        ))
        .await
        .unwrap();

    let (stop, server) = audit_comes_up(&app, port).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut db = app.admin_db().await;
    let alice_waiting = loop {
        let bobs = app
            .audit()
            .list_audit_events(authed(
                &app.bob.token,
                audit::ListAuditEventsRequest {
                    page_size: 100,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .audit_events;
        if bobs.iter().any(|e| e.action == RENAME) {
            break sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM identity.outbox WHERE org_id = $1",
            )
            .bind(app.alice.org_id)
            .fetch_one(&mut db)
            .await
            .unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Bob's event did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        alice_waiting > 2_500,
        "Bob's event waited for Alice's backlog: only {alice_waiting} of her 5,000 events were still waiting when it arrived"
    );
    // And the backlog itself all arrives.
    while pending(&app).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backlog did not drain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// Issue 13, finding 2 (split): a batch the audit service refuses as too
/// large (`OUT_OF_RANGE`: here the relay's byte budget is set above the
/// receiver's 4 MiB) was retried whole, forever. Now it is split until it
/// fits, and every event arrives once, in order.
#[tokio::test]
async fn a_batch_refused_as_too_large_is_retried_forever() {
    let port = foundry::tools::free_port().unwrap();
    let app = TestApp::start().await;
    let (stop, server) = audit_comes_up(&app, port).await;
    let sa = app
        .suite
        .identity
        .ensure_relay_account("identity")
        .await
        .unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_lazy();
    let sink = std::sync::Arc::new(foundry_outbox::GrpcSink::new(
        channel,
        app.suite.identity.service_tokens(sa),
    ));
    let db = foundry_platform::db::Db::connect(&app.database_url, "identity", 2)
        .await
        .unwrap();
    let relay = foundry_outbox::Relay::new(
        db,
        sink,
        foundry_outbox::RelayConfig {
            max_batch_bytes: 64 * 1024 * 1024,
            ..Default::default()
        },
    );
    large_events(&app, 80).await;
    let delivered = tokio::time::timeout(Duration::from_secs(60), relay.drain())
        .await
        .expect("the relay drains")
        .expect("every batch is delivered");
    assert!(delivered >= 80, "{delivered}");
    assert_eq!(pending(&app).await, 0);
    large_events_arrived_once_in_order(&app, 80).await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

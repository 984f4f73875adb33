//! The transactional outbox as identity uses it: a mutation and its audit
//! event commit or roll back together, and the relay delivers every event
//! once it can, never twice from two relays at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundry_outbox::{DeliveryError, Relay, RelayConfig, Sink};
use foundry_platform::db::Db;
use foundry_proto::foundry::audit::v1 as audit;
use foundry_proto::foundry::identity::v1 as pb;
use foundry_testkit::{TestApp, authed};
use serde_json::Value;

async fn outbox_rows(app: &TestApp) -> Vec<Value> {
    let mut db = app.admin_db().await;
    sqlx::query_scalar("SELECT payload FROM identity.outbox WHERE kind = 'audit' ORDER BY id")
        .fetch_all(&mut db)
        .await
        .unwrap()
}

fn rename(id: &str, name: &str, etag: &str) -> pb::UpdateOrganizationRequest {
    pb::UpdateOrganizationRequest {
        organization: Some(pb::Organization {
            id: id.into(),
            name: name.into(),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["name".into()],
        }),
    }
}

#[tokio::test]
async fn a_mutation_writes_its_event_in_the_same_transaction() {
    let app = TestApp::start().await;
    let before = outbox_rows(&app).await.len();
    let org = app.alice.org_id.to_string();
    let mut req = authed(&app.alice.token, rename(&org, "Renamed", ""));
    let request_id = uuid::Uuid::now_v7().to_string();
    req.metadata_mut()
        .insert("x-request-id", request_id.parse().unwrap());
    req.metadata_mut().insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    req.metadata_mut()
        .insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
    app.orgs().update_organization(req).await.unwrap();

    let rows = outbox_rows(&app).await;
    assert_eq!(rows.len(), before + 1);
    let e = rows.last().unwrap();
    assert_eq!(e["action"], "identity.organization.update");
    assert_eq!(e["resource_type"], "identity.organization");
    assert_eq!(e["resource_id"], org);
    assert_eq!(e["org_id"], org);
    assert_eq!(e["service"], "identity");
    assert_eq!(e["actor_type"], "user");
    assert_eq!(e["actor_id"], app.alice.user_id.to_string());
    assert_eq!(e["changes"]["name"]["new"], "Renamed");
    assert_eq!(e["changes"]["name"]["old"], "alice's organization");
    assert!(
        e["changes"].get("slug").is_none(),
        "unchanged fields are not changes"
    );
    assert_eq!(e["request_id"], request_id);
    assert_eq!(e["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    // No proxy is trusted by default: the header is the client's own word.
    assert_eq!(e["client_ip"], "127.0.0.1");

    // A refused mutation writes no event.
    let r = app
        .orgs()
        .update_organization(authed(&app.alice.token, rename(&org, "Again", "999")))
        .await;
    assert_eq!(r.unwrap_err().code(), tonic::Code::Aborted);
    assert_eq!(outbox_rows(&app).await.len(), before + 1);
}

/// The `client_ip` of a rename sent from this test (127.0.0.1) with
/// `X-Forwarded-For: 203.0.113.7, 10.0.0.1`, to an app trusting `hops`
/// proxies.
async fn client_ip_behind(hops: u8) -> Value {
    let app = TestApp::start_configured(|c| c.trusted_proxy_hops = hops).await;
    let org = app.alice.org_id.to_string();
    let mut req = authed(&app.alice.token, rename(&org, "Renamed", ""));
    req.metadata_mut()
        .insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
    app.orgs().update_organization(req).await.unwrap();
    let rows = outbox_rows(&app).await;
    rows.last().unwrap()["client_ip"].clone()
}

/// A client that writes `X-Forwarded-For` itself does not choose the
/// address its events record: the header is read only through the proxies
/// the server is told to trust, each of which appends the address it saw.
#[tokio::test]
async fn client_ip_trusts_x_forwarded_for_only_through_the_configured_proxy_hops() {
    assert_eq!(client_ip_behind(0).await, "127.0.0.1", "no proxy: the peer");
    assert_eq!(
        client_ip_behind(1).await,
        "10.0.0.1",
        "one proxy: what it appended"
    );
    assert_eq!(
        client_ip_behind(2).await,
        "203.0.113.7",
        "two proxies: what the outer one appended"
    );
}

#[tokio::test]
async fn a_mutation_whose_event_cannot_be_written_is_rolled_back() {
    let app = TestApp::start().await;
    let org = app.alice.org_id.to_string();
    let mut admin = app.admin_db().await;
    sqlx::query("REVOKE INSERT ON identity.outbox FROM foundry_identity")
        .execute(&mut admin)
        .await
        .unwrap();
    let r = app
        .orgs()
        .update_organization(authed(&app.alice.token, rename(&org, "Lost", "")))
        .await;
    sqlx::query("GRANT INSERT ON identity.outbox TO foundry_identity")
        .execute(&mut admin)
        .await
        .unwrap();
    let status = r.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert!(
        !status.message().contains("outbox"),
        "no SQL on the wire: {status:?}"
    );
    let name: String = sqlx::query_scalar("SELECT name FROM identity.organizations WHERE id = $1")
        .bind(app.alice.org_id)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        name, "alice's organization",
        "the change rolled back with its event"
    );
}

/// Records what it receives; fails the first `fail` deliveries, refuses
/// (as invalid) any batch holding the event `poison`, and fails any batch
/// holding an event of the organization `failing`.
#[derive(Default)]
struct Recorder {
    got: Mutex<HashMap<String, usize>>,
    fail: Mutex<usize>,
    calls: Mutex<usize>,
    delay: Duration,
    poison: Option<String>,
    failing: Option<String>,
    /// `(org_id, id)` of each delivered event, in the order they arrived.
    order: Mutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl Sink for Recorder {
    async fn deliver(&self, events: Vec<audit::AuditEvent>) -> Result<(), DeliveryError> {
        *self.calls.lock().unwrap() += 1;
        tokio::time::sleep(self.delay).await;
        {
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(anyhow::anyhow!("audit service unavailable").into());
            }
        }
        if events.iter().any(|e| Some(&e.id) == self.poison.as_ref()) {
            return Err(DeliveryError::Refused("audit_events[0].action: bad".into()));
        }
        if events
            .iter()
            .any(|e| Some(&e.org_id) == self.failing.as_ref())
        {
            return Err(anyhow::anyhow!("this organization's chain is busy").into());
        }
        let mut got = self.got.lock().unwrap();
        let mut order = self.order.lock().unwrap();
        for e in events {
            order.push((e.org_id.clone(), e.id.clone()));
            *got.entry(e.id).or_default() += 1;
        }
        Ok(())
    }
}

async fn identity_db(app: &TestApp) -> Db {
    Db::connect(&app.database_url, "identity", 4).await.unwrap()
}

async fn make_events(app: &TestApp, n: usize) {
    make_events_of(app, &app.alice, n).await;
}

/// `n` renames of `member`'s organization.
async fn make_events_of(app: &TestApp, member: &foundry_testkit::Member, n: usize) {
    let mut etag = String::new();
    let org = member.org_id.to_string();
    for i in 0..n {
        let out = app
            .orgs()
            .update_organization(authed(
                &member.token,
                rename(&org, &format!("name {i}"), &etag),
            ))
            .await
            .unwrap()
            .into_inner();
        etag = out.etag;
    }
}

fn quick() -> RelayConfig {
    RelayConfig {
        batch: 7,
        max_batch_bytes: RelayConfig::default().max_batch_bytes,
        idle_poll: Duration::from_millis(50),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        flush_deadline: Duration::from_secs(2),
    }
}

#[tokio::test]
async fn the_relay_retries_while_the_audit_service_is_down_and_loses_nothing() {
    let app = TestApp::start().await;
    make_events(&app, 20).await;
    let expected: Vec<String> = outbox_rows(&app)
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let sink = Arc::new(Recorder {
        fail: Mutex::new(5),
        ..Default::default()
    });
    let relay = Arc::new(Relay::new(identity_db(&app).await, sink.clone(), quick()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(relay.clone().run(async {
        let _ = stopped.await;
    }));
    // New events made while the relay runs arrive too (woken by NOTIFY).
    make_events(&app, 5).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while relay.pending().await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay did not drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    running.await.unwrap();
    let got = sink.got.lock().unwrap().clone();
    assert_eq!(got.len(), expected.len() + 5, "every event delivered");
    assert!(
        expected.iter().all(|id| got.get(id) == Some(&1)),
        "each exactly once"
    );
    assert!(
        *sink.calls.lock().unwrap() > 5,
        "it retried through the failures"
    );
}

/// Events of 20 organizations (5 each, in the order of `i`), written
/// straight into the outbox.
async fn events_of_many_organizations(app: &TestApp) {
    let mut admin = app.admin_db().await;
    for i in 0..5 {
        for _ in 0..20 {
            let org = uuid::Uuid::now_v7();
            let e = foundry_outbox::Actor::system("identity")
                .event("identity.organization.update", "identity.organization", org)
                .org(org)
                .set("name", format!("{i}"))
                .build();
            sqlx::query("INSERT INTO identity.outbox (id, org_id, payload) VALUES ($1, $2, $3)")
                .bind(e.id)
                .bind(e.org_id)
                .bind(serde_json::to_value(&e).unwrap())
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn two_relays_at_once_never_deliver_an_event_twice_nor_out_of_order() {
    let app = TestApp::start().await;
    make_events(&app, 30).await;
    events_of_many_organizations(&app).await;
    let rows = outbox_rows(&app).await;
    let total = rows.len();
    // The relay settles every envelope, delivering the audit events and
    // passing over the rest (the domain events of the organizations made).
    let mut db = app.admin_db().await;
    let envelopes: i64 = sqlx::query_scalar("SELECT count(*) FROM identity.outbox")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let sink = Arc::new(Recorder {
        delay: Duration::from_millis(5),
        ..Default::default()
    });
    let a = Relay::new(identity_db(&app).await, sink.clone(), quick());
    let b = Relay::new(identity_db(&app).await, sink.clone(), quick());
    let (x, y) = tokio::join!(a.drain(), b.drain());
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x + y, envelopes as usize);
    assert!(x > 0 && y > 0, "both relays took a share: {x} + {y}");
    let got = sink.got.lock().unwrap().clone();
    assert_eq!(got.len(), total);
    assert!(got.values().all(|&n| n == 1), "no event delivered twice");
    // Each organization's events arrived in the order they were made.
    let arrived = sink.order.lock().unwrap().clone();
    let mut by_org: HashMap<String, Vec<String>> = HashMap::new();
    for (org, id) in arrived {
        by_org.entry(org).or_default().push(id);
    }
    for (org, ids) in by_org {
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "{org}'s events in the order they were made");
    }
    assert_eq!(a.pending().await.unwrap(), 0);
}

fn actions(rows: &[Value]) -> Vec<&str> {
    rows.iter().map(|e| e["action"].as_str().unwrap()).collect()
}

/// An API key of alice's organization, made and revoked.
async fn revoked_api_key(app: &TestApp) -> pb::ApiKey {
    let made = pb::CreateApiKeyRequest {
        api_key: Some(pb::ApiKey {
            kind: pb::ApiKeyKind::ApiKey as i32,
            display_name: "revoked".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let key = app
        .api_keys()
        .create_api_key(authed(&app.alice.token, made))
        .await
        .unwrap()
        .into_inner();
    let revoke = pb::RevokeApiKeyRequest {
        id: key.id.clone(),
        etag: String::new(),
    };
    app.api_keys()
        .revoke_api_key(authed(&app.alice.token, revoke))
        .await
        .unwrap();
    key
}

/// A revoked key presented in a loop writes one security event per
/// credential per window, not one per attempt: the log cannot be flooded
/// with a real but dead credential.
#[tokio::test]
async fn refused_exchanges_of_one_credential_write_a_bounded_number_of_events() {
    use pb::exchange_token_request::Grant;
    let app = TestApp::start().await;
    let key = revoked_api_key(&app).await;
    for _ in 0..25 {
        let refused = app
            .auth()
            .exchange_token(pb::ExchangeTokenRequest {
                grant: Some(Grant::ApiKey(key.secret.clone())),
                org_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    }
    let refusals = outbox_rows(&app)
        .await
        .into_iter()
        .filter(|e| e["action"] == "identity.api_key.exchange_refused")
        .count();
    assert_eq!(refusals, 1, "25 refused exchanges of one key");
}

#[tokio::test]
async fn credential_lifecycle_and_refused_exchanges_are_recorded() {
    use pb::exchange_token_request::Grant;
    let app = TestApp::start().await;
    let baseline = outbox_rows(&app).await.len();
    let key = revoked_api_key(&app).await;
    let r = app
        .auth()
        .exchange_token(pb::ExchangeTokenRequest {
            grant: Some(Grant::ApiKey(key.secret.clone())),
            org_id: String::new(),
        })
        .await;
    assert_eq!(r.unwrap_err().code(), tonic::Code::Unauthenticated);
    // Garbage credentials are refused without an event (no log flooding).
    let r = app
        .auth()
        .exchange_token(pb::ExchangeTokenRequest {
            grant: Some(Grant::ApiKey("fnd_key_garbage".into())),
            org_id: String::new(),
        })
        .await;
    assert_eq!(r.unwrap_err().code(), tonic::Code::Unauthenticated);

    // A real session asking for an organization it is not in.
    let refresh = app
        .suite
        .identity
        .start_session(app.alice.user_id)
        .await
        .unwrap();
    let r = app
        .auth()
        .exchange_token(pb::ExchangeTokenRequest {
            grant: Some(Grant::RefreshToken(refresh)),
            org_id: app.bob.org_id.to_string(),
        })
        .await;
    assert_eq!(r.unwrap_err().code(), tonic::Code::PermissionDenied);

    let rows = outbox_rows(&app).await.split_off(baseline);
    assert_eq!(
        actions(&rows),
        vec![
            "identity.api_key.create",
            "identity.api_key.revoke",
            "identity.api_key.exchange_refused",
            "identity.session.create",
            "identity.token.exchange_refused",
        ]
    );
    assert!(
        !rows[0]
            .to_string()
            .contains(&key.secret[key.prefix.len()..]),
        "no secret in the log"
    );
    assert_eq!(rows[2]["org_id"], app.alice.org_id.to_string());
    assert_eq!(rows[2]["actor_type"], "api_key");
    assert_eq!(rows[2]["changes"]["reason"]["new"], "revoked");
    assert_eq!(rows[4]["org_id"], foundry_outbox::PLATFORM_ORG.to_string());
    assert_eq!(rows[4]["actor_id"], app.alice.user_id.to_string());
    assert_eq!(
        rows[4]["changes"]["org_id"]["new"],
        app.bob.org_id.to_string()
    );
}

/// Issue 13, finding 2 (isolation): a batch that failed was retried whole,
/// so an organization whose events the audit service could not take held
/// back every other organization's. Now that organization is held back on
/// its own backoff and the others' events flow.
#[tokio::test]
async fn one_organization_whose_events_fail_blocks_every_other() {
    let app = TestApp::start().await;
    make_events_of(&app, &app.alice, 6).await;
    make_events_of(&app, &app.bob, 6).await;
    let rows = outbox_rows(&app).await;
    let alice = app.alice.org_id.to_string();
    let sink = Arc::new(Recorder {
        failing: Some(alice.clone()),
        ..Default::default()
    });
    let relay = Relay::new(identity_db(&app).await, sink.clone(), quick());
    // Alice's events fail: the round delivers everyone else's.
    relay.drain().await.unwrap();
    let got = sink.got.lock().unwrap().clone();
    let others: Vec<&str> = rows
        .iter()
        .filter(|e| e["org_id"] != alice.as_str())
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert!(others.len() >= 6, "Bob's renames and the bootstrap events");
    assert!(
        others.iter().all(|id| got.get(*id) == Some(&1)),
        "every other organization's event went, once"
    );
    // Alice's envelopes wait from her first (failing) audit event on: her
    // audit events and the domain events behind them (her membership's).
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM identity.outbox WHERE org_id = $1 AND seq >= \
           (SELECT min(seq) FROM identity.outbox WHERE org_id = $1 AND kind = 'audit')",
    )
    .bind(app.alice.org_id)
    .fetch_one(&mut app.admin_db().await)
    .await
    .unwrap();
    assert!(waiting > rows.len() as i64 - others.len() as i64);
    assert_eq!(
        relay.pending().await.unwrap(),
        waiting,
        "Alice's events wait"
    );
    // Alice's failing events never delay Bob's next ones.
    make_events_of(&app, &app.bob, 2).await;
    relay.drain().await.unwrap();
    assert_eq!(sink.got.lock().unwrap().len(), others.len() + 2);
}

/// The parked-events counter (`foundry.outbox.parked`) as an OTLP or
/// Prometheus exporter would read it.
fn parked_metric(exporter: &opentelemetry_sdk::metrics::InMemoryMetricExporter) -> u64 {
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    let mut total = 0;
    for rm in exporter.get_finished_metrics().unwrap() {
        for sm in rm.scope_metrics() {
            for m in sm.metrics().filter(|m| m.name() == "foundry.outbox.parked") {
                if let AggregatedMetrics::U64(MetricData::Sum(sum)) = m.data() {
                    total = sum.data_points().map(|p| p.value()).sum();
                }
            }
        }
    }
    total
}

#[tokio::test]
async fn an_event_the_audit_service_refuses_is_parked_and_the_rest_flow() {
    let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
    let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(opentelemetry_sdk::metrics::PeriodicReader::builder(exporter.clone()).build())
        .build();
    opentelemetry::global::set_meter_provider(meters.clone());
    let app = TestApp::start().await;
    make_events(&app, 10).await;
    let rows = outbox_rows(&app).await;
    let poison = rows[3]["id"].as_str().unwrap().to_owned();
    let sink = Arc::new(Recorder {
        poison: Some(poison.clone()),
        ..Default::default()
    });
    let relay = Relay::new(identity_db(&app).await, sink.clone(), quick());
    relay.drain().await.unwrap();
    assert_eq!(
        relay.pending().await.unwrap(),
        0,
        "nothing blocks behind the bad event"
    );
    let got = sink.got.lock().unwrap().clone();
    assert_eq!(got.len(), rows.len() - 1);
    assert!(!got.contains_key(&poison));
    let mut db = app.admin_db().await;
    let parked: (String, String) = sqlx::query_as(
        "SELECT p.event_id::text, p.reason FROM identity.outbox_parked p \
         JOIN identity.outbox o ON o.id = p.event_id WHERE p.subscriber = 'audit'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(parked.0, poison);
    assert!(parked.1.contains("action"), "{parked:?}");
    meters.force_flush().unwrap();
    assert_eq!(parked_metric(&exporter), 1, "the parked event is counted");
}

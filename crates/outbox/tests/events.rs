//! Events between services: typed envelopes in each organization's commit
//! order, a cursor per subscriber, an event kept until every subscriber
//! has it. On the real embedded PostgreSQL, in delivery's schema as its
//! role.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use foundry_outbox::relay::Envelope;
use foundry_outbox::{
    DeliveryError, DomainEvent, Relay, RelayConfig, Subscriber, UsageRecord, inbox,
};
use foundry_platform::db::Db;
use uuid::Uuid;

async fn db() -> (Db, String) {
    let url = foundry_testkit::fresh_database().await;
    let db = Db::connect(&url, "delivery", 8).await.expect("pool");
    (db, url)
}

fn quick() -> RelayConfig {
    RelayConfig {
        batch: 7,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..RelayConfig::default()
    }
}

/// A subscriber that keeps what it receives, in order; it can be down.
struct Collect {
    name: &'static str,
    kind: &'static str,
    got: Mutex<Vec<Envelope>>,
    down: AtomicBool,
    refuse_type: Option<&'static str>,
}

impl Collect {
    fn new(name: &'static str, kind: &'static str) -> Arc<Collect> {
        Arc::new(Collect {
            name,
            kind,
            got: Mutex::default(),
            down: AtomicBool::new(false),
            refuse_type: None,
        })
    }

    fn ids(&self) -> Vec<Uuid> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .map(|e| e.id)
            .collect()
    }

    /// What it received, per organization, in order.
    fn by_org(&self) -> HashMap<Uuid, Vec<Uuid>> {
        let mut out: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for e in self.got.lock().expect("lock").iter() {
            out.entry(e.org_id).or_default().push(e.id);
        }
        out
    }
}

#[async_trait]
impl Subscriber for Collect {
    fn name(&self) -> &str {
        self.name
    }

    fn takes(&self, e: &Envelope) -> bool {
        e.kind == self.kind
    }

    async fn deliver(&self, events: &[&Envelope]) -> Result<(), DeliveryError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(DeliveryError::Unavailable(anyhow::anyhow!(
                "{} is down",
                self.name
            )));
        }
        if let Some(t) = self.refuse_type
            && events.iter().any(|e| e.r#type.as_deref() == Some(t))
        {
            return Err(DeliveryError::Refused(format!("{t} is not mine")));
        }
        self.got
            .lock()
            .expect("lock")
            .extend(events.iter().map(|e| (*e).clone()));
        Ok(())
    }
}

fn relay(db: &Db, s: &Arc<Collect>, all: &[&str]) -> Relay {
    Relay::subscriber(
        db.clone(),
        s.clone(),
        all.iter().map(|s| s.to_string()).collect(),
        quick(),
    )
}

fn event(org: Uuid, n: usize) -> DomainEvent {
    DomainEvent::new(
        org,
        ("delivery.requirement.deleted", 1),
        ("delivery.requirement", format!("r{n}")),
        serde_json::json!({ "n": n }),
    )
}

async fn outbox_ids(url: &str) -> Vec<Uuid> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .expect("connect");
    sqlx::query_scalar("SELECT id FROM delivery.outbox ORDER BY org_id, seq")
        .fetch_all(&mut conn)
        .await
        .expect("outbox")
}

#[tokio::test]
async fn events_arrive_in_commit_order_not_in_the_order_of_their_ids() {
    let (db, _) = db().await;
    let org = Uuid::now_v7();
    // Both ids are minted first; the later one commits first.
    let (first, second) = (event(org, 1), event(org, 2));
    assert!(first.id < second.id);
    let mut t1 = db.tenant(org).await.expect("tx");
    let mut t2 = db.tenant(org).await.expect("tx");
    second.clone().record(&mut t2).await.expect("record");
    t2.commit().await.expect("commit");
    first.clone().record(&mut t1).await.expect("record");
    t1.commit().await.expect("commit");

    // A transaction that records while another holds its organization's
    // place commits after it, and its event comes after.
    let (third, fourth) = (event(org, 3), event(org, 4));
    let mut t3 = db.tenant(org).await.expect("tx");
    third.clone().record(&mut t3).await.expect("record");
    let waiting = tokio::spawn({
        let (db, fourth) = (db.clone(), fourth.clone());
        async move {
            let mut t4 = db.tenant(org).await.expect("tx");
            fourth.record(&mut t4).await.expect("record");
            t4.commit().await.expect("commit");
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the fourth event did not wait for the third's commit"
    );
    t3.commit().await.expect("commit");
    waiting.await.expect("join");

    let s = Collect::new("knowledge", "domain");
    relay(&db, &s, &["knowledge"]).drain().await.expect("drain");
    assert_eq!(s.ids(), [second.id, first.id, third.id, fourth.id]);
    let seqs: Vec<i64> = s.got.lock().expect("lock").iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let e = &s.got.lock().expect("lock")[0];
    assert_eq!(
        (e.kind.as_str(), e.r#type.as_deref(), e.version),
        ("domain", Some("delivery.requirement.deleted"), 1)
    );
    assert_eq!(e.payload["data"]["n"], 2);
}

#[tokio::test]
async fn three_subscribers_one_down_for_a_while_each_receive_every_event_once_in_order() {
    let (db, url) = db().await;
    let orgs = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let mut made: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut usage = Vec::new();
    // 60 events over 3 organizations, several per transaction, and a
    // usage record beside each tenth (for billing only).
    for n in 0..60 {
        let org = orgs[n % 3];
        let mut tx = db.tenant(org).await.expect("tx");
        let e = event(org, n).record(&mut tx).await.expect("record");
        made.entry(org).or_default().push(e.id);
        if n % 10 == 0 {
            let u = UsageRecord::new(org, "delivery.agent_minutes", 3)
                .record(&mut tx)
                .await
                .expect("usage");
            usage.push(u.id);
        }
        tx.commit().await.expect("commit");
    }
    let all = ["knowledge", "integrations", "billing"];
    let (knowledge, integrations) = (
        Collect::new("knowledge", "domain"),
        Collect::new("integrations", "domain"),
    );
    let billing = Collect::new("billing", "usage");
    integrations.down.store(true, Ordering::SeqCst);
    let relays = [
        relay(&db, &knowledge, &all),
        relay(&db, &integrations, &all),
        relay(&db, &billing, &all),
    ];
    relays[0].drain().await.expect("knowledge drains");
    assert!(relays[1].drain().await.is_err(), "integrations is down");
    relays[2].drain().await.expect("billing drains");
    assert_eq!(
        knowledge.by_org(),
        made,
        "every event once, in order, per organization"
    );
    assert_eq!(billing.ids().len(), usage.len());
    assert!(integrations.ids().is_empty());
    // What integrations has not received stays; nothing of it is lost.
    assert_eq!(outbox_ids(&url).await.len(), 60 + usage.len());
    assert_eq!(relays[1].pending().await.expect("pending"), 66);
    assert_eq!(relays[0].pending().await.expect("pending"), 0);

    // More events while it is down, then it comes back.
    let late = orgs[1];
    let mut tx = db.tenant(late).await.expect("tx");
    let e = event(late, 99).record(&mut tx).await.expect("record");
    tx.commit().await.expect("commit");
    made.entry(late).or_default().push(e.id);
    integrations.down.store(false, Ordering::SeqCst);
    for r in &relays {
        r.drain().await.expect("drain");
    }
    for s in [&knowledge, &integrations] {
        assert_eq!(s.by_org(), made, "{}: every event once, in order", s.name);
    }
    assert_eq!(billing.ids(), usage);
    assert!(
        outbox_ids(&url).await.is_empty(),
        "every subscriber has every event"
    );
}

/// A subscriber that applies each event once, in its own schema's inbox.
struct Applying {
    db: Db,
    applied: Mutex<Vec<Uuid>>,
}

#[async_trait]
impl Subscriber for Applying {
    fn name(&self) -> &str {
        "knowledge"
    }

    fn takes(&self, e: &Envelope) -> bool {
        e.kind == "domain"
    }

    async fn deliver(&self, events: &[&Envelope]) -> Result<(), DeliveryError> {
        let mut tx = self
            .db
            .system()
            .await
            .map_err(|e| DeliveryError::Retry(e.into()))?;
        let mut fresh = vec![];
        for e in events {
            if inbox::first_time(&mut tx, "knowledge", e.id)
                .await
                .map_err(|e| DeliveryError::Retry(e.into()))?
            {
                fresh.push(e.id);
            }
        }
        tx.commit()
            .await
            .map_err(|e| DeliveryError::Retry(e.into()))?;
        self.applied.lock().expect("lock").extend(fresh);
        Ok(())
    }
}

#[tokio::test]
async fn a_redelivered_event_is_applied_once() {
    let (db, url) = db().await;
    let org = Uuid::now_v7();
    let mut tx = db.tenant(org).await.expect("tx");
    for n in 0..3 {
        event(org, n).record(&mut tx).await.expect("record");
    }
    // A second subscriber keeps the events in the outbox.
    tx.commit().await.expect("commit");
    let receiver = Db::connect(&url, "identity", 2).await.expect("pool");
    let applying = Arc::new(Applying {
        db: receiver,
        applied: Mutex::default(),
    });
    let all = vec!["knowledge".to_string(), "billing".to_string()];
    let r = Relay::subscriber(db.clone(), applying.clone(), all, quick());
    assert_eq!(r.drain().await.expect("drain"), 3);
    // Its cursor is lost (a restore): everything comes again.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    sqlx::query("DELETE FROM delivery.outbox_cursors WHERE subscriber = 'knowledge'")
        .execute(&mut conn)
        .await
        .expect("reset");
    assert_eq!(r.drain().await.expect("drain"), 3);
    assert_eq!(
        applying.applied.lock().expect("lock").len(),
        3,
        "applied once each"
    );
}

#[tokio::test]
async fn an_event_one_subscriber_refuses_is_parked_for_it_alone_and_kept() {
    let (db, url) = db().await;
    let org = Uuid::now_v7();
    let mut tx = db.tenant(org).await.expect("tx");
    let bad = DomainEvent::new(
        org,
        ("delivery.task.exploded", 1),
        ("delivery.task", "t1".into()),
        serde_json::json!({}),
    )
    .record(&mut tx)
    .await
    .expect("record");
    let good = event(org, 1).record(&mut tx).await.expect("record");
    tx.commit().await.expect("commit");
    let picky = Arc::new(Collect {
        refuse_type: Some("delivery.task.exploded"),
        ..Arc::try_unwrap(Collect::new("knowledge", "domain"))
            .ok()
            .expect("one owner")
    });
    let other = Collect::new("integrations", "domain");
    let all = ["knowledge", "integrations"];
    relay(&db, &picky, &all).drain().await.expect("drain");
    relay(&db, &other, &all).drain().await.expect("drain");
    assert_eq!(
        picky.ids(),
        [good.id],
        "the rest flows past the refused event"
    );
    assert_eq!(other.ids(), [bad.id, good.id]);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    let parked: Vec<(String, Uuid, String)> =
        sqlx::query_as("SELECT subscriber, event_id, reason FROM delivery.outbox_parked")
            .fetch_all(&mut conn)
            .await
            .expect("parked");
    assert_eq!(
        parked,
        [(
            "knowledge".to_string(),
            bad.id,
            "delivery.task.exploded is not mine".to_string()
        )]
    );
    assert_eq!(
        outbox_ids(&url).await,
        [bad.id],
        "kept for repair; the rest is gone"
    );
}

#[tokio::test]
async fn a_tenant_records_events_for_itself_only() {
    let (db, _) = db().await;
    let (mine, theirs) = (Uuid::now_v7(), Uuid::now_v7());
    let mut tx = db.tenant(mine).await.expect("tx");
    let refused = event(theirs, 1).record(&mut tx).await;
    assert!(
        refused.is_err(),
        "recorded an event for another organization"
    );
}

//! The relay: ships a service's outbox to one subscriber.
//!
//! A schema's outbox holds typed envelopes (audit events, domain events,
//! usage records), each numbered in its organization's commit order
//! (`seq`, see `foundry_platform::db::OUTBOX_DDL`). Each subscriber of the
//! schema (the audit service, and the services that react to this one's
//! events: `crate::subscriptions`) has its own relay and its own cursor per
//! organization: it takes the events past its cursor in `seq` order,
//! delivers those of the types it takes, and moves its cursor past them
//! (and past the ones it does not take) in the same transaction. An event
//! leaves the outbox once every subscriber of the schema is past it, so a
//! subscriber that is down or slow holds back nobody else, not even the
//! audit service. Delivery is at least once; receivers de-duplicate by
//! event id (the audit service does; others through `crate::inbox`).
//!
//! No organization holds up another's events: a batch takes each waiting
//! organization's oldest events in turn (so one organization's backlog does
//! not delay another's new event), an organization whose events fail is
//! held back on its own backoff while the others flow, and a batch refused
//! as too large is split. Within an organization events arrive in commit
//! order: replicas take turns per subscriber and organization (a
//! transaction lock each), each moving on to organizations the others are
//! not sending, and a batch holds a prefix of each organization's events.
//!
//! An event a subscriber refuses as invalid (a producer bug) is parked for
//! that subscriber (`outbox_parked`, with the reason), logged as an error
//! and counted (`foundry.outbox.parked`), and kept in the outbox for
//! repair. For the audit service a stand-in takes its place in the
//! organization's log: the same event (who, what, when, which resource)
//! whose changes are only [`WITHHELD`](crate::bound::WITHHELD) with the
//! reason and the refused changes' size and digest, so the change cannot
//! vanish from the log unnoticed and `VerifyAuditChain` counts it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use foundry_platform::db::Db;
use foundry_proto::foundry::audit::v1::{
    self as pb, audit_ingest_service_client::AuditIngestServiceClient,
};
use tokio::sync::Mutex;
use tonic::transport::Channel;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use uuid::Uuid;

use crate::event::AuditEvent;

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The audit service refused the batch as invalid: retrying the same
    /// batch cannot help. The relay isolates and parks the bad events.
    #[error("refused: {0}")]
    Refused(String),
    /// The batch is larger than the audit service takes in one message:
    /// the relay splits it.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The audit service is away (unreachable, no token, timed out): every
    /// organization waits, with backoff.
    #[error("unavailable: {0}")]
    Unavailable(anyhow::Error),
    /// The batch failed otherwise: its organizations are retried with
    /// backoff, each on its own, while the others' events flow.
    #[error(transparent)]
    Retry(#[from] anyhow::Error),
}

/// Where the relay delivers.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Delivers a batch; `Ok` means every event is durably in the log.
    async fn deliver(&self, events: Vec<pb::AuditEvent>) -> Result<(), DeliveryError>;
    /// See [`Subscriber::prepare`].
    async fn prepare(&self) {}
}

/// An event as the outbox holds it: a typed envelope.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Envelope {
    /// Its id (minted when it was made).
    pub id: Uuid,
    /// Its organization.
    pub org_id: Uuid,
    /// Its place in its organization's commit order.
    pub seq: i64,
    /// `audit`, `domain` or `usage` (`crate::envelope`).
    pub kind: String,
    /// Its type (an audit event's action; a domain event's or usage
    /// record's name).
    pub r#type: Option<String>,
    /// The version of its type's schema.
    pub version: i32,
    /// The event.
    pub payload: serde_json::Value,
    /// The W3C `traceparent` of the call that wrote it, if it was traced:
    /// the span delivering it links to that trace.
    pub traceparent: Option<String>,
}

/// Who takes a schema's events: the audit service, or another service
/// reacting to this one's.
#[async_trait]
pub trait Subscriber: Send + Sync + 'static {
    /// Its name: its cursors' key, one per schema.
    fn name(&self) -> &str;
    /// Whether it takes `e` (the others are passed over).
    fn takes(&self, e: &Envelope) -> bool;
    /// `e`'s size on the wire, for the batch's byte budget.
    fn size(&self, e: &Envelope) -> usize {
        e.payload.to_string().len()
    }
    /// Delivers a batch, in order; `Ok` means every event is durably
    /// received.
    async fn deliver(&self, events: &[&Envelope]) -> Result<(), DeliveryError>;
    /// What takes the place of `e` once refused as invalid (`None`:
    /// nothing).
    fn stand_in(&self, e: &Envelope, why: &str) -> Option<Envelope> {
        let _ = (e, why);
        None
    }
    /// Takes, before a round's transaction, what delivering needs and may
    /// itself take a connection of the outbox's pool: the relay's token,
    /// which identity mints in process from its database. A round holds a
    /// connection while it delivers; taking the token inside it could wait
    /// for a second one of a small pool, which the relay's own listener
    /// and the others' rounds may hold. A failure here is the delivery's
    /// to report.
    async fn prepare(&self) {}
}

/// The audit service as a subscriber: it takes the audit events, over a
/// [`Sink`].
pub struct AuditSubscriber {
    sink: Arc<dyn Sink>,
}

/// The audit service's subscriber name.
pub const AUDIT: &str = "audit";

impl AuditSubscriber {
    /// Delivering to `sink`.
    pub fn new(sink: Arc<dyn Sink>) -> AuditSubscriber {
        AuditSubscriber { sink }
    }

    fn event(e: &Envelope) -> Result<AuditEvent, DeliveryError> {
        serde_json::from_value(e.payload.clone())
            .map_err(|err| DeliveryError::Refused(format!("not an audit event: {err}")))
    }
}

#[async_trait]
impl Subscriber for AuditSubscriber {
    fn name(&self) -> &str {
        AUDIT
    }

    fn takes(&self, e: &Envelope) -> bool {
        e.kind == crate::envelope::AUDIT
    }

    fn size(&self, e: &Envelope) -> usize {
        Self::event(e).map_or(0, |a| prost::Message::encoded_len(&a.to_proto()))
    }

    async fn deliver(&self, events: &[&Envelope]) -> Result<(), DeliveryError> {
        let wire = events
            .iter()
            .map(|e| Self::event(e).map(|a| a.to_proto()))
            .collect::<Result<Vec<_>, _>>()?;
        self.sink.deliver(wire).await
    }

    async fn prepare(&self) {
        self.sink.prepare().await;
    }

    fn stand_in(&self, e: &Envelope, why: &str) -> Option<Envelope> {
        let mut event = Self::event(e).ok()?;
        event.changes = crate::bound::withheld(&event.changes, why);
        Some(Envelope {
            payload: serde_json::to_value(&event).ok()?,
            ..e.clone()
        })
    }
}

/// A bearer token for the relay's calls (a service account's).
#[async_trait]
pub trait TokenSource: Send + Sync + 'static {
    /// A currently valid access token.
    async fn token(&self) -> anyhow::Result<String>;
}

/// Delivers over gRPC to `AuditIngestService`, authenticated as a service
/// account.
pub struct GrpcSink {
    client: AuditIngestServiceClient<Channel>,
    tokens: Arc<dyn TokenSource>,
}

impl GrpcSink {
    /// A sink over `channel` (lazy: the audit service may not be up yet).
    pub fn new(channel: Channel, tokens: Arc<dyn TokenSource>) -> GrpcSink {
        GrpcSink {
            client: AuditIngestServiceClient::new(channel),
            tokens,
        }
    }
}

#[async_trait]
impl Sink for GrpcSink {
    async fn deliver(&self, events: Vec<pb::AuditEvent>) -> Result<(), DeliveryError> {
        let message = pb::AppendAuditEventsRequest {
            audit_events: events,
        };
        let mut client = self.client.clone();
        send(&*self.tokens, message, |req| async move {
            client.append_audit_events(req).await
        })
        .await
    }

    async fn prepare(&self) {
        // Cached; a failure comes again, and is reported, on delivery.
        let _ = self.tokens.token().await;
    }
}

/// Delivers `message` with `call`: a request with the relay's current
/// token from `tokens`, the delivery span's trace (continued by the
/// receiver) and a 10 s timeout; a refusal as what it means to the relay.
pub(crate) async fn send<M, R, F, Fut>(
    tokens: &dyn TokenSource,
    message: M,
    call: F,
) -> Result<(), DeliveryError>
where
    F: FnOnce(tonic::Request<M>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
{
    let token = tokens.token().await.map_err(DeliveryError::Unavailable)?;
    let mut req = tonic::Request::new(message);
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|e| DeliveryError::Retry(anyhow::anyhow!("token header: {e}")))?;
    req.metadata_mut().insert("authorization", bearer);
    // The delivery span's trace continues in the receiving service.
    foundry_platform::telemetry::inject_current_metadata(req.metadata_mut());
    req.set_timeout(Duration::from_secs(10));
    match call(req).await {
        Ok(_) => Ok(()),
        Err(s) => Err(match s.code() {
            tonic::Code::InvalidArgument => DeliveryError::Refused(s.message().to_owned()),
            // What tonic answers a message over its decoding limit.
            tonic::Code::OutOfRange => DeliveryError::TooLarge(s.message().to_owned()),
            tonic::Code::Unavailable
            | tonic::Code::Unauthenticated
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled => DeliveryError::Unavailable(s.into()),
            _ => DeliveryError::Retry(s.into()),
        }),
    }
}

/// Relay settings.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Events per delivery, at most.
    pub batch: i64,
    /// Bytes per delivery (the events encoded), at most: below what the
    /// audit service decodes in one message (tonic's 4 MiB), so that a
    /// backlog of large events is delivered in several batches instead of
    /// one the receiver refuses again and again. A single event larger
    /// than this still goes alone.
    pub max_batch_bytes: usize,
    /// Poll interval when no notification arrives (a safety net).
    pub idle_poll: Duration,
    /// First retry delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// How long shutdown keeps flushing.
    pub flush_deadline: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch: 500,
            max_batch_bytes: 3 * 1024 * 1024,
            idle_poll: Duration::from_secs(2),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            flush_deadline: Duration::from_secs(5),
        }
    }
}

/// What waits for a subscriber ([`Relay::backlog`]).
#[derive(Clone, Copy, Debug, PartialEq, sqlx::FromRow)]
pub struct Backlog {
    /// Events past its cursors, parked ones not counted.
    pub depth: i64,
    /// How long the oldest of them has waited, in seconds (0: none).
    pub lag_seconds: f64,
    /// Events parked for it.
    pub parked: i64,
}

/// How often a running relay records its backlog (after a round).
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// One subscriber's relay over a service's outbox.
pub struct Relay {
    db: Db,
    subscriber: Arc<dyn Subscriber>,
    // Every subscriber of the schema: an event leaves once all are past it.
    all: Vec<String>,
    cfg: RelayConfig,
    // One drain at a time per process; other replicas take other
    // organizations (transaction locks).
    running: Mutex<()>,
    // Organizations whose last delivery failed, until when.
    held: std::sync::Mutex<HashMap<Uuid, Hold>>,
}

/// An organization held back after a failed delivery.
#[derive(Clone, Copy, Debug)]
struct Hold {
    until: Instant,
    backoff: Duration,
}

/// Where the subscriber named by parameter `$n` stands in the
/// organization `org` (an SQL expression): its cursor, 0 before its first
/// event.
fn cursor_of(org: &str, n: u8) -> String {
    format!(
        "coalesce((SELECT c.seq FROM outbox_cursors c \
         WHERE c.subscriber = ${n} AND c.org_id = {org}), 0)"
    )
}

/// Not parked for the subscriber named by parameter `$n`.
fn not_parked(n: u8) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM outbox_parked p \
         WHERE p.subscriber = ${n} AND p.event_id = outbox.id)"
    )
}

/// Each waiting organization's oldest events past the subscriber's cursor
/// (`$3`), `$2` at most per organization, the organizations in `$1` only,
/// in commit order.
fn oldest_of_each() -> String {
    format!(
        "SELECT e.* FROM unnest($1::uuid[]) AS o(org_id) \
         CROSS JOIN LATERAL (SELECT id, org_id, seq, kind, type, version, payload, traceparent FROM outbox \
           WHERE org_id = o.org_id AND seq > {} AND {} ORDER BY seq LIMIT $2) e \
         ORDER BY e.org_id, e.seq",
        cursor_of("o.org_id", 3),
        not_parked(3)
    )
}

/// The organizations with events past the subscriber's (`$3`) cursor,
/// those waiting longest first, at most `$1`, none of `$2`, each locked for
/// this transaction (an advisory lock per schema, subscriber and
/// organization, so replicas take turns per organization and each moves
/// on to the ones the others are not sending). The walk of the
/// `(org_id, seq)` index takes one step per organization; the lock is
/// tried in order, above the sorted subquery (`OFFSET 0` keeps the planner
/// from pushing the condition into it, which would lock every waiting
/// organization), until `$1` are held.
fn waiting_orgs() -> String {
    format!(
        "WITH RECURSIVE orgs(org_id) AS ( \
           (SELECT org_id FROM outbox WHERE org_id <> ALL($2) ORDER BY org_id LIMIT 1) \
           UNION ALL \
           SELECT (SELECT o.org_id FROM outbox o WHERE o.org_id > orgs.org_id \
                     AND o.org_id <> ALL($2) ORDER BY o.org_id LIMIT 1) \
           FROM orgs WHERE orgs.org_id IS NOT NULL) \
         SELECT waiting.org_id FROM ( \
           SELECT orgs.org_id, m.oldest FROM orgs \
           CROSS JOIN LATERAL (SELECT id AS oldest FROM outbox \
                               WHERE org_id = orgs.org_id AND seq > {} AND {} \
                               ORDER BY seq LIMIT 1) m \
           WHERE orgs.org_id IS NOT NULL ORDER BY m.oldest OFFSET 0) waiting \
         WHERE pg_try_advisory_xact_lock(hashtextextended( \
           'foundry_outbox:' || current_schema() || ':' || $3 || ':' || waiting.org_id::text, 0)) \
         LIMIT $1",
        cursor_of("orgs.org_id", 3),
        not_parked(3)
    )
}

/// One event of a batch.
struct Claimed {
    env: Envelope,
    /// The subscriber takes it (otherwise it is only passed over).
    take: bool,
}

/// What a round did.
enum Round {
    /// Nothing to claim (or only held organizations' events).
    Empty,
    /// This many events delivered, parked or passed over.
    Settled(usize),
    /// Every organization of the batch failed (each is now held back).
    Failed(anyhow::Error),
}

/// What became of a batch.
#[derive(Default)]
struct Outcome {
    delivered: Vec<Uuid>,
    parked: Vec<(Uuid, String)>,
    /// Organizations whose delivery failed (retry later, on their own).
    failed: Vec<Uuid>,
    /// The subscriber is away.
    unavailable: Option<anyhow::Error>,
}

impl Relay {
    /// The audit service's relay over `db`'s outbox, beside the schema's
    /// other subscribers (`crate::subscriptions`): an event leaves once
    /// every one of them is past it.
    pub fn new(db: Db, sink: Arc<dyn Sink>, cfg: RelayConfig) -> Relay {
        let mut all = crate::subscriptions::subscribers_of(db.schema());
        if !all.iter().any(|s| s == AUDIT) {
            all.push(AUDIT.to_string());
        }
        Relay::subscriber(db, Arc::new(AuditSubscriber::new(sink)), all, cfg)
    }

    /// `subscriber`'s relay over `db`'s outbox, whose subscribers are
    /// `all` (it among them).
    pub fn subscriber(
        db: Db,
        subscriber: Arc<dyn Subscriber>,
        all: Vec<String>,
        cfg: RelayConfig,
    ) -> Relay {
        debug_assert!(all.iter().any(|a| a == subscriber.name()));
        Relay {
            db,
            subscriber,
            all,
            cfg,
            running: Mutex::new(()),
            held: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Organizations still held back (expired holds are forgotten when
    /// the organization next succeeds).
    fn held_orgs(&self) -> Vec<Uuid> {
        let now = Instant::now();
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.iter()
            .filter(|(_, h)| h.until > now)
            .map(|(org, _)| *org)
            .collect()
    }

    /// Holds `org` back, for twice as long as last time (up to the
    /// longest backoff).
    fn hold(&self, org: Uuid) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let backoff = held.get(&org).map_or(self.cfg.min_backoff, |h| {
            (h.backoff * 2).min(self.cfg.max_backoff)
        });
        held.insert(
            org,
            Hold {
                until: Instant::now() + backoff,
                backoff,
            },
        );
    }

    fn release(&self, orgs: impl IntoIterator<Item = Uuid>) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for org in orgs {
            held.remove(&org);
        }
    }

    /// Claims the next batch: each waiting organization's oldest events in
    /// turn (round robin), up to `batch` events and `max_batch_bytes` of
    /// those the subscriber takes, skipping held organizations and those
    /// another replica is sending. The organizations stay locked until `tx`
    /// ends.
    async fn claim(
        &self,
        tx: &mut foundry_platform::db::Tx,
        skip: &[Uuid],
    ) -> anyhow::Result<Vec<Claimed>> {
        let mut held = self.held_orgs();
        held.extend_from_slice(skip);
        let name = self.subscriber.name();
        let orgs: Vec<Uuid> = sqlx::query_scalar(&waiting_orgs())
            .bind(self.cfg.batch)
            .bind(&held)
            .bind(name)
            .fetch_all(&mut **tx)
            .await?;
        if orgs.is_empty() {
            return Ok(vec![]);
        }
        let per_org = (self.cfg.batch / orgs.len() as i64).max(1);
        let rows: Vec<Envelope> = sqlx::query_as(&oldest_of_each())
            .bind(&orgs)
            .bind(per_org)
            .bind(name)
            .fetch_all(&mut **tx)
            .await?;
        let mut queues: Vec<std::vec::IntoIter<Envelope>> = orgs
            .iter()
            .map(|org| {
                rows.iter()
                    .filter(|r| r.org_id == *org)
                    .cloned()
                    .collect::<Vec<_>>()
                    .into_iter()
            })
            .collect();
        // Round robin over the organizations, within the byte budget.
        let mut out = Vec::new();
        let mut bytes = 0;
        'fill: loop {
            let mut took = false;
            for q in &mut queues {
                let Some(env) = q.next() else { continue };
                let take = self.subscriber.takes(&env);
                if take {
                    let size = self.subscriber.size(&env) + 8;
                    if out.iter().any(|c: &Claimed| c.take)
                        && bytes + size > self.cfg.max_batch_bytes
                    {
                        break 'fill;
                    }
                    bytes += size;
                }
                out.push(Claimed { env, take });
                took = true;
            }
            if !took {
                break;
            }
        }
        Ok(out)
    }

    /// Claims, delivers and settles one batch (the subscriber's cursors
    /// move past what went, and what every subscriber is past leaves the
    /// outbox), none of `failed`'s organizations (to which it adds those
    /// that fail now). `Err` when the subscriber is away (or the database
    /// fails).
    async fn round(&self, failed: &mut Vec<Uuid>) -> anyhow::Result<Round> {
        let _one = self.running.lock().await;
        self.subscriber.prepare().await;
        let mut tx = self.db.system().await?;
        let batch = self.claim(&mut tx, failed).await?;
        if batch.is_empty() {
            tx.commit().await?;
            return Ok(Round::Empty);
        }
        let orgs: Vec<Uuid> = {
            let mut o: Vec<Uuid> = batch.iter().map(|c| c.env.org_id).collect();
            o.sort_unstable();
            o.dedup();
            o
        };
        let taken: Vec<&Envelope> = batch.iter().filter(|c| c.take).map(|c| &c.env).collect();
        let mut outcome = Outcome::default();
        if !taken.is_empty() {
            let span = self.delivery_span(&taken);
            let delivered = self.subscriber.deliver(&taken).instrument(span).await;
            match delivered {
                Ok(()) => outcome.delivered = taken.iter().map(|e| e.id).collect(),
                Err(DeliveryError::Unavailable(e)) => return Err(e),
                Err(_) => {
                    // Each organization on its own, in order: one's failure
                    // leaves the others' deliveries standing.
                    for org in &orgs {
                        let mine: Vec<&Envelope> =
                            taken.iter().copied().filter(|e| e.org_id == *org).collect();
                        if outcome.unavailable.is_none() {
                            self.deliver_in_order(&mine, &mut outcome).await;
                        }
                    }
                }
            }
        }
        for org in &outcome.failed {
            self.hold(*org);
        }
        failed.extend_from_slice(&outcome.failed);
        self.release(orgs.iter().copied().filter(|o| !outcome.failed.contains(o)));
        let name = self.subscriber.name();
        for (id, why) in &outcome.parked {
            let org = batch.iter().find(|c| c.env.id == *id).map(|c| c.env.org_id);
            sqlx::query(
                "INSERT INTO outbox_parked (subscriber, event_id, org_id, reason) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(name)
            .bind(id)
            .bind(org)
            .bind(why)
            .execute(&mut *tx)
            .await?;
        }
        // Each organization's cursor moves past its settled prefix: what
        // went, what was parked, what the subscriber does not take.
        let mut settled = 0;
        for org in &orgs {
            let mut last = None;
            for c in batch.iter().filter(|c| c.env.org_id == *org) {
                let done = !c.take
                    || outcome.delivered.contains(&c.env.id)
                    || outcome.parked.iter().any(|(id, _)| *id == c.env.id);
                if !done {
                    break;
                }
                last = Some(c.env.seq);
                settled += 1;
            }
            if let Some(seq) = last {
                sqlx::query(
                    "INSERT INTO outbox_cursors (subscriber, org_id, seq) VALUES ($1, $2, $3) \
                     ON CONFLICT (subscriber, org_id) DO UPDATE \
                     SET seq = GREATEST(outbox_cursors.seq, EXCLUDED.seq)",
                )
                .bind(name)
                .bind(org)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
        }
        self.prune(&mut tx, &orgs).await?;
        tx.commit().await?;
        match outcome.unavailable {
            Some(e) if settled == 0 => Err(e),
            _ if settled == 0 => Ok(Round::Failed(anyhow::anyhow!(
                "every organization's events of the batch failed; they are held back"
            ))),
            _ => Ok(Round::Settled(settled)),
        }
    }

    /// The span of a batch's delivery: a trace of its own (the relay works
    /// for no one call), linked to the trace of each call that wrote one of
    /// its events, so a mutation's trace leads to its delivery and back.
    fn delivery_span(&self, events: &[&Envelope]) -> tracing::Span {
        let span = tracing::info_span!(
            parent: None,
            "outbox.deliver",
            otel.kind = "producer",
            schema = self.db.schema(),
            subscriber = self.subscriber.name(),
            events = events.len(),
        );
        let mut linked = std::collections::HashSet::new();
        for tp in events.iter().filter_map(|e| e.traceparent.as_deref()) {
            // The SDK keeps 128 links a span.
            if linked.len() == 128 {
                break;
            }
            if linked.insert(tp)
                && let Some(cx) = foundry_platform::telemetry::span_context_of(tp)
            {
                span.add_link(cx);
            }
        }
        span
    }

    /// Removes `orgs`' events every subscriber of the schema is past
    /// (parked ones stay, for repair).
    async fn prune(&self, tx: &mut foundry_platform::db::Tx, orgs: &[Uuid]) -> anyhow::Result<()> {
        sqlx::query(
            "DELETE FROM outbox o WHERE o.org_id = ANY($1) \
             AND o.seq <= (SELECT min(coalesce(c.seq, 0)) FROM unnest($2::text[]) AS s(name) \
                           LEFT JOIN outbox_cursors c \
                             ON c.subscriber = s.name AND c.org_id = o.org_id) \
             AND NOT EXISTS (SELECT 1 FROM outbox_parked p WHERE p.event_id = o.id)",
        )
        .bind(orgs)
        .bind(&self.all)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Delivers one organization's events in order: a batch refused as too
    /// large in halves, a batch refused as invalid one event at a time
    /// (parking the invalid ones, with a stand-in where the subscriber has
    /// one). Stops at the first event that cannot go now, so none
    /// overtakes it.
    async fn deliver_in_order(&self, events: &[&Envelope], out: &mut Outcome) -> bool {
        let Some(first) = events.first() else {
            return true;
        };
        match self.subscriber.deliver(events).await {
            Ok(()) => {
                out.delivered.extend(events.iter().map(|e| e.id));
                true
            }
            Err(DeliveryError::TooLarge(_) | DeliveryError::Refused(_)) if events.len() > 1 => {
                let (a, b) = events.split_at(events.len() / 2);
                Box::pin(self.deliver_in_order(a, out)).await
                    && Box::pin(self.deliver_in_order(b, out)).await
            }
            Err(DeliveryError::TooLarge(why) | DeliveryError::Refused(why)) => {
                self.park(first, why, out).await
            }
            Err(DeliveryError::Unavailable(e)) => {
                out.unavailable = Some(e);
                false
            }
            Err(DeliveryError::Retry(e)) => {
                tracing::warn!(org_id = %first.org_id, error = %e, schema = self.db.schema(), subscriber = self.subscriber.name(), "outbox relay: an organization's events failed; holding it back");
                out.failed.push(first.org_id);
                false
            }
        }
    }

    /// Parks an event the subscriber refused and delivers its stand-in, if
    /// it has one. If the stand-in cannot go now, the event stays for a
    /// later round.
    async fn park(&self, e: &Envelope, why: String, out: &mut Outcome) -> bool {
        let result = match self.subscriber.stand_in(e, &why) {
            Some(stand_in) => self.subscriber.deliver(&[&stand_in]).await.map(|()| true),
            None => Ok(false),
        };
        match result {
            Ok(_) | Err(DeliveryError::Refused(_) | DeliveryError::TooLarge(_)) => {
                let logged = matches!(result, Ok(true));
                tracing::error!(
                    event_id = %e.id,
                    org_id = %e.org_id,
                    r#type = e.r#type.as_deref().unwrap_or_default(),
                    reason = %why,
                    stand_in_delivered = logged,
                    schema = self.db.schema(),
                    subscriber = self.subscriber.name(),
                    "a subscriber refused an event; parked in the outbox"
                );
                opentelemetry::global::meter("foundry-outbox")
                    .u64_counter("foundry.outbox.parked")
                    .with_description("Events a subscriber refused, parked in the outbox")
                    .build()
                    .add(
                        1,
                        &[
                            opentelemetry::KeyValue::new("schema", self.db.schema().to_owned()),
                            opentelemetry::KeyValue::new(
                                "subscriber",
                                self.subscriber.name().to_owned(),
                            ),
                        ],
                    );
                out.parked.push((e.id, why));
                true
            }
            Err(DeliveryError::Unavailable(err)) => {
                out.unavailable = Some(err);
                false
            }
            Err(DeliveryError::Retry(_)) => {
                out.failed.push(e.org_id);
                false
            }
        }
    }

    /// Delivers until nothing is left that may go now (held organizations
    /// wait for their backoff); the number delivered, parked or passed
    /// over. `Err` if the subscriber is away, or if nothing went and some
    /// organization's events failed.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        let mut error = None;
        // Organizations that failed in this drain wait for the next one.
        let mut failed = Vec::new();
        loop {
            match self.round(&mut failed).await? {
                Round::Empty => {
                    return match error {
                        Some(e) if total == 0 => Err(e),
                        _ => Ok(total),
                    };
                }
                Round::Settled(n) => total += n,
                Round::Failed(e) => error = Some(e),
            }
        }
    }

    /// Events past the subscriber's cursors (not counting those parked for
    /// it), whether it takes them or not.
    pub async fn pending(&self) -> anyhow::Result<i64> {
        Ok(self.backlog().await?.depth)
    }

    /// What waits for the subscriber, in one statement.
    pub async fn backlog(&self) -> anyhow::Result<Backlog> {
        let mut tx = self.db.system().await?;
        let backlog = sqlx::query_as(&format!(
            "SELECT count(*) AS depth, \
                    coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS lag_seconds, \
                    (SELECT count(*) FROM outbox_parked WHERE subscriber = $1) AS parked \
             FROM outbox WHERE seq > {} AND {}",
            cursor_of("outbox.org_id", 1),
            not_parked(1),
        ))
        .bind(self.subscriber.name())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(backlog)
    }

    /// Records the backlog as gauges by schema and subscriber:
    /// `foundry.outbox.depth`, `foundry.outbox.lag` (seconds) and
    /// `foundry.outbox.parked_events`.
    async fn record_backlog(&self) {
        let b = match self.backlog().await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "outbox relay: backlog not read");
                return;
            }
        };
        let labels = [
            opentelemetry::KeyValue::new("schema", self.db.schema()),
            opentelemetry::KeyValue::new("subscriber", self.subscriber.name().to_owned()),
        ];
        let meter = opentelemetry::global::meter("foundry-outbox");
        meter
            .i64_gauge("foundry.outbox.depth")
            .with_description("Events waiting for a subscriber (parked ones not counted)")
            .build()
            .record(b.depth, &labels);
        meter
            .f64_gauge("foundry.outbox.lag")
            .with_unit("s")
            .with_description("How long the oldest event waiting for a subscriber has waited")
            .build()
            .record(b.lag_seconds, &labels);
        meter
            .i64_gauge("foundry.outbox.parked_events")
            .with_description("Events a subscriber refused, kept in the outbox for repair")
            .build()
            .record(b.parked, &labels);
    }

    /// Runs until `shutdown`: wakes on the outbox's notifications (or the
    /// idle poll), delivers, backs off while the audit service is away.
    /// On shutdown it keeps flushing for up to `flush_deadline`.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()> + Send) {
        let channel = format!("outbox_{}", self.db.schema());
        let mut listener = foundry_platform::db::listen(&self.db, &channel, "outbox relay").await;
        tokio::pin!(shutdown);
        let mut backoff = self.cfg.min_backoff;
        let mut recorded: Option<Instant> = None;
        loop {
            let drained = self.drain().await;
            if recorded.is_none_or(|at| at.elapsed() >= BACKLOG_EVERY) {
                self.record_backlog().await;
                recorded = Some(Instant::now());
            }
            let wait = match drained {
                Ok(_) => {
                    backoff = self.cfg.min_backoff;
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, schema = self.db.schema(), "outbox relay: delivery failed");
                    let w = backoff;
                    backoff = (backoff * 2).min(self.cfg.max_backoff);
                    Some(w)
                }
            };
            let woke = async {
                match wait {
                    Some(w) => tokio::time::sleep(w).await,
                    None => {
                        let poll = self.cfg.idle_poll;
                        foundry_platform::db::notified_or(listener.as_mut(), poll).await;
                    }
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = woke => {}
            }
        }
        let flush = tokio::time::timeout(self.cfg.flush_deadline, self.drain()).await;
        match flush {
            Ok(Ok(n)) => tracing::info!(
                delivered = n,
                schema = self.db.schema(),
                "outbox relay flushed on shutdown"
            ),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "outbox relay: flush on shutdown failed; events stay in the outbox")
            }
            Err(_) => {
                tracing::warn!("outbox relay: flush deadline passed; the rest stays in the outbox")
            }
        }
    }
}

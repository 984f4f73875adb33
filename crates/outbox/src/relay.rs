//! The relay: ships a service's outbox to the audit service.
//!
//! Each round claims a batch with `FOR UPDATE SKIP LOCKED` (replicas share
//! the work without waiting on each other), sends it, and deletes what the
//! audit service acknowledged, in the same transaction that claimed it.
//! Delivery is at least once; the audit service de-duplicates by event id.
//!
//! No organization holds up another's events: a batch takes each waiting
//! organization's oldest events in turn (so one organization's backlog does
//! not delay another's new event), an organization whose events fail is
//! held back on its own backoff while the others flow, and a batch refused
//! as too large is split. Within an organization events arrive in the order
//! they were made: replicas take turns per organization (a transaction
//! lock each), each moving on to organizations the others are not sending,
//! and a batch holds a prefix of each organization's events.
//!
//! An event the audit service refuses as invalid (a producer bug) is parked
//! in the outbox with the reason, logged as an error and counted
//! (`foundry.outbox.parked`); in its place the organization's log receives
//! a stand-in: the same event (who, what, when, which resource) whose
//! changes are only [`WITHHELD`](crate::bound::WITHHELD) with the reason and
//! the refused changes' size and digest, so the change cannot vanish from
//! the log unnoticed and `VerifyAuditChain` counts it.

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
        let token = self
            .tokens
            .token()
            .await
            .map_err(DeliveryError::Unavailable)?;
        let mut req = tonic::Request::new(pb::AppendAuditEventsRequest {
            audit_events: events,
        });
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|e| DeliveryError::Retry(anyhow::anyhow!("token header: {e}")))?;
        req.metadata_mut().insert("authorization", bearer);
        req.set_timeout(Duration::from_secs(10));
        match self.client.clone().append_audit_events(req).await {
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

/// One service's relay.
pub struct Relay {
    db: Db,
    sink: Arc<dyn Sink>,
    cfg: RelayConfig,
    // One drain at a time per process; other replicas use SKIP LOCKED.
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

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    payload: sqlx::types::Json<AuditEvent>,
}

/// Each waiting organization's oldest events, `$2` at most per
/// organization, the organizations in `$1` (ids) only.
const OLDEST_OF_EACH: &str = "SELECT o.org_id, e.id FROM unnest($1::uuid[]) AS o(org_id) \
     CROSS JOIN LATERAL (SELECT id FROM outbox WHERE org_id = o.org_id AND parked_at IS NULL \
                         ORDER BY id LIMIT $2) e";

/// The organizations with waiting events, those with the oldest first, at
/// most `$1`, none of `$2`, each locked for this transaction (an advisory
/// lock per schema and organization, so replicas take turns per
/// organization and each moves on to the ones the others are not
/// sending). The walk of the `(org_id, id)` index takes one step per
/// organization; the lock is tried in order, above the sorted subquery
/// (`OFFSET 0` keeps the planner from pushing the condition into it,
/// which would lock every waiting organization), until `$1` are held.
const WAITING_ORGS: &str = "WITH RECURSIVE orgs(org_id) AS ( \
       (SELECT org_id FROM outbox WHERE parked_at IS NULL AND org_id <> ALL($2) \
        ORDER BY org_id LIMIT 1) \
       UNION ALL \
       SELECT (SELECT o.org_id FROM outbox o WHERE o.parked_at IS NULL \
                 AND o.org_id > orgs.org_id AND o.org_id <> ALL($2) \
               ORDER BY o.org_id LIMIT 1) \
       FROM orgs WHERE orgs.org_id IS NOT NULL) \
     SELECT waiting.org_id FROM ( \
       SELECT orgs.org_id, m.oldest FROM orgs \
       CROSS JOIN LATERAL (SELECT id AS oldest FROM outbox \
                           WHERE org_id = orgs.org_id AND parked_at IS NULL \
                           ORDER BY id LIMIT 1) m \
       WHERE orgs.org_id IS NOT NULL ORDER BY m.oldest OFFSET 0) waiting \
     WHERE pg_try_advisory_xact_lock( \
       hashtextextended('foundry_outbox:' || current_schema() || ':' || waiting.org_id::text, 0)) \
     LIMIT $1";

/// One event of a claimed batch.
struct Claimed {
    id: Uuid,
    event: AuditEvent,
    wire: pb::AuditEvent,
}

/// What a round did.
enum Round {
    /// Nothing to claim (or only held organizations' events).
    Empty,
    /// This many events delivered or parked.
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
    /// The audit service is away.
    unavailable: Option<anyhow::Error>,
}

impl Relay {
    /// A relay over `db`'s outbox.
    pub fn new(db: Db, sink: Arc<dyn Sink>, cfg: RelayConfig) -> Relay {
        Relay {
            db,
            sink,
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
    /// turn (round robin), up to `batch` events and `max_batch_bytes`,
    /// skipping held organizations and those whose oldest event another
    /// replica holds. Rows stay locked until `tx` ends.
    async fn claim(
        &self,
        tx: &mut foundry_platform::db::Tx,
        skip: &[Uuid],
    ) -> anyhow::Result<Vec<Claimed>> {
        let mut held = self.held_orgs();
        held.extend_from_slice(skip);
        let orgs: Vec<Uuid> = sqlx::query_scalar(WAITING_ORGS)
            .bind(self.cfg.batch)
            .bind(&held)
            .fetch_all(&mut **tx)
            .await?;
        if orgs.is_empty() {
            return Ok(vec![]);
        }
        let per_org = (self.cfg.batch / orgs.len() as i64).max(1);
        let candidates: Vec<(Uuid, Uuid)> = sqlx::query_as(OLDEST_OF_EACH)
            .bind(&orgs)
            .bind(per_org)
            .fetch_all(&mut **tx)
            .await?;
        let ids: Vec<Uuid> = candidates.iter().map(|(_, id)| *id).collect();
        let locked: Vec<Row> = sqlx::query_as(
            "SELECT id, payload FROM outbox WHERE id = ANY($1) AND parked_at IS NULL \
             ORDER BY id FOR UPDATE SKIP LOCKED",
        )
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        // Per organization, its oldest events up to the first one another
        // holds (a relay of a version without the organization locks): a
        // prefix, so that none overtakes an older one.
        let mut locked: HashMap<Uuid, Row> = locked.into_iter().map(|r| (r.id, r)).collect();
        let mut queues: Vec<std::vec::IntoIter<Row>> = Vec::with_capacity(orgs.len());
        for org in &orgs {
            let mut oldest: Vec<Uuid> = candidates
                .iter()
                .filter(|(o, _)| o == org)
                .map(|(_, id)| *id)
                .collect();
            oldest.sort_unstable();
            let prefix: Vec<Row> = oldest.iter().map_while(|id| locked.remove(id)).collect();
            queues.push(prefix.into_iter());
        }
        // Round robin over the organizations, within the byte budget.
        let mut out = Vec::new();
        let mut bytes = 0;
        'fill: loop {
            let mut took = false;
            for q in &mut queues {
                let Some(row) = q.next() else { continue };
                let wire = row.payload.0.to_proto();
                let size = prost::Message::encoded_len(&wire) + 8;
                if !out.is_empty() && bytes + size > self.cfg.max_batch_bytes {
                    break 'fill;
                }
                bytes += size;
                out.push(Claimed {
                    id: row.id,
                    event: row.payload.0,
                    wire,
                });
                took = true;
            }
            if !took {
                break;
            }
        }
        Ok(out)
    }

    /// Claims, delivers and deletes one batch, none of `failed`'s
    /// organizations (to which it adds those that fail now). `Err` when
    /// the audit service is away (or the database fails).
    async fn round(&self, failed: &mut Vec<Uuid>) -> anyhow::Result<Round> {
        let _one = self.running.lock().await;
        let mut tx = self.db.system().await?;
        let batch = self.claim(&mut tx, failed).await?;
        if batch.is_empty() {
            tx.commit().await?;
            return Ok(Round::Empty);
        }
        let orgs: Vec<Uuid> = {
            let mut o: Vec<Uuid> = batch.iter().map(|c| c.event.org_id).collect();
            o.sort_unstable();
            o.dedup();
            o
        };
        let mut outcome = Outcome::default();
        match self
            .sink
            .deliver(batch.iter().map(|c| c.wire.clone()).collect())
            .await
        {
            Ok(()) => outcome.delivered = batch.iter().map(|c| c.id).collect(),
            Err(DeliveryError::Unavailable(e)) => return Err(e),
            Err(_) => {
                // Each organization on its own, in order: one's failure
                // leaves the others' deliveries standing.
                for org in &orgs {
                    let mine: Vec<&Claimed> =
                        batch.iter().filter(|c| c.event.org_id == *org).collect();
                    if outcome.unavailable.is_none() {
                        self.deliver_in_order(&mine, &mut outcome).await;
                    }
                }
            }
        }
        for org in &outcome.failed {
            self.hold(*org);
        }
        failed.extend_from_slice(&outcome.failed);
        self.release(orgs.iter().copied().filter(|o| !outcome.failed.contains(o)));
        for (id, why) in &outcome.parked {
            sqlx::query("UPDATE outbox SET parked_at = now(), parked_reason = $2 WHERE id = $1")
                .bind(id)
                .bind(why)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(&outcome.delivered)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let done = outcome.delivered.len() + outcome.parked.len();
        match outcome.unavailable {
            Some(e) if done == 0 => Err(e),
            _ if done == 0 => Ok(Round::Failed(anyhow::anyhow!(
                "every organization's events of the batch failed; they are held back"
            ))),
            _ => Ok(Round::Settled(done)),
        }
    }

    /// Delivers one organization's events in order: a batch refused as too
    /// large in halves, a batch refused as invalid one event at a time
    /// (parking the invalid ones, with a stand-in in the log). Stops at the
    /// first event that cannot go now, so none overtakes it.
    async fn deliver_in_order(&self, events: &[&Claimed], out: &mut Outcome) -> bool {
        let Some(first) = events.first() else {
            return true;
        };
        let result = self
            .sink
            .deliver(events.iter().map(|c| c.wire.clone()).collect())
            .await;
        match result {
            Ok(()) => {
                out.delivered.extend(events.iter().map(|c| c.id));
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
                tracing::warn!(org_id = %first.event.org_id, error = %e, schema = self.db.schema(), "outbox relay: an organization's events failed; holding it back");
                out.failed.push(first.event.org_id);
                false
            }
        }
    }

    /// Parks an event the audit service refused and delivers its stand-in
    /// (the event with its changes withheld). If the stand-in cannot go
    /// now, the event stays for a later round.
    async fn park(&self, c: &Claimed, why: String, out: &mut Outcome) -> bool {
        let mut stand_in = c.event.clone();
        stand_in.changes = crate::bound::withheld(&c.event.changes, &why);
        let result = self.sink.deliver(vec![stand_in.to_proto()]).await;
        match result {
            Ok(()) | Err(DeliveryError::Refused(_) | DeliveryError::TooLarge(_)) => {
                let logged = result.is_ok();
                tracing::error!(
                    event_id = %c.id,
                    org_id = %c.event.org_id,
                    action = %c.event.action,
                    reason = %why,
                    stand_in_logged = logged,
                    schema = self.db.schema(),
                    "audit service refused an event; parked in the outbox"
                );
                opentelemetry::global::meter("foundry-outbox")
                    .u64_counter("foundry.outbox.parked")
                    .with_description("Events the audit service refused, parked in the outbox")
                    .build()
                    .add(
                        1,
                        &[opentelemetry::KeyValue::new(
                            "schema",
                            self.db.schema().to_owned(),
                        )],
                    );
                out.parked.push((c.id, why));
                true
            }
            Err(DeliveryError::Unavailable(e)) => {
                out.unavailable = Some(e);
                false
            }
            Err(DeliveryError::Retry(_)) => {
                out.failed.push(c.event.org_id);
                false
            }
        }
    }

    /// Delivers until nothing is left that may go now (held organizations
    /// wait for their backoff); the number delivered or parked. `Err` if
    /// the audit service is away, or if nothing went and some
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

    /// Events waiting in the outbox (not counting parked ones).
    pub async fn pending(&self) -> anyhow::Result<i64> {
        let mut tx = self.db.system().await?;
        let n = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE parked_at IS NULL")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Runs until `shutdown`: wakes on the outbox's notifications (or the
    /// idle poll), delivers, backs off while the audit service is away.
    /// On shutdown it keeps flushing for up to `flush_deadline`.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()> + Send) {
        let channel = format!("outbox_{}", self.db.schema());
        let mut listener = foundry_platform::db::listen(&self.db, &channel, "outbox relay").await;
        tokio::pin!(shutdown);
        let mut backoff = self.cfg.min_backoff;
        loop {
            let wait = match self.drain().await {
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

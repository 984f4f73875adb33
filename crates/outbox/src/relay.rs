//! The relay: ships a service's outbox to the audit service.
//!
//! A batch is claimed with `FOR UPDATE SKIP LOCKED` (replicas share the
//! work without waiting on each other), sent, and deleted only once the
//! audit service acknowledged it, in the same transaction that claimed it.
//! A failed send rolls back and the rows are retried with backoff. Delivery
//! is at least once; the audit service de-duplicates by event id.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use foundry_platform::db::Db;
use foundry_proto::foundry::audit::v1::{
    self as pb, audit_ingest_service_client::AuditIngestServiceClient,
};
use sqlx::postgres::PgListener;
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
    /// Anything else (unreachable, overloaded, token): retry with backoff.
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
        let token = self.tokens.token().await?;
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
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                Err(DeliveryError::Refused(s.message().to_owned()))
            }
            Err(s) => Err(DeliveryError::Retry(s.into())),
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
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    payload: sqlx::types::Json<AuditEvent>,
}

impl Relay {
    /// A relay over `db`'s outbox.
    pub fn new(db: Db, sink: Arc<dyn Sink>, cfg: RelayConfig) -> Relay {
        Relay {
            db,
            sink,
            cfg,
            running: Mutex::new(()),
        }
    }

    /// Claims, delivers and deletes one batch; the number delivered (or
    /// parked as refused).
    pub async fn drain_once(&self) -> anyhow::Result<usize> {
        let _one = self.running.lock().await;
        let mut tx = self.db.system().await?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, payload FROM outbox WHERE parked_at IS NULL \
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.cfg.batch)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        // The oldest events, in order, up to the byte budget (at least one);
        // the rest stay for the next batch.
        let mut ids: Vec<Uuid> = Vec::with_capacity(rows.len());
        let mut events: Vec<pb::AuditEvent> = Vec::with_capacity(rows.len());
        let mut bytes = 0;
        for r in &rows {
            let event = r.payload.0.to_proto();
            let size = prost::Message::encoded_len(&event) + 8;
            if !events.is_empty() && bytes + size > self.cfg.max_batch_bytes {
                break;
            }
            bytes += size;
            ids.push(r.id);
            events.push(event);
        }
        match self.sink.deliver(events.clone()).await {
            Ok(()) => {}
            Err(DeliveryError::Retry(e)) => return Err(e),
            Err(DeliveryError::Refused(_)) => {
                // Find the bad ones: one at a time, park what is refused.
                for (id, event) in ids.iter().zip(events) {
                    match self.sink.deliver(vec![event]).await {
                        Ok(()) => {}
                        Err(DeliveryError::Refused(why)) => {
                            tracing::error!(event_id = %id, reason = %why, "audit service refused an event; parked in the outbox");
                            sqlx::query(
                                "UPDATE outbox SET parked_at = now(), parked_reason = $2 WHERE id = $1",
                            )
                            .bind(id)
                            .bind(why)
                            .execute(&mut *tx)
                            .await?;
                            continue;
                        }
                        Err(DeliveryError::Retry(e)) => return Err(e),
                    }
                    sqlx::query("DELETE FROM outbox WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                return Ok(ids.len());
            }
        }
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ids.len())
    }

    /// Delivers until the outbox is empty; the number delivered.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let n = self.drain_once().await?;
            total += n;
            if n == 0 {
                return Ok(total);
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
        let mut listener = match PgListener::connect_with(self.db.pool()).await {
            Ok(mut l) => match l.listen(&channel).await {
                Ok(()) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay: LISTEN failed; polling");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay: no listener connection; polling");
                None
            }
        };
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
                match (wait, listener.as_mut()) {
                    (Some(w), _) => tokio::time::sleep(w).await,
                    (None, Some(l)) => {
                        let _ = tokio::time::timeout(self.cfg.idle_poll, l.recv()).await;
                    }
                    (None, None) => tokio::time::sleep(self.cfg.idle_poll).await,
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

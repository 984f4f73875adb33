//! The transactional outbox.
//!
//! A mutation records its audit event with [`Actor::event`] … `.record(&mut
//! tx)` inside the transaction that makes the change, so the two commit or
//! roll back together (or `.commit(tx)`: the event's insert travels with the
//! `COMMIT`, one round trip for both); domain events and usage records for
//! other services go the same way ([`envelope`]). Each subscriber of a service's outbox
//! ([`subscriptions`]) has its own [`Relay`] and cursor and receives its
//! events at least once, in each organization's commit order; the audit
//! service keeps each event once, other receivers use [`inbox`]. A
//! subscribing service's relay subscriber and inbox client are in
//! [`inboxes`]; identity's membership events are [`membership`].

pub mod bound;
pub mod call;
pub mod envelope;
pub mod event;
pub mod inbox;
pub mod inboxes;
pub mod membership;
pub mod relay;
pub mod subscriptions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use foundry_proto::foundry::identity::v1::{
    ExchangeTokenRequest, auth_service_client::AuthServiceClient, exchange_token_request::Grant,
};
use tokio::sync::Mutex;
use tonic::transport::Channel;

pub use call::{Call, In, Serves};
pub use envelope::{DomainEvent, UsageRecord};
pub use event::{Actor, ActorType, AuditEvent, EventBuilder, OnBehalfOf, PLATFORM_ORG, record};
pub use inboxes::{DomainSubscriber, Inbox};
pub use relay::{
    AUDIT, AuditSubscriber, DeliveryError, Envelope, GrpcSink, Relay, RelayConfig, Sink,
    Subscriber, TokenSource,
};
pub use subscriptions::relay_capabilities;

/// The name of the service account `service`'s relay authenticates as.
pub fn relay_service_account(service: &str) -> String {
    format!("{service}-relay")
}

/// The relay flags of a per-service binary.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RelayArgs {
    /// The audit service the outbox relay delivers to (`http://host:port`).
    /// Unset: no relay to audit runs here and audit events wait in the
    /// outbox.
    #[arg(long, env = "FOUNDRY_AUDIT_ENDPOINT")]
    pub audit_endpoint: Option<String>,
    /// The relay's service-account key, exchanged for access tokens at the
    /// identity service (services other than identity).
    #[arg(long, env = "FOUNDRY_SERVICE_ACCOUNT_KEY", hide_env_values = true)]
    pub service_account_key: Option<String>,
}

/// Access tokens minted by some function, cached until a minute before
/// they expire.
pub struct CachedToken<F> {
    mint: F,
    cached: Mutex<Option<(String, Instant)>>,
}

impl<F> CachedToken<F> {
    /// Caches what `mint` returns: `(token, lifetime)`.
    pub fn new(mint: F) -> Arc<Self> {
        Arc::new(CachedToken {
            mint,
            cached: Mutex::new(None),
        })
    }
}

#[async_trait]
impl<F, Fut> TokenSource for CachedToken<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<(String, Duration)>> + Send,
{
    async fn token(&self) -> anyhow::Result<String> {
        let mut cached = self.cached.lock().await;
        if let Some((token, renew_at)) = cached.as_ref()
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let (token, ttl) = (self.mint)().await?;
        let margin = Duration::from_secs(60).min(ttl / 2);
        *cached = Some((token.clone(), Instant::now() + ttl - margin));
        Ok(token)
    }
}

/// A service account's token, exchanged for its key at the identity
/// service (split deployments).
pub fn exchanged_token(identity: Channel, service_account_key: String) -> Arc<dyn TokenSource> {
    CachedToken::new(move || {
        let mut client = AuthServiceClient::new(identity.clone());
        let key = service_account_key.clone();
        async move {
            let out = client
                .exchange_token(ExchangeTokenRequest {
                    grant: Some(Grant::ServiceAccountKey(key)),
                    org_id: String::new(),
                })
                .await?
                .into_inner();
            let exp = out.expire_time.map(|t| t.seconds).unwrap_or_default();
            let ttl = (exp - chrono::Utc::now().timestamp()).max(1) as u64;
            Ok((out.access_token, Duration::from_secs(ttl)))
        }
    })
}

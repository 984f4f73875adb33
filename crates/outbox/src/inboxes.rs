//! Domain events to the inboxes of the services that subscribe to them
//! (`crate::subscriptions`): the relay's [`Subscriber`] for a subscribing
//! service, and its inbox method over gRPC, called with the producer's
//! relay service account as the audit service's ingest is.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_platform::convert::{json_to_struct, timestamp};
use foundry_proto::foundry::delivery::v1::{
    ReceiveDomainEventsRequest, inbox_service_client::InboxServiceClient,
};
use foundry_proto::foundry::events::v1 as pb;
use tonic::transport::Channel;

use crate::envelope::DomainEvent;
use crate::relay::{
    AUDIT, AuditSubscriber, DeliveryError, Envelope, GrpcSink, Subscriber, TokenSource, send,
};
use crate::subscriptions::{Subscription, subscription};

/// Where a subscriber's domain events go.
#[async_trait]
pub trait Inbox: Send + Sync + 'static {
    /// Delivers a batch, each organization's in its commit order; `Ok`
    /// means every event is durably taken in.
    async fn deliver(&self, events: Vec<pb::DomainEvent>) -> Result<(), DeliveryError>;
    /// See [`Subscriber::prepare`].
    async fn prepare(&self) {}
}

/// A service that takes another's domain events, as a relay subscriber:
/// it takes what its subscription says, each with its place in its
/// organization's commit order (`sequence`).
pub struct DomainSubscriber {
    subscription: &'static Subscription,
    inbox: Arc<dyn Inbox>,
}

impl DomainSubscriber {
    /// `subscriber`'s subscription to `producer`'s events, delivered to
    /// `inbox`; an error if the suite has no such subscription.
    pub fn new(
        producer: &str,
        subscriber: &str,
        inbox: Arc<dyn Inbox>,
    ) -> anyhow::Result<DomainSubscriber> {
        let subscription = subscription(producer, subscriber).ok_or_else(|| {
            anyhow::anyhow!("{subscriber} subscribes to none of {producer}'s events")
        })?;
        Ok(DomainSubscriber {
            subscription,
            inbox,
        })
    }

    /// `e` on the wire.
    fn wire(e: &Envelope) -> Result<pb::DomainEvent, DeliveryError> {
        let d: DomainEvent = serde_json::from_value(e.payload.clone())
            .map_err(|err| DeliveryError::Refused(format!("not a domain event: {err}")))?;
        Ok(pb::DomainEvent {
            id: d.id.to_string(),
            org_id: d.org_id.to_string(),
            r#type: d.r#type,
            version: d.version,
            subject_type: d.subject_type,
            subject_id: d.subject_id,
            occur_time: Some(timestamp(d.occurred_at)),
            data: Some(json_to_struct(&d.data)),
            sequence: e.seq,
        })
    }
}

#[async_trait]
impl Subscriber for DomainSubscriber {
    fn name(&self) -> &str {
        self.subscription.subscriber
    }

    fn takes(&self, e: &Envelope) -> bool {
        self.subscription.takes(e)
    }

    fn size(&self, e: &Envelope) -> usize {
        Self::wire(e).map_or(0, |w| prost::Message::encoded_len(&w))
    }

    async fn deliver(&self, events: &[&Envelope]) -> Result<(), DeliveryError> {
        let wire = events
            .iter()
            .map(|e| Self::wire(e))
            .collect::<Result<Vec<_>, _>>()?;
        self.inbox.deliver(wire).await
    }

    async fn prepare(&self) {
        self.inbox.prepare().await;
    }
}

/// Delivery's inbox (`foundry.delivery.v1.InboxService`), over gRPC.
pub struct DeliveryInbox {
    client: InboxServiceClient<Channel>,
    tokens: Arc<dyn TokenSource>,
}

impl DeliveryInbox {
    /// Over `channel` (lazy: delivery may not be up yet), authenticated
    /// by `tokens`.
    pub fn new(channel: Channel, tokens: Arc<dyn TokenSource>) -> DeliveryInbox {
        DeliveryInbox {
            client: InboxServiceClient::new(channel),
            tokens,
        }
    }
}

#[async_trait]
impl Inbox for DeliveryInbox {
    async fn deliver(&self, events: Vec<pb::DomainEvent>) -> Result<(), DeliveryError> {
        let message = ReceiveDomainEventsRequest {
            domain_events: events,
        };
        let mut client = self.client.clone();
        send(&*self.tokens, message, |req| async move {
            client.receive_domain_events(req).await
        })
        .await
    }

    async fn prepare(&self) {
        // Cached; a failure comes again, and is reported, on delivery.
        let _ = self.tokens.token().await;
    }
}

/// The relay subscriber `subscriber` of `producer`'s events, reached over
/// `channel` with `tokens` (the producer's relay service account): the
/// audit service's ingest, or a subscribing service's inbox.
pub fn over_grpc(
    producer: &str,
    subscriber: &str,
    channel: Channel,
    tokens: Arc<dyn TokenSource>,
) -> anyhow::Result<Arc<dyn Subscriber>> {
    Ok(match subscriber {
        AUDIT => Arc::new(AuditSubscriber::new(Arc::new(GrpcSink::new(
            channel, tokens,
        )))),
        "delivery" => Arc::new(DomainSubscriber::new(
            producer,
            subscriber,
            Arc::new(DeliveryInbox::new(channel, tokens)),
        )?),
        other => anyhow::bail!("no inbox client for subscriber {other}"),
    })
}

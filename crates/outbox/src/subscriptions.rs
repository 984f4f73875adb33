//! Who takes whose events: every subscription of the suite, in one place.
//!
//! A producer's outbox keeps an event until every subscriber of that
//! producer is past it; each subscriber has its own relay and cursor. A
//! subscriber takes a kind of envelope and, for domain events and usage
//! records, the types it names. The services that come next add their
//! lines here: knowledge takes `delivery.requirement.deleted`, billing
//! takes `identity.organization.created` and every producer's usage
//! records, integrations takes what its customers' webhooks ask for.

use crate::envelope::AUDIT;
use crate::relay::Envelope;

/// What a subscriber takes of a producer's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The producing service (its schema).
    pub producer: &'static str,
    /// The subscribing service.
    pub subscriber: &'static str,
    /// The kind it takes (`crate::envelope`).
    pub kind: &'static str,
    /// The types of that kind it takes (empty: every type).
    pub types: &'static [&'static str],
}

impl Subscription {
    /// Whether it takes `e`.
    pub fn takes(&self, e: &Envelope) -> bool {
        e.kind == self.kind
            && (self.types.is_empty()
                || e.r#type.as_deref().is_some_and(|t| self.types.contains(&t)))
    }
}

/// Every subscription of the suite.
pub const SUBSCRIPTIONS: &[Subscription] = &[
    Subscription {
        producer: "identity",
        subscriber: "audit",
        kind: AUDIT,
        types: &[],
    },
    Subscription {
        producer: "delivery",
        subscriber: "audit",
        kind: AUDIT,
        types: &[],
    },
];

/// The subscribers of `producer`'s events.
pub fn subscribers_of(producer: &str) -> Vec<String> {
    let mut names: Vec<String> = SUBSCRIPTIONS
        .iter()
        .filter(|s| s.producer == producer)
        .map(|s| s.subscriber.to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

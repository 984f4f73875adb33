//! Who takes whose events: every subscription of the suite, in one place.
//!
//! A producer's outbox keeps an event until every subscriber of that
//! producer is past it; each subscriber has its own relay and cursor. A
//! subscriber takes a kind of envelope and, for domain events and usage
//! records, the types it names. The services that come next add their
//! lines here: knowledge takes `delivery.requirement.deleted`, billing
//! takes `identity.organization.created` and every producer's usage
//! records, integrations takes what its customers' webhooks ask for.
//!
//! A subscriber other than audit receives its domain events in its inbox
//! method, called by the producer's relay with the producer's relay
//! service account, which holds `<subscriber>.events.receive` for each
//! such subscriber ([`relay_capabilities`]); the inbox takes from a
//! producer only what its line here says ([`subscription`]).

use crate::envelope::{AUDIT, DOMAIN};
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
    // Delivery's membership replica (user references name members).
    Subscription {
        producer: "identity",
        subscriber: "delivery",
        kind: DOMAIN,
        types: crate::membership::TYPES,
    },
];

/// What `subscriber` takes of `producer`'s events, if anything.
pub fn subscription(producer: &str, subscriber: &str) -> Option<&'static Subscription> {
    SUBSCRIPTIONS
        .iter()
        .find(|s| s.producer == producer && s.subscriber == subscriber)
}

/// The capabilities of `producer`'s relay service account: appending its
/// events to the audit log, and delivering to the inbox of each other
/// subscriber of its events.
pub fn relay_capabilities(producer: &str) -> Vec<String> {
    let mut caps = vec!["audit.events.append".to_owned()];
    for s in subscribers_of(producer) {
        if s != crate::relay::AUDIT {
            caps.push(inbox_capability(&s));
        }
    }
    caps
}

/// The capability `subscriber`'s inbox method asks of a relay.
pub fn inbox_capability(subscriber: &str) -> String {
    format!("{subscriber}.events.receive")
}

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

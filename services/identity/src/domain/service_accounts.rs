//! Service accounts: the suite's own services.

use chrono::{DateTime, Utc};
use foundry_domain::Audited;
use serde::{Deserialize, Serialize};

/// A service account's id.
pub type ServiceAccountId = foundry_domain::Id<ServiceAccount>;

/// A service account (its key is stored as a hash only, never read).
/// Audited: its own fields and its `disable_time`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Audited)]
pub struct ServiceAccount {
    pub id: ServiceAccountId,
    pub fields: NewServiceAccount,
    #[serde(skip_serializing)]
    pub created_at: DateTime<Utc>,
    /// Set once disabled; a disabled account gets no tokens.
    #[serde(rename(serialize = "disable_time"))]
    pub disabled_at: Option<DateTime<Utc>>,
}

/// A service account to create, as parsed at the edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewServiceAccount {
    pub name: String,
    pub description: String,
    /// The service it runs as (empty: none); audit takes from it only that
    /// service's events.
    pub service: String,
    /// The internal methods' permissions it holds.
    pub capabilities: Vec<String>,
}

/// Every capability a service account may hold: the permissions of the
/// internal methods (see each method's `access` option).
pub const CAPABILITIES: &[&str] = &[
    "audit.events.append",
    "audit.records.write",
    "audit.retention.apply",
    "delivery.events.receive",
    "identity.service_accounts.admin",
    "identity.signing_keys.admin",
];

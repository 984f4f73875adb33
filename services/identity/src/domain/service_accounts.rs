//! Service accounts: the suite's own services.

use chrono::{DateTime, Utc};
use foundry_domain::{AuditFields, Audited};
/// A service account's id.
pub type ServiceAccountId = foundry_domain::Id<ServiceAccount>;

/// A service account (its key is stored as a hash only).
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceAccount {
    pub id: ServiceAccountId,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    /// Set once disabled; a disabled account gets no tokens.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// A service account to create, as parsed at the edge.
#[derive(Clone, Debug, PartialEq)]
pub struct NewServiceAccount {
    pub name: String,
    pub description: String,
}

impl Audited for ServiceAccount {
    fn audit_fields(&self) -> AuditFields {
        let ServiceAccount {
            id: _,
            name,
            description,
            created_at: _,
            disabled_at,
        } = self;
        AuditFields::new()
            .field("name", name)
            .field("description", description)
            .field("disable_time", disabled_at)
    }
}

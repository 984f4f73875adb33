//! Identity rules: roles and what they grant, the last-owner rule, each
//! aggregate's values and update paths, credential formats. One module per
//! aggregate; no I/O, no transport: errors are [`Error`]
//! (`foundry_domain::DomainError`), mapped to a gRPC status in one place.

pub use foundry_domain::{DomainError as Error, StoredEnum};

/// The version (the etag, AIP-154) and times of a stored resource whose
/// table names no creator (organizations, users, memberships,
/// invitations): a [`foundry_domain::Stamp`] without `created_by`, which is
/// used where the table has one (API keys). Set by the store, never by a
/// request; a resource holds it as its `stamp` (read from the same row,
/// left out of its audit).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Revision {
    /// Incremented by every write.
    pub version: i64,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it was last written.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

pub mod api_keys;
pub mod invitations;
pub mod linked_accounts;
pub mod memberships;
pub mod organizations;
pub mod secrets;
pub mod service_accounts;
pub mod sessions;
pub mod users;

pub use api_keys::*;
pub use invitations::*;
pub use linked_accounts::*;
pub use memberships::*;
pub use organizations::*;
pub use secrets::*;
pub use service_accounts::*;
pub use sessions::*;
pub use users::*;

//! Updates as values, and the stamp every stored resource carries.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::DomainError;

/// A resource an update changes field by field: `Change` has one variant per
/// update-mask path (see [`crate::FieldPath`]) holding the parsed new value,
/// and [`Patch::apply`] writes them with an exhaustive `match` (no wildcard
/// arm), checking the rules that span fields.
pub trait Patch {
    /// One field's new value.
    type Change: Send;

    /// Applies an update's changes, or refuses them.
    fn apply(&mut self, changes: Vec<Self::Change>) -> Result<(), DomainError>;
}

/// Who made a resource, when it was made and last changed, and its version
/// (the etag, AIP-154): set by the store, never by a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The principal that created it.
    pub created_by: Uuid,
    /// Incremented by every write.
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
}

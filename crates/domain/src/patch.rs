//! Updates as values, and the stamp every stored resource carries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;

/// A resource an update changes field by field: `Change` has one variant per
/// update-mask path (see [`crate::FieldPath`]) holding the parsed new value,
/// and [`Patch::apply_one`] writes each with an exhaustive `match` (no wildcard
/// arm), checking the rules that span fields.
pub trait Patch {
    /// One field's new value.
    type Change: Send;

    /// Applies one change, or refuses it (then `self` may be partly
    /// changed: apply to a copy).
    fn apply_one(&mut self, change: Self::Change) -> Result<(), DomainError>;

    /// Rules that span fields (dates in order), checked once every change
    /// of an update is applied.
    fn check_fields(&self) -> Result<(), DomainError> {
        Ok(())
    }

    /// Applies an update's changes in order, then [`Patch::check_fields`];
    /// refused at the first refusal.
    fn apply(&mut self, changes: Vec<Self::Change>) -> Result<(), DomainError> {
        changes.into_iter().try_for_each(|c| self.apply_one(c))?;
        self.check_fields()
    }
}

/// A stored resource's identity: its key (a typed id) and its version (the
/// etag). `#[derive(Record)]` writes it for a struct `{ id, .., stamp }`.
pub trait Record {
    /// Its key.
    type Key: Copy + std::fmt::Display + Into<Uuid> + Send + Sync + 'static;

    /// Its key.
    fn key(&self) -> Self::Key;
    /// Its version (the etag).
    fn version(&self) -> i64;
}

/// Who made a resource, when it was made and last changed, and its version
/// (the etag, AIP-154): set by the store, never by a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

//! Updates as values, and the stamp every stored resource carries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;
use crate::fields::Change as FieldChange;

/// A value with its own fields apart (a resource `{ id, fields, stamp }`):
/// what its changes write. `#[derive(Record)]` writes it when the struct
/// has a `fields` member; a value that is all its own fields returns itself.
pub trait OwnFields {
    /// Its own fields.
    type Fields;

    /// Its own fields, to change.
    fn fields_mut(&mut self) -> &mut Self::Fields;
}

/// A resource an update changes field by field: `Change` has one variant per
/// update-mask path holding the parsed new value (`#[derive(Change)]`, which
/// writes the path enum and the exhaustive setter), and [`Patch::apply`]
/// writes them one by one, then checks the rules that span fields.
pub trait Patch: OwnFields {
    /// One field's new value.
    type Change: FieldChange<Fields = Self::Fields> + Send;

    /// Applies one change, or refuses it (then `self` may be partly
    /// changed: apply to a copy). By default it is written as it is; a
    /// resource with a rule on a field (a workflow) checks it first.
    fn apply_one(&mut self, change: Self::Change) -> Result<(), DomainError> {
        change.set(self.fields_mut());
        Ok(())
    }

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
    /// The project it belongs to, if any: audit events carry it, and a
    /// credential bound to a project sees only that project's resources.
    fn project(&self) -> Option<Uuid> {
        None
    }
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

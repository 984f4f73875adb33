//! The domain half of Foundry's resource recipe (see `crates/README.md`):
//! what a service's `domain` modules are written with. Nothing here knows
//! gRPC or SQL; the platform kit maps each piece to the wire and to the
//! database once.
//!
//! - [`Id`]: ids of different resources are different types.
//! - [`DomainError`]: the one error a domain rule returns, mapped to a gRPC
//!   status in one place (`foundry_platform::Error: From<DomainError>`).
//! - [`FieldPath`]: a resource's update-mask paths as an enum.
//! - [`Audited`] and [`diff`]: an audit event's field changes computed from
//!   the before and after values.
//! - [`StoredEnum`]: enums stored as text, decoded loudly.
//! - [`Patch`]: an update's changes applied by an exhaustive match;
//!   [`Stamp`]: who made a resource, when, and its version (the etag).

mod audit;
mod error;
mod fields;
mod id;
mod patch;
mod stored;

pub use audit::{AuditFields, Audited, Change, WITHHELD, diff};
pub use error::{DomainError, ErrorKind};
pub use fields::{Change as FieldChange, FieldPath, path_from_str};
pub use foundry_domain_derive::Record;
pub use foundry_domain_derive::{Audited, Change, FieldPath};
pub use id::Id;
pub use patch::{OwnFields, Patch, Record, Stamp};
pub use stored::{StoredEnum, UnknownValue};

// For `stored_enum!`, so a service needs no serde of its own to use it.
#[doc(hidden)]
pub use serde as __serde;
// For `#[derive(Record)]`.
#[doc(hidden)]
pub use uuid as __uuid;

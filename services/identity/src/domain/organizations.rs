//! Organizations.

use chrono::{DateTime, Utc};
use foundry_domain::{Audited, Change, Patch};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Revision;

/// A tenant. Audited: its own fields and its `delete_time`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, foundry_domain::Record, Audited)]
pub struct Organization {
    pub id: Uuid,
    pub fields: NewOrganization,
    /// Set while soft-deleted.
    #[serde(rename(serialize = "delete_time"))]
    pub deleted_at: Option<DateTime<Utc>>,
    pub stamp: Revision,
}

/// An organization to create, as parsed at the edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewOrganization {
    pub name: String,
    pub slug: String,
    pub settings: serde_json::Value,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = OrganizationPath, fields = NewOrganization, output_only = &["id", "create_time", "update_time", "delete_time", "etag"])]
pub enum OrganizationChange {
    Name(String),
    Slug(String),
    Settings(serde_json::Value),
}

impl Patch for Organization {
    type Change = OrganizationChange;
}

//! Organizations.

use chrono::{DateTime, Utc};
use foundry_domain::{AuditFields, Audited, DomainError as Error, FieldPath, Patch};
use uuid::Uuid;

use super::Revision;

/// A tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub settings: serde_json::Value,
    pub revision: Revision,
    /// Set while soft-deleted.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// An organization to create, as parsed at the edge.
#[derive(Clone, Debug, PartialEq)]
pub struct NewOrganization {
    pub name: String,
    pub slug: String,
    pub settings: serde_json::Value,
}

/// The fields `UpdateOrganization` may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrganizationPath {
    Name,
    Slug,
    Settings,
}

impl FieldPath for OrganizationPath {
    const ALL: &'static [Self] = &[
        OrganizationPath::Name,
        OrganizationPath::Slug,
        OrganizationPath::Settings,
    ];
    const OUTPUT_ONLY: &'static [&'static str] =
        &["id", "create_time", "update_time", "delete_time", "etag"];

    fn name(self) -> &'static str {
        match self {
            OrganizationPath::Name => "name",
            OrganizationPath::Slug => "slug",
            OrganizationPath::Settings => "settings",
        }
    }
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq)]
pub enum OrganizationChange {
    Name(String),
    Slug(String),
    Settings(serde_json::Value),
}

impl Patch for Organization {
    type Change = OrganizationChange;

    fn apply(&mut self, changes: Vec<OrganizationChange>) -> Result<(), Error> {
        for change in changes {
            match change {
                OrganizationChange::Name(x) => self.name = x,
                OrganizationChange::Slug(x) => self.slug = x,
                OrganizationChange::Settings(x) => self.settings = x,
            }
        }
        Ok(())
    }
}

impl Audited for Organization {
    fn audit_fields(&self) -> AuditFields {
        let Organization {
            id: _,
            name,
            slug,
            settings,
            revision: _,
            deleted_at,
        } = self;
        AuditFields::new()
            .field("name", name)
            .field("slug", slug)
            .field("settings", settings)
            .field("delete_time", deleted_at)
    }
}

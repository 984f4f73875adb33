//! Requirements: priority and status.

use chrono::{DateTime, Utc};
use foundry_domain::{Audited, Change, Patch, Record, Stamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::*;

/// Something a program must deliver, under a workstream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Record, Audited)]
#[record(project = program_id)]
pub struct Requirement {
    pub id: RequirementId,
    pub fields: NewRequirement,
    /// Its workstream's program, taken from it when created.
    pub program_id: ProgramId,
    pub stamp: Stamp,
}

/// A requirement's own fields, held by a [`Requirement`]: to create, as parsed
/// at the edge (its program is its workstream's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewRequirement {
    /// Its workstream (same program).
    pub workstream_id: WorkstreamId,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub status: RequirementStatus,
    /// In the given order.
    pub acceptance_criteria: Vec<String>,
    pub batch: String,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = RequirementPath, fields = NewRequirement, output_only = PROGRAM_CHILD_OUTPUT_ONLY)]
pub enum RequirementChange {
    /// Another workstream of the same program.
    WorkstreamId(WorkstreamId),
    Title(String),
    Description(String),
    Priority(Priority),
    Status(RequirementStatus),
    AcceptanceCriteria(Vec<String>),
    Batch(String),
}

impl Patch for Requirement {
    type Change = RequirementChange;
}

/// An edge of the requirement graph: `requirement_id` depends on
/// `depends_on_id` (both of `program_id`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dependency {
    pub program_id: ProgramId,
    pub requirement_id: RequirementId,
    pub depends_on_id: RequirementId,
    /// The principal that added it.
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

/// A requirement as a program plan needs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanItem {
    pub id: RequirementId,
    pub workstream_id: WorkstreamId,
    pub title: String,
    pub priority: Priority,
    pub status: RequirementStatus,
}

foundry_domain::stored_enum! {
    /// How much a requirement matters (declared most important first, so
    /// the derived order is planning order).
    Priority {
        /// Blocks the delivery.
        Critical = "critical",
        /// Must have.
        High = "high",
        /// Should have.
        Medium = "medium",
        /// Nice to have.
        Low = "low",
    }
}

foundry_domain::stored_enum! {
    /// Where a requirement stands.
    RequirementStatus {
        /// Being written.
        Draft = "draft",
        /// Agreed.
        Approved = "approved",
        /// Being built.
        InProgress = "in_progress",
        /// Delivered.
        Done = "done",
        /// Postponed.
        Deferred = "deferred",
    }
}

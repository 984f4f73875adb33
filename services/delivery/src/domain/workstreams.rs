//! Workstreams: the ordered streams of a program that hold its
//! requirements, and the fields an update may change.

use foundry_domain::{Audited, Change, Patch, Record, Stamp};
use serde::{Deserialize, Serialize};

use super::*;

/// A stream of work in a program, ordered among its siblings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Record, Audited)]
#[record(project = fields.program_id)]
pub struct Workstream {
    pub id: WorkstreamId,
    pub fields: NewWorkstream<i32>,
    pub stamp: Stamp,
}

/// A workstream's own fields: to create, as parsed at the edge (with an
/// `Option<i32>` position), or as held by a [`Workstream`] (`i32`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewWorkstream<Position = Option<i32>> {
    pub program_id: ProgramId,
    pub name: String,
    pub description: String,
    /// Order among the program's workstreams (ties break by id); when
    /// created, `None` is after the program's last workstream.
    pub position: Position,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = WorkstreamPath, fields = NewWorkstream<i32>, output_only = PROGRAM_CHILD_OUTPUT_ONLY)]
pub enum WorkstreamChange {
    Name(String),
    Description(String),
    Position(i32),
}

impl Patch for Workstream {
    type Change = WorkstreamChange;
}

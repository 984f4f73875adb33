//! Subtasks: their status, and the fields an update may change.

use foundry_domain::{Audited, Change, Patch, Record, Stamp};
use serde::{Deserialize, Serialize};

use super::*;

/// A step of a task, ordered among its siblings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Record, Audited)]
#[record(project = program_id)]
pub struct Subtask {
    pub id: SubtaskId,
    pub fields: NewSubtask<i32>,
    /// The task's program (copied at creation).
    pub program_id: ProgramId,
    pub stamp: Stamp,
}

/// A subtask's own fields: to create, as parsed at the edge (with an
/// `Option<i32>` position; its program is the task's), or as held by a
/// [`Subtask`] (`i32`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewSubtask<Position = Option<i32>> {
    pub task_id: TaskId,
    pub title: String,
    pub description: String,
    pub status: SubtaskStatus,
    /// Order among the task's subtasks (ties break by id); when created,
    /// `None` is after the task's last subtask.
    pub position: Position,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = SubtaskPath, fields = NewSubtask<i32>, output_only = &program_child_output_only_and::<7>(&["task_id"]))]
pub enum SubtaskChange {
    Title(String),
    Description(String),
    Status(SubtaskStatus),
    Position(i32),
}

impl Patch for Subtask {
    type Change = SubtaskChange;
}

foundry_domain::stored_enum! {
    /// Where a subtask stands.
    SubtaskStatus {
        /// Not started.
        Todo = "todo",
        /// Being worked on.
        InProgress = "in_progress",
        /// Finished.
        Done = "done",
    }
}

impl SubtaskStatus {
    /// Whether the subtask still holds its task back from DONE.
    pub fn is_open(self) -> bool {
        self != SubtaskStatus::Done
    }
}

//! Subtasks: their status.

use super::*;

stored_enum! {
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

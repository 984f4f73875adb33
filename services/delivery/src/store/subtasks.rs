//! Subtasks.

use foundry_resource::{Computed, Resource};

use crate::domain::{NewSubtask, Subtask};

impl Resource for Subtask {
    type New = NewSubtask;
    const KIND: &'static str = "delivery.subtask";
    const NAME: &'static str = "subtask";
    const TABLE: &'static str = "subtasks";
    const NOT_FOUND: &'static str = "SUBTASK_NOT_FOUND";

    const COMPUTED: &'static [Computed] = &[
        Computed::FromParent {
            column: "program_id",
            parent: "tasks",
            key: "task_id",
        },
        Computed::Appended { scope: "task_id" },
    ];
}

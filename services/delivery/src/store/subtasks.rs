//! Subtasks.

use foundry_resource::{Computed, Resource};

use crate::domain::{NewSubtask, Subtask};

impl Resource for Subtask {
    type New = NewSubtask;
    foundry_resource::names!("delivery", "subtask", "subtasks");

    const COMPUTED: &'static [Computed] = &[
        Computed::FromParent {
            column: "program_id",
            parent: "tasks",
            key: "task_id",
        },
        Computed::Appended { scope: "task_id" },
    ];
}

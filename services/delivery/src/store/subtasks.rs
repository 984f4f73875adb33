//! Subtasks.

use foundry_resource::{Insert, Resource, Write};

use crate::domain::{NewSubtask, Subtask};

impl Resource for Subtask {
    const KIND: &'static str = "delivery.subtask";
    const NAME: &'static str = "subtask";
    const TABLE: &'static str = "subtasks";
    const NOT_FOUND: &'static str = "SUBTASK_NOT_FOUND";
}

impl Insert for Subtask {
    type New = NewSubtask;
    const COMPUTED: &'static [(&'static str, &'static str)] = &[
        (
            "program_id",
            "(SELECT program_id FROM tasks WHERE org_id = $1 AND id = r.task_id)",
        ),
        (
            "position",
            "coalesce(r.position, (SELECT coalesce(max(position), 0) + 1 FROM subtasks \
             WHERE org_id = $1 AND task_id = r.task_id))",
        ),
    ];
}

impl Write for Subtask {}

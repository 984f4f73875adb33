//! Tasks and their assignees.

use async_trait::async_trait;
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Resource, Within};
use uuid::Uuid;

use super::{Assigned, Assignees, Lock, delete_where};
use crate::domain::{NewTask, Task, TaskId};

#[async_trait]
impl Resource for Task {
    type New = NewTask;
    foundry_resource::names!("delivery", "task", "tasks");
    const WITHIN: Option<Within<NewTask>> = Some(super::program_child(|n| n.program_id.uuid()));

    /// Its assignee index is made to match.
    async fn written(self, before: Option<&Task>, tx: &mut Tx, org_id: Uuid) -> Result<Task> {
        let at = (self.id, self.fields.program_id);
        let held = before.map(|b| &b.fields.assignee_ids[..]);
        Self::ASSIGNEES
            .set(tx, org_id, at, held, &self.fields.assignee_ids)
            .await?;
        Ok(self)
    }
}

impl Assigned for Task {
    const ASSIGNEES: Assignees = Assignees {
        table: "task_assignees",
        key: "task_id",
    };
}

pub async fn get_task(tx: &mut Tx, org_id: Uuid, id: TaskId, lock: Lock) -> Result<Option<Task>> {
    foundry_resource::read(tx, org_id, id, lock).await
}

/// How many of a task's subtasks are open, on `subtasks_open_idx`.
pub async fn count_open_subtasks(tx: &mut Tx, org_id: Uuid, task_id: TaskId) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM subtasks WHERE org_id = $1 AND task_id = $2 AND status <> 'done'",
    )
    .bind(org_id)
    .bind(task_id.uuid())
    .fetch_one(&mut **tx)
    .await?)
}

/// Deletes a task with its subtasks; returns how many subtasks went.
pub async fn delete_task(tx: &mut Tx, org_id: Uuid, id: TaskId) -> Result<u64> {
    let id = id.uuid();
    let subtasks = delete_where(tx, "subtasks", "task_id", org_id, id).await?;
    Task::ASSIGNEES.remove(tx, org_id, id).await?;
    delete_where(tx, "tasks", "id", org_id, id).await?;
    Ok(subtasks)
}

//! Tasks and their assignees.

use async_trait::async_trait;
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::Resource;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Assignees, Lock, delete_where, fetch_rows, newest_first, qualified, set_column};
use crate::domain::{NewTask, Task, TaskId, TaskStatus};

#[async_trait]
impl Resource for Task {
    type New = NewTask;
    const KIND: &'static str = "delivery.task";
    const NAME: &'static str = "task";
    const TABLE: &'static str = "tasks";
    const NOT_FOUND: &'static str = "TASK_NOT_FOUND";

    /// Its assignee index is made to match.
    async fn written(self, tx: &mut Tx, org_id: Uuid) -> Result<Task> {
        let (f, at) = (&self.fields, (self.id, self.fields.program_id));
        ASSIGNEES.set(tx, org_id, at, &f.assignee_ids).await?;
        Ok(self)
    }
}

/// The assignee index of tasks.
const ASSIGNEES: Assignees = Assignees {
    table: "task_assignees",
    key: "task_id",
};

pub async fn get_task(tx: &mut Tx, org_id: Uuid, id: TaskId, lock: Lock) -> Result<Option<Task>> {
    foundry_resource::read(tx, org_id, id, lock).await
}

/// Filters of ListTasks; all that are set apply.
#[derive(Clone, Copy, Debug)]
pub struct TaskFilter {
    pub program_id: Uuid,
    pub status: Option<TaskStatus>,
    pub assignee_id: Option<Uuid>,
    pub requirement_id: Option<Uuid>,
    pub sprint_id: Option<Uuid>,
}

/// Newest first. The leading index follows the most selective filter: an
/// assignee walks `task_assignees_user_idx` and joins each task by key; a
/// requirement `tasks_requirement_idx`; a sprint `tasks_sprint_idx`; a
/// status `tasks_status_idx`; none `tasks_program_id_key`. The other
/// filters are checked on the rows found.
pub async fn list_tasks(
    tx: &mut Tx,
    org_id: Uuid,
    f: TaskFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Task>> {
    let cols = qualified(Task::COLUMNS, "t");
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {cols} FROM "));
    // The keyset column of the walked index.
    let key = ASSIGNEES.scan_children(&mut q, "tasks", "t", org_id, f.program_id, f.assignee_id);
    if let Some(r) = f.requirement_id {
        q.push(" AND t.requirement_id = ").push_bind(r);
    }
    if let Some(s) = f.sprint_id {
        q.push(" AND t.sprint_id = ").push_bind(s);
    }
    if let Some(s) = f.status {
        q.push(" AND t.status = ").push_bind(s.as_str());
    }
    newest_first(&mut q, &key, before, limit);
    fetch_rows(q, tx).await
}

pub async fn set_task_status(
    tx: &mut Tx,
    org_id: Uuid,
    id: TaskId,
    status: TaskStatus,
) -> Result<Task> {
    set_column(tx, org_id, id, "status = $3", status.as_str()).await
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
    ASSIGNEES.remove(tx, org_id, id).await?;
    delete_where(tx, "tasks", "id", org_id, id).await?;
    Ok(subtasks)
}

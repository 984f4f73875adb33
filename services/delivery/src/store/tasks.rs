//! Tasks and their assignees.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use foundry_domain::{Id, StoredEnum};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Insert, Resource, StampRow, Write};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Assignees, Lock, delete_where, fetch_rows, newest_first, qualified, uuids};
use crate::domain::{NewTask, Task, TaskId, TaskStatus};

/// A task row, as read (public only as [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    pub org_id: Uuid,
    pub id: Uuid,
    pub program_id: Uuid,
    pub requirement_id: Option<Uuid>,
    pub title: String,
    pub description: String,
    pub status: String,
    pub assignee_ids: Vec<Uuid>,
    pub estimate_hours: Option<f64>,
    pub due_at: Option<DateTime<Utc>>,
    pub labels: Vec<String>,
    pub sprint_id: Option<Uuid>,
    #[sqlx(flatten)]
    pub stamp: StampRow,
}

impl Resource for Task {
    type Key = TaskId;
    type Row = TaskRow;
    const KIND: &'static str = "delivery.task";
    const NAME: &'static str = "task";
    const TABLE: &'static str = "tasks";
    const COLUMNS: &'static str = TASK_COLUMNS;
    const NOT_FOUND: &'static str = "TASK_NOT_FOUND";

    fn from_row(r: TaskRow) -> Result<Task> {
        Ok(Task {
            id: Id::from_uuid(r.id),
            fields: NewTask {
                program_id: Id::from_uuid(r.program_id),
                requirement_id: r.requirement_id.map(Id::from_uuid),
                title: r.title,
                description: r.description,
                status: TaskStatus::decode("tasks", "status", &r.status)?,
                assignee_ids: r.assignee_ids.into_iter().map(Id::from_uuid).collect(),
                estimate_hours: r.estimate_hours,
                due_at: r.due_at,
                labels: r.labels,
                sprint_id: r.sprint_id.map(Id::from_uuid),
            },
            stamp: r.stamp.into(),
        })
    }

    fn key(&self) -> TaskId {
        self.id
    }

    fn version(&self) -> i64 {
        self.stamp.version
    }

    fn project(&self) -> Option<Uuid> {
        Some(self.fields.program_id.uuid())
    }
}

/// The assignee index of tasks.
const ASSIGNEES: Assignees = Assignees {
    table: "task_assignees",
    key: "task_id",
};

/// The task of a row just written, its assignee index made to match.
async fn indexed(tx: &mut Tx, row: TaskRow) -> Result<Task> {
    ASSIGNEES
        .set(tx, row.org_id, row.id, row.program_id, &row.assignee_ids)
        .await?;
    Task::from_row(row)
}

/// The columns every task read returns, in `TaskRow` order (the bench
/// runs the same statements under pgbench).
pub const TASK_COLUMNS: &str = "org_id, id, program_id, requirement_id, title, description, status, assignee_ids, \
     estimate_hours, due_at, labels, sprint_id, created_by, version, created_at, updated_at";

/// Inserts a new task made by `created_by`, with its assignee index.
#[async_trait]
impl Insert for Task {
    type New = NewTask;

    async fn insert(t: &NewTask, tx: &mut Tx, org_id: Uuid, created_by: Uuid) -> Result<Task> {
        let row: TaskRow = sqlx::query_as(&format!(
            "INSERT INTO tasks (org_id, id, program_id, requirement_id, title, description, status, \
             assignee_ids, estimate_hours, due_at, labels, sprint_id, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {TASK_COLUMNS}"
        ))
        .bind(org_id)
        .bind(Uuid::now_v7())
        .bind(t.program_id.uuid())
        .bind(t.requirement_id.map(Id::uuid))
        .bind(&t.title)
        .bind(&t.description)
        .bind(t.status.as_str())
        .bind(uuids(&t.assignee_ids))
        .bind(t.estimate_hours)
        .bind(t.due_at)
        .bind(&t.labels)
        .bind(t.sprint_id.map(Id::uuid))
        .bind(created_by)
        .fetch_one(&mut **tx)
        .await?;
        indexed(tx, row).await
    }
}

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
    let cols = qualified(TASK_COLUMNS, "t");
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

/// Writes the user-editable fields of `t` (and its assignee index).
#[async_trait]
impl Write for Task {
    async fn write(&self, tx: &mut Tx, org_id: Uuid) -> Result<Task> {
        let row: TaskRow = sqlx::query_as(&format!(
            "UPDATE tasks SET requirement_id = $3, title = $4, description = $5, assignee_ids = $6, \
             estimate_hours = $7, due_at = $8, labels = $9, sprint_id = $10, version = version + 1, \
             updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {TASK_COLUMNS}"
        ))
        .bind(org_id)
        .bind(self.id.uuid())
        .bind(self.fields.requirement_id.map(Id::uuid))
        .bind(&self.fields.title)
        .bind(&self.fields.description)
        .bind(uuids(&self.fields.assignee_ids))
        .bind(self.fields.estimate_hours)
        .bind(self.fields.due_at)
        .bind(&self.fields.labels)
        .bind(self.fields.sprint_id.map(Id::uuid))
        .fetch_one(&mut **tx)
        .await?;
        indexed(tx, row).await
    }
}

pub async fn set_task_status(
    tx: &mut Tx,
    org_id: Uuid,
    id: TaskId,
    status: TaskStatus,
) -> Result<Task> {
    let row: TaskRow = sqlx::query_as(&format!(
        "UPDATE tasks SET status = $3, version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {TASK_COLUMNS}"
    ))
    .bind(org_id)
    .bind(id.uuid())
    .bind(status.as_str())
    .fetch_one(&mut **tx)
    .await?;
    Task::from_row(row)
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

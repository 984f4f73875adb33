//! Subtasks.

use chrono::{DateTime, Utc};
use foundry_domain::{Id, StoredEnum};
use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::Lock;
use crate::domain::{NewSubtask, ProgramId, Subtask, SubtaskId, SubtaskStatus, TaskId};

/// A subtask row, as read.
#[derive(Debug, Clone, sqlx::FromRow)]
struct SubtaskRow {
    pub id: Uuid,
    pub task_id: Uuid,
    pub program_id: Uuid,
    pub title: String,
    pub description: String,
    pub status: String,
    pub position: i32,
    pub created_by: Uuid,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<SubtaskRow> for Subtask {
    type Error = Error;

    fn try_from(r: SubtaskRow) -> Result<Subtask> {
        Ok(Subtask {
            id: Id::from_uuid(r.id),
            task_id: Id::from_uuid(r.task_id),
            program_id: Id::from_uuid(r.program_id),
            title: r.title,
            description: r.description,
            status: SubtaskStatus::decode("subtasks", "status", &r.status)?,
            position: r.position,
            created_by: r.created_by,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLS: &str = "id, task_id, program_id, title, description, status, position, \
     created_by, version, created_at, updated_at";

/// Inserts a new subtask of a task in `program_id`, made by `created_by`.
pub async fn insert_subtask(
    tx: &mut Tx,
    org_id: Uuid,
    s: &NewSubtask,
    program_id: ProgramId,
    created_by: Uuid,
) -> Result<Subtask> {
    // Appending reads the last position on subtasks_position_idx; the
    // caller holds the task's share lock, and ties break by id anyway.
    let row: SubtaskRow = sqlx::query_as(&format!(
        "INSERT INTO subtasks (org_id, id, task_id, program_id, title, description, status, position, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, (SELECT coalesce(max(position), 0) + 1 \
         FROM subtasks WHERE org_id = $1 AND task_id = $3)), $9) RETURNING {COLS}"
    ))
    .bind(org_id)
    .bind(Uuid::now_v7())
    .bind(s.task_id.uuid())
    .bind(program_id.uuid())
    .bind(&s.title)
    .bind(&s.description)
    .bind(s.status.as_str())
    .bind(s.position)
    .bind(created_by)
    .fetch_one(&mut **tx)
    .await?;
    row.try_into()
}

pub async fn get_subtask(
    tx: &mut Tx,
    org_id: Uuid,
    id: SubtaskId,
    lock: Lock,
) -> Result<Option<Subtask>> {
    let row: Option<SubtaskRow> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM subtasks WHERE org_id = $1 AND id = $2{}",
        lock.sql()
    ))
    .bind(org_id)
    .bind(id.uuid())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Subtask::try_from).transpose()
}

/// By `(position, id)` after the cursor, on subtasks_position_idx.
pub async fn list_subtasks(
    tx: &mut Tx,
    org_id: Uuid,
    task_id: TaskId,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<Subtask>> {
    let mut q =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLS} FROM subtasks WHERE org_id = "));
    q.push_bind(org_id)
        .push(" AND task_id = ")
        .push_bind(task_id.uuid());
    if let Some((position, id)) = after {
        q.push(" AND (position, id) > (")
            .push_bind(position)
            .push("::integer, ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY position, id LIMIT ").push_bind(limit);
    let rows: Vec<SubtaskRow> = q.build_query_as().fetch_all(&mut **tx).await?;
    rows.into_iter().map(Subtask::try_from).collect()
}

/// Writes the user-editable fields of `s`.
pub async fn update_subtask(tx: &mut Tx, org_id: Uuid, s: &Subtask) -> Result<Subtask> {
    let row: SubtaskRow = sqlx::query_as(&format!(
        "UPDATE subtasks SET title = $3, description = $4, status = $5, position = $6, \
         version = version + 1, updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(org_id)
    .bind(s.id.uuid())
    .bind(&s.title)
    .bind(&s.description)
    .bind(s.status.as_str())
    .bind(s.position)
    .fetch_one(&mut **tx)
    .await?;
    row.try_into()
}

pub async fn delete_subtask(tx: &mut Tx, org_id: Uuid, id: SubtaskId) -> Result<()> {
    sqlx::query("DELETE FROM subtasks WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id.uuid())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

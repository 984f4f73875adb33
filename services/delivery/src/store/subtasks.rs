//! Subtasks.

use chrono::{DateTime, Utc};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::Lock;

/// A subtask row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubtaskRow {
    pub org_id: Uuid,
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

const COLS: &str = "org_id, id, task_id, program_id, title, description, status, position, \
     created_by, version, created_at, updated_at";

/// What a new subtask is.
pub struct NewSubtask<'a> {
    pub org_id: Uuid,
    pub task_id: Uuid,
    pub program_id: Uuid,
    pub title: &'a str,
    pub description: &'a str,
    pub status: &'a str,
    /// `None`: after the task's last subtask.
    pub position: Option<i32>,
    pub created_by: Uuid,
}

pub async fn insert_subtask(tx: &mut Tx, s: NewSubtask<'_>) -> Result<SubtaskRow> {
    // Appending reads the last position on subtasks_position_idx; the
    // caller holds the task's share lock, and ties break by id anyway.
    Ok(sqlx::query_as(&format!(
        "INSERT INTO subtasks (org_id, id, task_id, program_id, title, description, status, position, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, (SELECT coalesce(max(position), 0) + 1 \
         FROM subtasks WHERE org_id = $1 AND task_id = $3)), $9) RETURNING {COLS}"
    ))
    .bind(s.org_id)
    .bind(Uuid::now_v7())
    .bind(s.task_id)
    .bind(s.program_id)
    .bind(s.title)
    .bind(s.description)
    .bind(s.status)
    .bind(s.position)
    .bind(s.created_by)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn get_subtask(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    lock: Lock,
) -> Result<Option<SubtaskRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM subtasks WHERE org_id = $1 AND id = $2{}",
        lock.sql()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// By `(position, id)` after the cursor, on subtasks_position_idx.
pub async fn list_subtasks(
    tx: &mut Tx,
    org_id: Uuid,
    task_id: Uuid,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<SubtaskRow>> {
    let mut q =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLS} FROM subtasks WHERE org_id = "));
    q.push_bind(org_id)
        .push(" AND task_id = ")
        .push_bind(task_id);
    if let Some((position, id)) = after {
        q.push(" AND (position, id) > (")
            .push_bind(position)
            .push("::integer, ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY position, id LIMIT ").push_bind(limit);
    Ok(q.build_query_as().fetch_all(&mut **tx).await?)
}

pub async fn update_subtask(tx: &mut Tx, row: &SubtaskRow) -> Result<SubtaskRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE subtasks SET title = $3, description = $4, status = $5, position = $6, \
         version = version + 1, updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(row.org_id)
    .bind(row.id)
    .bind(&row.title)
    .bind(&row.description)
    .bind(&row.status)
    .bind(row.position)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn delete_subtask(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM subtasks WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

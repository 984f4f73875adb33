//! Workstreams.

use chrono::{DateTime, Utc};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Lock, Removed};

/// A workstream row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkstreamRow {
    pub org_id: Uuid,
    pub id: Uuid,
    pub program_id: Uuid,
    pub name: String,
    pub description: String,
    pub position: i32,
    pub created_by: Uuid,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLS: &str = "org_id, id, program_id, name, description, position, created_by, version, created_at, updated_at";

/// What a new workstream is.
pub struct NewWorkstream<'a> {
    pub org_id: Uuid,
    pub program_id: Uuid,
    pub name: &'a str,
    pub description: &'a str,
    /// `None`: after the program's last workstream.
    pub position: Option<i32>,
    pub created_by: Uuid,
}

pub async fn insert_workstream(tx: &mut Tx, w: NewWorkstream<'_>) -> Result<WorkstreamRow> {
    // Appending reads the last position on workstreams_position_idx. Two
    // concurrent appends may share a position; the id breaks the tie.
    Ok(sqlx::query_as(&format!(
        "INSERT INTO workstreams (org_id, id, program_id, name, description, position, created_by) \
         VALUES ($1, $2, $3, $4, $5, coalesce($6, (SELECT coalesce(max(position), 0) + 1 \
         FROM workstreams WHERE org_id = $1 AND program_id = $3)), $7) RETURNING {COLS}"
    ))
    .bind(w.org_id)
    .bind(Uuid::now_v7())
    .bind(w.program_id)
    .bind(w.name)
    .bind(w.description)
    .bind(w.position)
    .bind(w.created_by)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn get_workstream(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    lock: Lock,
) -> Result<Option<WorkstreamRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM workstreams WHERE org_id = $1 AND id = $2{}",
        lock.sql()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// By `(position, id)` after the cursor, on workstreams_position_idx.
pub async fn list_workstreams(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: Uuid,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<WorkstreamRow>> {
    let mut q =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLS} FROM workstreams WHERE org_id = "));
    q.push_bind(org_id)
        .push(" AND program_id = ")
        .push_bind(program_id);
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

pub async fn update_workstream(tx: &mut Tx, row: &WorkstreamRow) -> Result<WorkstreamRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE workstreams SET name = $3, description = $4, position = $5, version = version + 1, \
         updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(row.org_id)
    .bind(row.id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(row.position)
    .fetch_one(&mut **tx)
    .await?)
}

/// Deletes a workstream with its requirements and their edges; tasks under
/// those requirements are detached (and their version bumped).
pub async fn delete_workstream(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<Removed> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM requirements WHERE org_id = $1 AND workstream_id = $2 FOR UPDATE",
    )
    .bind(org_id)
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    let mut removed = super::delete_requirements(tx, org_id, &ids).await?;
    removed.workstreams = sqlx::query("DELETE FROM workstreams WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(removed)
}

//! Workstreams.

use chrono::{DateTime, Utc};
use foundry_domain::Id;
use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Lock, Removed};
use crate::domain::{NewWorkstream, ProgramId, Workstream, WorkstreamId};

/// A workstream row, as read.
#[derive(Debug, Clone, sqlx::FromRow)]
struct WorkstreamRow {
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

impl TryFrom<WorkstreamRow> for Workstream {
    type Error = Error;

    fn try_from(r: WorkstreamRow) -> Result<Workstream> {
        Ok(Workstream {
            id: Id::from_uuid(r.id),
            program_id: Id::from_uuid(r.program_id),
            name: r.name,
            description: r.description,
            position: r.position,
            created_by: r.created_by,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLS: &str =
    "id, program_id, name, description, position, created_by, version, created_at, updated_at";

/// Inserts a new workstream made by `created_by`.
pub async fn insert_workstream(
    tx: &mut Tx,
    org_id: Uuid,
    w: &NewWorkstream,
    created_by: Uuid,
) -> Result<Workstream> {
    // Appending reads the last position on workstreams_position_idx. Two
    // concurrent appends may share a position; the id breaks the tie.
    let row: WorkstreamRow = sqlx::query_as(&format!(
        "INSERT INTO workstreams (org_id, id, program_id, name, description, position, created_by) \
         VALUES ($1, $2, $3, $4, $5, coalesce($6, (SELECT coalesce(max(position), 0) + 1 \
         FROM workstreams WHERE org_id = $1 AND program_id = $3)), $7) RETURNING {COLS}"
    ))
    .bind(org_id)
    .bind(Uuid::now_v7())
    .bind(w.program_id.uuid())
    .bind(&w.name)
    .bind(&w.description)
    .bind(w.position)
    .bind(created_by)
    .fetch_one(&mut **tx)
    .await?;
    row.try_into()
}

pub async fn get_workstream(
    tx: &mut Tx,
    org_id: Uuid,
    id: WorkstreamId,
    lock: Lock,
) -> Result<Option<Workstream>> {
    let row: Option<WorkstreamRow> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM workstreams WHERE org_id = $1 AND id = $2{}",
        lock.sql()
    ))
    .bind(org_id)
    .bind(id.uuid())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(Workstream::try_from).transpose()
}

/// By `(position, id)` after the cursor, on workstreams_position_idx.
pub async fn list_workstreams(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: ProgramId,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<Workstream>> {
    let mut q =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLS} FROM workstreams WHERE org_id = "));
    q.push_bind(org_id)
        .push(" AND program_id = ")
        .push_bind(program_id.uuid());
    if let Some((position, id)) = after {
        q.push(" AND (position, id) > (")
            .push_bind(position)
            .push("::integer, ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY position, id LIMIT ").push_bind(limit);
    let rows: Vec<WorkstreamRow> = q.build_query_as().fetch_all(&mut **tx).await?;
    rows.into_iter().map(Workstream::try_from).collect()
}

/// Writes the user-editable fields of `w`.
pub async fn update_workstream(tx: &mut Tx, org_id: Uuid, w: &Workstream) -> Result<Workstream> {
    let row: WorkstreamRow = sqlx::query_as(&format!(
        "UPDATE workstreams SET name = $3, description = $4, position = $5, version = version + 1, \
         updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(org_id)
    .bind(w.id.uuid())
    .bind(&w.name)
    .bind(&w.description)
    .bind(w.position)
    .fetch_one(&mut **tx)
    .await?;
    row.try_into()
}

/// Deletes a workstream with its requirements and their edges; tasks under
/// those requirements are detached (and their version bumped).
pub async fn delete_workstream(tx: &mut Tx, org_id: Uuid, id: WorkstreamId) -> Result<Removed> {
    let id = id.uuid();
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

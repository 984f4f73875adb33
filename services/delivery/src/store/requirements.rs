//! Requirements.

use chrono::{DateTime, Utc};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Lock, Removed, newest_first};

/// A requirement row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequirementRow {
    pub org_id: Uuid,
    pub id: Uuid,
    pub program_id: Uuid,
    pub workstream_id: Uuid,
    pub title: String,
    pub description: String,
    pub priority: String,
    pub status: String,
    pub acceptance_criteria: Vec<String>,
    pub batch: String,
    pub created_by: Uuid,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(super) const COLS: &str = "org_id, id, program_id, workstream_id, title, description, priority, \
     status, acceptance_criteria, batch, created_by, version, created_at, updated_at";

/// What a new requirement is.
pub struct NewRequirement<'a> {
    pub org_id: Uuid,
    pub program_id: Uuid,
    pub workstream_id: Uuid,
    pub title: &'a str,
    pub description: &'a str,
    pub priority: &'a str,
    pub status: &'a str,
    pub acceptance_criteria: &'a [String],
    pub batch: &'a str,
    pub created_by: Uuid,
}

pub async fn insert_requirement(tx: &mut Tx, r: NewRequirement<'_>) -> Result<RequirementRow> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO requirements (org_id, id, program_id, workstream_id, title, description, priority, \
         status, acceptance_criteria, batch, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLS}"
    ))
    .bind(r.org_id)
    .bind(Uuid::now_v7())
    .bind(r.program_id)
    .bind(r.workstream_id)
    .bind(r.title)
    .bind(r.description)
    .bind(r.priority)
    .bind(r.status)
    .bind(r.acceptance_criteria)
    .bind(r.batch)
    .bind(r.created_by)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn get_requirement(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    lock: Lock,
) -> Result<Option<RequirementRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM requirements WHERE org_id = $1 AND id = $2{}",
        lock.sql()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Filters of ListRequirements (at least one of program and workstream).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequirementFilter<'a> {
    pub program_id: Option<Uuid>,
    pub workstream_id: Option<Uuid>,
    pub status: Option<&'a str>,
}

/// Newest first, on `requirements_workstream[_status]_idx` when a
/// workstream is named, else `requirements_program_id_key` /
/// `requirements_program_status_idx`.
pub async fn list_requirements(
    tx: &mut Tx,
    org_id: Uuid,
    f: RequirementFilter<'_>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RequirementRow>> {
    let mut q =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLS} FROM requirements WHERE org_id = "));
    q.push_bind(org_id);
    if let Some(w) = f.workstream_id {
        q.push(" AND workstream_id = ").push_bind(w);
    }
    if let Some(p) = f.program_id {
        q.push(" AND program_id = ").push_bind(p);
    }
    if let Some(s) = f.status {
        q.push(" AND status = ").push_bind(s);
    }
    newest_first(&mut q, "id", before, limit);
    Ok(q.build_query_as().fetch_all(&mut **tx).await?)
}

/// Writes the user-editable fields of `row`.
pub async fn update_requirement(tx: &mut Tx, row: &RequirementRow) -> Result<RequirementRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE requirements SET workstream_id = $3, title = $4, description = $5, priority = $6, \
         status = $7, acceptance_criteria = $8, batch = $9, version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(row.org_id)
    .bind(row.id)
    .bind(row.workstream_id)
    .bind(&row.title)
    .bind(&row.description)
    .bind(&row.priority)
    .bind(&row.status)
    .bind(&row.acceptance_criteria)
    .bind(&row.batch)
    .fetch_one(&mut **tx)
    .await?)
}

/// Deletes requirements (the caller holds their row locks) with every edge
/// touching them, detaching their tasks.
pub async fn delete_requirements(tx: &mut Tx, org_id: Uuid, ids: &[Uuid]) -> Result<Removed> {
    let mut removed = Removed::default();
    if ids.is_empty() {
        return Ok(removed);
    }
    removed.dependencies = sqlx::query(
        "DELETE FROM requirement_dependencies WHERE org_id = $1 \
         AND (requirement_id = ANY($2) OR depends_on_id = ANY($2))",
    )
    .bind(org_id)
    .bind(ids)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    removed.tasks_detached = sqlx::query(
        "UPDATE tasks SET requirement_id = NULL, version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND requirement_id = ANY($2)",
    )
    .bind(org_id)
    .bind(ids)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    removed.requirements =
        sqlx::query("DELETE FROM requirements WHERE org_id = $1 AND id = ANY($2)")
            .bind(org_id)
            .bind(ids)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    Ok(removed)
}

/// A requirement as a plan needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanRow {
    pub id: Uuid,
    pub workstream_id: Uuid,
    pub title: String,
    pub priority: String,
    pub status: String,
}

/// Every requirement of a program, on `requirements_program_id_key`.
pub async fn plan_requirements(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: Uuid,
) -> Result<Vec<PlanRow>> {
    Ok(sqlx::query_as(
        "SELECT id, workstream_id, title, priority, status FROM requirements \
         WHERE org_id = $1 AND program_id = $2 ORDER BY id",
    )
    .bind(org_id)
    .bind(program_id)
    .fetch_all(&mut **tx)
    .await?)
}

//! Planner phases.

use chrono::{DateTime, Utc};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::Lock;

/// A planner phase row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlannerPhaseRow {
    pub org_id: Uuid,
    pub id: Uuid,
    pub program_id: Uuid,
    pub name: String,
    pub description: String,
    pub position: i32,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLS: &str = "org_id, id, program_id, name, description, position, start_at, end_at, \
     created_by, version, created_at, updated_at";

/// What a new phase is.
pub struct NewPlannerPhase<'a> {
    pub org_id: Uuid,
    pub program_id: Uuid,
    pub name: &'a str,
    pub description: &'a str,
    /// `None`: after the program's last phase.
    pub position: Option<i32>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub created_by: Uuid,
}

pub async fn insert_planner_phase(tx: &mut Tx, p: NewPlannerPhase<'_>) -> Result<PlannerPhaseRow> {
    // Appending reads the last position on planner_phases_position_idx; the
    // caller holds the program's key share lock, and ties break by id.
    Ok(sqlx::query_as(&format!(
        "INSERT INTO planner_phases (org_id, id, program_id, name, description, position, \
         start_at, end_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, coalesce($6, (SELECT coalesce(max(position), 0) + 1 \
         FROM planner_phases WHERE org_id = $1 AND program_id = $3)), $7, $8, $9) RETURNING {COLS}"
    ))
    .bind(p.org_id)
    .bind(Uuid::now_v7())
    .bind(p.program_id)
    .bind(p.name)
    .bind(p.description)
    .bind(p.position)
    .bind(p.start_at)
    .bind(p.end_at)
    .bind(p.created_by)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn get_planner_phase(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    lock: Lock,
) -> Result<Option<PlannerPhaseRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM planner_phases WHERE org_id = $1 AND id = $2{}",
        lock.sql()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// By `(position, id)` after the cursor, on planner_phases_position_idx.
pub async fn list_planner_phases(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: Uuid,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<PlannerPhaseRow>> {
    let mut q =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLS} FROM planner_phases WHERE org_id = "));
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

pub async fn update_planner_phase(tx: &mut Tx, row: &PlannerPhaseRow) -> Result<PlannerPhaseRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE planner_phases SET name = $3, description = $4, position = $5, start_at = $6, \
         end_at = $7, version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(row.org_id)
    .bind(row.id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(row.position)
    .bind(row.start_at)
    .bind(row.end_at)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn delete_planner_phase(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM planner_phases WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

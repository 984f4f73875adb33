//! Goals.

use chrono::{DateTime, Utc};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Lock, newest_first};

/// A goal row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GoalRow {
    pub org_id: Uuid,
    pub id: Uuid,
    pub program_id: Uuid,
    pub title: String,
    pub description: String,
    pub target_metric: String,
    pub target_at: Option<DateTime<Utc>>,
    pub status: String,
    pub owner_user_id: Option<Uuid>,
    pub created_by: Uuid,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLS: &str = "org_id, id, program_id, title, description, target_metric, target_at, \
     status, owner_user_id, created_by, version, created_at, updated_at";

/// Inserts `g` under a new id (its id, version and times are ignored).
pub async fn insert_goal(tx: &mut Tx, g: &GoalRow) -> Result<GoalRow> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO goals (org_id, id, program_id, title, description, target_metric, \
         target_at, status, owner_user_id, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLS}"
    ))
    .bind(g.org_id)
    .bind(Uuid::now_v7())
    .bind(g.program_id)
    .bind(&g.title)
    .bind(&g.description)
    .bind(&g.target_metric)
    .bind(g.target_at)
    .bind(&g.status)
    .bind(g.owner_user_id)
    .bind(g.created_by)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn get_goal(tx: &mut Tx, org_id: Uuid, id: Uuid, lock: Lock) -> Result<Option<GoalRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM goals WHERE org_id = $1 AND id = $2{}",
        lock.sql()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Newest first: a status walks `goals_status_idx`, none
/// `goals_program_id_key`.
pub async fn list_goals(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: Uuid,
    status: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<GoalRow>> {
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {COLS} FROM goals WHERE org_id = "));
    q.push_bind(org_id)
        .push(" AND program_id = ")
        .push_bind(program_id);
    if let Some(s) = status {
        q.push(" AND status = ").push_bind(s);
    }
    newest_first(&mut q, "id", before, limit);
    Ok(q.build_query_as().fetch_all(&mut **tx).await?)
}

/// Writes the user-editable fields of `row`.
pub async fn update_goal(tx: &mut Tx, row: &GoalRow) -> Result<GoalRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE goals SET title = $3, description = $4, target_metric = $5, target_at = $6, \
         status = $7, owner_user_id = $8, version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(row.org_id)
    .bind(row.id)
    .bind(&row.title)
    .bind(&row.description)
    .bind(&row.target_metric)
    .bind(row.target_at)
    .bind(&row.status)
    .bind(row.owner_user_id)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn delete_goal(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM goals WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

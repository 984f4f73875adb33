//! Risks.

use chrono::{DateTime, Utc};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Lock, newest_first};

/// A risk row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RiskRow {
    pub org_id: Uuid,
    pub id: Uuid,
    pub program_id: Uuid,
    pub title: String,
    pub description: String,
    pub likelihood: i16,
    pub impact: i16,
    pub severity: String,
    pub mitigation: String,
    pub owner_user_id: Option<Uuid>,
    pub status: String,
    pub created_by: Uuid,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLS: &str = "org_id, id, program_id, title, description, likelihood, impact, severity, \
     mitigation, owner_user_id, status, created_by, version, created_at, updated_at";

/// Inserts `r` under a new id (its id, version and times are ignored).
pub async fn insert_risk(tx: &mut Tx, r: &RiskRow) -> Result<RiskRow> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO risks (org_id, id, program_id, title, description, likelihood, impact, \
         severity, mitigation, owner_user_id, status, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLS}"
    ))
    .bind(r.org_id)
    .bind(Uuid::now_v7())
    .bind(r.program_id)
    .bind(&r.title)
    .bind(&r.description)
    .bind(r.likelihood)
    .bind(r.impact)
    .bind(&r.severity)
    .bind(&r.mitigation)
    .bind(r.owner_user_id)
    .bind(&r.status)
    .bind(r.created_by)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn get_risk(tx: &mut Tx, org_id: Uuid, id: Uuid, lock: Lock) -> Result<Option<RiskRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM risks WHERE org_id = $1 AND id = $2{}",
        lock.sql()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Filters of ListRisks; all that are set apply.
#[derive(Clone, Copy, Debug)]
pub struct RiskFilter<'a> {
    pub program_id: Uuid,
    pub severity: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// Newest first: a severity walks `risks_severity_idx` (a status is then
/// checked on the rows found), a status alone `risks_status_idx`, none
/// `risks_program_id_key`.
pub async fn list_risks(
    tx: &mut Tx,
    org_id: Uuid,
    f: RiskFilter<'_>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RiskRow>> {
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {COLS} FROM risks WHERE org_id = "));
    q.push_bind(org_id)
        .push(" AND program_id = ")
        .push_bind(f.program_id);
    if let Some(s) = f.severity {
        q.push(" AND severity = ").push_bind(s);
    }
    if let Some(s) = f.status {
        q.push(" AND status = ").push_bind(s);
    }
    newest_first(&mut q, "id", before, limit);
    Ok(q.build_query_as().fetch_all(&mut **tx).await?)
}

/// Writes the user-editable fields of `row` (and its derived severity).
pub async fn update_risk(tx: &mut Tx, row: &RiskRow) -> Result<RiskRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE risks SET title = $3, description = $4, likelihood = $5, impact = $6, \
         severity = $7, mitigation = $8, owner_user_id = $9, status = $10, \
         version = version + 1, updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(row.org_id)
    .bind(row.id)
    .bind(&row.title)
    .bind(&row.description)
    .bind(row.likelihood)
    .bind(row.impact)
    .bind(&row.severity)
    .bind(&row.mitigation)
    .bind(row.owner_user_id)
    .bind(&row.status)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn delete_risk(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM risks WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

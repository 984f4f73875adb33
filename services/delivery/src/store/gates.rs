//! Sprint gates and their evaluations (insert-only: the service role has
//! no UPDATE or DELETE on `sprint_gate_evaluations`).

use chrono::{DateTime, Utc};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Lock, newest_first};
use crate::domain::{Criterion, CriterionResult};

/// A sprint gate row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GateRow {
    pub org_id: Uuid,
    pub id: Uuid,
    pub program_id: Uuid,
    pub sprint_id: Uuid,
    pub name: String,
    pub description: String,
    pub criteria: Json<Vec<Criterion>>,
    pub created_by: Uuid,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLS: &str = "org_id, id, program_id, sprint_id, name, description, criteria, created_by, \
     version, created_at, updated_at";

/// Inserts `g` under a new id (its id, version and times are ignored).
pub async fn insert_gate(tx: &mut Tx, g: &GateRow) -> Result<GateRow> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO sprint_gates (org_id, id, program_id, sprint_id, name, description, criteria, \
         created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLS}"
    ))
    .bind(g.org_id)
    .bind(Uuid::now_v7())
    .bind(g.program_id)
    .bind(g.sprint_id)
    .bind(&g.name)
    .bind(&g.description)
    .bind(&g.criteria)
    .bind(g.created_by)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn get_gate(tx: &mut Tx, org_id: Uuid, id: Uuid, lock: Lock) -> Result<Option<GateRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM sprint_gates WHERE org_id = $1 AND id = $2{}",
        lock.sql()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Newest first, on `sprint_gates_sprint_id_key`.
pub async fn list_gates(
    tx: &mut Tx,
    org_id: Uuid,
    sprint_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<GateRow>> {
    let mut q =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLS} FROM sprint_gates WHERE org_id = "));
    q.push_bind(org_id)
        .push(" AND sprint_id = ")
        .push_bind(sprint_id);
    newest_first(&mut q, "id", before, limit);
    Ok(q.build_query_as().fetch_all(&mut **tx).await?)
}

/// Writes the user-editable fields of `row`.
pub async fn update_gate(tx: &mut Tx, row: &GateRow) -> Result<GateRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE sprint_gates SET name = $3, description = $4, criteria = $5, \
         version = version + 1, updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(row.org_id)
    .bind(row.id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(&row.criteria)
    .fetch_one(&mut **tx)
    .await?)
}

/// Deletes a gate (its evaluations go by cascade); returns how many
/// evaluations went.
pub async fn delete_gate(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<u64> {
    let evaluations: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sprint_gate_evaluations WHERE org_id = $1 AND gate_id = $2",
    )
    .bind(org_id)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM sprint_gates WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(evaluations.unsigned_abs())
}

/// A sprint gate evaluation row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EvaluationRow {
    pub org_id: Uuid,
    pub id: Uuid,
    pub gate_id: Uuid,
    pub sprint_id: Uuid,
    pub program_id: Uuid,
    pub evaluator_id: Uuid,
    pub evaluator_type: String,
    pub results: Json<Vec<CriterionResult>>,
    pub passed: bool,
    pub created_at: DateTime<Utc>,
}

const EVAL_COLS: &str = "org_id, id, gate_id, sprint_id, program_id, evaluator_id, evaluator_type, \
     results, passed, created_at";

/// Inserts `e` under a new id (its id and time are ignored).
pub async fn insert_evaluation(tx: &mut Tx, e: &EvaluationRow) -> Result<EvaluationRow> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO sprint_gate_evaluations (org_id, id, gate_id, sprint_id, program_id, \
         evaluator_id, evaluator_type, results, passed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {EVAL_COLS}"
    ))
    .bind(e.org_id)
    .bind(Uuid::now_v7())
    .bind(e.gate_id)
    .bind(e.sprint_id)
    .bind(e.program_id)
    .bind(e.evaluator_id)
    .bind(&e.evaluator_type)
    .bind(&e.results)
    .bind(e.passed)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn get_evaluation(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<Option<EvaluationRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {EVAL_COLS} FROM sprint_gate_evaluations WHERE org_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Newest first, on `sprint_gate_evaluations_gate_idx`.
pub async fn list_evaluations(
    tx: &mut Tx,
    org_id: Uuid,
    gate_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<EvaluationRow>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {EVAL_COLS} FROM sprint_gate_evaluations WHERE org_id = "
    ));
    q.push_bind(org_id)
        .push(" AND gate_id = ")
        .push_bind(gate_id);
    newest_first(&mut q, "id", before, limit);
    Ok(q.build_query_as().fetch_all(&mut **tx).await?)
}

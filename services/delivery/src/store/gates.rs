//! Sprint gates and their evaluations (insert-only: the service role has
//! no UPDATE or DELETE on `sprint_gate_evaluations`).

use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Computed, Resource};
use sqlx::types::Json;
use uuid::Uuid;

use super::delete_where;
use crate::domain::{Evaluation, NewEvaluation, NewSprintGate, SprintGate, SprintGateId};

impl Resource for SprintGate {
    type New = NewSprintGate;
    foundry_resource::names!("delivery", "sprint_gate", "sprint_gates");

    const COMPUTED: &'static [Computed] = &[Computed::FromParent {
        column: "program_id",
        parent: "sprints",
        key: "sprint_id",
    }];
}

/// Deletes a gate (its evaluations go by cascade); returns how many
/// evaluations went.
pub async fn delete_gate(tx: &mut Tx, org_id: Uuid, id: SprintGateId) -> Result<u64> {
    let id = id.uuid();
    let evaluations: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sprint_gate_evaluations WHERE org_id = $1 AND gate_id = $2",
    )
    .bind(org_id)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    delete_where(tx, "sprint_gates", "id", org_id, id).await?;
    Ok(evaluations.unsigned_abs())
}

/// Evaluations are read with [`foundry_resource::get`]; they are never
/// written after insert (no update, no delete).
impl Resource for Evaluation {
    type New = NewEvaluation;
    foundry_resource::names!(
        "delivery",
        "sprint_gate_evaluation",
        "sprint_gate_evaluations"
    );
}

const EVAL_COLS: &str = "org_id, id, gate_id, sprint_id, program_id, evaluator_id, evaluator_type, \
     results, passed, created_at";

/// Records an evaluation under a new id.
pub async fn insert_evaluation(tx: &mut Tx, org_id: Uuid, e: &NewEvaluation) -> Result<Evaluation> {
    let row = sqlx::query(&format!(
        "INSERT INTO sprint_gate_evaluations (org_id, id, gate_id, sprint_id, program_id, \
         evaluator_id, evaluator_type, results, passed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {EVAL_COLS}"
    ))
    .bind(org_id)
    .bind(Uuid::now_v7())
    .bind(e.gate_id.uuid())
    .bind(e.sprint_id.uuid())
    .bind(e.program_id.uuid())
    .bind(e.evaluator_id)
    .bind(e.evaluator_type.as_str())
    .bind(Json(&e.results))
    .bind(e.passed)
    .fetch_one(&mut **tx)
    .await?;
    Evaluation::decode(&row)
}

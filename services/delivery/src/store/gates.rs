//! Sprint gates and their evaluations (insert-only: the service role has
//! no UPDATE or DELETE on `sprint_gate_evaluations`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use foundry_domain::{Id, StoredEnum};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Insert, Resource, StampRow, Write};
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::{
    Criterion, CriterionResult, Evaluation, EvaluationId, EvaluatorType, NewEvaluation,
    NewSprintGate, SprintGate, SprintGateId,
};

/// A sprint gate row, as read (public only as [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GateRow {
    pub id: Uuid,
    pub program_id: Uuid,
    pub sprint_id: Uuid,
    pub name: String,
    pub description: String,
    pub criteria: Json<Vec<Criterion>>,
    #[sqlx(flatten)]
    pub stamp: StampRow,
}

impl Resource for SprintGate {
    type Key = SprintGateId;
    type Row = GateRow;
    const KIND: &'static str = "delivery.sprint_gate";
    const NAME: &'static str = "sprint gate";
    const TABLE: &'static str = "sprint_gates";
    const COLUMNS: &'static str = COLS;
    const NOT_FOUND: &'static str = "SPRINT_GATE_NOT_FOUND";

    fn from_row(r: GateRow) -> Result<SprintGate> {
        Ok(SprintGate {
            id: Id::from_uuid(r.id),
            fields: NewSprintGate {
                sprint_id: Id::from_uuid(r.sprint_id),
                name: r.name,
                description: r.description,
                criteria: r.criteria.0,
            },
            program_id: Id::from_uuid(r.program_id),
            stamp: r.stamp.into(),
        })
    }

    fn key(&self) -> SprintGateId {
        self.id
    }

    fn version(&self) -> i64 {
        self.stamp.version
    }

    fn project(&self) -> Option<Uuid> {
        Some(self.program_id.uuid())
    }
}

const COLS: &str = "org_id, id, program_id, sprint_id, name, description, criteria, created_by, \
     version, created_at, updated_at";

/// Inserts a new gate made by `created_by`, in its sprint's program.
#[async_trait]
impl Insert for SprintGate {
    type New = NewSprintGate;

    async fn insert(
        g: &NewSprintGate,
        tx: &mut Tx,
        org_id: Uuid,
        created_by: Uuid,
    ) -> Result<SprintGate> {
        let row: GateRow = sqlx::query_as(&format!(
            "INSERT INTO sprint_gates (org_id, id, program_id, sprint_id, name, description, criteria, \
             created_by) VALUES ($1, $2, (SELECT program_id FROM sprints WHERE org_id = $1 AND id = $3), \
             $3, $4, $5, $6, $7) RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(Uuid::now_v7())
        .bind(g.sprint_id.uuid())
        .bind(&g.name)
        .bind(&g.description)
        .bind(Json(&g.criteria))
        .bind(created_by)
        .fetch_one(&mut **tx)
        .await?;
        SprintGate::from_row(row)
    }
}

/// Writes the user-editable fields of `g`.
#[async_trait]
impl Write for SprintGate {
    async fn write(&self, tx: &mut Tx, org_id: Uuid) -> Result<SprintGate> {
        let row: GateRow = sqlx::query_as(&format!(
            "UPDATE sprint_gates SET name = $3, description = $4, criteria = $5, \
             version = version + 1, updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(self.id.uuid())
        .bind(&self.fields.name)
        .bind(&self.fields.description)
        .bind(Json(&self.fields.criteria))
        .fetch_one(&mut **tx)
        .await?;
        SprintGate::from_row(row)
    }
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
    sqlx::query("DELETE FROM sprint_gates WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(evaluations.unsigned_abs())
}

/// A sprint gate evaluation row, as read (public only as
/// [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EvaluationRow {
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

/// Evaluations are read with [`foundry_resource::get`]; they are never
/// written after insert (no update, no delete).
impl Resource for Evaluation {
    type Key = EvaluationId;
    type Row = EvaluationRow;
    const KIND: &'static str = "delivery.sprint_gate_evaluation";
    const NAME: &'static str = "sprint gate evaluation";
    const TABLE: &'static str = "sprint_gate_evaluations";
    const COLUMNS: &'static str = EVAL_COLS;
    const NOT_FOUND: &'static str = "SPRINT_GATE_EVALUATION_NOT_FOUND";

    fn from_row(r: EvaluationRow) -> Result<Evaluation> {
        Ok(Evaluation {
            id: Id::from_uuid(r.id),
            fields: NewEvaluation {
                gate_id: Id::from_uuid(r.gate_id),
                sprint_id: Id::from_uuid(r.sprint_id),
                program_id: Id::from_uuid(r.program_id),
                evaluator_id: r.evaluator_id,
                evaluator_type: EvaluatorType::decode(
                    "sprint_gate_evaluations",
                    "evaluator_type",
                    &r.evaluator_type,
                )?,
                results: r.results.0,
                passed: r.passed,
            },
            created_at: r.created_at,
        })
    }

    fn key(&self) -> EvaluationId {
        self.id
    }

    /// Immutable: its first version is its only one.
    fn version(&self) -> i64 {
        1
    }

    fn project(&self) -> Option<Uuid> {
        Some(self.fields.program_id.uuid())
    }
}

const EVAL_COLS: &str = "org_id, id, gate_id, sprint_id, program_id, evaluator_id, evaluator_type, \
     results, passed, created_at";

/// Records an evaluation under a new id.
pub async fn insert_evaluation(tx: &mut Tx, org_id: Uuid, e: &NewEvaluation) -> Result<Evaluation> {
    let row: EvaluationRow = sqlx::query_as(&format!(
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
    Evaluation::from_row(row)
}

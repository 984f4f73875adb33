//! Planner phases.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use foundry_domain::Id;
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Insert, Resource, StampRow, Write};
use uuid::Uuid;

use crate::domain::{NewPlannerPhase, PlannerPhase, PlannerPhaseId};

/// A planner phase row, as read (public only as [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlannerPhaseRow {
    id: Uuid,
    program_id: Uuid,
    name: String,
    description: String,
    position: i32,
    start_at: Option<DateTime<Utc>>,
    end_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    stamp: StampRow,
}

impl Resource for PlannerPhase {
    type Key = PlannerPhaseId;
    type Row = PlannerPhaseRow;
    const KIND: &'static str = "delivery.planner_phase";
    const NAME: &'static str = "planner phase";
    const TABLE: &'static str = "planner_phases";
    const COLUMNS: &'static str = COLS;
    const NOT_FOUND: &'static str = "PLANNER_PHASE_NOT_FOUND";

    fn from_row(r: PlannerPhaseRow) -> Result<PlannerPhase> {
        Ok(PlannerPhase {
            id: Id::from_uuid(r.id),
            fields: NewPlannerPhase {
                program_id: Id::from_uuid(r.program_id),
                name: r.name,
                description: r.description,
                position: r.position,
                start_at: r.start_at,
                end_at: r.end_at,
            },
            stamp: r.stamp.into(),
        })
    }

    fn key(&self) -> PlannerPhaseId {
        self.id
    }

    fn version(&self) -> i64 {
        self.stamp.version
    }

    fn project(&self) -> Option<Uuid> {
        Some(self.fields.program_id.uuid())
    }
}

const COLS: &str = "id, program_id, name, description, position, start_at, end_at, \
     created_by, version, created_at, updated_at";

/// Inserts a new phase made by `created_by` (at the end when it names no
/// position).
#[async_trait]
impl Insert for PlannerPhase {
    type New = NewPlannerPhase;

    async fn insert(
        p: &NewPlannerPhase,
        tx: &mut Tx,
        org_id: Uuid,
        created_by: Uuid,
    ) -> Result<PlannerPhase> {
        // Appending reads the last position on planner_phases_position_idx; the
        // caller holds the program's key share lock, and ties break by id.
        let row: PlannerPhaseRow = sqlx::query_as(&format!(
            "INSERT INTO planner_phases (org_id, id, program_id, name, description, position, \
             start_at, end_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, coalesce($6, (SELECT coalesce(max(position), 0) + 1 \
             FROM planner_phases WHERE org_id = $1 AND program_id = $3)), $7, $8, $9) RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(Uuid::now_v7())
        .bind(p.program_id.uuid())
        .bind(&p.name)
        .bind(&p.description)
        .bind(p.position)
        .bind(p.start_at)
        .bind(p.end_at)
        .bind(created_by)
        .fetch_one(&mut **tx)
        .await?;
        PlannerPhase::from_row(row)
    }
}

/// Writes the user-editable fields of `p`.
#[async_trait]
impl Write for PlannerPhase {
    async fn write(&self, tx: &mut Tx, org_id: Uuid) -> Result<PlannerPhase> {
        let row: PlannerPhaseRow = sqlx::query_as(&format!(
            "UPDATE planner_phases SET name = $3, description = $4, position = $5, start_at = $6, \
             end_at = $7, version = version + 1, updated_at = now() \
             WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(self.id.uuid())
        .bind(&self.fields.name)
        .bind(&self.fields.description)
        .bind(self.fields.position)
        .bind(self.fields.start_at)
        .bind(self.fields.end_at)
        .fetch_one(&mut **tx)
        .await?;
        PlannerPhase::from_row(row)
    }
}

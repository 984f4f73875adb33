//! Sprints.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use foundry_domain::{Id, StoredEnum};
use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use foundry_resource::{Insert, Resource, StampRow, Write};
use uuid::Uuid;

use super::unique_or;
use crate::domain::{CapacityUnit, NewSprint, ProgramId, Sprint, SprintId, SprintStatus};

/// A sprint row, as read (public only as [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SprintRow {
    pub id: Uuid,
    pub program_id: Uuid,
    pub name: String,
    pub goal: String,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub capacity: f64,
    pub capacity_unit: String,
    pub status: String,
    #[sqlx(flatten)]
    pub stamp: StampRow,
}

impl Resource for Sprint {
    type Key = SprintId;
    type Row = SprintRow;
    const KIND: &'static str = "delivery.sprint";
    const NAME: &'static str = "sprint";
    const TABLE: &'static str = "sprints";
    const COLUMNS: &'static str = COLS;
    const NOT_FOUND: &'static str = "SPRINT_NOT_FOUND";

    fn from_row(r: SprintRow) -> Result<Sprint> {
        Ok(Sprint {
            id: Id::from_uuid(r.id),
            fields: NewSprint {
                program_id: Id::from_uuid(r.program_id),
                name: r.name,
                goal: r.goal,
                start_at: r.start_at,
                end_at: r.end_at,
                capacity: r.capacity,
                capacity_unit: CapacityUnit::decode("sprints", "capacity_unit", &r.capacity_unit)?,
            },
            status: SprintStatus::decode("sprints", "status", &r.status)?,
            stamp: r.stamp.into(),
        })
    }

    fn key(&self) -> SprintId {
        self.id
    }

    fn version(&self) -> i64 {
        self.stamp.version
    }

    fn project(&self) -> Option<Uuid> {
        Some(self.fields.program_id.uuid())
    }
}

const COLS: &str = "org_id, id, program_id, name, goal, start_at, end_at, capacity, capacity_unit, \
     status, created_by, version, created_at, updated_at";

/// Inserts a new (PLANNED) sprint made by `created_by`.
#[async_trait]
impl Insert for Sprint {
    type New = NewSprint;

    async fn insert(s: &NewSprint, tx: &mut Tx, org_id: Uuid, created_by: Uuid) -> Result<Sprint> {
        let row: SprintRow = sqlx::query_as(&format!(
            "INSERT INTO sprints (org_id, id, program_id, name, goal, start_at, end_at, capacity, \
             capacity_unit, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(Uuid::now_v7())
        .bind(s.program_id.uuid())
        .bind(&s.name)
        .bind(&s.goal)
        .bind(s.start_at)
        .bind(s.end_at)
        .bind(s.capacity)
        .bind(s.capacity_unit.as_str())
        .bind(created_by)
        .fetch_one(&mut **tx)
        .await?;
        Sprint::from_row(row)
    }
}

/// The program's ACTIVE sprint, if any, on `sprints_one_active_key`.
pub async fn active_sprint(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: ProgramId,
) -> Result<Option<SprintId>> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM sprints WHERE org_id = $1 AND program_id = $2 AND status = 'active'",
    )
    .bind(org_id)
    .bind(program_id.uuid())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(id.map(Id::from_uuid))
}

/// Writes the user-editable fields of `s`.
#[async_trait]
impl Write for Sprint {
    async fn write(&self, tx: &mut Tx, org_id: Uuid) -> Result<Sprint> {
        let row: SprintRow = sqlx::query_as(&format!(
            "UPDATE sprints SET name = $3, goal = $4, start_at = $5, end_at = $6, capacity = $7, \
             capacity_unit = $8, version = version + 1, updated_at = now() \
             WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(self.id.uuid())
        .bind(&self.fields.name)
        .bind(&self.fields.goal)
        .bind(self.fields.start_at)
        .bind(self.fields.end_at)
        .bind(self.fields.capacity)
        .bind(self.fields.capacity_unit.as_str())
        .fetch_one(&mut **tx)
        .await?;
        Sprint::from_row(row)
    }
}

/// Moves a sprint to `status`; a second ACTIVE sprint of the program (a
/// race past the caller's check) is `FAILED_PRECONDITION`.
pub async fn set_sprint_status(
    tx: &mut Tx,
    org_id: Uuid,
    id: SprintId,
    status: SprintStatus,
) -> Result<Sprint> {
    let row: SprintRow = sqlx::query_as(&format!(
        "UPDATE sprints SET status = $3, version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(org_id)
    .bind(id.uuid())
    .bind(status.as_str())
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| unique_or(e, "sprints_one_active_key", || already_active(None)))?;
    Sprint::from_row(row)
}

/// `FAILED_PRECONDITION`: the program already has an ACTIVE sprint.
pub fn already_active(active: Option<SprintId>) -> Error {
    let e = Error::failed_precondition(
        "SPRINT_ALREADY_ACTIVE",
        "the program already has an active sprint; complete it first",
    );
    match active {
        Some(id) => e.with_metadata("active_sprint_id", id.to_string()),
        None => e,
    }
}

/// What deleting a sprint removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SprintRemoved {
    pub gates: u64,
    pub evaluations: u64,
    /// Tasks kept but taken out of the sprint.
    pub tasks_unplanned: u64,
}

/// Deletes a sprint: its tasks are unplanned (and their version bumped),
/// its gates deleted (their evaluations go with them by cascade).
pub async fn delete_sprint(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: ProgramId,
    id: SprintId,
) -> Result<SprintRemoved> {
    let (program_id, id) = (program_id.uuid(), id.uuid());
    let mut removed = SprintRemoved {
        tasks_unplanned: sqlx::query(
            "UPDATE tasks SET sprint_id = NULL, version = version + 1, updated_at = now() \
             WHERE org_id = $1 AND program_id = $2 AND sprint_id = $3",
        )
        .bind(org_id)
        .bind(program_id)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        ..SprintRemoved::default()
    };
    removed.evaluations = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM sprint_gate_evaluations e JOIN sprint_gates g \
         ON e.org_id = g.org_id AND e.gate_id = g.id WHERE g.org_id = $1 AND g.sprint_id = $2",
    )
    .bind(org_id)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?
    .unsigned_abs();
    removed.gates = sqlx::query("DELETE FROM sprint_gates WHERE org_id = $1 AND sprint_id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM sprints WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(removed)
}

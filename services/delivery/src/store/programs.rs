//! Programs, and the cascade that deletes one with everything in it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use foundry_domain::{Id, StoredEnum};
use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use foundry_resource::{Insert, Resource, StampRow, Write};
use uuid::Uuid;

use super::{newest_first, set_column, unique_or};
use crate::domain::{NewProgram, Phase, Program, ProgramId};

/// A program row, as read (public only as [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProgramRow {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub source_platform: String,
    pub target_platform: String,
    pub phase: String,
    pub archived_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    pub stamp: StampRow,
}

impl Resource for Program {
    type Key = ProgramId;
    type Row = ProgramRow;
    const KIND: &'static str = "delivery.program";
    const NAME: &'static str = "program";
    const TABLE: &'static str = "programs";
    const COLUMNS: &'static str = PROGRAM_COLUMNS;
    const NOT_FOUND: &'static str = "PROGRAM_NOT_FOUND";

    fn from_row(r: ProgramRow) -> Result<Program> {
        Ok(Program {
            id: Id::from_uuid(r.id),
            fields: NewProgram {
                name: r.name,
                slug: r.slug,
                description: r.description,
                source_platform: r.source_platform,
                target_platform: r.target_platform,
            },
            phase: Phase::decode("programs", "phase", &r.phase)?,
            archived_at: r.archived_at,
            stamp: r.stamp.into(),
        })
    }

    fn key(&self) -> ProgramId {
        self.id
    }

    fn version(&self) -> i64 {
        self.stamp.version
    }

    /// A program is its own project.
    fn project(&self) -> Option<Uuid> {
        Some(self.id.uuid())
    }
}

/// The columns every program read returns (`org_id`, which scopes the
/// read, then `ProgramRow`'s).
pub const PROGRAM_COLUMNS: &str = "org_id, id, name, slug, description, source_platform, target_platform, phase, \
     archived_at, created_by, version, created_at, updated_at";

fn slug_taken(e: sqlx::Error) -> Error {
    unique_or(e, "programs_slug_key", || {
        Error::already_exists(
            "PROGRAM_SLUG_TAKEN",
            "program.slug",
            "a program with this slug exists in the organization",
        )
    })
}

/// Inserts a new program made by `created_by`.
#[async_trait]
impl Insert for Program {
    type New = NewProgram;

    async fn insert(
        p: &NewProgram,
        tx: &mut Tx,
        org_id: Uuid,
        created_by: Uuid,
    ) -> Result<Program> {
        let row: ProgramRow = sqlx::query_as(&format!(
            "INSERT INTO programs (org_id, id, name, slug, description, source_platform, target_platform, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {PROGRAM_COLUMNS}"
        ))
        .bind(org_id)
        .bind(Uuid::now_v7())
        .bind(&p.name)
        .bind(&p.slug)
        .bind(&p.description)
        .bind(&p.source_platform)
        .bind(&p.target_platform)
        .bind(created_by)
        .fetch_one(&mut **tx)
        .await
        .map_err(slug_taken)?;
        Program::from_row(row)
    }
}

/// Filters of ListPrograms.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProgramFilter {
    pub phase: Option<Phase>,
    pub archived: Option<bool>,
    /// Only this program (a project-bound caller).
    pub only: Option<Uuid>,
}

/// Newest first: on the primary key, or `programs_phase_idx` /
/// `programs_archived_idx` when filtered.
pub async fn list_programs(
    tx: &mut Tx,
    org_id: Uuid,
    f: ProgramFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Program>> {
    let mut q = super::select::<Program>(org_id);
    if let Some(phase) = f.phase {
        q.push(" AND phase = ").push_bind(phase.as_str());
    }
    if let Some(archived) = f.archived {
        q.push(" AND archived = ").push_bind(archived);
    }
    if let Some(only) = f.only {
        q.push(" AND id = ").push_bind(only);
    }
    newest_first(&mut q, "id", before, limit);
    super::fetch_rows(q, tx).await
}

/// Writes the user-editable fields of `p`.
#[async_trait]
impl Write for Program {
    async fn write(&self, tx: &mut Tx, org_id: Uuid) -> Result<Program> {
        let row: ProgramRow = sqlx::query_as(&format!(
            "UPDATE programs SET name = $3, slug = $4, description = $5, source_platform = $6, \
             target_platform = $7, version = version + 1, updated_at = now() \
             WHERE org_id = $1 AND id = $2 RETURNING {PROGRAM_COLUMNS}"
        ))
        .bind(org_id)
        .bind(self.id.uuid())
        .bind(&self.fields.name)
        .bind(&self.fields.slug)
        .bind(&self.fields.description)
        .bind(&self.fields.source_platform)
        .bind(&self.fields.target_platform)
        .fetch_one(&mut **tx)
        .await
        .map_err(slug_taken)?;
        Program::from_row(row)
    }
}

/// Moves a program to `phase`.
pub async fn set_program_phase(
    tx: &mut Tx,
    org_id: Uuid,
    id: ProgramId,
    phase: Phase,
) -> Result<Program> {
    set_column(tx, org_id, id, "phase = $3", phase.as_str()).await
}

/// Archives a program (now) or unarchives it.
pub async fn set_program_archived(
    tx: &mut Tx,
    org_id: Uuid,
    id: ProgramId,
    archived: bool,
) -> Result<Program> {
    let assignment = "archived_at = CASE WHEN $3 THEN now() END";
    set_column(tx, org_id, id, assignment, archived).await
}

/// What a cascading delete removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub workstreams: u64,
    pub requirements: u64,
    pub dependencies: u64,
    pub tasks: u64,
    pub subtasks: u64,
    pub risks: u64,
    pub goals: u64,
    pub work_orders: u64,
    pub planner_phases: u64,
    pub features: u64,
    pub sprints: u64,
    pub sprint_gates: u64,
    pub sprint_gate_evaluations: u64,
    /// Tasks kept but detached from a removed requirement.
    pub tasks_detached: u64,
}

/// Deletes a program and everything in it, children first (each statement
/// on an index led by `(org_id, program_id)`), counting what went. The
/// caller holds the program's `FOR UPDATE` lock, so no child is added
/// meanwhile (creates take `FOR KEY SHARE` on it).
pub async fn delete_program(tx: &mut Tx, org_id: Uuid, id: ProgramId) -> Result<Removed> {
    let id = id.uuid();
    // Evaluations are insert-only for the service role: they go with their
    // gates by cascade, counted first.
    let mut removed = Removed {
        sprint_gate_evaluations: sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM sprint_gate_evaluations WHERE org_id = $1 AND program_id = $2",
        )
        .bind(org_id)
        .bind(id)
        .fetch_one(&mut **tx)
        .await?
        .unsigned_abs(),
        ..Removed::default()
    };
    let mut assignees = 0; // index rows of the tasks: not reported
    let mut wo_assignees = 0; // and of the work orders
    for (table, count) in [
        ("subtasks", &mut removed.subtasks),
        ("task_assignees", &mut assignees),
        ("tasks", &mut removed.tasks),
        ("requirement_dependencies", &mut removed.dependencies),
        ("requirements", &mut removed.requirements),
        ("workstreams", &mut removed.workstreams),
        ("risks", &mut removed.risks),
        ("goals", &mut removed.goals),
        ("work_order_assignees", &mut wo_assignees),
        ("work_orders", &mut removed.work_orders),
        ("planner_phases", &mut removed.planner_phases),
        ("features", &mut removed.features),
        ("sprint_gates", &mut removed.sprint_gates),
        ("sprints", &mut removed.sprints),
    ] {
        *count = sqlx::query(&format!(
            "DELETE FROM {table} WHERE org_id = $1 AND program_id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    sqlx::query("DELETE FROM programs WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(removed)
}

//! Programs, and the cascade that deletes one with everything in it.

use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Resource, Unique};
use uuid::Uuid;

use super::{count, delete_where, newest_first, set_column};
use crate::domain::{NewProgram, Phase, Program, ProgramId};

impl Resource for Program {
    type New = NewProgram;
    foundry_resource::names!("delivery", "program", "programs");

    const UNIQUE: &'static [Unique] = &[Unique {
        constraint: "programs_slug_key",
        reason: "PROGRAM_SLUG_TAKEN",
        field: "program.slug",
        message: "a program with this slug exists in the organization",
    }];
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
    tx: &mut sqlx::PgConnection,
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
    let assignment = "archive_time = CASE WHEN $3 THEN now() END";
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
    let evaluations =
        "SELECT count(*) FROM sprint_gate_evaluations WHERE org_id = $1 AND program_id = $2";
    let mut removed = Removed {
        sprint_gate_evaluations: count(tx, evaluations, org_id, id).await?,
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
        *count = delete_where(tx, table, "program_id", org_id, id).await?;
    }
    delete_where(tx, "programs", "id", org_id, id).await?;
    Ok(removed)
}

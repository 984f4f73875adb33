//! Sprints.

use foundry_domain::Id;
use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use foundry_resource::{Resource, Within};
use uuid::Uuid;

use super::{count, delete_where, unique_or};
use crate::domain::{NewSprint, ProgramId, Sprint, SprintId};

impl Resource for Sprint {
    type New = NewSprint;
    foundry_resource::names!("delivery", "sprint", "sprints");
    const WITHIN: Option<Within<NewSprint>> = Some(super::program_child(|n| n.program_id.uuid()));

    /// A second ACTIVE sprint of a program (a race past the service's
    /// check) is `FAILED_PRECONDITION`.
    fn write_error(e: sqlx::Error) -> Error {
        unique_or(e, "sprints_one_active_key", || already_active(None))
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
    let evaluations = "SELECT count(*) FROM sprint_gate_evaluations e JOIN sprint_gates g \
         ON e.org_id = g.org_id AND e.gate_id = g.id WHERE g.org_id = $1 AND g.sprint_id = $2";
    removed.evaluations = count(tx, evaluations, org_id, id).await?;
    removed.gates = delete_where(tx, "sprint_gates", "sprint_id", org_id, id).await?;
    delete_where(tx, "sprints", "id", org_id, id).await?;
    Ok(removed)
}

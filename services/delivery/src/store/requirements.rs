//! Requirements.

use foundry_domain::{Id, StoredEnum};
use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use foundry_resource::{Computed, Resource};
use uuid::Uuid;

use super::{Cursor, Removed, newest_first, push_select, under};
use crate::domain::{
    NewRequirement, PlanItem, Priority, ProgramId, Requirement, RequirementStatus, WorkstreamId,
};

impl Resource for Requirement {
    type New = NewRequirement;
    foundry_resource::names!("delivery", "requirement", "requirements");

    const COMPUTED: &'static [Computed] = &[Computed::FromParent {
        column: "program_id",
        parent: "workstreams",
        key: "workstream_id",
    }];
}

/// Filters of ListRequirements (at least one of program and workstream).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequirementFilter {
    pub program_id: Option<ProgramId>,
    pub workstream_id: Option<WorkstreamId>,
    pub status: Option<RequirementStatus>,
}

/// Newest first, on `requirements_workstream[_status]_idx` when a
/// workstream is named, else `requirements_program_id_key` /
/// `requirements_program_status_idx`; with the parent `P` of key `parent`
/// ([`under`]: the workstream when one is named, else the program).
pub async fn list_requirements<P: Resource>(
    conn: &mut sqlx::PgConnection,
    org_id: Uuid,
    (parent, f): (P::Key, RequirementFilter),
    before: Option<Uuid>,
    limit: i64,
) -> Result<(Option<P>, Vec<Requirement>)> {
    under(conn, org_id, parent, Cursor::Before(before), |q| {
        push_select::<Requirement>(q, org_id);
        if let Some(w) = f.workstream_id {
            q.push(" AND workstream_id = ").push_bind(w.uuid());
        }
        if let Some(p) = f.program_id {
            q.push(" AND program_id = ").push_bind(p.uuid());
        }
        if let Some(s) = f.status {
            q.push(" AND status = ").push_bind(s.as_str());
        }
        newest_first(q, "id", before, limit);
    })
    .await
}

/// Deletes requirements (the caller holds their row locks) with every edge
/// touching them, detaching their tasks.
pub async fn delete_requirements(tx: &mut Tx, org_id: Uuid, ids: &[Uuid]) -> Result<Removed> {
    let mut removed = Removed::default();
    if ids.is_empty() {
        return Ok(removed);
    }
    // Each statement binds the organization ($1) and the ids ($2).
    for (count, sql) in [
        (
            &mut removed.dependencies,
            "DELETE FROM requirement_dependencies WHERE org_id = $1 \
             AND (requirement_id = ANY($2) OR depends_on_id = ANY($2))",
        ),
        (
            &mut removed.tasks_detached,
            "UPDATE tasks SET requirement_id = NULL, version = version + 1, updated_at = now() \
             WHERE org_id = $1 AND requirement_id = ANY($2)",
        ),
        (
            &mut removed.requirements,
            "DELETE FROM requirements WHERE org_id = $1 AND id = ANY($2)",
        ),
    ] {
        *count = sqlx::query(sql)
            .bind(org_id)
            .bind(ids)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    }
    Ok(removed)
}

/// A requirement as a plan needs it, as read.
#[derive(Debug, Clone, sqlx::FromRow)]
struct PlanRow {
    pub id: Uuid,
    pub workstream_id: Uuid,
    pub title: String,
    pub priority: String,
    pub status: String,
}

impl TryFrom<PlanRow> for PlanItem {
    type Error = Error;

    fn try_from(r: PlanRow) -> Result<PlanItem> {
        Ok(PlanItem {
            id: Id::from_uuid(r.id),
            workstream_id: Id::from_uuid(r.workstream_id),
            title: r.title,
            priority: Priority::decode("requirements", "priority", &r.priority)?,
            status: RequirementStatus::decode("requirements", "status", &r.status)?,
        })
    }
}

/// Every requirement of a program, on `requirements_program_id_key`.
pub async fn plan_requirements(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: ProgramId,
    limit: i64,
) -> Result<Vec<PlanItem>> {
    let rows: Vec<PlanRow> = sqlx::query_as(
        "SELECT id, workstream_id, title, priority, status FROM requirements \
         WHERE org_id = $1 AND program_id = $2 ORDER BY id LIMIT $3",
    )
    .bind(org_id)
    .bind(program_id.uuid())
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter().map(PlanItem::try_from).collect()
}

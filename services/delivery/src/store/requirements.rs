//! Requirements.

use async_trait::async_trait;
use foundry_domain::{Id, StoredEnum};
use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use foundry_resource::{Insert, Resource, StampRow, Write};
use uuid::Uuid;

use super::{Removed, newest_first};
use super::{fetch_rows, select};
use crate::domain::{
    NewRequirement, PlanItem, Priority, ProgramId, Requirement, RequirementId, RequirementStatus,
    WorkstreamId,
};

/// A requirement row, as read (public only as [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequirementRow {
    pub id: Uuid,
    pub program_id: Uuid,
    pub workstream_id: Uuid,
    pub title: String,
    pub description: String,
    pub priority: String,
    pub status: String,
    pub acceptance_criteria: Vec<String>,
    pub batch: String,
    #[sqlx(flatten)]
    pub stamp: StampRow,
}

impl Resource for Requirement {
    type Key = RequirementId;
    type Row = RequirementRow;
    const KIND: &'static str = "delivery.requirement";
    const NAME: &'static str = "requirement";
    const TABLE: &'static str = "requirements";
    const COLUMNS: &'static str = COLS;
    const NOT_FOUND: &'static str = "REQUIREMENT_NOT_FOUND";

    fn from_row(r: RequirementRow) -> Result<Requirement> {
        Ok(Requirement {
            id: Id::from_uuid(r.id),
            fields: NewRequirement {
                workstream_id: Id::from_uuid(r.workstream_id),
                title: r.title,
                description: r.description,
                priority: Priority::decode("requirements", "priority", &r.priority)?,
                status: RequirementStatus::decode("requirements", "status", &r.status)?,
                acceptance_criteria: r.acceptance_criteria,
                batch: r.batch,
            },
            program_id: Id::from_uuid(r.program_id),
            stamp: r.stamp.into(),
        })
    }

    fn key(&self) -> RequirementId {
        self.id
    }

    fn version(&self) -> i64 {
        self.stamp.version
    }

    fn project(&self) -> Option<Uuid> {
        Some(self.program_id.uuid())
    }
}

/// The columns every requirement read returns (`org_id`, which scopes the
/// read, then `RequirementRow`'s).
pub const COLS: &str = "org_id, id, program_id, workstream_id, title, description, priority, \
     status, acceptance_criteria, batch, created_by, version, created_at, updated_at";

/// Inserts a new requirement made by `created_by`, in its workstream's
/// program (the caller holds the workstream).
#[async_trait]
impl Insert for Requirement {
    type New = NewRequirement;

    async fn insert(
        r: &NewRequirement,
        tx: &mut Tx,
        org_id: Uuid,
        created_by: Uuid,
    ) -> Result<Requirement> {
        let row: RequirementRow = sqlx::query_as(&format!(
            "INSERT INTO requirements (org_id, id, program_id, workstream_id, title, description, priority, \
             status, acceptance_criteria, batch, created_by) \
             VALUES ($1, $2, (SELECT program_id FROM workstreams WHERE org_id = $1 AND id = $3), \
             $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(Uuid::now_v7())
        .bind(r.workstream_id.uuid())
        .bind(&r.title)
        .bind(&r.description)
        .bind(r.priority.as_str())
        .bind(r.status.as_str())
        .bind(&r.acceptance_criteria)
        .bind(&r.batch)
        .bind(created_by)
        .fetch_one(&mut **tx)
        .await?;
        Requirement::from_row(row)
    }
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
/// `requirements_program_status_idx`.
pub async fn list_requirements(
    tx: &mut Tx,
    org_id: Uuid,
    f: RequirementFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Requirement>> {
    let mut q = select::<Requirement>(org_id);
    if let Some(w) = f.workstream_id {
        q.push(" AND workstream_id = ").push_bind(w.uuid());
    }
    if let Some(p) = f.program_id {
        q.push(" AND program_id = ").push_bind(p.uuid());
    }
    if let Some(s) = f.status {
        q.push(" AND status = ").push_bind(s.as_str());
    }
    newest_first(&mut q, "id", before, limit);
    fetch_rows(q, tx).await
}

/// Writes the user-editable fields of `r`.
#[async_trait]
impl Write for Requirement {
    async fn write(&self, tx: &mut Tx, org_id: Uuid) -> Result<Requirement> {
        let row: RequirementRow = sqlx::query_as(&format!(
            "UPDATE requirements SET workstream_id = $3, title = $4, description = $5, priority = $6, \
             status = $7, acceptance_criteria = $8, batch = $9, version = version + 1, updated_at = now() \
             WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(self.id.uuid())
        .bind(self.fields.workstream_id.uuid())
        .bind(&self.fields.title)
        .bind(&self.fields.description)
        .bind(self.fields.priority.as_str())
        .bind(self.fields.status.as_str())
        .bind(&self.fields.acceptance_criteria)
        .bind(&self.fields.batch)
        .fetch_one(&mut **tx)
        .await?;
        Requirement::from_row(row)
    }
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
) -> Result<Vec<PlanItem>> {
    let rows: Vec<PlanRow> = sqlx::query_as(
        "SELECT id, workstream_id, title, priority, status FROM requirements \
         WHERE org_id = $1 AND program_id = $2 ORDER BY id",
    )
    .bind(org_id)
    .bind(program_id.uuid())
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter().map(PlanItem::try_from).collect()
}

//! Workstreams.

use async_trait::async_trait;
use foundry_domain::Id;
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Insert, Resource, StampRow, Write};
use uuid::Uuid;

use super::Removed;
use crate::domain::{NewWorkstream, Workstream, WorkstreamId};

/// A workstream row, as read (public only as [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkstreamRow {
    pub id: Uuid,
    pub program_id: Uuid,
    pub name: String,
    pub description: String,
    pub position: i32,
    #[sqlx(flatten)]
    pub stamp: StampRow,
}

impl Resource for Workstream {
    type Key = WorkstreamId;
    type Row = WorkstreamRow;
    const KIND: &'static str = "delivery.workstream";
    const NAME: &'static str = "workstream";
    const TABLE: &'static str = "workstreams";
    const COLUMNS: &'static str = COLS;
    const NOT_FOUND: &'static str = "WORKSTREAM_NOT_FOUND";

    fn from_row(r: WorkstreamRow) -> Result<Workstream> {
        Ok(Workstream {
            id: Id::from_uuid(r.id),
            fields: NewWorkstream {
                program_id: Id::from_uuid(r.program_id),
                name: r.name,
                description: r.description,
                position: r.position,
            },
            stamp: r.stamp.into(),
        })
    }

    fn key(&self) -> WorkstreamId {
        self.id
    }

    fn version(&self) -> i64 {
        self.stamp.version
    }

    fn project(&self) -> Option<Uuid> {
        Some(self.fields.program_id.uuid())
    }
}

const COLS: &str =
    "id, program_id, name, description, position, created_by, version, created_at, updated_at";

/// Inserts a new workstream made by `created_by`.
#[async_trait]
impl Insert for Workstream {
    type New = NewWorkstream;

    async fn insert(
        w: &NewWorkstream,
        tx: &mut Tx,
        org_id: Uuid,
        created_by: Uuid,
    ) -> Result<Workstream> {
        // Appending reads the last position on workstreams_position_idx. Two
        // concurrent appends may share a position; the id breaks the tie.
        let row: WorkstreamRow = sqlx::query_as(&format!(
            "INSERT INTO workstreams (org_id, id, program_id, name, description, position, created_by) \
             VALUES ($1, $2, $3, $4, $5, coalesce($6, (SELECT coalesce(max(position), 0) + 1 \
             FROM workstreams WHERE org_id = $1 AND program_id = $3)), $7) RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(Uuid::now_v7())
        .bind(w.program_id.uuid())
        .bind(&w.name)
        .bind(&w.description)
        .bind(w.position)
        .bind(created_by)
        .fetch_one(&mut **tx)
        .await?;
        Workstream::from_row(row)
    }
}

/// Writes the user-editable fields of `w`.
#[async_trait]
impl Write for Workstream {
    async fn write(&self, tx: &mut Tx, org_id: Uuid) -> Result<Workstream> {
        let row: WorkstreamRow = sqlx::query_as(&format!(
            "UPDATE workstreams SET name = $3, description = $4, position = $5, version = version + 1, \
             updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(self.id.uuid())
        .bind(&self.fields.name)
        .bind(&self.fields.description)
        .bind(self.fields.position)
        .fetch_one(&mut **tx)
        .await?;
        Workstream::from_row(row)
    }
}

/// Deletes a workstream with its requirements and their edges; tasks under
/// those requirements are detached (and their version bumped).
pub async fn delete_workstream(tx: &mut Tx, org_id: Uuid, id: WorkstreamId) -> Result<Removed> {
    let id = id.uuid();
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM requirements WHERE org_id = $1 AND workstream_id = $2 FOR UPDATE",
    )
    .bind(org_id)
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    let mut removed = super::delete_requirements(tx, org_id, &ids).await?;
    removed.workstreams = sqlx::query("DELETE FROM workstreams WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(removed)
}

//! Subtasks.

use async_trait::async_trait;
use foundry_domain::{Id, StoredEnum};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Insert, Resource, StampRow};
use uuid::Uuid;

use crate::domain::{NewSubtask, Subtask, SubtaskId, SubtaskStatus};

/// A subtask row, as read (public only as [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubtaskRow {
    pub id: Uuid,
    pub task_id: Uuid,
    pub program_id: Uuid,
    pub title: String,
    pub description: String,
    pub status: String,
    pub position: i32,
    #[sqlx(flatten)]
    pub stamp: StampRow,
}

impl Resource for Subtask {
    type Key = SubtaskId;
    type Row = SubtaskRow;
    const KIND: &'static str = "delivery.subtask";
    const NAME: &'static str = "subtask";
    const TABLE: &'static str = "subtasks";
    const COLUMNS: &'static str = COLS;
    const NOT_FOUND: &'static str = "SUBTASK_NOT_FOUND";

    fn from_row(r: SubtaskRow) -> Result<Subtask> {
        Ok(Subtask {
            id: Id::from_uuid(r.id),
            fields: NewSubtask {
                task_id: Id::from_uuid(r.task_id),
                title: r.title,
                description: r.description,
                status: SubtaskStatus::decode("subtasks", "status", &r.status)?,
                position: r.position,
            },
            program_id: Id::from_uuid(r.program_id),
            stamp: r.stamp.into(),
        })
    }

    fn key(&self) -> SubtaskId {
        self.id
    }

    fn version(&self) -> i64 {
        self.stamp.version
    }

    fn project(&self) -> Option<Uuid> {
        Some(self.program_id.uuid())
    }
}

const COLS: &str = "id, task_id, program_id, title, description, status, position, \
     created_by, version, created_at, updated_at";

/// Inserts a new subtask made by `created_by`, in its task's program.
#[async_trait]
impl Insert for Subtask {
    type New = NewSubtask;

    async fn insert(
        s: &NewSubtask,
        tx: &mut Tx,
        org_id: Uuid,
        created_by: Uuid,
    ) -> Result<Subtask> {
        // Appending reads the last position on subtasks_position_idx; the
        // caller holds the task's share lock, and ties break by id anyway.
        let row: SubtaskRow = sqlx::query_as(&format!(
            "INSERT INTO subtasks (org_id, id, task_id, program_id, title, description, status, position, created_by) \
             VALUES ($1, $2, $3, (SELECT program_id FROM tasks WHERE org_id = $1 AND id = $3), \
             $4, $5, $6, coalesce($7, (SELECT coalesce(max(position), 0) + 1 \
             FROM subtasks WHERE org_id = $1 AND task_id = $3)), $8) RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(Uuid::now_v7())
        .bind(s.task_id.uuid())
        .bind(&s.title)
        .bind(&s.description)
        .bind(s.status.as_str())
        .bind(s.position)
        .bind(created_by)
        .fetch_one(&mut **tx)
        .await?;
        Subtask::from_row(row)
    }
}

/// Writes the user-editable fields of `s`.
pub async fn update_subtask(tx: &mut Tx, org_id: Uuid, s: &Subtask) -> Result<Subtask> {
    let row: SubtaskRow = sqlx::query_as(&format!(
        "UPDATE subtasks SET title = $3, description = $4, status = $5, position = $6, \
         version = version + 1, updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(org_id)
    .bind(s.id.uuid())
    .bind(&s.fields.title)
    .bind(&s.fields.description)
    .bind(s.fields.status.as_str())
    .bind(s.fields.position)
    .fetch_one(&mut **tx)
    .await?;
    Subtask::from_row(row)
}

//! Goals.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use foundry_domain::{Id, StoredEnum};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Insert, Resource, StampRow, Write};
use uuid::Uuid;

use crate::domain::{Goal, GoalId, GoalStatus, NewGoal};

/// A goal row, as read (public only as [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GoalRow {
    pub id: Uuid,
    pub program_id: Uuid,
    pub title: String,
    pub description: String,
    pub target_metric: String,
    pub target_at: Option<DateTime<Utc>>,
    pub status: String,
    pub owner_user_id: Option<Uuid>,
    #[sqlx(flatten)]
    pub stamp: StampRow,
}

impl Resource for Goal {
    type Key = GoalId;
    type Row = GoalRow;
    const KIND: &'static str = "delivery.goal";
    const NAME: &'static str = "goal";
    const TABLE: &'static str = "goals";
    const COLUMNS: &'static str = COLS;
    const NOT_FOUND: &'static str = "GOAL_NOT_FOUND";

    fn from_row(r: GoalRow) -> Result<Goal> {
        Ok(Goal {
            id: Id::from_uuid(r.id),
            fields: NewGoal {
                program_id: Id::from_uuid(r.program_id),
                title: r.title,
                description: r.description,
                target_metric: r.target_metric,
                target_at: r.target_at,
                status: GoalStatus::decode("goals", "status", &r.status)?,
                owner_user_id: r.owner_user_id.map(Id::from_uuid),
            },
            stamp: r.stamp.into(),
        })
    }

    fn key(&self) -> GoalId {
        self.id
    }

    fn version(&self) -> i64 {
        self.stamp.version
    }

    fn project(&self) -> Option<Uuid> {
        Some(self.fields.program_id.uuid())
    }
}

const COLS: &str = "id, program_id, title, description, target_metric, target_at, \
     status, owner_user_id, created_by, version, created_at, updated_at";

/// Inserts a new goal made by `created_by`.
#[async_trait]
impl Insert for Goal {
    type New = NewGoal;

    async fn insert(g: &NewGoal, tx: &mut Tx, org_id: Uuid, created_by: Uuid) -> Result<Goal> {
        let row: GoalRow = sqlx::query_as(&format!(
            "INSERT INTO goals (org_id, id, program_id, title, description, target_metric, \
             target_at, status, owner_user_id, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(Uuid::now_v7())
        .bind(g.program_id.uuid())
        .bind(&g.title)
        .bind(&g.description)
        .bind(&g.target_metric)
        .bind(g.target_at)
        .bind(g.status.as_str())
        .bind(g.owner_user_id.map(Id::uuid))
        .bind(created_by)
        .fetch_one(&mut **tx)
        .await?;
        Goal::from_row(row)
    }
}

/// Writes the user-editable fields of `g`.
#[async_trait]
impl Write for Goal {
    async fn write(&self, tx: &mut Tx, org_id: Uuid) -> Result<Goal> {
        let row: GoalRow = sqlx::query_as(&format!(
            "UPDATE goals SET title = $3, description = $4, target_metric = $5, target_at = $6, \
             status = $7, owner_user_id = $8, version = version + 1, updated_at = now() \
             WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(self.id.uuid())
        .bind(&self.fields.title)
        .bind(&self.fields.description)
        .bind(&self.fields.target_metric)
        .bind(self.fields.target_at)
        .bind(self.fields.status.as_str())
        .bind(self.fields.owner_user_id.map(Id::uuid))
        .fetch_one(&mut **tx)
        .await?;
        Goal::from_row(row)
    }
}

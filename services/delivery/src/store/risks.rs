//! Risks.

use async_trait::async_trait;
use foundry_domain::{Id, StoredEnum};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Insert, Resource, StampRow, Write};
use uuid::Uuid;

use crate::domain::{NewRisk, Risk, RiskId, RiskLevel, RiskSeverity, RiskStatus};

/// A risk row, as read (public only as [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RiskRow {
    pub id: Uuid,
    pub program_id: Uuid,
    pub title: String,
    pub description: String,
    pub likelihood: i16,
    pub impact: i16,
    pub severity: String,
    pub mitigation: String,
    pub owner_user_id: Option<Uuid>,
    pub status: String,
    #[sqlx(flatten)]
    pub stamp: StampRow,
}

impl Resource for Risk {
    type Key = RiskId;
    type Row = RiskRow;
    const KIND: &'static str = "delivery.risk";
    const NAME: &'static str = "risk";
    const TABLE: &'static str = "risks";
    const COLUMNS: &'static str = COLS;
    const NOT_FOUND: &'static str = "RISK_NOT_FOUND";

    fn from_row(r: RiskRow) -> Result<Risk> {
        Ok(Risk {
            id: Id::from_uuid(r.id),
            fields: NewRisk {
                program_id: Id::from_uuid(r.program_id),
                title: r.title,
                description: r.description,
                likelihood: RiskLevel::decode("risks", "likelihood", r.likelihood)?,
                impact: RiskLevel::decode("risks", "impact", r.impact)?,
                mitigation: r.mitigation,
                owner_user_id: r.owner_user_id.map(Id::from_uuid),
                status: RiskStatus::decode("risks", "status", &r.status)?,
            },
            severity: RiskSeverity::decode("risks", "severity", &r.severity)?,
            stamp: r.stamp.into(),
        })
    }

    fn key(&self) -> RiskId {
        self.id
    }

    fn version(&self) -> i64 {
        self.stamp.version
    }

    fn project(&self) -> Option<Uuid> {
        Some(self.fields.program_id.uuid())
    }
}

const COLS: &str = "id, program_id, title, description, likelihood, impact, severity, \
     mitigation, owner_user_id, status, created_by, version, created_at, updated_at";

/// Inserts a new risk made by `created_by`, with its derived severity.
#[async_trait]
impl Insert for Risk {
    type New = NewRisk;

    async fn insert(r: &NewRisk, tx: &mut Tx, org_id: Uuid, created_by: Uuid) -> Result<Risk> {
        let row: RiskRow = sqlx::query_as(&format!(
            "INSERT INTO risks (org_id, id, program_id, title, description, likelihood, impact, \
             severity, mitigation, owner_user_id, status, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(Uuid::now_v7())
        .bind(r.program_id.uuid())
        .bind(&r.title)
        .bind(&r.description)
        .bind(r.likelihood.value())
        .bind(r.impact.value())
        .bind(r.severity().as_str())
        .bind(&r.mitigation)
        .bind(r.owner_user_id.map(Id::uuid))
        .bind(r.status.as_str())
        .bind(created_by)
        .fetch_one(&mut **tx)
        .await?;
        Risk::from_row(row)
    }
}

/// Writes the user-editable fields of `r` (and its derived severity).
#[async_trait]
impl Write for Risk {
    async fn write(&self, tx: &mut Tx, org_id: Uuid) -> Result<Risk> {
        let row: RiskRow = sqlx::query_as(&format!(
            "UPDATE risks SET title = $3, description = $4, likelihood = $5, impact = $6, \
             severity = $7, mitigation = $8, owner_user_id = $9, status = $10, \
             version = version + 1, updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(self.id.uuid())
        .bind(&self.fields.title)
        .bind(&self.fields.description)
        .bind(self.fields.likelihood.value())
        .bind(self.fields.impact.value())
        .bind(self.severity.as_str())
        .bind(&self.fields.mitigation)
        .bind(self.fields.owner_user_id.map(Id::uuid))
        .bind(self.fields.status.as_str())
        .fetch_one(&mut **tx)
        .await?;
        Risk::from_row(row)
    }
}

//! Risks.

use async_trait::async_trait;
use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use foundry_resource::{Insert, Resource, Write, row};
use uuid::Uuid;

use crate::domain::{NewRisk, Risk};

impl Resource for Risk {
    const KIND: &'static str = "delivery.risk";
    const NAME: &'static str = "risk";
    const TABLE: &'static str = "risks";
    const NOT_FOUND: &'static str = "RISK_NOT_FOUND";
}

/// Inserts a new risk made by `created_by`, with its derived severity.
#[async_trait]
impl Insert for Risk {
    type New = NewRisk;

    async fn insert(new: &NewRisk, tx: &mut Tx, org_id: Uuid, created_by: Uuid) -> Result<Risk> {
        let mut fields = serde_json::to_value(new).map_err(Error::internal)?;
        fields["severity"] = new.severity().as_str().into();
        row::insert_row(tx, org_id, created_by, &fields, &[]).await
    }
}

/// Writes the user-editable fields of a risk and its derived severity.
#[async_trait]
impl Write for Risk {
    async fn write(&self, tx: &mut Tx, org_id: Uuid) -> Result<Risk> {
        let mut fields = row::fields_of(self)?;
        fields["severity"] = self.severity.as_str().into();
        row::write_row(tx, org_id, self.id, &fields).await
    }
}

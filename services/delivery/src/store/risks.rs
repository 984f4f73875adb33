//! Risks.

use async_trait::async_trait;
use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use foundry_resource::{Resource, Within, row};
use uuid::Uuid;

use crate::domain::{NewRisk, Risk};

#[async_trait]
impl Resource for Risk {
    type New = NewRisk;
    foundry_resource::names!("delivery", "risk", "risks");
    const WITHIN: Option<Within<NewRisk>> = Some(super::program_child(|n| n.program_id.uuid()));

    async fn insert(new: &NewRisk, tx: &mut Tx, org_id: Uuid, created_by: Uuid) -> Result<Risk> {
        let mut fields = serde_json::to_value(new).map_err(Error::internal)?;
        fields["severity"] = new.severity().as_str().into();
        row::insert_row(tx, org_id, created_by, &fields, &[]).await
    }

    async fn write(&self, _: &Risk, tx: &mut Tx, org_id: Uuid) -> Result<Risk> {
        let mut fields = row::fields_of(self)?;
        fields["severity"] = self.severity.as_str().into();
        row::write_row(tx, org_id, self.id, &fields).await
    }
}

//! Work orders and their assignees.

use async_trait::async_trait;
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Resource, Within, remove_row};
use uuid::Uuid;

use super::{Assigned, Assignees};
use crate::domain::{NewWorkOrder, WorkOrder, WorkOrderId};

#[async_trait]
impl Resource for WorkOrder {
    type New = NewWorkOrder;
    foundry_resource::names!("delivery", "work_order", "work_orders");
    const WITHIN: Option<Within<NewWorkOrder>> =
        Some(super::program_child(|n| n.program_id.uuid()));

    /// Its assignee index is made to match.
    async fn written(
        self,
        before: Option<&WorkOrder>,
        tx: &mut Tx,
        org_id: Uuid,
    ) -> Result<WorkOrder> {
        let at = (self.id, self.fields.program_id);
        let held = before.map(|b| &b.fields.assignee_ids[..]);
        Self::ASSIGNEES
            .set(tx, org_id, at, held, &self.fields.assignee_ids)
            .await?;
        Ok(self)
    }
}

/// The assignee index of work orders.
impl Assigned for WorkOrder {
    const ASSIGNEES: Assignees = Assignees {
        table: "work_order_assignees",
        key: "work_order_id",
    };
}

/// Deletes a work order with its assignee index.
pub async fn delete_work_order(tx: &mut Tx, org_id: Uuid, id: WorkOrderId) -> Result<()> {
    WorkOrder::ASSIGNEES.remove(tx, org_id, id.uuid()).await?;
    remove_row::<WorkOrder>(tx, org_id, id).await
}

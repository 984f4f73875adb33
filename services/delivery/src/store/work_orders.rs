//! Work orders and their assignees.

use async_trait::async_trait;
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Resource, remove_row};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Assignees, fetch_rows, newest_first, qualified, set_column};
use crate::domain::{NewWorkOrder, WorkOrder, WorkOrderId, WorkOrderStatus};

#[async_trait]
impl Resource for WorkOrder {
    type New = NewWorkOrder;
    const KIND: &'static str = "delivery.work_order";
    const NAME: &'static str = "work order";
    const TABLE: &'static str = "work_orders";
    const NOT_FOUND: &'static str = "WORK_ORDER_NOT_FOUND";

    /// Its assignee index is made to match.
    async fn written(self, tx: &mut Tx, org_id: Uuid) -> Result<WorkOrder> {
        let (f, at) = (&self.fields, (self.id, self.fields.program_id));
        ASSIGNEES.set(tx, org_id, at, &f.assignee_ids).await?;
        Ok(self)
    }
}

/// The assignee index of work orders.
const ASSIGNEES: Assignees = Assignees {
    table: "work_order_assignees",
    key: "work_order_id",
};

/// Filters of ListWorkOrders; all that are set apply.
#[derive(Clone, Copy, Debug)]
pub struct WorkOrderFilter {
    pub program_id: Uuid,
    pub status: Option<WorkOrderStatus>,
    pub assignee_id: Option<Uuid>,
    pub phase_id: Option<Uuid>,
    pub feature_id: Option<Uuid>,
}

/// Newest first: an assignee walks `work_order_assignees_user_idx` and
/// joins each work order by key (the other filters are then checked on the
/// rows found); a phase `work_orders_phase_idx`, a feature
/// `work_orders_feature_idx`, a status alone `work_orders_status_idx`; none
/// `work_orders_program_id_key`.
pub async fn list_work_orders(
    tx: &mut Tx,
    org_id: Uuid,
    f: WorkOrderFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<WorkOrder>> {
    let cols = qualified(WorkOrder::COLUMNS, "w");
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {cols} FROM "));
    // The keyset column of the walked index.
    let key = ASSIGNEES.scan_children(
        &mut q,
        "work_orders",
        "w",
        org_id,
        f.program_id,
        f.assignee_id,
    );
    if let Some(s) = f.status {
        q.push(" AND w.status = ").push_bind(s.as_str());
    }
    if let Some(phase) = f.phase_id {
        q.push(" AND w.phase_id = ").push_bind(phase);
    }
    if let Some(feature) = f.feature_id {
        q.push(" AND w.feature_id = ").push_bind(feature);
    }
    newest_first(&mut q, &key, before, limit);
    fetch_rows(q, tx).await
}

pub async fn set_work_order_status(
    tx: &mut Tx,
    org_id: Uuid,
    id: WorkOrderId,
    status: WorkOrderStatus,
) -> Result<WorkOrder> {
    set_column(tx, org_id, id, "status = $3", status.as_str()).await
}

/// Deletes a work order with its assignee index.
pub async fn delete_work_order(tx: &mut Tx, org_id: Uuid, id: WorkOrderId) -> Result<()> {
    ASSIGNEES.remove(tx, org_id, id.uuid()).await?;
    remove_row::<WorkOrder>(tx, org_id, id).await
}

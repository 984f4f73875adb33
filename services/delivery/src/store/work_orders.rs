//! Work orders and their assignees.

use async_trait::async_trait;
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Insert, Resource, Write, remove_row, row};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Assigned, Assignees, fetch_rows, indexed, newest_first, qualified, set_column, uuids};
use crate::domain::{NewWorkOrder, WorkOrder, WorkOrderId, WorkOrderStatus};

impl Resource for WorkOrder {
    const KIND: &'static str = "delivery.work_order";
    const NAME: &'static str = "work order";
    const TABLE: &'static str = "work_orders";
    const NOT_FOUND: &'static str = "WORK_ORDER_NOT_FOUND";
}

impl Assigned for WorkOrder {
    const ASSIGNEES: Assignees = Assignees {
        table: "work_order_assignees",
        key: "work_order_id",
    };

    fn assignment(&self) -> (Uuid, Vec<Uuid>) {
        (
            self.fields.program_id.uuid(),
            uuids(&self.fields.assignee_ids),
        )
    }
}

#[async_trait]
impl Insert for WorkOrder {
    type New = NewWorkOrder;

    async fn insert(
        new: &NewWorkOrder,
        tx: &mut Tx,
        org_id: Uuid,
        created_by: Uuid,
    ) -> Result<WorkOrder> {
        let inserted = row::insert(tx, org_id, created_by, new).await?;
        indexed(tx, org_id, inserted).await
    }
}

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
    let key = WorkOrder::ASSIGNEES.scan_children(
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

#[async_trait]
impl Write for WorkOrder {
    async fn write(&self, tx: &mut Tx, org_id: Uuid) -> Result<WorkOrder> {
        let written = row::write(tx, org_id, self).await?;
        indexed(tx, org_id, written).await
    }
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
    WorkOrder::ASSIGNEES.remove(tx, org_id, id.uuid()).await?;
    remove_row::<WorkOrder>(tx, org_id, id).await
}

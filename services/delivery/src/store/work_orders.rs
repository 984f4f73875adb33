//! Work orders and their assignees.

use async_trait::async_trait;
use foundry_domain::{Id, StoredEnum};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Insert, Resource, StampRow, Write, remove_row};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Assignees, fetch_rows, newest_first, qualified, uuids};
use crate::domain::{NewWorkOrder, WorkOrder, WorkOrderId, WorkOrderStatus};

/// A work order row, as read (public only as [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkOrderRow {
    org_id: Uuid,
    id: Uuid,
    program_id: Uuid,
    title: String,
    description: String,
    status: String,
    acceptance_criteria: Vec<String>,
    implementation_plan: String,
    assignee_ids: Vec<Uuid>,
    phase_id: Option<Uuid>,
    feature_id: Option<Uuid>,
    #[sqlx(flatten)]
    stamp: StampRow,
}

impl Resource for WorkOrder {
    type Key = WorkOrderId;
    type Row = WorkOrderRow;
    const KIND: &'static str = "delivery.work_order";
    const NAME: &'static str = "work order";
    const TABLE: &'static str = "work_orders";
    const COLUMNS: &'static str = COLS;
    const NOT_FOUND: &'static str = "WORK_ORDER_NOT_FOUND";

    fn from_row(r: WorkOrderRow) -> Result<WorkOrder> {
        Ok(WorkOrder {
            id: Id::from_uuid(r.id),
            fields: NewWorkOrder {
                program_id: Id::from_uuid(r.program_id),
                title: r.title,
                description: r.description,
                status: WorkOrderStatus::decode("work_orders", "status", &r.status)?,
                acceptance_criteria: r.acceptance_criteria,
                implementation_plan: r.implementation_plan,
                assignee_ids: r.assignee_ids.into_iter().map(Id::from_uuid).collect(),
                phase_id: r.phase_id.map(Id::from_uuid),
                feature_id: r.feature_id.map(Id::from_uuid),
            },
            stamp: r.stamp.into(),
        })
    }

    fn key(&self) -> WorkOrderId {
        self.id
    }

    fn version(&self) -> i64 {
        self.stamp.version
    }

    fn project(&self) -> Option<Uuid> {
        Some(self.fields.program_id.uuid())
    }
}

/// The assignee index of work orders.
const ASSIGNEES: Assignees = Assignees {
    table: "work_order_assignees",
    key: "work_order_id",
};

/// The work order of a row just written, its assignee index made to match.
async fn indexed(tx: &mut Tx, row: WorkOrderRow) -> Result<WorkOrder> {
    ASSIGNEES
        .set(tx, row.org_id, row.id, row.program_id, &row.assignee_ids)
        .await?;
    WorkOrder::from_row(row)
}

const COLS: &str = "org_id, id, program_id, title, description, status, acceptance_criteria, \
     implementation_plan, assignee_ids, phase_id, feature_id, created_by, version, created_at, \
     updated_at";

/// Inserts a new work order made by `created_by`, with its assignee index.
#[async_trait]
impl Insert for WorkOrder {
    type New = NewWorkOrder;

    async fn insert(
        w: &NewWorkOrder,
        tx: &mut Tx,
        org_id: Uuid,
        created_by: Uuid,
    ) -> Result<WorkOrder> {
        let row: WorkOrderRow = sqlx::query_as(&format!(
            "INSERT INTO work_orders (org_id, id, program_id, title, description, status, \
             acceptance_criteria, implementation_plan, assignee_ids, phase_id, feature_id, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(Uuid::now_v7())
        .bind(w.program_id.uuid())
        .bind(&w.title)
        .bind(&w.description)
        .bind(w.status.as_str())
        .bind(&w.acceptance_criteria)
        .bind(&w.implementation_plan)
        .bind(uuids(&w.assignee_ids))
        .bind(w.phase_id.map(Id::uuid))
        .bind(w.feature_id.map(Id::uuid))
        .bind(created_by)
        .fetch_one(&mut **tx)
        .await?;
        indexed(tx, row).await
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
    let cols = qualified(COLS, "w");
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

/// Writes the user-editable fields of `w` (and its assignee index).
#[async_trait]
impl Write for WorkOrder {
    async fn write(&self, tx: &mut Tx, org_id: Uuid) -> Result<WorkOrder> {
        let row: WorkOrderRow = sqlx::query_as(&format!(
            "UPDATE work_orders SET title = $3, description = $4, acceptance_criteria = $5, \
             implementation_plan = $6, assignee_ids = $7, phase_id = $8, feature_id = $9, \
             version = version + 1, updated_at = now() \
             WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(self.id.uuid())
        .bind(&self.fields.title)
        .bind(&self.fields.description)
        .bind(&self.fields.acceptance_criteria)
        .bind(&self.fields.implementation_plan)
        .bind(uuids(&self.fields.assignee_ids))
        .bind(self.fields.phase_id.map(Id::uuid))
        .bind(self.fields.feature_id.map(Id::uuid))
        .fetch_one(&mut **tx)
        .await?;
        indexed(tx, row).await
    }
}

pub async fn set_work_order_status(
    tx: &mut Tx,
    org_id: Uuid,
    id: WorkOrderId,
    status: WorkOrderStatus,
) -> Result<WorkOrder> {
    let row: WorkOrderRow = sqlx::query_as(&format!(
        "UPDATE work_orders SET status = $3, version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(org_id)
    .bind(id.uuid())
    .bind(status.as_str())
    .fetch_one(&mut **tx)
    .await?;
    WorkOrder::from_row(row)
}

/// Deletes a work order with its assignee index.
pub async fn delete_work_order(tx: &mut Tx, org_id: Uuid, id: WorkOrderId) -> Result<()> {
    ASSIGNEES.remove(tx, org_id, id.uuid()).await?;
    remove_row::<WorkOrder>(tx, org_id, id).await
}

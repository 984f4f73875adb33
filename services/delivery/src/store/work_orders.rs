//! Work orders and their assignees.

use chrono::{DateTime, Utc};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Lock, newest_first, qualified};

/// A work order row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkOrderRow {
    pub org_id: Uuid,
    pub id: Uuid,
    pub program_id: Uuid,
    pub title: String,
    pub description: String,
    pub status: String,
    pub acceptance_criteria: Vec<String>,
    pub implementation_plan: String,
    pub assignee_ids: Vec<Uuid>,
    pub phase_id: Option<Uuid>,
    pub feature_id: Option<Uuid>,
    pub created_by: Uuid,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLS: &str = "org_id, id, program_id, title, description, status, acceptance_criteria, \
     implementation_plan, assignee_ids, phase_id, feature_id, created_by, version, created_at, \
     updated_at";

/// Inserts `w` under a new id (its id, version and times are ignored), with
/// its assignee index.
pub async fn insert_work_order(tx: &mut Tx, w: &WorkOrderRow) -> Result<WorkOrderRow> {
    let row: WorkOrderRow = sqlx::query_as(&format!(
        "INSERT INTO work_orders (org_id, id, program_id, title, description, status, \
         acceptance_criteria, implementation_plan, assignee_ids, phase_id, feature_id, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLS}"
    ))
    .bind(w.org_id)
    .bind(Uuid::now_v7())
    .bind(w.program_id)
    .bind(&w.title)
    .bind(&w.description)
    .bind(&w.status)
    .bind(&w.acceptance_criteria)
    .bind(&w.implementation_plan)
    .bind(&w.assignee_ids)
    .bind(w.phase_id)
    .bind(w.feature_id)
    .bind(w.created_by)
    .fetch_one(&mut **tx)
    .await?;
    set_assignees(tx, &row).await?;
    Ok(row)
}

/// Makes `work_order_assignees` hold exactly the row's assignees.
async fn set_assignees(tx: &mut Tx, w: &WorkOrderRow) -> Result<()> {
    sqlx::query(
        "DELETE FROM work_order_assignees WHERE org_id = $1 AND work_order_id = $2 \
         AND NOT (user_id = ANY($3))",
    )
    .bind(w.org_id)
    .bind(w.id)
    .bind(&w.assignee_ids)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO work_order_assignees (org_id, work_order_id, user_id, program_id) \
         SELECT $1, $2, u, $4 FROM unnest($3::uuid[]) AS u ON CONFLICT DO NOTHING",
    )
    .bind(w.org_id)
    .bind(w.id)
    .bind(&w.assignee_ids)
    .bind(w.program_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get_work_order(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    lock: Lock,
) -> Result<Option<WorkOrderRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM work_orders WHERE org_id = $1 AND id = $2{}",
        lock.sql()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Filters of ListWorkOrders; all that are set apply.
#[derive(Clone, Copy, Debug)]
pub struct WorkOrderFilter<'a> {
    pub program_id: Uuid,
    pub status: Option<&'a str>,
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
    f: WorkOrderFilter<'_>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<WorkOrderRow>> {
    let cols = qualified(COLS, "w");
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {cols} FROM "));
    // The keyset column of the walked index.
    let key = if let Some(user) = f.assignee_id {
        q.push(
            "work_order_assignees a JOIN work_orders w \
             ON w.org_id = a.org_id AND w.id = a.work_order_id WHERE a.org_id = ",
        )
        .push_bind(org_id)
        .push(" AND a.program_id = ")
        .push_bind(f.program_id)
        .push(" AND a.user_id = ")
        .push_bind(user);
        "a.work_order_id"
    } else {
        q.push("work_orders w WHERE w.org_id = ")
            .push_bind(org_id)
            .push(" AND w.program_id = ")
            .push_bind(f.program_id);
        "w.id"
    };
    if let Some(s) = f.status {
        q.push(" AND w.status = ").push_bind(s);
    }
    if let Some(phase) = f.phase_id {
        q.push(" AND w.phase_id = ").push_bind(phase);
    }
    if let Some(feature) = f.feature_id {
        q.push(" AND w.feature_id = ").push_bind(feature);
    }
    newest_first(&mut q, key, before, limit);
    Ok(q.build_query_as().fetch_all(&mut **tx).await?)
}

/// Writes the user-editable fields of `row` (and its assignee index).
pub async fn update_work_order(tx: &mut Tx, row: &WorkOrderRow) -> Result<WorkOrderRow> {
    let out: WorkOrderRow = sqlx::query_as(&format!(
        "UPDATE work_orders SET title = $3, description = $4, acceptance_criteria = $5, \
         implementation_plan = $6, assignee_ids = $7, phase_id = $8, feature_id = $9, \
         version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(row.org_id)
    .bind(row.id)
    .bind(&row.title)
    .bind(&row.description)
    .bind(&row.acceptance_criteria)
    .bind(&row.implementation_plan)
    .bind(&row.assignee_ids)
    .bind(row.phase_id)
    .bind(row.feature_id)
    .fetch_one(&mut **tx)
    .await?;
    set_assignees(tx, &out).await?;
    Ok(out)
}

pub async fn set_work_order_status(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    status: &str,
) -> Result<WorkOrderRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE work_orders SET status = $3, version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(org_id)
    .bind(id)
    .bind(status)
    .fetch_one(&mut **tx)
    .await?)
}

/// Deletes a work order with its assignee index.
pub async fn delete_work_order(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM work_order_assignees WHERE org_id = $1 AND work_order_id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM work_orders WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

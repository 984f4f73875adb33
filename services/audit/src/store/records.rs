//! SQL of execution audit records: inserted once, read, never changed (the
//! service's role may only select and insert them).

use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::row;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::records::{ExecutionRecord, StoredRecord};

/// A stored record, read by the names of its fields.
fn read(row: &PgRow) -> Result<StoredRecord> {
    row::decode(row, "execution_records")
}

const RECORD_COLS: &str = "org_id, id, execution_id, program_id, task_id, task_title, skill_name, \
     skill_version, user_id, user_display_name, environment, model, outcome, started_at, ended_at, \
     duration_us, recorded_at";

/// Inserts a record unless its id is already stored (in any organization);
/// returns whether it was inserted.
pub async fn insert_record(tx: &mut Tx, r: &ExecutionRecord) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO execution_records (org_id, id, execution_id, program_id, task_id, task_title, \
           skill_name, skill_version, user_id, user_display_name, environment, model, outcome, \
           started_at, ended_at, duration_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(r.org_id)
    .bind(r.id)
    .bind(r.execution_id)
    .bind(r.program_id)
    .bind(r.task_id)
    .bind(&r.task_title)
    .bind(&r.skill_name)
    .bind(&r.skill_version)
    .bind(r.user_id)
    .bind(&r.user_display_name)
    .bind(&r.environment)
    .bind(&r.model)
    .bind(r.outcome.as_str())
    .bind(r.started_at)
    .bind(r.ended_at)
    .bind(r.duration_us)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// One record of an organization.
pub async fn get_record(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<Option<StoredRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {RECORD_COLS} FROM execution_records WHERE org_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(read).transpose()
}

/// A page of an organization's records, newest first (ids below
/// `before`), of a program and/or a task: each filter leads its index.
pub async fn list_records(
    conn: &mut PgConnection,
    org_id: Uuid,
    program_id: Option<Uuid>,
    task_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<StoredRecord>> {
    let mut q: QueryBuilder<'_, Postgres> = QueryBuilder::new(format!(
        "SELECT {RECORD_COLS} FROM execution_records WHERE org_id = "
    ));
    q.push_bind(org_id);
    if let Some(t) = task_id {
        q.push(" AND task_id = ").push_bind(t);
    }
    if let Some(p) = program_id {
        q.push(" AND program_id = ").push_bind(p);
    }
    if let Some(b) = before {
        q.push(" AND id < ").push_bind(b);
    }
    q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    let rows = q.build().fetch_all(conn).await?;
    rows.iter().map(read).collect()
}

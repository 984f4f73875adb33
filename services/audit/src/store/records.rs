//! SQL of execution audit records: inserted once, read, never changed (the
//! service's role may only select and insert them).

use chrono::{DateTime, Utc};
use foundry_platform::Result;
use foundry_platform::db::Tx;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::records::ExecutionRecord;

/// A stored record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordRow {
    /// The organization.
    pub org_id: Uuid,
    /// UUID v7.
    pub id: Uuid,
    /// The agent execution.
    pub execution_id: Option<Uuid>,
    /// The program.
    pub program_id: Uuid,
    /// The task.
    pub task_id: Uuid,
    /// The task's title then.
    pub task_title: String,
    /// The skill's name then.
    pub skill_name: String,
    /// The skill version.
    pub skill_version: String,
    /// The user.
    pub user_id: Option<Uuid>,
    /// The user's display name then.
    pub user_display_name: String,
    /// Environment and configuration.
    pub environment: serde_json::Value,
    /// The model.
    pub model: String,
    /// [`crate::domain::records::Outcome::as_str`].
    pub outcome: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub ended_at: DateTime<Utc>,
    /// Run time in microseconds.
    pub duration_us: i64,
    /// When it was stored.
    pub recorded_at: DateTime<Utc>,
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
pub async fn get_record(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<Option<RecordRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {RECORD_COLS} FROM execution_records WHERE org_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// A page of an organization's records, newest first (ids below
/// `before`), of a program and/or a task: each filter leads its index.
pub async fn list_records(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: Option<Uuid>,
    task_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RecordRow>> {
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
    Ok(q.build_query_as().fetch_all(&mut **tx).await?)
}

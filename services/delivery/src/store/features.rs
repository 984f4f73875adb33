//! Features: a tree per program.

use chrono::{DateTime, Utc};
use foundry_platform::db::Tx;
use foundry_platform::error::is_unique_violation;
use foundry_platform::{Error, Result};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Lock, newest_first};

/// A feature row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeatureRow {
    pub org_id: Uuid,
    pub id: Uuid,
    pub program_id: Uuid,
    pub parent_feature_id: Option<Uuid>,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub created_by: Uuid,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLS: &str = "org_id, id, program_id, parent_feature_id, name, slug, description, \
     created_by, version, created_at, updated_at";

fn slug_taken(e: sqlx::Error) -> Error {
    if is_unique_violation(&e, "features_slug_key") {
        Error::already_exists(
            "FEATURE_SLUG_TAKEN",
            "feature.slug",
            "a feature with this slug exists in the program",
        )
    } else {
        e.into()
    }
}

/// Inserts `f` under a new id (its id, version and times are ignored).
pub async fn insert_feature(tx: &mut Tx, f: &FeatureRow) -> Result<FeatureRow> {
    sqlx::query_as(&format!(
        "INSERT INTO features (org_id, id, program_id, parent_feature_id, name, slug, \
         description, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLS}"
    ))
    .bind(f.org_id)
    .bind(Uuid::now_v7())
    .bind(f.program_id)
    .bind(f.parent_feature_id)
    .bind(&f.name)
    .bind(&f.slug)
    .bind(&f.description)
    .bind(f.created_by)
    .fetch_one(&mut **tx)
    .await
    .map_err(slug_taken)
}

pub async fn get_feature(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    lock: Lock,
) -> Result<Option<FeatureRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM features WHERE org_id = $1 AND id = $2{}",
        lock.sql()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// The chain from `id` up to its root: `id`, its parent, its parent's
/// parent, …, each step a primary key look-up. At most `limit` ids (a
/// chain is acyclic, the service refuses cycles; the limit only bounds a
/// walk over damaged data).
pub async fn feature_ancestry(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    limit: i64,
) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "WITH RECURSIVE up (id, parent_feature_id, depth) AS ( \
             SELECT id, parent_feature_id, 1 FROM features WHERE org_id = $1 AND id = $2 \
             UNION ALL \
             SELECT f.id, f.parent_feature_id, up.depth + 1 FROM up \
             JOIN features f ON f.org_id = $1 AND f.id = up.parent_feature_id \
             WHERE up.depth < $3) \
         SELECT id FROM up ORDER BY depth",
    )
    .bind(org_id)
    .bind(id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

/// Whether the feature has a child, on `features_parent_idx`.
pub async fn feature_has_children(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: Uuid,
    id: Uuid,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM features WHERE org_id = $1 AND program_id = $2 \
         AND parent_feature_id = $3)",
    )
    .bind(org_id)
    .bind(program_id)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?)
}

/// Newest first: children of a parent walk `features_parent_idx`, all
/// `features_program_id_key`.
pub async fn list_features(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: Uuid,
    parent_feature_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<FeatureRow>> {
    let mut q =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLS} FROM features WHERE org_id = "));
    q.push_bind(org_id)
        .push(" AND program_id = ")
        .push_bind(program_id);
    if let Some(p) = parent_feature_id {
        q.push(" AND parent_feature_id = ").push_bind(p);
    }
    newest_first(&mut q, "id", before, limit);
    Ok(q.build_query_as().fetch_all(&mut **tx).await?)
}

/// Writes the user-editable fields of `row`.
pub async fn update_feature(tx: &mut Tx, row: &FeatureRow) -> Result<FeatureRow> {
    sqlx::query_as(&format!(
        "UPDATE features SET parent_feature_id = $3, name = $4, slug = $5, description = $6, \
         version = version + 1, updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(row.org_id)
    .bind(row.id)
    .bind(row.parent_feature_id)
    .bind(&row.name)
    .bind(&row.slug)
    .bind(&row.description)
    .fetch_one(&mut **tx)
    .await
    .map_err(slug_taken)
}

pub async fn delete_feature(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM features WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

//! Features: a tree per program.

use async_trait::async_trait;
use foundry_domain::Id;
use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use foundry_resource::{Insert, Resource, StampRow, Write};
use uuid::Uuid;

use super::{fetch_rows, newest_first, select, unique_or};
use crate::domain::{Feature, FeatureId, NewFeature, ProgramId};

/// A feature row, as read (public only as [`Resource::Row`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeatureRow {
    id: Uuid,
    program_id: Uuid,
    parent_feature_id: Option<Uuid>,
    name: String,
    slug: String,
    description: String,
    #[sqlx(flatten)]
    stamp: StampRow,
}

impl Resource for Feature {
    type Key = FeatureId;
    type Row = FeatureRow;
    const KIND: &'static str = "delivery.feature";
    const NAME: &'static str = "feature";
    const TABLE: &'static str = "features";
    const COLUMNS: &'static str = COLS;
    const NOT_FOUND: &'static str = "FEATURE_NOT_FOUND";

    fn from_row(r: FeatureRow) -> Result<Feature> {
        Ok(Feature {
            id: Id::from_uuid(r.id),
            fields: NewFeature {
                program_id: Id::from_uuid(r.program_id),
                parent_feature_id: r.parent_feature_id.map(Id::from_uuid),
                name: r.name,
                slug: r.slug,
                description: r.description,
            },
            stamp: r.stamp.into(),
        })
    }

    fn key(&self) -> FeatureId {
        self.id
    }

    fn version(&self) -> i64 {
        self.stamp.version
    }

    fn project(&self) -> Option<Uuid> {
        Some(self.fields.program_id.uuid())
    }
}

const COLS: &str = "id, program_id, parent_feature_id, name, slug, description, \
     created_by, version, created_at, updated_at";

fn slug_taken(e: sqlx::Error) -> Error {
    unique_or(e, "features_slug_key", || {
        Error::already_exists(
            "FEATURE_SLUG_TAKEN",
            "feature.slug",
            "a feature with this slug exists in the program",
        )
    })
}

/// Inserts a new feature made by `created_by`.
#[async_trait]
impl Insert for Feature {
    type New = NewFeature;

    async fn insert(
        f: &NewFeature,
        tx: &mut Tx,
        org_id: Uuid,
        created_by: Uuid,
    ) -> Result<Feature> {
        let row: FeatureRow = sqlx::query_as(&format!(
            "INSERT INTO features (org_id, id, program_id, parent_feature_id, name, slug, \
             description, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(Uuid::now_v7())
        .bind(f.program_id.uuid())
        .bind(f.parent_feature_id.map(Id::uuid))
        .bind(&f.name)
        .bind(&f.slug)
        .bind(&f.description)
        .bind(created_by)
        .fetch_one(&mut **tx)
        .await
        .map_err(slug_taken)?;
        Feature::from_row(row)
    }
}

/// The chain from `id` up to its root: `id`, its parent, its parent's
/// parent, …, each step a primary key look-up. At most `limit` ids (a
/// chain is acyclic, the service refuses cycles; the limit only bounds a
/// walk over damaged data).
pub async fn feature_ancestry(
    tx: &mut Tx,
    org_id: Uuid,
    id: FeatureId,
    limit: i64,
) -> Result<Vec<FeatureId>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "WITH RECURSIVE up (id, parent_feature_id, depth) AS ( \
             SELECT id, parent_feature_id, 1 FROM features WHERE org_id = $1 AND id = $2 \
             UNION ALL \
             SELECT f.id, f.parent_feature_id, up.depth + 1 FROM up \
             JOIN features f ON f.org_id = $1 AND f.id = up.parent_feature_id \
             WHERE up.depth < $3) \
         SELECT id FROM up ORDER BY depth",
    )
    .bind(org_id)
    .bind(id.uuid())
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(ids.into_iter().map(Id::from_uuid).collect())
}

/// Whether the feature has a child, on `features_parent_idx`.
pub async fn feature_has_children(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: ProgramId,
    id: FeatureId,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM features WHERE org_id = $1 AND program_id = $2 \
         AND parent_feature_id = $3)",
    )
    .bind(org_id)
    .bind(program_id.uuid())
    .bind(id.uuid())
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
) -> Result<Vec<Feature>> {
    let mut q = select::<Feature>(org_id);
    q.push(" AND program_id = ").push_bind(program_id);
    if let Some(p) = parent_feature_id {
        q.push(" AND parent_feature_id = ").push_bind(p);
    }
    newest_first(&mut q, "id", before, limit);
    fetch_rows(q, tx).await
}

/// Writes the user-editable fields of `f`.
#[async_trait]
impl Write for Feature {
    async fn write(&self, tx: &mut Tx, org_id: Uuid) -> Result<Feature> {
        let row: FeatureRow = sqlx::query_as(&format!(
            "UPDATE features SET parent_feature_id = $3, name = $4, slug = $5, description = $6, \
             version = version + 1, updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
        ))
        .bind(org_id)
        .bind(self.id.uuid())
        .bind(self.fields.parent_feature_id.map(Id::uuid))
        .bind(&self.fields.name)
        .bind(&self.fields.slug)
        .bind(&self.fields.description)
        .fetch_one(&mut **tx)
        .await
        .map_err(slug_taken)?;
        Feature::from_row(row)
    }
}

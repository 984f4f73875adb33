//! Features: a tree per program.

use foundry_domain::Id;
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Resource, Unique, Within};
use uuid::Uuid;

use super::{Cursor, newest_first, push_select, under};
use crate::domain::{Feature, FeatureId, NewFeature, Program, ProgramId};

impl Resource for Feature {
    type New = NewFeature;
    foundry_resource::names!("delivery", "feature", "features");
    const WITHIN: Option<Within<NewFeature>> = Some(super::program_child(|n| n.program_id.uuid()));

    const UNIQUE: &'static [Unique] = &[Unique {
        constraint: "features_slug_key",
        reason: "FEATURE_SLUG_TAKEN",
        field: "feature.slug",
        message: "a feature with this slug exists in the program",
    }];
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

/// A program's features with the program ([`under`]), newest first:
/// children of a parent walk `features_parent_idx`, all
/// `features_program_id_key`.
pub async fn list_features(
    conn: &mut sqlx::PgConnection,
    org_id: Uuid,
    program_id: ProgramId,
    parent_feature_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<(Option<Program>, Vec<Feature>)> {
    under(conn, org_id, program_id, Cursor::Before(before), |q| {
        push_select::<Feature>(q, org_id);
        q.push(" AND program_id = ").push_bind(program_id.uuid());
        if let Some(p) = parent_feature_id {
            q.push(" AND parent_feature_id = ").push_bind(p);
        }
        newest_first(q, "id", before, limit);
    })
    .await
}

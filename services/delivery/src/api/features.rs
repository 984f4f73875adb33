//! `FeatureService`.

use std::sync::Arc;

use chrono::Utc;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{Tx, check_etag, etag, idempotency};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::delivery::v1::{self as pb, feature_service_server::FeatureService};
use foundry_tenancy::{Caller, caller};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    SHORT_DESCRIPTION, actor, feature_not_found, found, long_text, other_program, program,
};
use crate::domain;
use crate::store::{self, FeatureRow, Lock};

/// Handlers of `FeatureService`.
#[derive(Clone, Debug)]
pub struct Features(pub Arc<State>);

const RESOURCE: &str = "delivery.feature";
/// Deepest walk up a feature's ancestry.
const MAX_DEPTH: i64 = 10_000;

pub fn feature_to_proto(f: FeatureRow) -> pb::Feature {
    pb::Feature {
        id: f.id.to_string(),
        program_id: f.program_id.to_string(),
        parent_feature_id: f
            .parent_feature_id
            .map(|x| x.to_string())
            .unwrap_or_default(),
        name: f.name,
        slug: f.slug,
        description: f.description,
        created_by: f.created_by.to_string(),
        create_time: Some(timestamp(f.created_at)),
        update_time: Some(timestamp(f.updated_at)),
        etag: etag(f.version),
    }
}

/// The parent feature, visible and in `program_id`, held with `KEY SHARE`
/// (it cannot vanish before commit).
async fn parent(
    tx: &mut Tx,
    caller: &Caller,
    org_id: Uuid,
    program_id: Uuid,
    id: Uuid,
) -> Result<FeatureRow, Error> {
    let p = found(
        store::get_feature(tx, org_id, id, Lock::KeyShare).await?,
        caller,
        |f| f.program_id,
        feature_not_found,
    )?;
    if p.program_id != program_id {
        return Err(other_program("parent feature"));
    }
    Ok(p)
}

#[tonic::async_trait]
impl FeatureService for Features {
    #[tracing::instrument(skip_all)]
    async fn create_feature(
        &self,
        req: Request<pb::CreateFeatureRequest>,
    ) -> Result<Response<pb::Feature>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let f = req.feature.unwrap_or_default();
        let mut v = Violations::new();
        let program_id = v.id("feature.program_id", &f.program_id);
        let parent_feature_id = v.opt_id("feature.parent_feature_id", &f.parent_feature_id);
        let name = v.text("feature.name", &f.name, 1, 200);
        let slug = v.slug("feature.slug", &f.slug);
        let description = long_text(
            &mut v,
            "feature.description",
            &f.description,
            0,
            SHORT_DESCRIPTION,
        );
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (Some(program_id), Some(name), Some(slug), Some(description)) =
            (program_id, name, slug, description)
        else {
            return Err(Error::invalid_field("feature", "is required").into());
        };

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::Feature>(&mut tx, org_id, "CreateFeature", rid).await?
        {
            return Ok(Response::new(prev));
        }
        program(&mut tx, &caller, org_id, program_id, Lock::KeyShare).await?;
        if let Some(p) = parent_feature_id {
            parent(&mut tx, &caller, org_id, program_id, p).await?;
        }
        let now = Utc::now();
        let row = store::insert_feature(
            &mut tx,
            &FeatureRow {
                org_id,
                id: Uuid::nil(),
                program_id,
                parent_feature_id,
                name,
                slug,
                description,
                created_by: caller.principal_id(),
                version: 1,
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        actor
            .event("delivery.feature.create", RESOURCE, row.id)
            .project(Some(program_id))
            .set("parent_feature_id", row.parent_feature_id)
            .set("name", &row.name)
            .set("slug", &row.slug)
            .set("description", &row.description)
            .record(&mut tx)
            .await?;
        let out = feature_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, org_id, "CreateFeature", rid, &out).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_feature(
        &self,
        req: Request<pb::GetFeatureRequest>,
    ) -> Result<Response<pb::Feature>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_feature(&mut tx, org_id, id, Lock::None).await?,
            &caller,
            |f| f.program_id,
            feature_not_found,
        )?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(feature_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_features(
        &self,
        req: Request<pb::ListFeaturesRequest>,
    ) -> Result<Response<pb::ListFeaturesResponse>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id = v.id("program_id", &req.program_id);
        let parent_feature_id = v.opt_id("parent_feature_id", &req.parent_feature_id);
        v.finish()?;
        let Some(program_id) = program_id else {
            return Err(Error::invalid_field("program_id", "is required").into());
        };
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!(
                "program={program_id};parent={}",
                parent_feature_id.map(|p| p.to_string()).unwrap_or_default()
            ),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        program(&mut tx, &caller, org_id, program_id, Lock::None).await?;
        let mut rows = store::list_features(
            &mut tx,
            org_id,
            program_id,
            parent_feature_id,
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |f| f.id);
        Ok(Response::new(pb::ListFeaturesResponse {
            features: rows.into_iter().map(feature_to_proto).collect(),
            next_page_token,
        }))
    }

    /// A new parent is checked against the feature's descendants while the
    /// program is held `FOR NO KEY UPDATE`: re-parentings of one program run
    /// one after the other, so two cannot close a cycle together.
    #[tracing::instrument(skip_all)]
    async fn update_feature(
        &self,
        req: Request<pb::UpdateFeatureRequest>,
    ) -> Result<Response<pb::Feature>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let f = req.feature.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.id("feature.id", &f.id);
        let paths = update_mask(
            &mut v,
            req.update_mask.as_ref(),
            &["parent_feature_id", "name", "slug", "description"],
            &[
                "id",
                "program_id",
                "created_by",
                "create_time",
                "update_time",
                "etag",
            ],
        );
        let (mut parent_feature_id, mut name, mut slug, mut description) = (None, None, None, None);
        for path in &paths {
            match *path {
                // Empty makes it top-level.
                "parent_feature_id" => {
                    parent_feature_id =
                        Some(v.opt_id("feature.parent_feature_id", &f.parent_feature_id))
                }
                "name" => name = v.text("feature.name", &f.name, 1, 200),
                "slug" => slug = v.slug("feature.slug", &f.slug),
                _ => {
                    description = long_text(
                        &mut v,
                        "feature.description",
                        &f.description,
                        0,
                        SHORT_DESCRIPTION,
                    )
                }
            }
        }
        v.finish()?;
        let Some(id) = id else {
            return Err(Error::invalid_field("feature.id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut row = found(
            store::get_feature(&mut tx, org_id, id, Lock::None).await?,
            &caller,
            |f| f.program_id,
            feature_not_found,
        )?;
        if let Some(Some(p)) = parent_feature_id {
            program(&mut tx, &caller, org_id, row.program_id, Lock::NoKeyUpdate).await?;
            parent(&mut tx, &caller, org_id, row.program_id, p).await?;
            let ancestry = store::feature_ancestry(&mut tx, org_id, p, MAX_DEPTH).await?;
            domain::check_feature_parent(id, &ancestry).map_err(Error::from)?;
        }
        row = found(
            store::get_feature(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |f| f.program_id,
            feature_not_found,
        )?;
        check_etag(&f.etag, row.version, "feature")?;
        let before = row.clone();
        if let Some(x) = parent_feature_id {
            row.parent_feature_id = x;
        }
        if let Some(x) = name {
            row.name = x;
        }
        if let Some(x) = slug {
            row.slug = x;
        }
        if let Some(x) = description {
            row.description = x;
        }
        let row = store::update_feature(&mut tx, &row).await?;
        actor
            .event("delivery.feature.update", RESOURCE, id)
            .project(Some(row.program_id))
            .change(
                "parent_feature_id",
                before.parent_feature_id,
                row.parent_feature_id,
            )
            .change("name", &before.name, &row.name)
            .change("slug", &before.slug, &row.slug)
            .change("description", &before.description, &row.description)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(feature_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_feature(
        &self,
        req: Request<pb::DeleteFeatureRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        // FOR UPDATE: a child's create holds KEY SHARE on its parent, so no
        // child appears between the check and the delete.
        let row = found(
            store::get_feature(&mut tx, org_id, id, Lock::Update).await?,
            &caller,
            |f| f.program_id,
            feature_not_found,
        )?;
        check_etag(&req.get_ref().etag, row.version, "feature")?;
        if store::feature_has_children(&mut tx, org_id, row.program_id, id).await? {
            return Err(Error::failed_precondition(
                "FEATURE_HAS_CHILDREN",
                "the feature has child features; delete or move them first",
            )
            .into());
        }
        store::delete_feature(&mut tx, org_id, id).await?;
        actor
            .event("delivery.feature.delete", RESOURCE, id)
            .project(Some(row.program_id))
            .change("name", &row.name, None::<()>)
            .change("slug", &row.slug, None::<()>)
            .change("parent_feature_id", row.parent_feature_id, None::<()>)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }
}

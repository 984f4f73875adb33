//! `FeatureService`.

use std::sync::Arc;

use foundry_domain::Id;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{Tx, check_etag, etag};
use foundry_platform::idempotency::{self, Begun};
use foundry_platform::validate::{Violations, mask};
use foundry_proto::foundry::delivery::v1::{self as pb, feature_service_server::FeatureService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    SERVICE, SHORT_DESCRIPTION, feature_not_found, found, long_text, other_program, program,
};
use crate::domain::{self, Feature, FeatureChange, FeatureId, FeaturePath, NewFeature, ProgramId};
use crate::store::{self, Lock};

/// Handlers of `FeatureService`.
#[derive(Clone, Debug)]
pub struct Features(pub Arc<State>);

const RESOURCE: &str = "delivery.feature";
/// Deepest walk up a feature's ancestry.
const MAX_DEPTH: i64 = 10_000;

pub fn feature_to_proto(f: &Feature) -> pb::Feature {
    pb::Feature {
        id: f.id.to_string(),
        program_id: f.program_id.to_string(),
        parent_feature_id: f
            .parent_feature_id
            .map(|x| x.to_string())
            .unwrap_or_default(),
        name: f.name.clone(),
        slug: f.slug.clone(),
        description: f.description.clone(),
        created_by: f.created_by.to_string(),
        create_time: Some(timestamp(f.created_at)),
        update_time: Some(timestamp(f.updated_at)),
        etag: etag(f.version),
    }
}

/// A `CreateFeatureRequest` as a [`NewFeature`] and its request id.
fn parse_create(req: &pb::CreateFeatureRequest) -> Result<(NewFeature, Option<Uuid>), Error> {
    let empty = pb::Feature::default();
    let f = req.feature.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let program_id = v.id_of("feature.program_id", &f.program_id);
    let parent_feature_id = v.maybe_id("feature.parent_feature_id", &f.parent_feature_id);
    let name = name(&mut v, &f.name);
    let slug = v.slug("feature.slug", &f.slug);
    let description = description(&mut v, &f.description);
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some((
            NewFeature {
                program_id: program_id?,
                parent_feature_id: parent_feature_id?,
                name: name?,
                slug: slug?,
                description: description?,
            },
            request_id?,
        ))
    })
}

/// An `UpdateFeatureRequest` as the feature's id and the changes its mask
/// names.
fn parse_update(req: &pb::UpdateFeatureRequest) -> Result<(FeatureId, Vec<FeatureChange>), Error> {
    let empty = pb::Feature::default();
    let f = req.feature.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let id = v.id_of("feature.id", &f.id);
    let mut changes = Vec::new();
    for path in mask::<FeaturePath>(&mut v, req.update_mask.as_ref()) {
        changes.push(match path {
            // Empty makes it top-level.
            FeaturePath::ParentFeatureId => v
                .maybe_id("feature.parent_feature_id", &f.parent_feature_id)
                .map(FeatureChange::ParentFeatureId),
            FeaturePath::Name => name(&mut v, &f.name).map(FeatureChange::Name),
            FeaturePath::Slug => v.slug("feature.slug", &f.slug).map(FeatureChange::Slug),
            FeaturePath::Description => {
                description(&mut v, &f.description).map(FeatureChange::Description)
            }
        });
    }
    v.finish_with(|| Some((id?, changes.into_iter().collect::<Option<Vec<_>>>()?)))
}

fn name(v: &mut Violations, name: &str) -> Option<String> {
    v.text("feature.name", name, 1, 200)
}

fn description(v: &mut Violations, description: &str) -> Option<String> {
    long_text(v, "feature.description", description, 0, SHORT_DESCRIPTION)
}

/// A feature the caller may see, with `lock`.
async fn visible_feature(
    tx: &mut Tx,
    call: &Call,
    id: FeatureId,
    lock: Lock,
) -> Result<Feature, Error> {
    found(
        store::get_feature(tx, call.org_id, id, lock).await?,
        &call.caller,
        |f| f.program_id.uuid(),
        feature_not_found,
    )
}

/// A feature something of `program_id` refers to (`what`: a parent
/// feature, a work order's feature): visible, in that program, held with
/// `KEY SHARE` (it cannot vanish before commit).
pub(crate) async fn feature_in(
    tx: &mut Tx,
    call: &Call,
    program_id: ProgramId,
    id: FeatureId,
    what: &str,
) -> Result<Feature, Error> {
    let f = visible_feature(tx, call, id, Lock::KeyShare).await?;
    if f.program_id != program_id {
        return Err(other_program(what));
    }
    Ok(f)
}

#[tonic::async_trait]
impl FeatureService for Features {
    #[tracing::instrument(skip_all)]
    async fn create_feature(
        &self,
        req: Request<pb::CreateFeatureRequest>,
    ) -> Result<Response<pb::Feature>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (new, request_id) = parse_create(req.get_ref())?;
        let key = idempotency::Key::of(call.org_id, "CreateFeature", request_id, req.get_ref());
        let mut tx = match idempotency::begin(self.0.db.tenant(call.org_id).await?, key).await? {
            Begun::Replay(previous) => return Ok(Response::new(previous)),
            Begun::New(tx) => tx,
        };
        program(
            &mut tx,
            &call.caller,
            call.org_id,
            new.program_id.uuid(),
            Lock::KeyShare,
        )
        .await?;
        if let Some(p) = new.parent_feature_id {
            feature_in(&mut tx, &call, new.program_id, p, "parent feature").await?;
        }
        let f = store::insert_feature(&mut tx, call.org_id, &new, call.principal_id()).await?;
        call.actor
            .event("delivery.feature.create", RESOURCE, f.id)
            .project(Some(f.program_id.uuid()))
            .created(&f)
            .record(&mut tx)
            .await?;
        let out = feature_to_proto(&f);
        tx.finish(&out).await?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_feature(
        &self,
        req: Request<pb::GetFeatureRequest>,
    ) -> Result<Response<pb::Feature>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let f = visible_feature(&mut tx, &call, id, Lock::None).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(feature_to_proto(&f)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_features(
        &self,
        req: Request<pb::ListFeaturesRequest>,
    ) -> Result<Response<pb::ListFeaturesResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id = v.id("program_id", &req.program_id);
        let parent_feature_id = v.opt_id("parent_feature_id", &req.parent_feature_id);
        let program_id = v.finish_with(|| program_id)?;
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!(
                "program={program_id};parent={}",
                parent_feature_id.map(|p| p.to_string()).unwrap_or_default()
            ),
        )?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        program(&mut tx, &call.caller, call.org_id, program_id, Lock::None).await?;
        let mut features = store::list_features(
            &mut tx,
            call.org_id,
            program_id,
            parent_feature_id,
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut features, |f| f.id.uuid());
        Ok(Response::new(pb::ListFeaturesResponse {
            features: features.iter().map(feature_to_proto).collect(),
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
        let call = Call::of(SERVICE, &req)?;
        let (id, changes) = parse_update(req.get_ref())?;
        let etag = req
            .get_ref()
            .feature
            .as_ref()
            .map_or("", |f| f.etag.as_str());
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let current = visible_feature(&mut tx, &call, id, Lock::None).await?;
        if let Some(p) = FeatureChange::new_parent(&changes) {
            program(
                &mut tx,
                &call.caller,
                call.org_id,
                current.program_id.uuid(),
                Lock::NoKeyUpdate,
            )
            .await?;
            feature_in(&mut tx, &call, current.program_id, p, "parent feature").await?;
            let ancestry = store::feature_ancestry(&mut tx, call.org_id, p, MAX_DEPTH).await?;
            domain::check_feature_parent(id, &ancestry).map_err(Error::from)?;
        }
        let before = visible_feature(&mut tx, &call, id, Lock::NoKeyUpdate).await?;
        check_etag(etag, before.version, "feature")?;
        let mut f = before.clone();
        f.apply(changes);
        let f = store::update_feature(&mut tx, call.org_id, &f).await?;
        call.actor
            .event("delivery.feature.update", RESOURCE, id)
            .project(Some(f.program_id.uuid()))
            .diff(&before, &f)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(feature_to_proto(&f)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_feature(
        &self,
        req: Request<pb::DeleteFeatureRequest>,
    ) -> Result<Response<()>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        // FOR UPDATE: a child's create holds KEY SHARE on its parent, so no
        // child appears between the check and the delete.
        let f = visible_feature(&mut tx, &call, id, Lock::Update).await?;
        check_etag(&req.get_ref().etag, f.version, "feature")?;
        if store::feature_has_children(&mut tx, call.org_id, f.program_id, id).await? {
            return Err(Error::failed_precondition(
                "FEATURE_HAS_CHILDREN",
                "the feature has child features; delete or move them first",
            )
            .into());
        }
        store::delete_feature(&mut tx, call.org_id, id).await?;
        call.actor
            .event("delivery.feature.delete", RESOURCE, id)
            .project(Some(f.program_id.uuid()))
            .removed(&f)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }
}

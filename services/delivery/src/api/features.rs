//! `FeatureService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::db::Tx;
use foundry_platform::rpc::{Methods, Served};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_proto::service::delivery_v1 as svc;
use foundry_resource::{self as resource, Create, Delete, Update, stamped};
use uuid::Uuid;

use crate::State;
use crate::api::{
    In, Order, Paging, PathOf, Reply, Wire, create, delete, get, in_program, list_page, page,
    parse_update, short_description, visible_parent,
};
use crate::domain::Program;
use crate::domain::{self, Feature, FeatureChange, FeaturePath, NewFeature, ProgramId};
use crate::store::{self, Lock};

impl Wire for Feature {
    type Message = pb::Feature;

    fn to_proto(&self) -> pb::Feature {
        let f = &self.fields;
        pb::Feature {
            program_id: f.program_id.to_string(),
            parent_feature_id: f
                .parent_feature_id
                .map(|x| x.to_string())
                .unwrap_or_default(),
            name: f.name.clone(),
            slug: f.slug.clone(),
            description: f.description.clone(),
            ..stamped(self.id, &self.stamp)
        }
    }

    fn parse(v: &mut Violations, f: &pb::Feature) -> Option<NewFeature> {
        let program_id = v.id_of("feature.program_id", &f.program_id);
        let parent_feature_id = v.maybe_id("feature.parent_feature_id", &f.parent_feature_id);
        let name = name(v, &f.name);
        let slug = v.slug("feature.slug", &f.slug);
        let description = short_description(v, "feature.description", &f.description);
        Some(NewFeature {
            program_id: program_id?,
            parent_feature_id: parent_feature_id?,
            name: name?,
            slug: slug?,
            description: description?,
        })
    }

    fn change(v: &mut Violations, path: PathOf<Self>, f: &Self::Message) -> Option<Self::Change> {
        match path {
            // Empty makes it top-level.
            FeaturePath::ParentFeatureId => v
                .maybe_id("feature.parent_feature_id", &f.parent_feature_id)
                .map(FeatureChange::ParentFeatureId),
            FeaturePath::Name => name(v, &f.name).map(FeatureChange::Name),
            FeaturePath::Slug => v.slug("feature.slug", &f.slug).map(FeatureChange::Slug),
            FeaturePath::Description => short_description(v, "feature.description", &f.description)
                .map(FeatureChange::Description),
        }
    }
}

/// Deepest walk up a feature's ancestry.
const MAX_DEPTH: i64 = 10_000;

fn name(v: &mut Violations, name: &str) -> Option<String> {
    v.text("feature.name", name, 1, 200)
}

#[async_trait]
impl Create for Feature {
    fn checks(new: &NewFeature) -> bool {
        new.parent_feature_id.is_some()
    }

    /// The parent if any is visible, in the program (held:
    /// `Resource::WITHIN`), and held (`FOR KEY SHARE`) until commit.
    async fn check_new(new: &NewFeature, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        if let Some(p) = new.parent_feature_id {
            in_program::<Feature>(tx, call, new.program_id, p, "parent feature").await?;
        }
        Ok(())
    }
}

/// Written by `update_feature` itself rather than `resource::update`: a new
/// parent is checked under the program's lock, taken before the feature's.
impl Update for Feature {}

#[async_trait]
impl Delete for Feature {
    /// Refused while it has child features. The feature is held `FOR
    /// UPDATE`: a child's create holds `KEY SHARE` on its parent, so no
    /// child appears between the check and the delete.
    async fn remove(&self, tx: &mut Tx, org_id: Uuid) -> Result<Option<serde_json::Value>, Error> {
        if store::feature_has_children(tx, org_id, self.fields.program_id, self.id).await? {
            return Err(Error::failed_precondition(
                "FEATURE_HAS_CHILDREN",
                "the feature has child features; delete or move them first",
            ));
        }
        resource::remove_row::<Feature>(tx, org_id, self.id).await?;
        Ok(None)
    }
}

/// `FeatureService`.
pub(crate) fn service(state: &Arc<State>) -> Served<svc::FeatureService> {
    Methods::new(state.clone())
        .call(create::<Feature, pb::CreateFeatureRequest>)
        .call(get::<Feature, _, pb::GetFeatureRequest>)
        .call(delete::<Feature, _, pb::DeleteFeatureRequest>)
        .call(list_features)
        .call(update_feature)
        .complete()
}

async fn list_features(c: In<pb::ListFeaturesRequest>) -> Reply<pb::ListFeaturesResponse> {
    let req = &c.req;
    let mut v = Violations::new();
    let program_id: Option<ProgramId> = v.id_of("program_id", &req.program_id);
    let parent = v.opt_id("parent_feature_id", &req.parent_feature_id);
    let program_id = v.finish_with(|| program_id)?;
    let paging =
        Paging::under("program", program_id, req.page_size, &req.page_token).and(&format!(
            "parent={}",
            parent.map(|p| p.to_string()).unwrap_or_default()
        ));
    let (features, next_page_token) = list_page(&c, paging, Order::newest(), |conn, call, page| {
        Box::pin(async move {
            let (after, limit) = (page.after, page.limit());
            let found =
                store::list_features(conn, call.org_id, program_id, parent, after, limit).await?;
            visible_parent::<Program, _>(call, found)
        })
    })
    .await?;
    page(&features, next_page_token)
}

/// A new parent is checked against the feature's descendants while the
/// program is held `FOR NO KEY UPDATE`: re-parentings of one program run
/// one after the other, so two cannot close a cycle together. The
/// program is locked before the feature (the order a program's delete
/// takes), so this method is not `resource::update`.
async fn update_feature(c: In<pb::UpdateFeatureRequest>) -> Reply<pb::Feature> {
    let In { state, call, req } = c;
    let (id, etag, changes) = parse_update::<Feature, _, _>(&req)?;
    let mut tx = state.db.tenant(call.org_id).await?;
    let current: Feature = resource::fetch(&mut tx, &call, id, Lock::None).await?;
    if let Some(p) = FeatureChange::new_parent(&changes) {
        let program_id = current.fields.program_id;
        resource::fetch::<domain::Program>(&mut tx, &call, program_id, Lock::NoKeyUpdate).await?;
        in_program::<Feature>(&mut tx, &call, program_id, p, "parent feature").await?;
        let ancestry = store::feature_ancestry(&mut tx, call.org_id, p, MAX_DEPTH).await?;
        domain::check_feature_parent(id, &ancestry).map_err(Error::from)?;
    }
    let before: Feature = resource::fetch(&mut tx, &call, id, Lock::NoKeyUpdate).await?;
    let f = resource::update_locked(tx, &call, before, &etag, changes).await?;
    Ok(f.to_proto())
}

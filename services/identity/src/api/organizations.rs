//! `OrganizationService`.

use std::sync::Arc;

use foundry_outbox::{Call, EventBuilder};
use foundry_platform::Error;
use foundry_platform::convert::{json_to_struct, opt_timestamp, struct_to_json};
use foundry_platform::db::{Lock, Tx};
use foundry_platform::idempotency::{self, Begun};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::identity::v1::{
    self as pb, organization_service_server::OrganizationService,
};
use foundry_resource::{self as resource, Resource, Update};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::memberships::add_member;
use crate::api::{SERVICE, WireRevision, changes};
use crate::api::{acting, actor, locked, page_of, recorded};
use crate::domain::{
    NewOrganization, Organization, OrganizationChange, OrganizationPath, Role, UserId,
};
use crate::store;

const MAX_SETTINGS_BYTES: usize = 64 * 1024;
const RESOURCE: &str = "identity.organization";

/// Handlers of `OrganizationService`.
#[derive(Clone, Debug)]
pub struct Organizations(pub Arc<State>);

pub fn org_to_proto(o: &Organization) -> pb::Organization {
    let WireRevision {
        create_time,
        update_time,
        etag,
    } = (&o.stamp).into();
    pb::Organization {
        id: o.id.to_string(),
        name: o.fields.name.clone(),
        slug: o.fields.slug.clone(),
        settings: Some(json_to_struct(&o.fields.settings)),
        create_time,
        update_time,
        delete_time: opt_timestamp(o.deleted_at),
        etag,
    }
}

fn settings(
    v: &mut Violations,
    field: &str,
    s: Option<&prost_types::Struct>,
) -> Option<serde_json::Value> {
    let json = s
        .map(struct_to_json)
        .unwrap_or_else(|| serde_json::json!({}));
    if serde_json::to_vec(&json)
        .map(|b| b.len())
        .unwrap_or(usize::MAX)
        > MAX_SETTINGS_BYTES
    {
        v.add(field, "must be at most 64 KiB as JSON");
        return None;
    }
    Some(json)
}

/// A `CreateOrganizationRequest` as a [`NewOrganization`] and its request id.
fn parse_create(
    req: &pb::CreateOrganizationRequest,
) -> Result<(NewOrganization, Option<Uuid>), Error> {
    let empty = pb::Organization::default();
    let o = req.organization.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let name = v.text("organization.name", &o.name, 1, 200);
    let slug = v.slug("organization.slug", &o.slug);
    let settings = settings(&mut v, "organization.settings", o.settings.as_ref());
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some((
            NewOrganization {
                name: name?,
                slug: slug?,
                settings: settings?,
            },
            request_id?,
        ))
    })
}

/// An `UpdateOrganizationRequest`'s changes, as its mask names them.
fn parse_update(req: &pb::UpdateOrganizationRequest) -> Result<Vec<OrganizationChange>, Error> {
    let empty = pb::Organization::default();
    let o = req.organization.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let changes = changes(&mut v, req.update_mask.as_ref(), |v, path| match path {
        OrganizationPath::Name => v
            .text("organization.name", &o.name, 1, 200)
            .map(OrganizationChange::Name),
        OrganizationPath::Slug => v
            .slug("organization.slug", &o.slug)
            .map(OrganizationChange::Slug),
        OrganizationPath::Settings => settings(v, "organization.settings", o.settings.as_ref())
            .map(OrganizationChange::Settings),
    });
    v.finish_with(|| changes)
}

/// `ORGANIZATION_DELETED`, with what to do instead.
fn deleted(why: &'static str) -> Error {
    Error::failed_precondition("ORGANIZATION_DELETED", why)
}

#[tonic::async_trait]
impl Update for Organization {
    async fn check(&self, before: &Self, _: &mut Tx, _: &Call) -> Result<(), Error> {
        match before.deleted_at {
            Some(_) => Err(deleted("undelete the organization first")),
            None => Ok(()),
        }
    }
}

/// Records `event` with the changes from `before` to `after`, commits and
/// answers `after`.
async fn diffed(
    tx: Tx,
    event: EventBuilder,
    before: &Organization,
    after: Organization,
) -> Result<Response<pb::Organization>, Error> {
    let event = event.org(after.id).diff(before, &after);
    recorded(tx, event, &after, org_to_proto).await
}

/// The domain event other services react to (billing's subscription):
/// `identity.organization.created` v1, about the organization, with its
/// name, slug and owner.
pub(crate) async fn organization_created(
    tx: &mut foundry_platform::db::Tx,
    org: &crate::domain::Organization,
    owner: Uuid,
) -> Result<(), foundry_platform::Error> {
    foundry_outbox::DomainEvent::new(
        org.id,
        ("identity.organization.created", 1),
        (RESOURCE, org.id.to_string()),
        serde_json::json!({
            "name": org.fields.name,
            "slug": org.fields.slug,
            "owner_id": owner,
        }),
    )
    .record(tx)
    .await?;
    Ok(())
}

#[tonic::async_trait]
impl OrganizationService for Organizations {
    #[tracing::instrument(skip_all)]
    async fn create_organization(
        &self,
        req: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let user_id = caller(&req)?.user_id()?;
        let actor = actor(&req);
        let (new, request_id) = parse_create(req.get_ref())?;
        let id = Uuid::now_v7();
        // The new org's id is the tenant of this transaction; the key's
        // scope is the user, so a repeat finds the user's earlier create.
        let key = idempotency::Key::of(user_id, "CreateOrganization", request_id, req.get_ref());
        let mut tx = self.0.db.tenant(id).await?;
        store::act_for_user(&mut tx, user_id).await?;
        let mut tx = match idempotency::begin(tx, key).await? {
            Begun::Replay(previous) => return Ok(Response::new(previous)),
            Begun::New(tx) => tx,
        };
        let org = store::insert_org(&mut tx, id, &new).await?;
        actor
            .event("identity.organization.create", RESOURCE, id)
            .org(id)
            .created(&org)
            .record(&mut tx)
            .await?;
        organization_created(&mut tx, &org, user_id).await?;
        let owner = (id, UserId::from_uuid(user_id), Role::Owner);
        add_member(&mut tx, &actor, owner, None).await?;
        let out = org_to_proto(&org);
        tx.finish(&out, vec![]).await?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_organization(
        &self,
        req: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let org_id = call.caller.require_org("id", &req.get_ref().id)?;
        let org = resource::get::<Organization>(&self.0.db, &call, org_id).await?;
        Ok(Response::new(org_to_proto(&org)))
    }

    #[tracing::instrument(skip_all)]
    async fn update_organization(
        &self,
        req: Request<pb::UpdateOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let r = req.get_ref();
        let o = r.organization.as_ref();
        let org_id = call
            .caller
            .require_org("organization.id", o.map_or("", |o| o.id.as_str()))?;
        let changes = parse_update(r)?;
        let etag = o.map_or("", |o| o.etag.as_str());
        // The caller's standing first, the organization after: the lock
        // order of every identity write.
        let (mut tx, _) = acting(&self.0.db, &call).await?;
        let before = resource::fetch(&mut tx, &call, org_id, Lock::NoKeyUpdate).await?;
        let org = resource::update_locked::<Organization>(tx, &call, before, etag, changes).await?;
        Ok(Response::new(org_to_proto(&org)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_organization(
        &self,
        req: Request<pb::DeleteOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let org_id = call.caller.require_org("id", &req.id)?;
        let (mut tx, before) = locked::<Organization>(&self.0.db, &call, org_id, &req.etag).await?;
        if before.deleted_at.is_some() {
            return Err(deleted("the organization is already deleted").into());
        }
        let org = store::set_org_deleted(&mut tx, org_id, true).await?;
        let event = call
            .actor
            .event("identity.organization.delete", RESOURCE, org_id);
        Ok(diffed(tx, event, &before, org).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn undelete_organization(
        &self,
        req: Request<pb::UndeleteOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let caller = caller(&req)?;
        let user_id = UserId::from_uuid(caller.user_id()?);
        let actor = actor(&req);
        let org_id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        // Only owners, checked here: no token can act in a deleted org. Not
        // an owner and not existing answer alike.
        let is_owner = store::get_membership_of(&mut tx, org_id, user_id, Lock::Share)
            .await?
            .is_some_and(|m| m.role == Role::Owner);
        let before = match store::get_org(&mut tx, org_id, Lock::Update).await? {
            Some(o) if is_owner => o,
            _ => return Err(Organization::not_found().into()),
        };
        if before.deleted_at.is_none() {
            return Err(Error::failed_precondition(
                "ORGANIZATION_NOT_DELETED",
                "the organization is not deleted",
            )
            .into());
        }
        let org = store::set_org_deleted(&mut tx, org_id, false).await?;
        let event = actor.event("identity.organization.undelete", RESOURCE, org_id);
        Ok(diffed(tx, event, &before, org).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn list_organizations(
        &self,
        req: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        let caller = caller(&req)?;
        let user_id = caller.user_id()?;
        let req = req.into_inner();
        let page = self.0.pages.parse(req.page_size, &req.page_token, "")?;
        let mut out = pb::ListOrganizationsResponse::default();
        let mut tx = self.0.db.user(user_id).await?;
        let rows = store::list_user_orgs(&mut tx, user_id, page).await?;
        tx.commit().await.map_err(Error::from)?;
        (out.organizations, out.next_page_token) =
            page_of(&self.0, &page, rows, |o| o.id, org_to_proto);
        Ok(Response::new(out))
    }
}

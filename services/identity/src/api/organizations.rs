//! `OrganizationService`.

use std::sync::Arc;

use foundry_platform::Error;
use foundry_platform::convert::{json_to_struct, opt_timestamp, struct_to_json, timestamp};
use foundry_platform::db::{check_etag, etag, idempotency};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::identity::v1::{
    self as pb, organization_service_server::OrganizationService,
};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::actor;
use crate::domain::Role;
use crate::store::{self, OrgRow};

const MAX_SETTINGS_BYTES: usize = 64 * 1024;

/// Handlers of `OrganizationService`.
#[derive(Clone, Debug)]
pub struct Organizations(pub Arc<State>);

pub fn org_to_proto(r: OrgRow) -> pb::Organization {
    pb::Organization {
        id: r.id.to_string(),
        name: r.name,
        slug: r.slug,
        settings: Some(json_to_struct(&r.settings)),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        delete_time: opt_timestamp(r.deleted_at),
        etag: etag(r.version),
    }
}

fn settings(v: &mut Violations, field: &str, s: Option<&prost_types::Struct>) -> serde_json::Value {
    let json = s
        .map(struct_to_json)
        .unwrap_or_else(|| serde_json::json!({}));
    if serde_json::to_vec(&json)
        .map(|b| b.len())
        .unwrap_or(usize::MAX)
        > MAX_SETTINGS_BYTES
    {
        v.add(field, "must be at most 64 KiB as JSON");
    }
    json
}

fn not_found() -> Error {
    Error::not_found("ORGANIZATION_NOT_FOUND", "organization")
}

#[tonic::async_trait]
impl OrganizationService for Organizations {
    #[tracing::instrument(skip_all)]
    async fn create_organization(
        &self,
        req: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let caller = caller(&req)?;
        let user_id = caller.user_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let mut v = Violations::new();
        let org = req.organization.unwrap_or_default();
        let name = v.text("organization.name", &org.name, 1, 200);
        let slug = v.slug("organization.slug", &org.slug);
        let settings = settings(&mut v, "organization.settings", org.settings.as_ref());
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (Some(name), Some(slug)) = (name, slug) else {
            return Err(Error::internal(anyhow::anyhow!("validated")).into());
        };

        let id = Uuid::now_v7();
        // The new org's id is the tenant of this transaction, and the user
        // scope lets the idempotency replay find the user's earlier create.
        let mut tx = self.0.db.tenant(id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::Organization>(&mut tx, user_id, "CreateOrganization", rid)
                    .await?
        {
            return Ok(Response::new(prev));
        }
        let row = store::insert_org(&mut tx, id, &name, &slug, &settings).await?;
        let membership =
            store::insert_membership(&mut tx, id, user_id, Role::Owner.as_str(), None).await?;
        actor
            .event("identity.organization.create", "identity.organization", id)
            .org(id)
            .set("name", &row.name)
            .set("slug", &row.slug)
            .set("settings", &row.settings)
            .record(&mut tx)
            .await?;
        actor
            .event(
                "identity.membership.create",
                "identity.membership",
                membership,
            )
            .org(id)
            .set("user_id", user_id)
            .set("role", Role::Owner.as_str())
            .record(&mut tx)
            .await?;
        let out = org_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, user_id, "CreateOrganization", rid, &out).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_organization(
        &self,
        req: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.require_org("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = store::get_org(&mut tx, org_id, false)
            .await?
            .ok_or_else(not_found)?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(org_to_proto(row)))
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
        let mut tx = self.0.db.user(user_id).await?;
        let mut rows = store::list_user_orgs(&mut tx, user_id, page.after, page.limit()).await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.id);
        Ok(Response::new(pb::ListOrganizationsResponse {
            organizations: rows.into_iter().map(org_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_organization(
        &self,
        req: Request<pb::UpdateOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let caller = caller(&req)?;
        let actor = actor(&req);
        let req = req.into_inner();
        let org = req.organization.unwrap_or_default();
        let org_id = caller.require_org("organization.id", &org.id)?;
        let mut v = Violations::new();
        let paths = update_mask(
            &mut v,
            req.update_mask.as_ref(),
            &["name", "slug", "settings"],
            &["id", "create_time", "update_time", "delete_time", "etag"],
        );
        let mut name = None;
        let mut slug = None;
        let mut new_settings = None;
        for p in &paths {
            match *p {
                "name" => name = v.text("organization.name", &org.name, 1, 200),
                "slug" => slug = v.slug("organization.slug", &org.slug),
                _ => {
                    new_settings = Some(settings(
                        &mut v,
                        "organization.settings",
                        org.settings.as_ref(),
                    ))
                }
            }
        }
        v.finish()?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut row = store::get_org(&mut tx, org_id, true)
            .await?
            .ok_or_else(not_found)?;
        check_etag(&org.etag, row.version, "organization")?;
        if row.deleted_at.is_some() {
            return Err(Error::failed_precondition(
                "ORGANIZATION_DELETED",
                "undelete the organization first",
            )
            .into());
        }
        let before = row.clone();
        if let Some(n) = name {
            row.name = n;
        }
        if let Some(s) = slug {
            row.slug = s;
        }
        if let Some(s) = new_settings {
            row.settings = s;
        }
        let row = store::update_org(&mut tx, &row).await?;
        actor
            .event(
                "identity.organization.update",
                "identity.organization",
                org_id,
            )
            .change("name", &before.name, &row.name)
            .change("slug", &before.slug, &row.slug)
            .change("settings", &before.settings, &row.settings)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(org_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_organization(
        &self,
        req: Request<pb::DeleteOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let caller = caller(&req)?;
        let actor = actor(&req);
        let req = req.into_inner();
        let org_id = caller.require_org("id", &req.id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = store::get_org(&mut tx, org_id, true)
            .await?
            .ok_or_else(not_found)?;
        check_etag(&req.etag, row.version, "organization")?;
        if row.deleted_at.is_some() {
            return Err(Error::failed_precondition(
                "ORGANIZATION_DELETED",
                "the organization is already deleted",
            )
            .into());
        }
        let row = store::set_org_deleted(&mut tx, org_id, true).await?;
        actor
            .event(
                "identity.organization.delete",
                "identity.organization",
                org_id,
            )
            .change("delete_time", None::<()>, row.deleted_at)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(org_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn undelete_organization(
        &self,
        req: Request<pb::UndeleteOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let caller = caller(&req)?;
        let user_id = caller.user_id()?;
        let actor = actor(&req);
        let mut v = Violations::new();
        let id = v.id("id", &req.get_ref().id);
        v.finish()?;
        let Some(org_id) = id else {
            return Err(not_found().into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        // Only owners, checked here: no token can act in a deleted org. Not
        // an owner and not existing answer alike.
        let is_owner = store::get_membership_of(&mut tx, org_id, user_id)
            .await?
            .is_some_and(|m| m.role == Role::Owner.as_str());
        let row = match store::get_org(&mut tx, org_id, true).await? {
            Some(r) if is_owner => r,
            _ => return Err(not_found().into()),
        };
        if row.deleted_at.is_none() {
            return Err(Error::failed_precondition(
                "ORGANIZATION_NOT_DELETED",
                "the organization is not deleted",
            )
            .into());
        }
        let deleted_at = row.deleted_at;
        let row = store::set_org_deleted(&mut tx, org_id, false).await?;
        actor
            .event(
                "identity.organization.undelete",
                "identity.organization",
                org_id,
            )
            .org(org_id)
            .change("delete_time", deleted_at, None::<()>)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(org_to_proto(row)))
    }
}

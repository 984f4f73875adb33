//! `MembershipService`.

use std::sync::Arc;

use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{check_etag, etag};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::identity::v1::{
    self as pb, membership_service_server::MembershipService,
};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::actor;
use crate::domain::{self, Role};
use crate::store::{self, MemberRow};

/// Handlers of `MembershipService`.
#[derive(Clone, Debug)]
pub struct Memberships(pub Arc<State>);

fn role_of(s: &str) -> Role {
    // The CHECK constraint admits only known roles.
    Role::parse(s).unwrap_or(Role::Viewer)
}

pub fn member_to_proto(r: MemberRow) -> pb::Membership {
    pb::Membership {
        id: r.id.to_string(),
        org_id: r.org_id.to_string(),
        user_id: r.user_id.to_string(),
        role: pb::Role::from(role_of(&r.role)) as i32,
        invited_by: r.invited_by.map(|u| u.to_string()).unwrap_or_default(),
        email: r.email,
        display_name: r.display_name,
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        etag: etag(r.version),
    }
}

fn not_found() -> Error {
    Error::not_found("MEMBERSHIP_NOT_FOUND", "membership")
}

#[tonic::async_trait]
impl MembershipService for Memberships {
    #[tracing::instrument(skip_all)]
    async fn list_memberships(
        &self,
        req: Request<pb::ListMembershipsRequest>,
    ) -> Result<Response<pb::ListMembershipsResponse>, Status> {
        let org_id = caller(&req)?.org_id()?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let role: Option<Role> = v.opt_enum_value("role", req.role);
        v.finish()?;
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!("role={}", req.role),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut rows = store::list_memberships(
            &mut tx,
            org_id,
            role.map(Role::as_str),
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.id);
        Ok(Response::new(pb::ListMembershipsResponse {
            memberships: rows.into_iter().map(member_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_membership(
        &self,
        req: Request<pb::GetMembershipRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        let org_id = caller(&req)?.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = store::get_membership(&mut tx, org_id, id, false)
            .await?
            .ok_or_else(not_found)?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(member_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn update_membership(
        &self,
        req: Request<pb::UpdateMembershipRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let m = req.membership.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.id("membership.id", &m.id);
        let paths = update_mask(
            &mut v,
            req.update_mask.as_ref(),
            &["role"],
            &[
                "id",
                "org_id",
                "user_id",
                "invited_by",
                "email",
                "display_name",
                "create_time",
                "update_time",
                "etag",
            ],
        );
        let new_role: Option<Role> = if paths.contains(&"role") {
            v.enum_value("membership.role", m.role)
        } else {
            None
        };
        v.finish()?;
        let Some(id) = id else {
            return Err(not_found().into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let owners = store::lock_owner_count(&mut tx, org_id).await?;
        let row = store::get_membership(&mut tx, org_id, id, true)
            .await?
            .ok_or_else(not_found)?;
        check_etag(&m.etag, row.version, "membership")?;
        if let Some(to) = new_role {
            let from = role_of(&row.role);
            domain::may_change_role(caller.role().and_then(Role::parse), from, to)?;
            domain::keep_an_owner(owners, from == Role::Owner, to == Role::Owner)?;
            if from != to {
                store::set_membership_role(&mut tx, org_id, id, to.as_str()).await?;
                actor
                    .event("identity.membership.update", "identity.membership", id)
                    .change("role", from.as_str(), to.as_str())
                    .record(&mut tx)
                    .await?;
            }
        }
        let row = store::get_membership(&mut tx, org_id, id, false)
            .await?
            .ok_or_else(not_found)?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(member_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_membership(
        &self,
        req: Request<pb::DeleteMembershipRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let owners = store::lock_owner_count(&mut tx, org_id).await?;
        let row = store::get_membership(&mut tx, org_id, id, true)
            .await?
            .ok_or_else(not_found)?;
        check_etag(&req.get_ref().etag, row.version, "membership")?;
        let role = role_of(&row.role);
        if role == Role::Owner && caller.role() != Some(Role::Owner.as_str()) {
            return Err(Error::permission_denied(
                "OWNER_REQUIRED",
                "only an owner removes an owner",
            )
            .into());
        }
        domain::keep_an_owner(owners, role == Role::Owner, false)?;
        store::delete_membership(&mut tx, org_id, id).await?;
        actor
            .event("identity.membership.delete", "identity.membership", id)
            .change("user_id", row.user_id, None::<()>)
            .change("role", role.as_str(), None::<()>)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }

    #[tracing::instrument(skip_all)]
    async fn leave_organization(
        &self,
        req: Request<pb::LeaveOrganizationRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.require_org("org_id", &req.get_ref().org_id)?;
        let user_id = caller.user_id()?;
        let actor = actor(&req);
        let mut tx = self.0.db.tenant(org_id).await?;
        let owners = store::lock_owner_count(&mut tx, org_id).await?;
        let row = store::get_membership_of(&mut tx, org_id, user_id)
            .await?
            .ok_or_else(not_found)?;
        domain::keep_an_owner(owners, row.role == Role::Owner.as_str(), false)?;
        store::delete_membership(&mut tx, org_id, row.id).await?;
        actor
            .event("identity.membership.leave", "identity.membership", row.id)
            .change("user_id", row.user_id, None::<()>)
            .change("role", &row.role, None::<()>)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }
}

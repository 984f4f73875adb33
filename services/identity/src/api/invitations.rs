//! `InvitationService`.

use std::sync::Arc;

use chrono::Utc;
use foundry_platform::Error;
use foundry_platform::convert::{opt_timestamp, timestamp};
use foundry_platform::db::{check_etag, etag, idempotency};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::identity::v1::{
    self as pb, invitation_service_server::InvitationService,
};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::actor;
use crate::api::memberships::member_to_proto;
use crate::domain::{self, Role, SecretKind};
use crate::store::{self, InvitationFilter, InvitationRow};

/// How long an invitation token is valid.
const INVITATION_TTL: chrono::Duration = chrono::Duration::days(7);

/// Handlers of `InvitationService`.
#[derive(Clone, Debug)]
pub struct Invitations(pub Arc<State>);

fn state_of(r: &InvitationRow) -> pb::InvitationState {
    match r.state.as_str() {
        "accepted" => pb::InvitationState::Accepted,
        "revoked" => pb::InvitationState::Revoked,
        _ if r.expires_at <= Utc::now() => pb::InvitationState::Expired,
        _ => pb::InvitationState::Pending,
    }
}

fn invitation_to_proto(r: InvitationRow) -> pb::Invitation {
    pb::Invitation {
        id: r.id.to_string(),
        org_id: r.org_id.to_string(),
        state: state_of(&r) as i32,
        email: r.email,
        role: pb::Role::from(Role::parse(&r.role).unwrap_or(Role::Viewer)) as i32,
        invited_by: r.invited_by.to_string(),
        expire_time: Some(timestamp(r.expires_at)),
        accept_time: opt_timestamp(r.accepted_at),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        etag: etag(r.version),
        token: String::new(),
    }
}

fn not_found() -> Error {
    Error::not_found("INVITATION_NOT_FOUND", "invitation")
}

#[tonic::async_trait]
impl InvitationService for Invitations {
    #[tracing::instrument(skip_all)]
    async fn create_invitation(
        &self,
        req: Request<pb::CreateInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let inv = req.invitation.unwrap_or_default();
        let mut v = Violations::new();
        let email = v.email("invitation.email", &inv.email);
        let role: Option<Role> = v.enum_value("invitation.role", inv.role);
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (Some(email), Some(role)) = (email, role) else {
            return Err(Error::invalid_field("invitation", "is required").into());
        };
        domain::may_change_role(caller.role().and_then(Role::parse), Role::Viewer, role)?;

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::Invitation>(&mut tx, org_id, "CreateInvitation", rid)
                    .await?
        {
            return Ok(Response::new(prev));
        }
        let token = domain::mint_secret(SecretKind::Invitation);
        let row = store::insert_invitation(
            &mut tx,
            org_id,
            &email,
            role.as_str(),
            &token.hash,
            caller.principal_id(),
            Utc::now() + INVITATION_TTL,
        )
        .await?;
        actor
            .event("identity.invitation.create", "identity.invitation", row.id)
            .set("email", &row.email)
            .set("role", &row.role)
            .set("expire_time", row.expires_at)
            .record(&mut tx)
            .await?;
        let stored = invitation_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, org_id, "CreateInvitation", rid, &stored).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::Invitation {
            token: token.value,
            ..stored
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_invitation(
        &self,
        req: Request<pb::GetInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let org_id = caller(&req)?.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = store::get_invitation(&mut tx, org_id, id, false)
            .await?
            .ok_or_else(not_found)?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(invitation_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_invitations(
        &self,
        req: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        let org_id = caller(&req)?.org_id()?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let state: Option<pb::InvitationState> = v.opt_enum_value("state", req.state);
        v.finish()?;
        let filter = state.map(|s| match s {
            pb::InvitationState::Accepted => InvitationFilter::Accepted,
            pb::InvitationState::Revoked => InvitationFilter::Revoked,
            pb::InvitationState::Expired => InvitationFilter::Expired,
            _ => InvitationFilter::Pending,
        });
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!("state={}", req.state),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut rows =
            store::list_invitations(&mut tx, org_id, filter, page.after, page.limit()).await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.id);
        Ok(Response::new(pb::ListInvitationsResponse {
            invitations: rows.into_iter().map(invitation_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_invitation(
        &self,
        req: Request<pb::RevokeInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let org_id = caller(&req)?.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = store::get_invitation(&mut tx, org_id, id, true)
            .await?
            .ok_or_else(not_found)?;
        check_etag(&req.get_ref().etag, row.version, "invitation")?;
        if row.state != "pending" {
            return Err(Error::failed_precondition(
                "INVITATION_NOT_PENDING",
                format!("the invitation is {}", row.state),
            )
            .into());
        }
        let row = store::revoke_invitation(&mut tx, org_id, id).await?;
        actor
            .event("identity.invitation.revoke", "identity.invitation", id)
            .change("state", "pending", &row.state)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(invitation_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn resend_invitation(
        &self,
        req: Request<pb::ResendInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = store::get_invitation(&mut tx, org_id, id, true)
            .await?
            .ok_or_else(not_found)?;
        // A new token for a role is granting it again: the same rule as
        // inviting (an admin cannot hand out an owner invitation).
        let role = Role::parse(&row.role).unwrap_or(Role::Viewer);
        domain::may_change_role(caller.role().and_then(Role::parse), Role::Viewer, role)?;
        if row.state != "pending" {
            return Err(Error::failed_precondition(
                "INVITATION_NOT_PENDING",
                format!("the invitation is {}", row.state),
            )
            .into());
        }
        let old_expiry = row.expires_at;
        let token = domain::mint_secret(SecretKind::Invitation);
        let row = store::reissue_invitation(
            &mut tx,
            org_id,
            id,
            &token.hash,
            Utc::now() + INVITATION_TTL,
        )
        .await?;
        actor
            .event("identity.invitation.resend", "identity.invitation", id)
            .change("expire_time", old_expiry, row.expires_at)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::Invitation {
            token: token.value,
            ..invitation_to_proto(row)
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn accept_invitation(
        &self,
        req: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        let user_id = caller(&req)?.user_id()?;
        let actor = actor(&req);
        let invalid = || Error::not_found("INVITATION_NOT_FOUND", "invitation");
        let hash = domain::parse_secret(SecretKind::Invitation, &req.get_ref().token);
        if req.get_ref().token.is_empty() {
            return Err(Error::invalid_field("token", "is required").into());
        }
        let hash = hash.ok_or_else(invalid)?;
        // The invitee acts in no organization yet: find by hash (system),
        // then do the writes as the invitation's tenant.
        let mut tx = self.0.db.system().await?;
        let inv = store::find_invitation_by_token(&mut tx, &hash)
            .await?
            .ok_or_else(invalid)?;
        let user = store::get_user(&mut tx, user_id, false)
            .await?
            .ok_or_else(invalid)?;
        if !user.email.eq_ignore_ascii_case(&inv.email) {
            // Do not reveal the invitation to someone it was not sent to.
            return Err(invalid().into());
        }
        match state_of(&inv) {
            pb::InvitationState::Pending => {}
            pb::InvitationState::Expired => {
                return Err(Error::failed_precondition(
                    "INVITATION_EXPIRED",
                    "the invitation expired; ask for it to be resent",
                )
                .into());
            }
            _ => {
                return Err(Error::failed_precondition(
                    "INVITATION_NOT_PENDING",
                    format!("the invitation is {}", inv.state),
                )
                .into());
            }
        }
        // No one joins a deleted organization (locked against a concurrent
        // delete); the invitation stays pending should it be undeleted.
        let live = store::get_org(&mut tx, inv.org_id, true)
            .await?
            .is_some_and(|o| o.deleted_at.is_none());
        if !live {
            return Err(Error::failed_precondition(
                "ORGANIZATION_DELETED",
                "the organization was deleted",
            )
            .into());
        }
        let membership_id = store::insert_membership(
            &mut tx,
            inv.org_id,
            user_id,
            &inv.role,
            Some(inv.invited_by),
        )
        .await?;
        store::mark_invitation_accepted(&mut tx, inv.org_id, inv.id).await?;
        actor
            .event("identity.invitation.accept", "identity.invitation", inv.id)
            .org(inv.org_id)
            .change("state", "pending", "accepted")
            .record(&mut tx)
            .await?;
        actor
            .event(
                "identity.membership.create",
                "identity.membership",
                membership_id,
            )
            .org(inv.org_id)
            .set("user_id", user_id)
            .set("role", &inv.role)
            .set("invitation_id", inv.id)
            .record(&mut tx)
            .await?;
        let m = store::get_membership(&mut tx, inv.org_id, membership_id, false)
            .await?
            .ok_or_else(invalid)?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(member_to_proto(m)))
    }
}

//! `InvitationService`.

use std::sync::Arc;

use chrono::Utc;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::{opt_timestamp, timestamp};
use foundry_platform::db::Lock;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::identity::v1::{
    self as pb, invitation_service_server::InvitationService,
};
use foundry_resource::{self as resource, Creation, Resource};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::WireRevision;
use crate::api::memberships::{add_member, member_to_proto};
use crate::api::{Check, Standing, acting};
use crate::api::{
    SERVICE, actor, committed, create_with_secret, filtered_page, locked, page_of, recorded,
};
use crate::domain::{
    self, Invitation, InvitationState, InvitationStatus, NewInvitation, Role, SecretKind, UserId,
};
use crate::store::{self, InvitationFilter};

/// Handlers of `InvitationService`.
#[derive(Clone, Debug)]
pub struct Invitations(pub Arc<State>);

fn invitation_to_proto(i: &Invitation) -> pb::Invitation {
    let WireRevision {
        create_time,
        update_time,
        etag,
    } = (&i.stamp).into();
    pb::Invitation {
        id: i.id.to_string(),
        org_id: i.org_id.to_string(),
        state: pb::InvitationState::from(i.status(Utc::now())) as i32,
        email: i.fields.email.clone(),
        role: pb::Role::from(i.fields.role) as i32,
        invited_by: i.invited_by.to_string(),
        expire_time: Some(timestamp(i.expires_at)),
        accept_time: opt_timestamp(i.accepted_at),
        create_time,
        update_time,
        etag,
        token: String::new(),
    }
}

/// Refuses a change to an invitation that is no longer pending.
fn pending(i: &Invitation) -> Result<(), Error> {
    if i.state == InvitationState::Pending {
        Ok(())
    } else {
        Err(Error::failed_precondition(
            "INVITATION_NOT_PENDING",
            format!("the invitation is {}", i.state.as_str()),
        ))
    }
}

/// Inviting to a role is granting it: only an owner, as the caller's
/// [`Standing`] is now, invites an owner.
fn may_grant(new: NewInvitation, standing: &Standing) -> Result<NewInvitation, Error> {
    domain::may_change_role(standing.role, Role::Viewer, new.role)?;
    Ok(new)
}

/// A `CreateInvitationRequest` as the create of a [`NewInvitation`].
fn parse_create(
    req: &pb::CreateInvitationRequest,
) -> Result<Creation<'_, pb::CreateInvitationRequest, NewInvitation>, Error> {
    let empty = pb::Invitation::default();
    let inv = req.invitation.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let email = v.email("invitation.email", &inv.email);
    let role = v.enum_value("invitation.role", inv.role);
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some(Creation {
            method: "CreateInvitation",
            request: req,
            request_id: request_id?,
            new: NewInvitation {
                email: email?,
                role: role?,
            },
        })
    })
}

#[tonic::async_trait]
impl InvitationService for Invitations {
    #[tracing::instrument(skip_all)]
    async fn create_invitation(
        &self,
        req: Request<pb::CreateInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let c = (
            parse_create(req.get_ref())?,
            may_grant as Check<NewInvitation>,
        );
        let reveal = |i, token| pb::Invitation { token, ..i };
        let inv = create_with_secret(&self.0, &call, c, invitation_to_proto, reveal).await?;
        Ok(Response::new(inv))
    }

    #[tracing::instrument(skip_all)]
    async fn get_invitation(
        &self,
        req: Request<pb::GetInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id_of("id", &req.get_ref().id)?;
        let inv = resource::get::<Invitation>(&self.0.db, &call, id).await?;
        Ok(Response::new(invitation_to_proto(&inv)))
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_invitation(
        &self,
        req: Request<pb::RevokeInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id_of("id", &req.get_ref().id)?;
        let (mut tx, before) =
            locked::<Invitation>(&self.0.db, &call, id, &req.get_ref().etag).await?;
        pending(&before)?;
        let inv = store::revoke_invitation(&mut tx, call.org_id, id).await?;
        let event = (call.actor)
            .event("identity.invitation.revoke", Invitation::KIND, id)
            .diff(&before, &inv);
        Ok(recorded(tx, event, &inv, invitation_to_proto).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn resend_invitation(
        &self,
        req: Request<pb::ResendInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id_of("id", &req.get_ref().id)?;
        let (mut tx, standing) = acting(&self.0.db, &call).await?;
        let before = resource::fetch::<Invitation>(&mut tx, &call, id, Lock::Update).await?;
        // A new token for a role is granting it again: the same rule as
        // inviting (an admin cannot hand out an owner invitation).
        may_grant(before.fields.clone(), &standing)?;
        pending(&before)?;
        let token = domain::mint_secret(SecretKind::Invitation);
        let inv = store::reissue_invitation(&mut tx, call.org_id, id, &token.hash).await?;
        let event = (call.actor)
            .event("identity.invitation.resend", Invitation::KIND, id)
            .diff(&before, &inv);
        let stored = recorded(tx, event, &inv, invitation_to_proto).await?;
        Ok(Response::new(pb::Invitation {
            token: token.value,
            ..stored.into_inner()
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn accept_invitation(
        &self,
        req: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        let user_id = UserId::from_uuid(caller(&req)?.user_id()?);
        let actor = actor(&req);
        let invalid = Invitation::not_found;
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
        if !user.email.eq_ignore_ascii_case(&inv.fields.email) {
            // Do not reveal the invitation to someone it was not sent to.
            return Err(invalid().into());
        }
        if inv.status(Utc::now()) == InvitationStatus::Expired {
            return Err(Error::failed_precondition(
                "INVITATION_EXPIRED",
                "the invitation expired; ask for it to be resent",
            )
            .into());
        }
        pending(&inv)?;
        // No one joins a deleted organization (locked against a concurrent
        // delete); the invitation stays pending should it be undeleted.
        let live = store::org_live(&mut tx, inv.org_id, Lock::Update).await?;
        if !live {
            return Err(Error::failed_precondition(
                "ORGANIZATION_DELETED",
                "the organization was deleted",
            )
            .into());
        }
        let accepted = store::mark_invitation_accepted(&mut tx, inv.org_id, inv.id).await?;
        actor
            .event("identity.invitation.accept", Invitation::KIND, inv.id)
            .org(inv.org_id)
            .diff(&inv, &accepted)
            .record(&mut tx)
            .await?;
        let member = (inv.org_id, user_id, inv.fields.role);
        let m = add_member(&mut tx, &actor, member, Some(&inv)).await?;
        Ok(committed(tx, &m, member_to_proto).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn list_invitations(
        &self,
        req: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        let org_id = Call::of(SERVICE, &req)?.org_id;
        let req = req.into_inner();
        let (state, page) = filtered_page(
            &self.0,
            "state",
            req.state,
            (req.page_size, &req.page_token),
        )?;
        let filter = state.map(|s| match s {
            InvitationStatus::Pending => InvitationFilter::Pending,
            InvitationStatus::Accepted => InvitationFilter::Accepted,
            InvitationStatus::Revoked => InvitationFilter::Revoked,
            InvitationStatus::Expired => InvitationFilter::Expired,
        });
        let mut out = pb::ListInvitationsResponse::default();
        let mut conn = self.0.db.read(org_id).await?;
        let rows = store::list_invitations(&mut conn, org_id, filter, page).await?;
        (out.invitations, out.next_page_token) =
            page_of(&self.0, &page, rows, |i| i.id.uuid(), invitation_to_proto);
        Ok(Response::new(out))
    }
}

//! `MembershipService`.

use std::sync::Arc;

use foundry_domain::Patch;
use foundry_outbox::membership::Change;
use foundry_outbox::{Actor, Call, EventBuilder};
use foundry_platform::Error;
use foundry_platform::db::{Db, Lock, Tx, check_etag};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::identity::v1::{
    self as pb, membership_service_server::MembershipService,
};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{SERVICE, Standing, actor, committed, filtered_page, page_of, standing};
use crate::api::{WireRevision, changes};
use crate::domain::{
    self, Invitation, Membership, MembershipChange, MembershipId, MembershipPath, Role, UserId,
};
use crate::store;

const RESOURCE: &str = "identity.membership";

/// Handlers of `MembershipService`.
#[derive(Clone, Debug)]
pub struct Memberships(pub Arc<State>);

pub fn member_to_proto(m: &Membership) -> pb::Membership {
    let WireRevision {
        create_time,
        update_time,
        etag,
    } = (&m.stamp).into();
    pb::Membership {
        id: m.id.to_string(),
        org_id: m.org_id.to_string(),
        user_id: m.user_id.to_string(),
        role: pb::Role::from(m.role) as i32,
        invited_by: m.invited_by.map(|u| u.to_string()).unwrap_or_default(),
        email: m.email.clone(),
        display_name: m.display_name.clone(),
        create_time,
        update_time,
        etag,
    }
}

fn not_found() -> Error {
    Error::not_found("MEMBERSHIP_NOT_FOUND", "membership")
}

/// Records the domain event of `change` to `m` in `tx`, the change's
/// transaction (`foundry_outbox::membership`): what delivery's membership
/// replica takes in. Every membership change records one.
pub(crate) async fn announce(tx: &mut Tx, change: Change, m: &Membership) -> Result<(), Error> {
    foundry_outbox::membership::Membership::event(
        m.org_id,
        change,
        (m.id.uuid(), m.user_id.uuid()),
        m.role.as_str(),
    )
    .record(tx)
    .await?;
    Ok(())
}

/// Memberships announced per transaction by [`announce_all`].
const ANNOUNCED_PER_TRANSACTION: i64 = 500;

/// Announces every membership as it stands now (`identity.membership.
/// snapshot`): the backfill of delivery's replica for the memberships made
/// before identity recorded membership events. Each organization's, in
/// transactions of that organization holding the rows they announce
/// (`FOR SHARE`), so each event takes its place in the organization's
/// commit order after every change to its membership that committed
/// before it read, and before every change that waited for it: the
/// replica, keeping the newest event, ends as identity is. Running it
/// again announces again, which changes nothing. Returns how many.
pub async fn announce_all(db: &Db) -> Result<u64, Error> {
    let (mut org, mut total) = (Uuid::nil(), 0);
    loop {
        let mut tx = db.system().await?;
        let next = store::next_org_with_members(&mut tx, org).await?;
        tx.commit().await?;
        let Some(next) = next else {
            return Ok(total);
        };
        org = next;
        let mut after = Uuid::nil();
        loop {
            let mut tx = db.tenant(org).await?;
            let held =
                store::share_memberships_after(&mut tx, org, after, ANNOUNCED_PER_TRANSACTION)
                    .await?;
            for m in &held {
                announce(&mut tx, Change::Snapshot, m).await?;
            }
            tx.commit().await?;
            total += held.len() as u64;
            match held.last() {
                Some(m) if held.len() as i64 == ANNOUNCED_PER_TRANSACTION => after = m.id.uuid(),
                _ => break,
            }
        }
    }
}

/// Makes `user_id` a member of `org_id` in `role` and records it
/// (`identity.membership.create`, by `actor`, and its domain event): the
/// owner of a new organization, the invitee of an accepted `invitation`
/// (its inviter and id recorded), a member a bootstrap adds.
pub async fn add_member(
    tx: &mut Tx,
    actor: &Actor,
    (org_id, user_id, role): (Uuid, UserId, Role),
    invitation: Option<&Invitation>,
) -> Result<Membership, Error> {
    let invited_by = invitation.map(|i| i.invited_by);
    let m = store::insert_membership(tx, org_id, user_id, role, invited_by).await?;
    actor
        .event("identity.membership.create", RESOURCE, m.id)
        .org(org_id)
        .created(&m)
        .set("invitation_id", invitation.map(|i| i.id))
        .record(tx)
        .await?;
    announce(tx, Change::Created, &m).await?;
    Ok(m)
}

/// An `UpdateMembershipRequest` as the membership's id and the changes its
/// mask names.
fn parse_update(
    req: &pb::UpdateMembershipRequest,
) -> Result<(MembershipId, Vec<MembershipChange>), Error> {
    let empty = pb::Membership::default();
    let m = req.membership.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let id = v.id_of("membership.id", &m.id);
    let changes = changes(&mut v, req.update_mask.as_ref(), |v, path| match path {
        MembershipPath::Role => v
            .enum_value("membership.role", m.role)
            .map(MembershipChange::Role),
    });
    v.finish_with(|| Some((id?, changes?)))
}

/// The owner count, the caller's [`Standing`] and the membership `id`, all
/// locked in that order (every owner row first, so that two owners acting
/// at once queue instead of deadlocking), at the caller's etag.
async fn locked(
    tx: &mut Tx,
    call: &Call,
    id: MembershipId,
    etag: &str,
) -> Result<(i64, Standing, Membership), Error> {
    let owners = store::lock_owner_count(tx, call.org_id).await?;
    let standing = standing(tx, call).await?;
    let m = store::get_membership(tx, call.org_id, id, true)
        .await?
        .ok_or_else(not_found)?;
    check_etag(etag, m.stamp.version, "membership")?;
    Ok((owners, standing, m))
}

/// Reads the membership `id`, commits and answers it.
async fn answer(
    mut tx: Tx,
    org_id: Uuid,
    id: MembershipId,
) -> Result<Response<pb::Membership>, Error> {
    let m = store::get_membership(&mut tx, org_id, id, false)
        .await?
        .ok_or_else(not_found)?;
    committed(tx, &m, member_to_proto).await
}

/// Removes a membership (never the last owner's, of `owners`), records
/// `event` with what was removed and its domain event, and commits.
async fn remove(
    mut tx: Tx,
    event: EventBuilder,
    owners: i64,
    m: &Membership,
) -> Result<Response<()>, Error> {
    domain::keep_an_owner(owners, m.role == Role::Owner, false)?;
    store::delete_membership(&mut tx, m.org_id, m.id).await?;
    event.removed(m).record(&mut tx).await?;
    announce(&mut tx, Change::Removed, m).await?;
    tx.commit().await?;
    Ok(Response::new(()))
}

#[tonic::async_trait]
impl MembershipService for Memberships {
    #[tracing::instrument(skip_all)]
    async fn get_membership(
        &self,
        req: Request<pb::GetMembershipRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id_of("id", &req.get_ref().id)?;
        let mut conn = self.0.db.read(call.org_id).await?;
        let m = store::get_membership(&mut conn, call.org_id, id, false)
            .await?
            .ok_or_else(not_found)?;
        Ok(Response::new(member_to_proto(&m)))
    }

    #[tracing::instrument(skip_all)]
    async fn update_membership(
        &self,
        req: Request<pb::UpdateMembershipRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, changes) = parse_update(req.get_ref())?;
        let etag = req
            .get_ref()
            .membership
            .as_ref()
            .map_or("", |m| m.etag.as_str());
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let (owners, standing, before) = locked(&mut tx, &call, id, etag).await?;
        let mut m = before.clone();
        m.apply(changes).map_err(Error::from)?;
        let (from, to) = (before.role, m.role);
        domain::may_change_role(standing.role, from, to).map_err(Error::from)?;
        domain::keep_an_owner(owners, from == Role::Owner, to == Role::Owner)
            .map_err(Error::from)?;
        if m != before {
            store::update_membership(&mut tx, &m).await?;
            call.actor
                .event("identity.membership.update", RESOURCE, id)
                .diff(&before, &m)
                .record(&mut tx)
                .await?;
            announce(&mut tx, Change::Updated, &m).await?;
        }
        Ok(answer(tx, call.org_id, id).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn delete_membership(
        &self,
        req: Request<pb::DeleteMembershipRequest>,
    ) -> Result<Response<()>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id_of("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let (owners, standing, m) = locked(&mut tx, &call, id, &req.get_ref().etag).await?;
        if m.role == Role::Owner && standing.role != Some(Role::Owner) {
            return Err(Error::permission_denied(
                "OWNER_REQUIRED",
                "only an owner removes an owner",
            )
            .into());
        }
        let event = call.actor.event("identity.membership.delete", RESOURCE, id);
        Ok(remove(tx, event, owners, &m).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn leave_organization(
        &self,
        req: Request<pb::LeaveOrganizationRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.require_org("org_id", &req.get_ref().org_id)?;
        let user_id = UserId::from_uuid(caller.user_id()?);
        let actor = actor(&req);
        let mut tx = self.0.db.tenant(org_id).await?;
        let owners = store::lock_owner_count(&mut tx, org_id).await?;
        let m = store::get_membership_of(&mut tx, org_id, user_id, Lock::None)
            .await?
            .ok_or_else(not_found)?;
        let event = actor.event("identity.membership.leave", RESOURCE, m.id);
        Ok(remove(tx, event, owners, &m).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn list_memberships(
        &self,
        req: Request<pb::ListMembershipsRequest>,
    ) -> Result<Response<pb::ListMembershipsResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let (role, page): (Option<Role>, _) =
            filtered_page(&self.0, "role", req.role, (req.page_size, &req.page_token))?;
        let mut out = pb::ListMembershipsResponse::default();
        let mut conn = self.0.db.read(call.org_id).await?;
        let rows = store::list_memberships(&mut conn, call.org_id, role, page).await?;
        (out.memberships, out.next_page_token) =
            page_of(&self.0, &page, rows, |m| m.id.uuid(), member_to_proto);
        Ok(Response::new(out))
    }
}

//! `UserService`.

use std::sync::Arc;

use foundry_domain::Patch;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{Lock, check_etag};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::identity::v1::{self as pb, user_service_server::UserService};
use foundry_tenancy::{Caller, caller};
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::auth::{credential, link_account, spend_id_token};
use crate::api::{WireRevision, changes};
use crate::api::{actor, committed, recorded};
use crate::domain::{LinkedAccount, User, UserChange, UserId, UserPath};
use crate::store;

/// Handlers of `UserService`.
#[derive(Clone, Debug)]
pub struct Users(pub Arc<State>);

fn user_to_proto(u: &User) -> pb::User {
    let WireRevision {
        create_time,
        update_time,
        etag,
    } = (&u.stamp).into();
    pb::User {
        id: u.id.to_string(),
        email: u.email.clone(),
        display_name: u.display_name.clone(),
        avatar_url: u.avatar_url.clone(),
        create_time,
        update_time,
        etag,
    }
}

/// An `UpdateUserRequest`'s changes, as its mask names them.
fn parse_update(req: &pb::UpdateUserRequest) -> Result<Vec<UserChange>, Error> {
    let empty = pb::User::default();
    let u = req.user.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let changes = changes(&mut v, req.update_mask.as_ref(), |v, path| match path {
        UserPath::DisplayName => v
            .text("user.display_name", &u.display_name, 1, 200)
            .map(UserChange::DisplayName),
        UserPath::AvatarUrl => v
            .opt_https_url("user.avatar_url", &u.avatar_url, 2048)
            .map(UserChange::AvatarUrl),
    });
    v.finish_with(|| changes)
}

fn linked_to_proto(a: &LinkedAccount) -> pb::LinkedAccount {
    pb::LinkedAccount {
        id: a.id.to_string(),
        provider: a.provider.clone(),
        issuer: a.issuer.clone(),
        subject: a.subject.clone(),
        email: a.email.clone(),
        create_time: Some(timestamp(a.created_at)),
        last_login_time: Some(timestamp(a.last_login_at)),
    }
}

fn not_found() -> Error {
    Error::not_found("USER_NOT_FOUND", "user")
}

/// The user `value` names (`me` or an id) and the caller, who must be a
/// user.
fn user_ref(field: &str, value: &str, caller: &Caller) -> Result<(UserId, UserId), Error> {
    let me = UserId::from_uuid(caller.user_id()?);
    let id = match value {
        "me" => me,
        _ => Violations::require_id_of(field, value)?,
    };
    Ok((id, me))
}

/// Resolves `me`/the caller's own id; anyone else is not found.
fn own_id(field: &str, value: &str, caller: &Caller) -> Result<UserId, Error> {
    match user_ref(field, value, caller)? {
        (id, me) if id == me => Ok(me),
        _ => Err(not_found()),
    }
}

#[tonic::async_trait]
impl UserService for Users {
    #[tracing::instrument(skip_all)]
    async fn get_user(
        &self,
        req: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = caller(&req)?;
        let (id, me) = user_ref("id", &req.get_ref().id, &caller)?;
        let mut tx = self.0.db.system().await?;
        // Visible: yourself, or a member of the organization you act in.
        let visible = id == me
            || match caller.claims.org_id {
                Some(org) => store::get_membership_of(&mut tx, org, id, Lock::None)
                    .await?
                    .is_some(),
                None => false,
            };
        let user = if visible {
            store::get_user(&mut tx, id, false).await?
        } else {
            None
        };
        Ok(committed(tx, &user.ok_or_else(not_found)?, user_to_proto).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn update_user(
        &self,
        req: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = caller(&req)?;
        let actor = actor(&req);
        let r = req.get_ref();
        let u = r.user.as_ref();
        let id = own_id("user.id", u.map_or("", |u| u.id.as_str()), &caller)?;
        let changes = parse_update(r)?;
        let mut tx = self.0.db.system().await?;
        let before = store::get_user(&mut tx, id, true)
            .await?
            .ok_or_else(not_found)?;
        check_etag(
            u.map_or("", |u| u.etag.as_str()),
            before.stamp.version,
            "user",
        )?;
        let mut user = before.clone();
        user.apply(changes).map_err(Error::from)?;
        let user = store::update_user(&mut tx, &user).await?;
        // A user's own profile: the platform chain (no organization owns it).
        let event = actor
            .event("identity.user.update", "identity.user", id)
            .org(foundry_outbox::PLATFORM_ORG)
            .diff(&before, &user);
        Ok(recorded(tx, event, &user, user_to_proto).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn list_linked_accounts(
        &self,
        req: Request<pb::ListLinkedAccountsRequest>,
    ) -> Result<Response<pb::ListLinkedAccountsResponse>, Status> {
        let caller = caller(&req)?;
        let id = own_id("user_id", &req.get_ref().user_id, &caller)?;
        let mut tx = self.0.db.system().await?;
        let rows = store::list_linked_accounts(&mut tx, id).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ListLinkedAccountsResponse {
            linked_accounts: rows.iter().map(linked_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn link_account(
        &self,
        req: Request<pb::LinkAccountRequest>,
    ) -> Result<Response<pb::LinkedAccount>, Status> {
        let caller = caller(&req)?;
        let actor = actor(&req);
        let r = req.get_ref();
        let user_id = own_id("user_id", &r.user_id, &caller)?;
        let mut v = Violations::new();
        credential(&mut v, "id_token", &r.id_token);
        v.finish()?;
        let verified = self.0.oidc.verify(&r.id_token).await?;
        let (iss, sub) = (&verified.claims.iss, &verified.claims.sub);
        // Linked accounts belong to no organization: system scope, the
        // caller's own user named in every statement.
        let mut tx = self.0.db.system().await?;
        spend_id_token(&mut tx, &verified).await?;
        if store::linked_user(&mut tx, iss, sub).await?.is_some() {
            return Err(Error::already_exists(
                "ACCOUNT_ALREADY_LINKED",
                "id_token",
                "this external account is linked to a user already",
            )
            .into());
        }
        let id = link_account(&mut tx, &actor, user_id.uuid(), &verified).await?;
        let accounts = store::list_linked_accounts(&mut tx, user_id).await?;
        let account = accounts.iter().find(|a| a.id == id).ok_or_else(|| {
            Error::internal(anyhow::anyhow!("the account just linked is missing"))
        })?;
        Ok(committed(tx, account, linked_to_proto).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn delete_linked_account(
        &self,
        req: Request<pb::DeleteLinkedAccountRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let actor = actor(&req);
        let user_id = own_id("user_id", &req.get_ref().user_id, &caller)?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let missing = || Error::not_found("LINKED_ACCOUNT_NOT_FOUND", "linked account");
        let mut tx = self.0.db.system().await?;
        let accounts = store::list_linked_accounts(&mut tx, user_id).await?;
        let Some(account) = accounts.iter().find(|a| a.id == id) else {
            return Err(missing().into());
        };
        if accounts.len() == 1 {
            return Err(Error::failed_precondition(
                "LAST_LINKED_ACCOUNT",
                "the last sign-in method cannot be removed",
            )
            .into());
        }
        store::delete_linked_account(&mut tx, user_id, id).await?;
        actor
            .event(
                "identity.linked_account.delete",
                "identity.linked_account",
                id,
            )
            .org(foundry_outbox::PLATFORM_ORG)
            .change("provider", &account.provider, None::<()>)
            .change("subject", &account.subject, None::<()>)
            .commit(tx)
            .await?;
        Ok(Response::new(()))
    }
}

//! gRPC handlers: proto ↔ domain, access, one transaction per call.

pub mod api_keys;
pub mod auth;
pub mod invitations;
pub mod memberships;
pub mod organizations;
pub mod service_accounts;
pub mod users;

/// The service name on audit events.
pub const SERVICE: &str = "identity";

/// The audit actor of a call to this service.
pub fn actor<T>(req: &tonic::Request<T>) -> foundry_outbox::Actor {
    foundry_outbox::Actor::of(SERVICE, req)
}

use foundry_domain::FieldPath;
use foundry_outbox::Call;
use foundry_outbox::EventBuilder;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{Db, Lock, Tx, check_etag, etag};
use foundry_platform::idempotency::{self, Begun};
use foundry_platform::page::Page;
use foundry_platform::validate::{Violations, mask};
use foundry_proto::foundry::identity::v1 as pb;
use foundry_resource::{self as resource, Creation, Resource};
use foundry_tenancy::{Limits, PrincipalType};
use tonic::Response;
use uuid::Uuid;

use crate::domain::{Role, UserId};
use crate::store::{self, InsertWithSecret};
use crate::{State, domain};

/// The wire half of a [`Revision`]: `create_time`, `update_time`, `etag`.
pub struct WireRevision {
    pub create_time: Option<prost_types::Timestamp>,
    pub update_time: Option<prost_types::Timestamp>,
    pub etag: String,
}

impl From<&domain::Revision> for WireRevision {
    fn from(r: &domain::Revision) -> WireRevision {
        WireRevision {
            create_time: Some(timestamp(r.created_at)),
            update_time: Some(timestamp(r.updated_at)),
            etag: etag(r.version),
        }
    }
}

/// What a caller may do in the organization its call acts in, as the
/// database says in the call's transaction, not as its token said when it
/// was minted (a token outlives a demotion by minutes).
#[derive(Clone, Debug)]
pub struct Standing {
    /// A user's role now; `None` for a key or agent token, which holds no
    /// role (its scopes are its key's, fixed when the key was made).
    pub role: Option<Role>,
    /// The permission patterns held now: the role's, or the key's scopes.
    pub perms: Vec<String>,
    /// What a credential the caller mints may have at most: its binding,
    /// `perms`, and its credential's expiry ([`foundry_tenancy::Limits`]).
    pub limits: Limits,
}

/// The caller's [`Standing`] in `tx`, and the call decided again on it
/// ([`Call::recheck`]). A user's membership is re-read and held `FOR
/// SHARE` until `tx` ends, so a concurrent change of it waits for this
/// write: a member whose membership is gone is `PERMISSION_DENIED`
/// `NOT_A_MEMBER`, one whose role no longer grants the method's permission
/// `MISSING_PERMISSION`. Every owner- or admin-only write of identity
/// decides on this, first thing in its transaction ([`acting`]), or right
/// after the owner rows it also locks (memberships'), so that the lock
/// order is the same everywhere.
pub async fn standing(tx: &mut Tx, call: &Call) -> Result<Standing, Error> {
    let standing = if call.caller.principal_type() == PrincipalType::User {
        let user = UserId::from_uuid(call.principal_id());
        let member = store::get_membership_of(tx, call.org_id, user, Lock::Share).await?;
        let role = member.map(|m| m.role).ok_or_else(|| {
            Error::permission_denied(
                "NOT_A_MEMBER",
                "the caller is no longer a member of the organization",
            )
        })?;
        (Some(role), role.permissions())
    } else {
        (None, call.caller.permissions().to_vec())
    };
    let standing = Standing {
        role: standing.0,
        limits: call.caller.limits(standing.1.clone()),
        perms: standing.1,
    };
    call.recheck(&standing.perms)?;
    Ok(standing)
}

/// The start of an owner- or admin-only write: a tenant transaction and
/// the caller's [`standing`] in it.
pub async fn acting(db: &Db, call: &Call) -> Result<(Tx, Standing), Error> {
    let mut tx = db.tenant(call.org_id).await?;
    let standing = standing(&mut tx, call).await?;
    Ok((tx, standing))
}

/// The start of a write to one resource: [`acting`], then `key` locked for
/// update, at the caller's `etag` (empty: any).
pub async fn locked<R: Resource>(
    db: &Db,
    call: &Call,
    key: R::Key,
    etag: &str,
) -> Result<(Tx, R), Error> {
    let (mut tx, _) = acting(db, call).await?;
    let r = resource::fetch::<R>(&mut tx, call, key, Lock::Update).await?;
    check_etag(etag, r.version(), R::NAME)?;
    Ok((tx, r))
}

/// A list's optional enum filter `field` (`raw` as received; unspecified:
/// none) and its page, the filter bound into the page token.
pub fn filtered_page<E: TryFrom<i32>>(
    state: &State,
    field: &str,
    raw: i32,
    (page_size, page_token): (i32, &str),
) -> Result<(Option<E>, Page), Error> {
    let mut v = Violations::new();
    let filter = v.opt_enum_value(field, raw);
    v.finish()?;
    let page = state
        .pages
        .parse(page_size, page_token, &format!("{field}={raw}"))?;
    Ok((filter, page))
}

/// The changes an update mask names, each parsed by `change`: `None` when
/// any path or value is refused (every violation is in `v`).
pub fn changes<P: FieldPath, C>(
    v: &mut Violations,
    update_mask: Option<&prost_types::FieldMask>,
    mut change: impl FnMut(&mut Violations, P) -> Option<C>,
) -> Option<Vec<C>> {
    let parsed: Vec<Option<C>> = mask::<P>(v, update_mask)
        .into_iter()
        .map(|path| change(v, path))
        .collect();
    parsed.into_iter().collect()
}

/// The end of a read or a write: commits `tx` and answers `value` as
/// `to_proto` makes it.
pub async fn committed<T, P>(
    tx: Tx,
    value: &T,
    to_proto: fn(&T) -> P,
) -> Result<Response<P>, Error> {
    tx.commit().await?;
    Ok(Response::new(to_proto(value)))
}

/// The end of a write: records `event` in `tx`, commits and answers
/// `value` as `to_proto` makes it.
pub async fn recorded<T, P>(
    tx: Tx,
    event: EventBuilder,
    value: &T,
    to_proto: fn(&T) -> P,
) -> Result<Response<P>, Error> {
    event.commit(tx).await?;
    Ok(Response::new(to_proto(value)))
}

/// AIP-133 Create of a resource made with a secret shown once (an API
/// key, an invitation's token), as `resource::create` makes the others:
/// the caller's [`standing`] read and `check`ed against the new value,
/// idempotent by request id, the secret minted and the resource inserted
/// with its hash ([`InsertWithSecret`]), a `<KIND>.create` event with every
/// audited field (in `project`), the answer `to_proto` makes stored for a
/// repeat, in one transaction. Only this answer carries the secret
/// (`reveal` adds it): a repeat is answered without it. The event is in
/// the project of the resource made, if any.
pub async fn create_with_secret<R, Q, P>(
    state: &State,
    call: &Call,
    (c, check): (Creation<'_, Q, R::New>, Check<R::New>),
    to_proto: fn(&R) -> P,
    reveal: fn(P, String) -> P,
) -> Result<P, Error>
where
    R: InsertWithSecret,
    Q: prost::Message,
    P: prost::Message + Default,
{
    let (tx, standing) = acting(&state.db, call).await?;
    let new = check(c.new, &standing)?;
    let key = idempotency::Key::of(call.org_id, c.method, c.request_id, c.request);
    let mut tx = match idempotency::begin(tx, key).await? {
        Begun::Replay(previous) => return Ok(previous),
        Begun::New(tx) => tx,
    };
    let secret = domain::mint_secret(R::secret_kind(&new));
    let r =
        <R as InsertWithSecret>::insert(&new, &secret, &mut tx, call.org_id, call.principal_id())
            .await?;
    let (_, event) = (call.actor)
        .event(&format!("{}.create", R::KIND), R::KIND, r.key())
        .project(r.project())
        .created(&r)
        .last()?;
    let stored = to_proto(&r);
    tx.finish_redacted(&stored, vec![event]).await?;
    Ok(reveal(stored, secret.value))
}

/// A rule on a new value that depends on what its creator may do now (an
/// API key within the creator's limits, the owner role granted only by an
/// owner): the value to create, or why not.
pub type Check<N> = fn(N, &Standing) -> Result<N, Error>;

/// The end of a list: `rows` (one page, as `page` asked, read on a
/// `Db::read` connection or in a transaction already ended) as `to_proto`
/// makes them, and the next page's token (the rows are ordered by the id
/// `id_of` gives).
pub fn page_of<T, P>(
    state: &State,
    page: &Page,
    mut rows: Vec<T>,
    id_of: fn(&T) -> Uuid,
    to_proto: fn(&T) -> P,
) -> (Vec<P>, String) {
    let next_page_token = state.pages.finish(page, &mut rows, id_of);
    (rows.iter().map(to_proto).collect(), next_page_token)
}

use foundry_platform::proto_enum;

proto_enum!(domain::Role => Role { Owner, Admin, Editor, Viewer, Billing });

proto_enum!(domain::ApiKeyKind => ApiKeyKind { ApiKey, Agent });

proto_enum!(domain::ApiKeyState => ApiKeyState { Active, Expired, Revoked });

proto_enum!(domain::InvitationStatus => InvitationState { Pending, Accepted, Revoked, Expired });

//! User references name members: the assignees of tasks and work orders
//! and the owners of goals and risks must be active members of the
//! caller's organization, as delivery's replica of identity's memberships
//! has them (`store::members`, fed by identity's membership events through
//! [`super::inbox`]; it follows identity by the relay's lag). Checked in
//! the mutation's transaction, every reference of it in one query, never by
//! a call to identity.
//!
//! A reference stays when its member is removed afterwards: readers still
//! see it, nothing edits it away, and an update may keep it; only the
//! references a create makes or an update adds are checked.

use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::db::Tx;
use uuid::Uuid;

use crate::domain::UserId;
use crate::store;

/// The reason of the refusal (`INVALID_ARGUMENT`), on the error and on
/// each field violation.
pub(crate) const NOT_A_MEMBER: &str = "USER_NOT_A_MEMBER";

/// A user a field references: its path (`task.assignee_ids[1]`) and the
/// user.
pub(crate) type Reference = (String, Uuid);

/// The references of the list field `field` to `users` that `held` does
/// not hold already, each named by its position in `users`.
pub(crate) fn listed(field: &str, users: &[UserId], held: &[UserId]) -> Vec<Reference> {
    users
        .iter()
        .enumerate()
        .filter(|(_, u)| !held.contains(u))
        .map(|(i, u)| (format!("{field}[{i}]"), u.uuid()))
        .collect()
}

/// The reference of the field `field` to `user`, unless it is none or the
/// one `held` already.
pub(crate) fn owned(field: &str, user: Option<UserId>, held: Option<UserId>) -> Vec<Reference> {
    match user {
        Some(u) if Some(u) != held => vec![(field.to_owned(), u.uuid())],
        _ => vec![],
    }
}

/// Refuses `refs` to users that are not active members of the caller's
/// organization: `INVALID_ARGUMENT` `USER_NOT_A_MEMBER` naming each such
/// field. One query for all of them, in `tx`.
pub(crate) async fn members_only(
    tx: &mut Tx,
    call: &Call,
    refs: Vec<Reference>,
) -> Result<(), Error> {
    let users: Vec<Uuid> = refs.iter().map(|(_, u)| *u).collect();
    let refused = store::not_members(tx, call.org_id, &users).await?;
    if refused.is_empty() {
        return Ok(());
    }
    Err(Error::invalid_because(
        NOT_A_MEMBER,
        refused
            .into_iter()
            .filter_map(|i| refs.get(i))
            .map(|(field, user)| {
                (
                    field.clone(),
                    format!("user {user} is not a member of the organization"),
                )
            }),
    ))
}

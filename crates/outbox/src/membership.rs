//! Identity's membership events (schema version 1): what identity records
//! in the transaction of every membership change, and what delivery's
//! membership replica takes in (`crate::subscriptions`). One definition for
//! the producer and the receiver.
//!
//! Every event carries the membership's whole state after the change (who,
//! which role, whether still a member), not the change alone, so a
//! receiver keeps the state of its newest event (by the envelope's
//! `sequence`, the organization's commit order at identity) and needs no
//! other: an older event that comes again or late changes nothing.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::DomainEvent;

/// A user became a member (created, an invitation accepted).
pub const CREATED: &str = "identity.membership.created";
/// A member's role changed.
pub const UPDATED: &str = "identity.membership.updated";
/// A member was removed or left.
pub const REMOVED: &str = "identity.membership.removed";
/// A membership as it stands, announced once for each membership made
/// before identity recorded membership events (the replica's backfill).
pub const SNAPSHOT: &str = "identity.membership.snapshot";

/// Every membership event type.
pub const TYPES: &[&str] = &[CREATED, UPDATED, REMOVED, SNAPSHOT];

/// The schema version of their data.
pub const VERSION: i32 = 1;

/// Their subject type.
pub const SUBJECT: &str = "identity.membership";

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// [`CREATED`].
    Created,
    /// [`UPDATED`].
    Updated,
    /// [`REMOVED`].
    Removed,
    /// [`SNAPSHOT`].
    Snapshot,
}

impl Change {
    /// Its event type.
    pub fn event_type(self) -> &'static str {
        match self {
            Change::Created => CREATED,
            Change::Updated => UPDATED,
            Change::Removed => REMOVED,
            Change::Snapshot => SNAPSHOT,
        }
    }

    /// Whether the user is a member after it.
    pub fn active(self) -> bool {
        self != Change::Removed
    }
}

/// A membership after a change: the data of every membership event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// The membership's id (identity's).
    pub membership_id: Uuid,
    /// The member.
    pub user_id: Uuid,
    /// Its role (`owner`, `admin`, `editor`, `viewer`, `billing`): after
    /// a removal, the last it had.
    pub role: String,
    /// Whether the user is a member after the change (false: removed).
    pub active: bool,
}

impl Membership {
    /// The event of `change` to the membership `membership_id` of
    /// `user_id` in `org_id` with `role`.
    pub fn event(
        org_id: Uuid,
        change: Change,
        (membership_id, user_id): (Uuid, Uuid),
        role: &str,
    ) -> DomainEvent {
        let data = Membership {
            membership_id,
            user_id,
            role: role.to_owned(),
            active: change.active(),
        };
        DomainEvent::new(
            org_id,
            (change.event_type(), VERSION),
            (SUBJECT, membership_id.to_string()),
            serde_json::to_value(&data).unwrap_or_default(),
        )
    }

    /// The membership an event of type `event_type`, at `version`, with
    /// `data` says; why not, if it is not one.
    pub fn of(
        event_type: &str,
        version: i32,
        data: &serde_json::Value,
    ) -> Result<Membership, String> {
        let change = match event_type {
            CREATED => Change::Created,
            UPDATED => Change::Updated,
            REMOVED => Change::Removed,
            SNAPSHOT => Change::Snapshot,
            other => return Err(format!("{other} is not a membership event")),
        };
        if version != VERSION {
            return Err(format!(
                "{event_type} version {version} is unknown (this build reads version {VERSION})"
            ));
        }
        let m: Membership =
            serde_json::from_value(data.clone()).map_err(|e| format!("not a membership: {e}"))?;
        if m.active != change.active() {
            return Err(format!(
                "{event_type} says the user is {}a member",
                if m.active { "" } else { "not " }
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_reads_back_as_the_membership_it_carries() {
        let (org, id, user) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        for change in [
            Change::Created,
            Change::Updated,
            Change::Removed,
            Change::Snapshot,
        ] {
            let e = Membership::event(org, change, (id, user), "editor");
            assert_eq!(e.r#type, change.event_type());
            assert_eq!((e.version, e.subject_type.as_str()), (VERSION, SUBJECT));
            let m = Membership::of(&e.r#type, e.version, &e.data).expect("reads");
            assert_eq!((m.membership_id, m.user_id), (id, user));
            assert_eq!(m.active, change != Change::Removed);
        }
    }

    #[test]
    fn what_is_not_a_membership_of_this_version_is_refused() {
        let e = Membership::event(
            Uuid::nil(),
            Change::Removed,
            (Uuid::nil(), Uuid::nil()),
            "viewer",
        );
        assert!(
            Membership::of(REMOVED, 2, &e.data).is_err(),
            "a later version"
        );
        assert!(
            Membership::of(CREATED, 1, &e.data).is_err(),
            "created, yet inactive"
        );
        assert!(Membership::of("identity.user.created", 1, &e.data).is_err());
        assert!(Membership::of(REMOVED, 1, &serde_json::json!({"user_id": 1})).is_err());
    }
}

//! Memberships: roles and what they grant, who may grant the owner role,
//! and the last-owner rule.

use foundry_domain::{Audited, Change, OwnFields, Patch};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::*;

foundry_domain::stored_enum! {
    /// A role in an organization.
    Role {
        /// Everything.
        Owner = "owner",
        /// Everything but deleting the organization and managing owners.
        Admin = "admin",
        /// Reads; writes delivery, knowledge and integrations data.
        Editor = "editor",
        /// Reads.
        Viewer = "viewer",
        /// Reads the organization; manages billing.
        Billing = "billing",
    }
}

impl Role {
    /// The role a token claim names, if any.
    pub fn parse(s: &str) -> Option<Role> {
        <Role as StoredEnum>::parse(s)
    }

    /// The permission patterns the role grants (`service.resource.verb`).
    pub fn permissions(self) -> Vec<String> {
        let p: &[&str] = match self {
            Role::Owner => &["*"],
            Role::Admin => &[
                "identity.organizations.read",
                "identity.organizations.write",
                "identity.members.*",
                "identity.invitations.*",
                "identity.api_keys.*",
                "delivery.*.*",
                "knowledge.*.*",
                "integrations.*.*",
                "audit.*.read",
                "audit.checkpoints.write",
                "audit.settings.write",
                "billing.*.read",
            ],
            Role::Editor => &[
                "*.*.read",
                "delivery.*.write",
                "knowledge.*.write",
                "integrations.*.write",
            ],
            Role::Viewer => &["*.*.read"],
            Role::Billing => &["identity.organizations.read", "billing.*.*"],
        };
        p.iter().map(|s| (*s).to_owned()).collect()
    }
}

/// A membership's id (not its member's: that is a user id).
pub type MembershipId = foundry_domain::Id<Membership>;

/// A user's membership of an organization, with the member's display
/// fields. Audited: who is a member and in which role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Audited)]
pub struct Membership {
    pub id: MembershipId,
    #[serde(skip_serializing)]
    pub org_id: Uuid,
    pub user_id: UserId,
    pub role: Role,
    #[serde(skip_serializing)]
    pub invited_by: Option<Uuid>,
    /// The member's, from its user.
    #[serde(skip_serializing)]
    pub email: String,
    /// The member's, from its user.
    #[serde(skip_serializing)]
    pub display_name: String,
    pub stamp: Revision,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = MembershipPath, fields = Membership, output_only = &[
    "id",
    "org_id",
    "user_id",
    "invited_by",
    "email",
    "display_name",
    "create_time",
    "update_time",
    "etag",
])]
pub enum MembershipChange {
    Role(Role),
}

/// All of it is its own fields.
impl OwnFields for Membership {
    type Fields = Membership;

    fn fields_mut(&mut self) -> &mut Membership {
        self
    }
}

impl Patch for Membership {
    type Change = MembershipChange;
}

/// Refuses a change that would leave an organization without an owner.
pub fn keep_an_owner(owners: i64, member_is_owner: bool, stays_owner: bool) -> Result<(), Error> {
    if member_is_owner && !stays_owner && owners <= 1 {
        Err(Error::failed_precondition(
            "LAST_OWNER",
            "the last owner cannot leave or be demoted; make another member owner first",
        ))
    } else {
        Ok(())
    }
}

/// Only owners grant or take away the owner role.
pub fn may_change_role(caller: Option<Role>, from: Role, to: Role) -> Result<(), Error> {
    if (from == Role::Owner || to == Role::Owner) && caller != Some(Role::Owner) {
        Err(Error::permission_denied(
            "OWNER_REQUIRED",
            "only an owner grants or removes the owner role",
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_owner_cannot_leave_or_be_demoted() {
        assert!(keep_an_owner(1, true, false).is_err());
        assert!(keep_an_owner(2, true, false).is_ok());
        assert!(keep_an_owner(1, false, false).is_ok());
        assert!(keep_an_owner(1, true, true).is_ok());
    }

    #[test]
    fn only_owners_touch_the_owner_role() {
        assert!(may_change_role(Some(Role::Admin), Role::Viewer, Role::Owner).is_err());
        assert!(may_change_role(Some(Role::Admin), Role::Owner, Role::Viewer).is_err());
        assert!(may_change_role(Some(Role::Admin), Role::Viewer, Role::Editor).is_ok());
        assert!(may_change_role(Some(Role::Owner), Role::Viewer, Role::Owner).is_ok());
    }
}

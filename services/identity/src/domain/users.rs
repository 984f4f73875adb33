//! Users.

use foundry_domain::{Audited, Change, OwnFields, Patch};
use serde::{Deserialize, Serialize};

use super::Revision;

/// A user's id (not a membership's, nor any other principal's).
pub type UserId = foundry_domain::Id<User>;

/// A person who signs in. Audited: what its owner changes (the email comes
/// from sign-in).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Audited)]
pub struct User {
    pub id: UserId,
    #[serde(skip_serializing)]
    pub email: String,
    pub display_name: String,
    /// Empty when none.
    pub avatar_url: String,
    pub stamp: Revision,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = UserPath, fields = User, output_only = &["id", "email", "create_time", "update_time", "etag"])]
pub enum UserChange {
    DisplayName(String),
    /// Empty removes the avatar.
    AvatarUrl(String),
}

/// All of it is its own fields.
impl OwnFields for User {
    type Fields = User;

    fn fields_mut(&mut self) -> &mut User {
        self
    }
}

impl Patch for User {
    type Change = UserChange;
}

//! Users.

use foundry_domain::{Audited, DomainError as Error, FieldPath, Patch};
use serde::{Deserialize, Serialize};

use super::Revision;

/// A user's id (not a membership's, nor any other principal's).
pub type UserId = foundry_domain::Id<User>;

/// A person who signs in. Audited: what its owner changes (the email comes
/// from sign-in).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    #[serde(skip_serializing)]
    pub email: String,
    pub display_name: String,
    /// Empty when none.
    pub avatar_url: String,
    pub stamp: Revision,
}

/// The fields `UpdateUser` may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FieldPath)]
#[field_path(output_only = &["id", "email", "create_time", "update_time", "etag"])]
pub enum UserPath {
    DisplayName,
    AvatarUrl,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq)]
pub enum UserChange {
    DisplayName(String),
    /// Empty removes the avatar.
    AvatarUrl(String),
}

impl Patch for User {
    type Change = UserChange;

    fn apply_one(&mut self, change: UserChange) -> Result<(), Error> {
        match change {
            UserChange::DisplayName(x) => self.display_name = x,
            UserChange::AvatarUrl(x) => self.avatar_url = x,
        }
        Ok(())
    }
}

impl Audited for User {}

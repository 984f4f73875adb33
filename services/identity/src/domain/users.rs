//! Users.

use super::Revision;
use foundry_domain::{AuditFields, Audited, DomainError as Error, FieldPath, Patch};

/// A user's id (not a membership's, nor any other principal's).
pub type UserId = foundry_domain::Id<User>;

/// A person who signs in.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    /// Empty when none.
    pub avatar_url: String,
    pub revision: Revision,
}

/// The fields `UpdateUser` may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserPath {
    DisplayName,
    AvatarUrl,
}

impl FieldPath for UserPath {
    const ALL: &'static [Self] = &[UserPath::DisplayName, UserPath::AvatarUrl];
    const OUTPUT_ONLY: &'static [&'static str] =
        &["id", "email", "create_time", "update_time", "etag"];

    fn name(self) -> &'static str {
        match self {
            UserPath::DisplayName => "display_name",
            UserPath::AvatarUrl => "avatar_url",
        }
    }
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

    fn apply(&mut self, changes: Vec<UserChange>) -> Result<(), Error> {
        for change in changes {
            match change {
                UserChange::DisplayName(x) => self.display_name = x,
                UserChange::AvatarUrl(x) => self.avatar_url = x,
            }
        }
        Ok(())
    }
}

impl Audited for User {
    fn audit_fields(&self) -> AuditFields {
        let User {
            id: _,
            email: _,
            display_name,
            avatar_url,
            revision: _,
        } = self;
        AuditFields::new()
            .field("display_name", display_name)
            .field("avatar_url", avatar_url)
    }
}

//! Linked accounts: external sign-in identities of a user.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// An external account (issuer, subject) linked to a user.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct LinkedAccount {
    pub id: Uuid,
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_login_at: DateTime<Utc>,
}

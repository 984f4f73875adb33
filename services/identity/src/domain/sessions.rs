//! Sessions: a user's sign-ins, each with a refresh token.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A session.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub user_agent: String,
    pub client_ip: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

//! Sessions: a user's sign-ins. A session holds one refresh token at a
//! time: each refresh replaces it, and the tokens it replaced are kept (by
//! hash) so that one presented again revokes the session, and with it every
//! token descended from the sign-in.

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

impl Session {
    /// Whether its refresh token still works at `now`: not revoked, not
    /// expired.
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

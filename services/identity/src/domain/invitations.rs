//! Invitations to join an organization.

use chrono::{DateTime, Utc};
use foundry_domain::Audited;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::*;

foundry_domain::stored_enum! {
    /// An invitation's stored state (expiry is computed, not stored).
    InvitationState {
        /// Sent, not answered.
        Pending = "pending",
        /// Became a membership.
        Accepted = "accepted",
        /// Withdrawn.
        Revoked = "revoked",
    }
}

/// An invitation's state as shown: a pending invitation past its expiry is
/// expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

/// How long an invitation's token is valid, from when it is sent (or
/// resent).
pub const INVITATION_TTL: chrono::Duration = chrono::Duration::days(7);

/// An invitation's id.
pub type InvitationId = foundry_domain::Id<Invitation>;

/// An invitation (its token is stored as a hash only, never read).
/// Audited: its own fields, its state and its `expire_time`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, foundry_domain::Record, Audited)]
pub struct Invitation {
    pub id: InvitationId,
    #[serde(skip_serializing)]
    pub org_id: Uuid,
    pub fields: NewInvitation,
    #[serde(skip_serializing)]
    pub invited_by: Uuid,
    pub state: InvitationState,
    #[serde(rename(serialize = "expire_time"))]
    pub expires_at: DateTime<Utc>,
    #[serde(skip_serializing)]
    pub accepted_at: Option<DateTime<Utc>>,
    pub stamp: Revision,
}

impl Invitation {
    /// Its status at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> InvitationStatus {
        match self.state {
            InvitationState::Accepted => InvitationStatus::Accepted,
            InvitationState::Revoked => InvitationStatus::Revoked,
            InvitationState::Pending if self.expires_at <= now => InvitationStatus::Expired,
            InvitationState::Pending => InvitationStatus::Pending,
        }
    }
}

/// An invitation to create, as parsed at the edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewInvitation {
    pub email: String,
    pub role: Role,
}

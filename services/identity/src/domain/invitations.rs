//! Invitations to join an organization.

use chrono::{DateTime, Utc};
use foundry_domain::{AuditFields, Audited};
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

/// An invitation's id.
pub type InvitationId = foundry_domain::Id<Invitation>;

/// An invitation (its token is stored as a hash only).
#[derive(Clone, Debug, PartialEq)]
pub struct Invitation {
    pub org_id: Uuid,
    pub id: InvitationId,
    pub email: String,
    pub role: Role,
    pub invited_by: Uuid,
    pub state: InvitationState,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revision: Revision,
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
#[derive(Clone, Debug, PartialEq)]
pub struct NewInvitation {
    pub email: String,
    pub role: Role,
}

impl Audited for Invitation {
    fn audit_fields(&self) -> AuditFields {
        let Invitation {
            org_id: _,
            id: _,
            email,
            role,
            invited_by: _,
            state,
            expires_at,
            accepted_at: _,
            revision: _,
        } = self;
        AuditFields::new()
            .field("email", email)
            .field("role", role.as_str())
            .field("state", state.as_str())
            .field("expire_time", expires_at)
    }
}

//! API keys and agent tokens.

use chrono::{DateTime, Utc};
use foundry_domain::{AuditFields, Audited, Id, Stamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::*;

foundry_domain::stored_enum! {
    /// What a key is for.
    ApiKeyKind {
        /// A key a program uses.
        ApiKey = "api_key",
        /// An agent's token.
        Agent = "agent",
    }
}

impl ApiKeyKind {
    /// The kind of secret minted for it.
    pub fn secret_kind(self) -> SecretKind {
        match self {
            ApiKeyKind::ApiKey => SecretKind::ApiKey,
            ApiKeyKind::Agent => SecretKind::Agent,
        }
    }
}

/// Whether a key may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiKeyState {
    Active,
    Expired,
    Revoked,
}

/// An API key's id.
pub type ApiKeyId = Id<ApiKey>;

/// An API key (its secret is stored as a hash only, never read).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, foundry_domain::Record)]
#[record(project_opt = fields.project_id)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub org_id: Uuid,
    pub fields: NewApiKey,
    /// The first characters of the secret, for recognition.
    pub prefix: String,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub stamp: Stamp,
}

impl ApiKey {
    /// Its state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> ApiKeyState {
        if self.revoked_at.is_some() {
            ApiKeyState::Revoked
        } else if self.fields.expires_at.is_some_and(|e| e <= now) {
            ApiKeyState::Expired
        } else {
            ApiKeyState::Active
        }
    }
}

/// A key to create, as parsed at the edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewApiKey {
    pub kind: ApiKeyKind,
    pub display_name: String,
    pub scopes: Vec<String>,
    /// The project it is bound to, if any.
    pub project_id: Option<Uuid>,
    /// The resource inside the project it is bound to, if any.
    pub resource_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewApiKey {
    /// Its limits ([`foundry_tenancy::Limits`]): what it is bound to,
    /// grants and expires at.
    pub fn limits(&self) -> foundry_tenancy::Limits {
        foundry_tenancy::Limits {
            binding: foundry_tenancy::Binding::of(self.project_id, self.resource_id),
            scopes: self.scopes.clone(),
            expires_at: self.expires_at,
        }
    }

    /// The key with `limits` (as [`foundry_tenancy::Limits::narrow`] made
    /// them) in place of its own.
    pub fn with_limits(self, limits: foundry_tenancy::Limits) -> NewApiKey {
        NewApiKey {
            project_id: limits.binding.map(|b| b.project),
            resource_id: limits.binding.and_then(|b| b.resource),
            scopes: limits.scopes,
            expires_at: limits.expires_at,
            ..self
        }
    }
}

impl Audited for ApiKey {
    /// By the proto's names; never the secret or its hash (the display
    /// prefix identifies it), nor what changes by use (`last_used_at`).
    fn audit_fields(&self) -> AuditFields {
        let ApiKey {
            id: _,
            org_id: _,
            fields:
                NewApiKey {
                    kind,
                    display_name,
                    scopes,
                    project_id: _,
                    resource_id,
                    expires_at,
                },
            prefix,
            last_used_at: _,
            revoked_at,
            stamp: _,
        } = self;
        AuditFields::new()
            .field("display_name", display_name)
            .field("kind", kind)
            .field("scopes", scopes)
            .field("resource_id", resource_id)
            .field("prefix", prefix)
            .field("expire_time", expires_at)
            .field("revoke_time", revoked_at)
    }
}

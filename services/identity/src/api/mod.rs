//! gRPC handlers: proto ↔ domain, access, one transaction per call.

pub mod api_keys;
pub mod auth;
pub mod invitations;
pub mod memberships;
pub mod organizations;
pub mod service_accounts;
pub mod users;

/// The service name on audit events.
pub const SERVICE: &str = "identity";

/// The audit actor of a call to this service.
pub fn actor<T>(req: &tonic::Request<T>) -> foundry_outbox::Actor {
    foundry_outbox::Actor::of(SERVICE, req)
}

use foundry_proto::foundry::identity::v1 as pb;

use crate::domain;

/// Maps a domain enum to its proto enum (every variant, by name) and
/// parses a proto value into it (`*_UNSPECIFIED` and unknown values are
/// refused).
macro_rules! proto_enum {
    ($name:ident => $pb:ident { $($variant:ident),+ $(,)? }) => {
        impl From<domain::$name> for pb::$pb {
            fn from(v: domain::$name) -> Self {
                match v {
                    $(domain::$name::$variant => pb::$pb::$variant),+
                }
            }
        }

        impl TryFrom<i32> for domain::$name {
            type Error = ();
            fn try_from(v: i32) -> Result<Self, ()> {
                match pb::$pb::try_from(v).map_err(|_| ())? {
                    $(pb::$pb::$variant => Ok(domain::$name::$variant),)+
                    pb::$pb::Unspecified => Err(()),
                }
            }
        }
    };
}

proto_enum!(Role => Role { Owner, Admin, Editor, Viewer, Billing });

proto_enum!(ApiKeyKind => ApiKeyKind { ApiKey, Agent });

proto_enum!(ApiKeyState => ApiKeyState { Active, Expired, Revoked });

proto_enum!(InvitationStatus => InvitationState { Pending, Accepted, Revoked, Expired });

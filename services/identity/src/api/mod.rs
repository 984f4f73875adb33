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

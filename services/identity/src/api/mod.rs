//! gRPC handlers: proto ↔ domain, access, one transaction per call.

pub mod api_keys;
pub mod auth;
pub mod memberships;
pub mod organizations;

//! Identity service integration tests: real gRPC clients against the real
//! suite on a real PostgreSQL (one database per test). One binary, modules
//! per proto service.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_keys;
mod auth;
mod binding;
mod conformance;
mod invitations;
mod memberships;
mod oidc;
mod organizations;
mod outbox;
mod service_accounts;
mod signing_keys;
mod tenancy;
mod users;

//! Audit rules, one module per aggregate: [`events`] (an event, its
//! canonical form and hash), [`chain`] (linking and verifying a chain),
//! [`checkpoints`] (signed heads), [`records`] (execution audit records),
//! [`settings`] (retention) and [`activity`] (the feed's view of an
//! event). No I/O, no transport: rules refuse with [`Error`]
//! (`foundry_domain::DomainError`), mapped to a gRPC status in one place;
//! proto conversions live in `api`, row conversions in `store`.

pub use foundry_domain::{DomainError as Error, StoredEnum};

pub mod activity;
pub mod canonical;
pub mod chain;
pub mod checkpoints;
pub mod events;
pub mod records;
pub mod settings;

pub use canonical::format_time;
pub use chain::{ChainWalk, Finding, GENESIS, Problem, check_anchor, check_anchor_reached, link};
pub use events::{
    ActorType, Event, MAX_BATCH, MAX_CHANGES_BYTES, MAX_CLIENT_IP, MAX_CLOCK_SKEW, MAX_NAME,
    MAX_REQUEST_ID, MAX_RESOURCE_ID, MAX_SERVICE, MAX_USER_AGENT, id_bounds, is_action,
    is_resource_type, is_service, json_has_nul, storable_json, v7_floor, v7_time,
};

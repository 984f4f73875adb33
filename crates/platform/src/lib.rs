//! The platform kit: what every Foundry service stands on.

pub mod clock;
pub mod commit;
pub mod config;
pub mod convert;
pub mod db;
pub mod error;
pub mod idempotency;
pub mod load;
pub mod metrics;
pub mod page;
pub mod reads;
pub mod rpc;
pub mod rpc_metrics;
pub mod server;
pub mod telemetry;
pub mod throttle;
pub mod trace;
pub mod validate;

pub use error::{Error, Result};

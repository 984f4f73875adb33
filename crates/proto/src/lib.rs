//! Foundry's contracts. Modules mirror the proto packages
//! (`foundry::identity::v1`, `foundry::tenancy::v1`, `google::api`).

#![allow(clippy::all, clippy::pedantic, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/foundry_protos.rs"));

pub mod aip;

// The `aip` traits for every message of the AIP shape (see build.rs).
include!(concat!(env!("OUT_DIR"), "/foundry_aip.rs"));

/// The encoded `FileDescriptorSet` of every Foundry proto and its imports:
/// served by reflection, read by the tenancy layer for the method table, and
/// written out by `foundry descriptors` for gateways.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/foundry_descriptor.bin"));

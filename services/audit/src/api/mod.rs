//! gRPC handlers: proto ↔ domain, access, one transaction per call.
//! `AuditService`'s handlers live per concern (events, verify, export,
//! checkpoints, activity, records, settings); `events.rs` routes to them.

pub mod activity;
pub mod checkpoints;
pub mod events;
pub mod export;
pub mod ingest;
pub mod records;
pub mod settings;
pub mod verify;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use foundry_platform::convert::{json_to_struct, opt_timestamp, timestamp};
use foundry_proto::foundry::audit::v1 as pb;

use crate::domain::ActorType;
use crate::domain::checkpoint::Reason;
use crate::domain::records::Outcome;
use crate::store::EventRow;
use crate::store::checkpoints::CheckpointRow;
use crate::store::records::RecordRow;

/// A stored event on the wire.
pub fn event_to_proto(r: EventRow) -> pb::AuditEvent {
    let e = r.event;
    pb::AuditEvent {
        id: e.id.to_string(),
        org_id: e.org_id.to_string(),
        sequence: e.sequence,
        occur_time: Some(timestamp(e.occurred_at)),
        record_time: Some(timestamp(r.recorded_at)),
        actor_type: actor_type_to_proto(&e.actor_type) as i32,
        actor_id: e.actor_id.map(|a| a.to_string()).unwrap_or_default(),
        action: e.action,
        resource_type: e.resource_type,
        resource_id: e.resource_id,
        project_id: e.project_id.map(|p| p.to_string()).unwrap_or_default(),
        changes: Some(json_to_struct(&e.changes)),
        request_id: e.request_id,
        trace_id: e.trace_id,
        client_ip: e.client_ip,
        user_agent: e.user_agent,
        service: e.service,
        previous_hash: hex::encode(&e.prev_hash),
        hash: hex::encode(&r.hash),
    }
}

/// A stored actor type on the wire (unspecified if unknown).
pub fn actor_type_to_proto(stored: &str) -> pb::ActorType {
    ActorType::parse(stored).map_or(pb::ActorType::Unspecified, pb::ActorType::from)
}

/// A stored checkpoint on the wire: signature and public key as unpadded
/// base64url (JWS and JWK spelling).
pub fn checkpoint_to_proto(r: &CheckpointRow) -> pb::AuditCheckpoint {
    pb::AuditCheckpoint {
        id: r.id.to_string(),
        org_id: r.org_id.to_string(),
        reason: Reason::parse(&r.reason).map_or(
            pb::CheckpointReason::Unspecified,
            pb::CheckpointReason::from,
        ) as i32,
        sequence: r.sequence,
        head_hash: hex::encode(&r.head_hash),
        event_count: r.event_count,
        first_occur_time: opt_timestamp(r.first_occurred_at),
        last_occur_time: opt_timestamp(r.last_occurred_at),
        create_time: Some(timestamp(r.created_at)),
        key_id: r.key_id.clone(),
        signature: URL_SAFE_NO_PAD.encode(&r.signature),
        public_key: URL_SAFE_NO_PAD.encode(&r.public_key),
    }
}

/// A stored execution record on the wire.
pub fn record_to_proto(r: RecordRow) -> pb::ExecutionAuditRecord {
    let micros = r.duration_us;
    pb::ExecutionAuditRecord {
        id: r.id.to_string(),
        org_id: r.org_id.to_string(),
        execution_id: r.execution_id.map(|i| i.to_string()).unwrap_or_default(),
        program_id: r.program_id.to_string(),
        task_id: r.task_id.to_string(),
        task_title: r.task_title,
        skill_name: r.skill_name,
        skill_version: r.skill_version,
        user_id: r.user_id.map(|i| i.to_string()).unwrap_or_default(),
        user_display_name: r.user_display_name,
        environment: Some(json_to_struct(&r.environment)),
        model: r.model,
        outcome: Outcome::parse(&r.outcome).map_or(
            pb::ExecutionOutcome::Unspecified,
            pb::ExecutionOutcome::from,
        ) as i32,
        start_time: Some(timestamp(r.started_at)),
        end_time: Some(timestamp(r.ended_at)),
        duration: Some(prost_types::Duration {
            seconds: micros / 1_000_000,
            nanos: ((micros % 1_000_000) * 1000) as i32,
        }),
        record_time: Some(timestamp(r.recorded_at)),
    }
}

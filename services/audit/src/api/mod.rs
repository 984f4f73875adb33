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
use foundry_platform::Error;
use foundry_platform::convert::{json_to_struct, opt_timestamp, struct_to_json, timestamp};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::audit::v1 as pb;

use crate::domain::checkpoints::SignedCheckpoint;
use crate::domain::records::StoredRecord;
use crate::domain::{self, ActorType, StoredEnum};
use crate::store::EventRow;

use foundry_platform::proto_enum;

proto_enum!(domain::ActorType => ActorType { User, ApiKey, Agent, Service, System });

proto_enum!(domain::checkpoints::Reason => CheckpointReason { OnDemand, Periodic, Retention });

proto_enum!(domain::records::Outcome => ExecutionOutcome { Succeeded, Failed, Cancelled, TimedOut });

/// The value of a domain rule, or its refusal added to `v` (by the field
/// the rule names).
pub fn checked<T>(v: &mut Violations, r: Result<T, domain::Error>) -> Option<T> {
    r.map_err(|e| v.add(e.field.unwrap_or_default(), e.message))
        .ok()
}

/// A `google.protobuf.Struct` (empty if not sent) as a JSON object that can
/// be stored as `field`: at most `max` bytes, no NUL.
pub fn json_object(
    v: &mut Violations,
    field: String,
    s: Option<&prost_types::Struct>,
    max: usize,
) -> Option<serde_json::Value> {
    let value = s
        .map(struct_to_json)
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    checked(v, domain::storable_json(field, value, max))
}

/// A stored event on the wire.
pub fn event_to_proto(r: EventRow) -> Result<pb::AuditEvent, Error> {
    let e = r.event;
    Ok(pb::AuditEvent {
        id: e.id.to_string(),
        org_id: e.org_id.to_string(),
        sequence: e.sequence,
        occur_time: Some(timestamp(e.occurred_at)),
        record_time: Some(timestamp(r.recorded_at)),
        actor_type: actor_type_to_proto(&e.actor_type)? as i32,
        actor_id: e.actor_id.map(|a| a.to_string()).unwrap_or_default(),
        on_behalf_of_type: match &e.on_behalf_of_type {
            Some(t) => actor_type_to_proto(t)? as i32,
            None => pb::ActorType::Unspecified as i32,
        },
        on_behalf_of_id: e.on_behalf_of_id.map(|a| a.to_string()).unwrap_or_default(),
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
    })
}

/// A stored actor type on the wire. The event keeps the stored text (so a
/// tampered value still hashes, and verification finds it); shown, an
/// unknown value is an error naming where it was read.
pub fn actor_type_to_proto(stored: &str) -> Result<pb::ActorType, Error> {
    Ok(ActorType::decode("events", "actor_type", stored)?.into())
}

/// A stored checkpoint on the wire: signature and public key as unpadded
/// base64url (JWS and JWK spelling).
pub fn checkpoint_to_proto(s: &SignedCheckpoint) -> pb::AuditCheckpoint {
    let c = &s.checkpoint;
    pb::AuditCheckpoint {
        id: c.id.to_string(),
        org_id: c.org_id.to_string(),
        reason: pb::CheckpointReason::from(c.reason) as i32,
        sequence: c.sequence,
        head_hash: hex::encode(&c.head_hash),
        event_count: c.event_count,
        first_occur_time: opt_timestamp(c.first_occurred_at),
        last_occur_time: opt_timestamp(c.last_occurred_at),
        create_time: Some(timestamp(c.created_at)),
        key_id: c.key_id.clone(),
        signature: URL_SAFE_NO_PAD.encode(&s.signature),
        public_key: URL_SAFE_NO_PAD.encode(&s.public_key),
    }
}

/// A stored execution record on the wire.
pub fn record_to_proto(s: StoredRecord) -> pb::ExecutionAuditRecord {
    let r = s.record;
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
        outcome: pb::ExecutionOutcome::from(r.outcome) as i32,
        start_time: Some(timestamp(r.started_at)),
        end_time: Some(timestamp(r.ended_at)),
        duration: Some(prost_types::Duration {
            seconds: micros / 1_000_000,
            nanos: ((micros % 1_000_000) * 1000) as i32,
        }),
        record_time: Some(timestamp(s.recorded_at)),
    }
}

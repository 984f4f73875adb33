//! gRPC handlers: proto ↔ domain, access, one transaction per call.

pub mod events;
pub mod ingest;

use foundry_platform::convert::{json_to_struct, timestamp};
use foundry_proto::foundry::audit::v1 as pb;

use crate::domain::ActorType;
use crate::store::EventRow;

/// A stored event on the wire.
pub fn event_to_proto(r: EventRow) -> pb::AuditEvent {
    let e = r.event;
    pb::AuditEvent {
        id: e.id.to_string(),
        org_id: e.org_id.to_string(),
        sequence: e.sequence,
        occur_time: Some(timestamp(e.occurred_at)),
        record_time: Some(timestamp(r.recorded_at)),
        actor_type: ActorType::parse(&e.actor_type)
            .map_or(pb::ActorType::Unspecified, pb::ActorType::from) as i32,
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

//! `AuditIngestService` (internal: service accounts only).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Datelike, SubsecRound};
use foundry_platform::Error;
use foundry_platform::convert::from_timestamp;
use foundry_platform::db::Tx;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::audit::v1::{
    self as pb, audit_ingest_service_server::AuditIngestService,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{checkpoint_to_proto, json_object, records};
use crate::domain::{self, ActorType, Event};
use crate::maintenance;
use crate::store::{self, Head};

/// Handlers of `AuditIngestService`.
#[derive(Clone, Debug)]
pub struct Ingest(pub Arc<State>);

/// A string of at most `max` characters that PostgreSQL can store (no
/// NUL). Other characters are kept as sent: the log records what was seen.
fn bounded(v: &mut Violations, field: &str, value: String, max: usize) -> Option<String> {
    if value.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
        None
    } else if value.contains('\0') {
        v.add(field, "must not contain NUL characters");
        None
    } else {
        Some(value)
    }
}

/// A required name matching `ok`.
fn name(
    v: &mut Violations,
    field: &str,
    value: String,
    ok: fn(&str) -> bool,
    rule: &str,
) -> Option<String> {
    if value.is_empty() {
        v.add(field, "is required");
        None
    } else if !ok(&value) {
        v.add(field, rule.to_owned());
        None
    } else {
        Some(value)
    }
}

/// Parses one event of the batch; problems are reported as
/// `audit_events[i].<field>`. Output-only fields other than the ids and
/// time (`sequence`, `record_time`, hashes) are ignored (AIP-203).
fn parse_event(v: &mut Violations, i: usize, e: pb::AuditEvent) -> Option<Event> {
    let f = |name: &str| format!("audit_events[{i}].{name}");
    let id = v.id(&f("id"), &e.id);
    let id = match id {
        Some(id) if id.get_version_num() != 7 => {
            v.add(
                f("id"),
                "must be a UUID v7 minted when the change was made (its time orders and filters the log)",
            );
            None
        }
        id => id,
    };
    let org_id = v.id(&f("org_id"), &e.org_id);
    let id_time = id.and_then(domain::v7_time);
    let occurred_at = match &e.occur_time {
        Some(t) => match from_timestamp(t) {
            // Stored as timestamptz: microseconds, so the hash computed now
            // is the hash recomputed from the row later.
            Some(t) if (1970..=9999).contains(&t.year()) => {
                let t = t.trunc_subsecs(6);
                // Time filters run on the id (the index) and then on the
                // time: the two must agree for the filters to be exact.
                if id_time.is_some_and(|i| i.timestamp_millis() != t.timestamp_millis()) {
                    v.add(
                        f("occur_time"),
                        "must fall in the millisecond of the id's time (mint the id from it)",
                    );
                    None
                } else {
                    Some(t)
                }
            }
            _ => {
                v.add(f("occur_time"), "must be a time between 1970 and 9999");
                None
            }
        },
        // Not sent: the id's own time.
        None => id_time,
    };
    let occurred_at = match occurred_at {
        Some(t) if t > chrono::Utc::now() + domain::MAX_CLOCK_SKEW => {
            v.add(
                f("occur_time"),
                format!(
                    "is more than {} minutes in the future (the producer's clock is wrong)",
                    domain::MAX_CLOCK_SKEW.num_minutes()
                ),
            );
            None
        }
        t => t,
    };
    let service = name(
        v,
        &f("service"),
        e.service,
        domain::is_service,
        "must be a service name: a-z, 0-9 and '_', starting with a letter, at most 64 characters",
    );
    let actor_type: Option<ActorType> = v.enum_value(&f("actor_type"), e.actor_type);
    let actor_id = v.opt_id(&f("actor_id"), &e.actor_id);
    let on_behalf_of = match pb::ActorType::try_from(e.on_behalf_of_type) {
        Ok(pb::ActorType::Unspecified) if e.on_behalf_of_id.is_empty() => Some((None, None)),
        Ok(pb::ActorType::Unspecified) => {
            v.add(f("on_behalf_of_type"), "is required with on_behalf_of_id");
            None
        }
        _ => {
            let kind: Option<ActorType> =
                v.enum_value(&f("on_behalf_of_type"), e.on_behalf_of_type);
            let id = v.id(&f("on_behalf_of_id"), &e.on_behalf_of_id);
            kind.zip(id)
                .map(|(k, id)| (Some(k.as_str().to_owned()), Some(id)))
        }
    };
    let action = name(
        v,
        &f("action"),
        e.action,
        domain::is_action,
        "must be `<service>.<resource>.<verb>`: dot-separated segments of a-z, 0-9 and '_', each starting with a letter, at most 128 characters",
    );
    let resource_type = name(
        v,
        &f("resource_type"),
        e.resource_type,
        domain::is_resource_type,
        "must be dot-separated segments of a-z, 0-9 and '_', each starting with a letter, at most 128 characters",
    );
    let resource_id = bounded(v, &f("resource_id"), e.resource_id, domain::MAX_RESOURCE_ID);
    let project_id = v.opt_id(&f("project_id"), &e.project_id);
    let changes = json_object(
        v,
        f("changes"),
        e.changes.as_ref(),
        domain::MAX_CHANGES_BYTES,
    );
    let request_id = bounded(v, &f("request_id"), e.request_id, domain::MAX_REQUEST_ID);
    let trace_id = bounded(v, &f("trace_id"), e.trace_id, domain::MAX_REQUEST_ID);
    let client_ip = bounded(v, &f("client_ip"), e.client_ip, domain::MAX_CLIENT_IP);
    let user_agent = bounded(v, &f("user_agent"), e.user_agent, domain::MAX_USER_AGENT);
    Some(Event {
        org_id: org_id?,
        sequence: 0,
        id: id?,
        occurred_at: occurred_at?,
        service: service?,
        actor_type: actor_type?.as_str().to_owned(),
        actor_id,
        on_behalf_of_type: on_behalf_of.clone()?.0,
        on_behalf_of_id: on_behalf_of?.1,
        action: action?,
        resource_type: resource_type?,
        resource_id: resource_id?,
        project_id,
        changes: changes?,
        request_id: request_id?,
        trace_id: trace_id?,
        client_ip: client_ip?,
        user_agent: user_agent?,
        prev_hash: Vec::new(),
    })
}

/// Appends events to their organizations' chains in `tx`, in the order
/// given per organization, skipping ids already in the log; returns how
/// many were new. The caller commits (the appends of a service's own
/// mutation commit with it).
pub async fn append(tx: &mut Tx, mut events: Vec<Event>) -> Result<usize, Error> {
    let orgs: Vec<Uuid> = events.iter().map(|e| e.org_id).collect();
    // Lock every chain first; only then look for ids already appended. A
    // concurrent append of the same ids either committed before we got the
    // locks (and we see its rows now) or waits for ours (and sees ours):
    // never both appending.
    let heads = store::lock_heads(tx, &orgs).await?;
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let existing = store::existing_ids(tx, &ids).await?;
    events.retain(|e| !existing.contains(&e.id));

    // Per organization, in the order they came (the sort is stable).
    events.sort_by_key(|e| e.org_id);
    let mut hashes = Vec::with_capacity(events.len());
    let mut new_heads = Vec::new();
    for chain in events.chunk_by_mut(|a, b| a.org_id == b.org_id) {
        let org_id = chain[0].org_id;
        let head = heads
            .get(&org_id)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("chain head of {org_id} not locked")))?;
        let (h, sequence, hash) = domain::link(chain, head.sequence, &head.hash);
        hashes.extend(h);
        new_heads.push((org_id, Head { sequence, hash }));
    }
    store::insert_events(tx, &events, &hashes).await?;
    store::update_heads(tx, &new_heads).await?;
    Ok(events.len())
}

#[tonic::async_trait]
impl AuditIngestService for Ingest {
    #[tracing::instrument(skip_all, fields(events))]
    async fn append_audit_events(
        &self,
        req: Request<pb::AppendAuditEventsRequest>,
    ) -> Result<Response<pb::AppendAuditEventsResponse>, Status> {
        // The service the caller runs as: the only one whose events it may
        // append.
        let own = foundry_tenancy::caller(&req)?.claims.svc.clone();
        let batch = req.into_inner().audit_events;
        tracing::Span::current().record("events", batch.len());
        if batch.len() > domain::MAX_BATCH {
            return Err(Error::invalid_field(
                "audit_events",
                format!("must hold at most {} events", domain::MAX_BATCH),
            )
            .into());
        }
        let total = batch.len();
        let mut v = Violations::new();
        let mut events: Vec<Event> = Vec::with_capacity(total);
        for (i, e) in batch.into_iter().enumerate() {
            if let Some(e) = parse_event(&mut v, i, e) {
                events.push(e);
            }
        }
        v.finish()?;
        if let Some((i, e)) = events
            .iter()
            .enumerate()
            .find(|(_, e)| own.as_deref() != Some(e.service.as_str()))
        {
            return Err(Error::permission_denied(
                "SERVICE_MISMATCH",
                format!(
                    "audit_events[{i}] is an event of {}, and this service account runs as {}",
                    e.service,
                    own.as_deref().unwrap_or("no service")
                ),
            )
            .into());
        }
        // The same id twice in one batch is one event (the first).
        let mut seen = HashSet::with_capacity(events.len());
        events.retain(|e| seen.insert(e.id));
        if events.is_empty() {
            return Ok(Response::new(pb::AppendAuditEventsResponse {
                appended: 0,
                duplicates: total as i32,
            }));
        }

        let mut tx = self.0.db.system().await?;
        let appended = append(&mut tx, events).await?;
        tx.commit().await.map_err(Error::from)?;

        tracing::debug!(
            appended,
            duplicates = total - appended,
            "audit events appended"
        );
        Ok(Response::new(pb::AppendAuditEventsResponse {
            appended: appended as i32,
            duplicates: (total - appended) as i32,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn create_execution_audit_record(
        &self,
        req: Request<pb::CreateExecutionAuditRecordRequest>,
    ) -> Result<Response<pb::ExecutionAuditRecord>, Status> {
        records::create_execution_audit_record(&self.0, req).await
    }

    #[tracing::instrument(skip_all, fields(org_id))]
    async fn apply_audit_retention(
        &self,
        req: Request<pb::ApplyAuditRetentionRequest>,
    ) -> Result<Response<pb::ApplyAuditRetentionResponse>, Status> {
        let org_id = Violations::require_id("org_id", &req.get_ref().org_id)?;
        tracing::Span::current().record("org_id", tracing::field::display(org_id));
        let r = maintenance::apply_retention(&self.0, org_id).await?;
        Ok(Response::new(pb::ApplyAuditRetentionResponse {
            removed_count: r.removed,
            retained_after_sequence: r.retained_after,
            checkpoint: r.checkpoint.as_ref().map(checkpoint_to_proto),
        }))
    }
}

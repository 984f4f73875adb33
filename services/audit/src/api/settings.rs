//! `GetAuditSettings` / `UpdateAuditSettings`: the caller organization's
//! retention. A change is recorded in the organization's own chain, in the
//! transaction that makes it (the audit service is its own log).

use foundry_outbox::Actor;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{Tx, check_etag, etag};
use foundry_platform::validate::{Violations, mask};
use foundry_proto::foundry::audit::v1 as pb;
use foundry_tenancy::caller;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{checked, ingest};
use crate::domain::settings::{RetentionPolicy, Settings, SettingsChange, SettingsPath};
use crate::domain::{ActorType, Event};
use crate::store::settings as store;

async fn settings_to_proto(
    conn: &mut PgConnection,
    org_id: Uuid,
    row: Option<Settings>,
) -> Result<pb::AuditSettings, Error> {
    let mark = store::get_watermark(conn, org_id).await?;
    let version = row.as_ref().map_or(0, |r| r.version);
    let pending = row.as_ref().and_then(|r| r.pending_retention_days);
    let pending_at = row.as_ref().and_then(|r| r.pending_effective_at);
    Ok(pb::AuditSettings {
        org_id: org_id.to_string(),
        retention_days: row.as_ref().and_then(|r| r.retention_days).unwrap_or(0),
        etag: etag(version),
        update_time: row
            .filter(|r| r.version > 0)
            .map(|r| timestamp(r.updated_at)),
        retained_after_sequence: mark.map_or(0, |m| m.sequence),
        pending_retention_days: pending.unwrap_or(0),
        pending_retention_effective_time: pending_at.map(timestamp),
    })
}

/// The outbox's event (built from the call as every producer builds one)
/// as an event of this log.
fn to_event(e: foundry_outbox::AuditEvent) -> Result<Event, Error> {
    let actor_type = ActorType::try_from(pb::ActorType::from(e.actor_type) as i32)
        .map_err(|()| Error::internal(anyhow::anyhow!("actor type without a name")))?;
    Ok(Event {
        org_id: e.org_id,
        sequence: 0,
        id: e.id,
        occurred_at: e.occurred_at,
        service: e.service,
        actor_type: actor_type.as_str().to_owned(),
        actor_id: e.actor_id,
        on_behalf_of_type: e.on_behalf_of.map(|o| {
            ActorType::try_from(pb::ActorType::from(o.actor_type) as i32)
                .map_or_else(|()| String::new(), |t| t.as_str().to_owned())
        }),
        on_behalf_of_id: e.on_behalf_of.map(|o| o.id),
        action: e.action,
        resource_type: e.resource_type,
        resource_id: e.resource_id,
        project_id: e.project_id,
        changes: serde_json::Value::Object(e.changes),
        request_id: e.request_id,
        trace_id: e.trace_id,
        client_ip: e.client_ip,
        user_agent: e.user_agent,
        prev_hash: Vec::new(),
    })
}

/// `GetAuditSettings`.
pub async fn get_audit_settings(
    state: &State,
    req: Request<pb::GetAuditSettingsRequest>,
) -> Result<Response<pb::AuditSettings>, Status> {
    let org_id = caller(&req)?.org_id()?;
    // The settings and the watermark need not agree (in a transaction they
    // did not either: read committed takes a snapshot per statement).
    let mut conn = state.db.read(org_id).await?;
    let row = store::get_settings(&mut conn, org_id, false).await?;
    let out = settings_to_proto(&mut conn, org_id, row).await?;
    Ok(Response::new(out))
}

/// `UpdateAuditSettings`.
pub async fn update_audit_settings(
    state: &State,
    req: Request<pb::UpdateAuditSettingsRequest>,
) -> Result<Response<pb::AuditSettings>, Status> {
    let org_id = caller(&req)?.org_id()?;
    let actor = Actor::of("audit", &req);
    let update = parse_update(req.into_inner(), &state.retention)?;

    let mut tx = state.db.tenant(org_id).await?;
    // The row exists (version 0: the defaults) before it is locked, so two
    // first updates take turns instead of both creating it.
    store::ensure_settings(&mut tx, org_id).await?;
    let before = store::get_settings(&mut tx, org_id, true)
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("settings of {org_id} not created")))?;
    check_etag(&update.etag, before.version, "the audit settings")?;
    let mut after = before.clone();
    let now = chrono::Utc::now();
    for change in update.changes {
        match change {
            // Through the policy: a shorter retention waits.
            SettingsChange::RetentionDays(days) => {
                after.request_retention(days, &state.retention, now);
            }
        }
    }
    let row = record_change(&mut tx, &actor, org_id, before, &after).await?;
    let out = settings_to_proto(&mut tx, org_id, Some(row)).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Response::new(out))
}

/// Writes `after` over `before` (locked in `tx`) with its event in the
/// organization's own chain, if anything changed; the settings as they
/// now are.
pub(crate) async fn record_change(
    tx: &mut Tx,
    actor: &Actor,
    org_id: Uuid,
    before: Settings,
    after: &Settings,
) -> Result<Settings, Error> {
    let event = actor
        .event("audit.settings.update", "audit.settings", org_id)
        .org(org_id)
        .diff(&before, after);
    if !event.has_changes() {
        return Ok(before);
    }
    let row = store::put_settings(tx, org_id, after).await?;
    ingest::append(tx, vec![to_event(event.build())?]).await?;
    Ok(row)
}

/// An `UpdateAuditSettings` request, parsed.
struct SettingsUpdate {
    etag: String,
    changes: Vec<SettingsChange>,
}

/// Parses an update: the mask's paths and each named field's new value,
/// every problem reported at once.
fn parse_update(
    req: pb::UpdateAuditSettingsRequest,
    policy: &RetentionPolicy,
) -> Result<SettingsUpdate, Error> {
    let pb::UpdateAuditSettingsRequest {
        audit_settings,
        update_mask,
    } = req;
    let mut v = Violations::new();
    let paths = mask::<SettingsPath>(&mut v, update_mask.as_ref());
    if audit_settings.is_none() {
        v.add("audit_settings", "is required");
    }
    let given = audit_settings.unwrap_or_default();
    let changes: Vec<Option<SettingsChange>> = paths
        .into_iter()
        .map(|p| match p {
            SettingsPath::RetentionDays => {
                checked(&mut v, policy.retention_days(given.retention_days))
                    .map(SettingsChange::RetentionDays)
            }
        })
        .collect();
    v.finish_with(|| {
        Some(SettingsUpdate {
            etag: given.etag,
            changes: changes.into_iter().collect::<Option<_>>()?,
        })
    })
}

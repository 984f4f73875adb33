//! SQL of events and chain heads. The service's role may only read and
//! insert events (see the migration): nothing here updates or deletes one.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use foundry_platform::db::Tx;
use foundry_platform::error::is_unique_violation;
use foundry_platform::page::{Walk, push_keyset};
use foundry_platform::{Error, Result};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::domain::{Event, GENESIS};

/// A stored event.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// The chained fields.
    pub event: Event,
    /// When the service appended it.
    pub recorded_at: DateTime<Utc>,
    /// SHA-256 of the event's canonical form.
    pub hash: Vec<u8>,
}

impl<'r> FromRow<'r, PgRow> for EventRow {
    fn from_row(r: &'r PgRow) -> sqlx::Result<Self> {
        Ok(EventRow {
            event: Event {
                org_id: r.try_get("org_id")?,
                sequence: r.try_get("sequence")?,
                id: r.try_get("id")?,
                occurred_at: r.try_get("occurred_at")?,
                service: r.try_get("service")?,
                actor_type: r.try_get("actor_type")?,
                actor_id: r.try_get("actor_id")?,
                on_behalf_of_type: r.try_get("on_behalf_of_type")?,
                on_behalf_of_id: r.try_get("on_behalf_of_id")?,
                action: r.try_get("action")?,
                resource_type: r.try_get("resource_type")?,
                resource_id: r.try_get("resource_id")?,
                project_id: r.try_get("project_id")?,
                changes: r.try_get("changes")?,
                request_id: r.try_get("request_id")?,
                trace_id: r.try_get("trace_id")?,
                client_ip: r.try_get("client_ip")?,
                user_agent: r.try_get("user_agent")?,
                prev_hash: r.try_get("prev_hash")?,
            },
            recorded_at: r.try_get("recorded_at")?,
            hash: r.try_get("hash")?,
        })
    }
}

/// The columns an [`EventRow`] is read from.
pub const EVENT_COLS: &str = "org_id, sequence, id, occurred_at, recorded_at, service, actor_type, \
     actor_id, on_behalf_of_type, on_behalf_of_id, action, resource_type, resource_id, project_id, changes, request_id, trace_id, \
     client_ip, user_agent, prev_hash, hash";

/// A chain's head: its last position and that event's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The last position (0: empty chain).
    pub sequence: i64,
    /// The last event's hash ([`GENESIS`] for an empty chain).
    pub hash: Vec<u8>,
}

/// Creates the missing heads of `orgs` and locks them all, in org order
/// (so two appends touching the same organizations cannot deadlock). Every
/// append to an organization holds its head's lock until commit.
pub async fn lock_heads(tx: &mut Tx, orgs: &[Uuid]) -> Result<HashMap<Uuid, Head>> {
    let mut sorted = orgs.to_vec();
    sorted.sort();
    sorted.dedup();
    sqlx::query(
        "INSERT INTO chain_heads (org_id, sequence, hash) \
         SELECT o, 0, $2 FROM unnest($1::uuid[]) WITH ORDINALITY AS t(o, n) ORDER BY n \
         ON CONFLICT (org_id) DO NOTHING",
    )
    .bind(&sorted)
    .bind(GENESIS.as_slice())
    .execute(&mut **tx)
    .await?;
    let rows: Vec<(Uuid, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT org_id, sequence, hash FROM chain_heads WHERE org_id = ANY($1) \
         ORDER BY org_id FOR UPDATE",
    )
    .bind(&sorted)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(org, sequence, hash)| (org, Head { sequence, hash }))
        .collect())
}

/// Which of `ids` are already in the log (any organization).
pub async fn existing_ids(tx: &mut Tx, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
    let rows: Vec<(Uuid,)> = sqlx::query_as("SELECT id FROM events WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Inserts linked events (one statement for the batch).
pub async fn insert_events(tx: &mut Tx, events: &[Event], hashes: &[[u8; 32]]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let n = events.len();
    let mut org_id = Vec::with_capacity(n);
    let mut sequence = Vec::with_capacity(n);
    let mut id = Vec::with_capacity(n);
    let mut occurred_at = Vec::with_capacity(n);
    let mut service = Vec::with_capacity(n);
    let mut actor_type = Vec::with_capacity(n);
    let mut actor_id = Vec::with_capacity(n);
    let mut on_behalf_of_type = Vec::with_capacity(n);
    let mut on_behalf_of_id = Vec::with_capacity(n);
    let mut action = Vec::with_capacity(n);
    let mut resource_type = Vec::with_capacity(n);
    let mut resource_id = Vec::with_capacity(n);
    let mut project_id = Vec::with_capacity(n);
    let mut changes = Vec::with_capacity(n);
    let mut request_id = Vec::with_capacity(n);
    let mut trace_id = Vec::with_capacity(n);
    let mut client_ip = Vec::with_capacity(n);
    let mut user_agent = Vec::with_capacity(n);
    let mut prev_hash = Vec::with_capacity(n);
    let mut hash = Vec::with_capacity(n);
    for (e, h) in events.iter().zip(hashes) {
        org_id.push(e.org_id);
        sequence.push(e.sequence);
        id.push(e.id);
        occurred_at.push(e.occurred_at);
        service.push(e.service.as_str());
        actor_type.push(e.actor_type.as_str());
        actor_id.push(e.actor_id);
        on_behalf_of_type.push(e.on_behalf_of_type.as_deref());
        on_behalf_of_id.push(e.on_behalf_of_id);
        action.push(e.action.as_str());
        resource_type.push(e.resource_type.as_str());
        resource_id.push(e.resource_id.as_str());
        project_id.push(e.project_id);
        changes.push(e.changes.clone());
        request_id.push(e.request_id.as_str());
        trace_id.push(e.trace_id.as_str());
        client_ip.push(e.client_ip.as_str());
        user_agent.push(e.user_agent.as_str());
        prev_hash.push(e.prev_hash.as_slice());
        hash.push(h.as_slice());
    }
    sqlx::query(
        "INSERT INTO events (org_id, sequence, id, occurred_at, service, actor_type, actor_id, \
           action, resource_type, resource_id, project_id, changes, request_id, trace_id, \
           client_ip, user_agent, prev_hash, hash, on_behalf_of_type, on_behalf_of_id) \
         SELECT * FROM unnest($1::uuid[], $2::int8[], $3::uuid[], $4::timestamptz[], $5::text[], \
           $6::text[], $7::uuid[], $8::text[], $9::text[], $10::text[], $11::uuid[], $12::jsonb[], \
           $13::text[], $14::text[], $15::text[], $16::text[], $17::bytea[], $18::bytea[], \
           $19::text[], $20::uuid[])",
    )
    .bind(org_id)
    .bind(sequence)
    .bind(id)
    .bind(occurred_at)
    .bind(service)
    .bind(actor_type)
    .bind(actor_id)
    .bind(action)
    .bind(resource_type)
    .bind(resource_id)
    .bind(project_id)
    .bind(changes)
    .bind(request_id)
    .bind(trace_id)
    .bind(client_ip)
    .bind(user_agent)
    .bind(prev_hash)
    .bind(hash)
    .bind(on_behalf_of_type)
    .bind(on_behalf_of_id)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "events_id_key") {
            // The same id appended for another organization at the same
            // moment: the retry sees it and acknowledges it.
            Error::aborted(
                "CONCURRENT_APPEND",
                "an event with this id was appended concurrently; retry",
            )
        } else {
            e.into()
        }
    })?;
    Ok(())
}

/// Moves the heads of the given organizations.
pub async fn update_heads(tx: &mut Tx, heads: &[(Uuid, Head)]) -> Result<()> {
    if heads.is_empty() {
        return Ok(());
    }
    let orgs: Vec<Uuid> = heads.iter().map(|(o, _)| *o).collect();
    let sequences: Vec<i64> = heads.iter().map(|(_, h)| h.sequence).collect();
    let hashes: Vec<&[u8]> = heads.iter().map(|(_, h)| h.hash.as_slice()).collect();
    sqlx::query(
        "UPDATE chain_heads h SET sequence = u.sequence, hash = u.hash, updated_at = now() \
         FROM unnest($1::uuid[], $2::int8[], $3::bytea[]) AS u(org_id, sequence, hash) \
         WHERE h.org_id = u.org_id",
    )
    .bind(orgs)
    .bind(sequences)
    .bind(hashes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One event of an organization.
pub async fn get_event(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<EventRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {EVENT_COLS} FROM events WHERE org_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// The filters of a list (each one an index prefix after `org_id`).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this actor.
    pub actor_id: Option<Uuid>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this resource type.
    pub resource_type: Option<String>,
    /// Only this resource (with `resource_type`).
    pub resource_id: Option<String>,
    /// Only this project.
    pub project_id: Option<Uuid>,
    /// `id >= min_id` (a start time).
    pub min_id: Option<Uuid>,
    /// `id < max_id` (an end time).
    pub max_id: Option<Uuid>,
    /// `occurred_at >= start` (exact, within `min_id`'s millisecond).
    pub start: Option<DateTime<Utc>>,
    /// `occurred_at < end` (exact, within `max_id`'s millisecond).
    pub end: Option<DateTime<Utc>>,
}

/// Which way a list of events runs, and from where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyset {
    /// Newest first, ids below `before` (lists, the activity feed).
    NewestFirst {
        /// The last id of the previous page.
        before: Option<Uuid>,
    },
    /// Oldest first, ids above `after` (export).
    OldestFirst {
        /// The last id of the previous chunk.
        after: Option<Uuid>,
    },
}

/// A page of an organization's events in `keyset` order. The SQL names
/// only the filters given, so the planner picks the index of each
/// combination rather than a generic plan over `$n IS NULL OR …`.
pub async fn list_events(
    conn: &mut PgConnection,
    org_id: Uuid,
    f: &ListFilter,
    keyset: Keyset,
    limit: i64,
) -> Result<Vec<EventRow>> {
    let mut q: QueryBuilder<'_, Postgres> =
        QueryBuilder::new(format!("SELECT {EVENT_COLS} FROM events WHERE org_id = "));
    q.push_bind(org_id);
    if let Some(a) = f.actor_id {
        q.push(" AND actor_id = ").push_bind(a);
    }
    if let Some(a) = &f.action {
        q.push(" AND action = ").push_bind(a.clone());
    }
    if let Some(t) = &f.resource_type {
        q.push(" AND resource_type = ").push_bind(t.clone());
    }
    if let Some(r) = &f.resource_id {
        q.push(" AND resource_id = ").push_bind(r.clone());
    }
    if let Some(p) = f.project_id {
        q.push(" AND project_id = ").push_bind(p);
    }
    if let Some(min) = f.min_id {
        q.push(" AND id >= ").push_bind(min);
    }
    if let Some(max) = f.max_id {
        q.push(" AND id < ").push_bind(max);
    }
    if let Some(start) = f.start {
        q.push(" AND occurred_at >= ").push_bind(start);
    }
    if let Some(end) = f.end {
        q.push(" AND occurred_at < ").push_bind(end);
    }
    let (walk, cursor) = match keyset {
        Keyset::NewestFirst { before } => (Walk::Newest, before),
        Keyset::OldestFirst { after } => (Walk::Oldest, after),
    };
    push_keyset(&mut q, "id", walk, cursor, limit);
    Ok(q.build_query_as().fetch_all(conn).await?)
}

/// An organization's head, if it has one.
pub async fn get_head(tx: &mut Tx, org_id: Uuid) -> Result<Option<Head>> {
    let row: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT sequence, hash FROM chain_heads WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|(sequence, hash)| Head { sequence, hash }))
}

/// The stored hash of the event at a position.
pub async fn hash_at(tx: &mut Tx, org_id: Uuid, sequence: i64) -> Result<Option<Vec<u8>>> {
    Ok(
        sqlx::query_scalar("SELECT hash FROM events WHERE org_id = $1 AND sequence = $2")
            .bind(org_id)
            .bind(sequence)
            .fetch_optional(&mut **tx)
            .await?,
    )
}

/// Up to `limit` events from position `from` (to `to`, if given), in
/// sequence order: one chunk of a chain walk, on the primary key.
pub async fn chain_chunk(
    tx: &mut Tx,
    org_id: Uuid,
    from: i64,
    to: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {EVENT_COLS} FROM events \
         WHERE org_id = $1 AND sequence >= $2 AND ($3::int8 IS NULL OR sequence <= $3) \
         ORDER BY sequence LIMIT $4"
    ))
    .bind(org_id)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

/// The id, hash and time of the event at a position, if it is in the log.
pub async fn event_at(
    tx: &mut Tx,
    org_id: Uuid,
    sequence: i64,
) -> Result<Option<(Uuid, Vec<u8>, DateTime<Utc>)>> {
    Ok(sqlx::query_as(
        "SELECT id, hash, occurred_at FROM events WHERE org_id = $1 AND sequence = $2",
    )
    .bind(org_id)
    .bind(sequence)
    .fetch_optional(&mut **tx)
    .await?)
}

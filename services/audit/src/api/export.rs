//! `ExportAuditEvents`: a range of the caller organization's events as
//! newline-delimited JSON, oldest first, streamed in `google.api.HttpBody`
//! chunks. The events are read a page at a time on the keyset (id order is
//! occurrence order), each page in its own short transaction, so an export
//! of any size holds neither the whole range in memory nor a connection
//! between pages; a slow reader slows the reads (the channel is bounded).

use std::pin::Pin;
use std::sync::Arc;

use foundry_platform::Error;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::audit::v1 as pb;
use foundry_proto::google::api::HttpBody;
use foundry_tenancy::caller;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use uuid::Uuid;

use crate::State;
use crate::api::actor_type_to_proto;
use crate::api::events::filter_fields;
use crate::domain::format_time;
use crate::store::{self, EventRow, Keyset, ListFilter};

/// The response stream.
pub type ExportStream = Pin<Box<dyn Stream<Item = Result<HttpBody, Status>> + Send>>;

/// The body's content type.
pub const CONTENT_TYPE: &str = "application/x-ndjson";
/// Events read per query.
pub const PAGE: i64 = 1000;
/// A chunk is sent once it holds this many bytes (one event is at most
/// about 70 KiB, so a chunk stays far below gRPC's 4 MiB message limit).
pub const CHUNK_BYTES: usize = 256 * 1024;

/// One event as a JSON object: the proto3 JSON mapping of `AuditEvent`
/// (lowerCamelCase names, `sequence` as a string as int64 is, enum names,
/// RFC 3339 times), every field present.
pub fn event_json(r: &EventRow) -> Result<Value, Error> {
    let e = &r.event;
    let opt = |u: Option<Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
    Ok(json!({
        "id": e.id.to_string(),
        "orgId": e.org_id.to_string(),
        "sequence": e.sequence.to_string(),
        "occurTime": format_time(e.occurred_at),
        "recordTime": format_time(r.recorded_at),
        "actorType": actor_type_to_proto(&e.actor_type)?.as_str_name(),
        "actorId": opt(e.actor_id),
        "action": e.action,
        "resourceType": e.resource_type,
        "resourceId": e.resource_id,
        "projectId": opt(e.project_id),
        "changes": e.changes,
        "requestId": e.request_id,
        "traceId": e.trace_id,
        "clientIp": e.client_ip,
        "userAgent": e.user_agent,
        "service": e.service,
        "previousHash": hex::encode(&e.prev_hash),
        "hash": hex::encode(&r.hash),
    }))
}

fn chunk(data: Vec<u8>) -> HttpBody {
    HttpBody {
        content_type: CONTENT_TYPE.to_owned(),
        data,
        extensions: Vec::new(),
    }
}

/// Reads the range page by page and sends it in chunks; stops early, and
/// quietly, when the client goes away.
async fn pump(
    state: &State,
    org_id: Uuid,
    filter: &ListFilter,
    out: &mpsc::Sender<Result<HttpBody, Status>>,
) -> Result<(), Error> {
    let mut after = None;
    let mut buf = Vec::with_capacity(CHUNK_BYTES + 64 * 1024);
    let mut sent = false;
    loop {
        // A page is one statement on a read of its own, the connection
        // given back before the page is sent.
        let (mut conn, keyset) = (state.db.read(org_id).await?, Keyset::OldestFirst { after });
        let rows = store::list_events(&mut conn, org_id, filter, keyset, PAGE).await?;
        drop(conn);
        for r in &rows {
            serde_json::to_writer(&mut buf, &event_json(r)?).map_err(Error::internal)?;
            buf.push(b'\n');
            if buf.len() >= CHUNK_BYTES {
                let data = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK_BYTES));
                if out.send(Ok(chunk(data))).await.is_err() {
                    return Ok(());
                }
                sent = true;
            }
        }
        match rows.last() {
            Some(last) if rows.len() as i64 == PAGE => after = Some(last.event.id),
            _ => break,
        }
    }
    // The last chunk; an empty export is one empty chunk, so the content
    // type is still known.
    if !buf.is_empty() || !sent {
        let _ = out.send(Ok(chunk(buf))).await;
    }
    Ok(())
}

/// `ExportAuditEvents`.
pub async fn export_audit_events(
    state: Arc<State>,
    req: Request<pb::ExportAuditEventsRequest>,
) -> Result<Response<ExportStream>, Status> {
    let who = caller(&req)?;
    let org_id = who.org_id()?;
    let req = req.into_inner();
    let mut v = Violations::new();
    let mut filter = filter_fields!(req).parse(&mut v);
    v.finish()?;
    filter.project_id = who.confine("project_id", filter.project_id)?;
    let (out, rx) = mpsc::channel(2);
    tokio::spawn(
        async move {
            if let Err(e) = pump(&state, org_id, &filter, &out).await {
                let _ = out.send(Err(e.into())).await;
            }
        }
        .instrument(tracing::Span::current()),
    );
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}

//! `ListActivity`: a project's activity feed, built from the audit events
//! that name the project (index `(org_id, project_id, id)`).

use foundry_platform::Error;
use foundry_platform::convert::{json_to_struct, timestamp};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::audit::v1 as pb;
use foundry_tenancy::caller;
use serde_json::Value;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::actor_type_to_proto;
use crate::domain::activity::field_changes;
use crate::store::{self, EventRow, Keyset, ListFilter};

/// A JSON value as a `google.protobuf.Value` (through a one-field Struct,
/// the conversion the platform kit offers).
fn proto_value(v: Value) -> Option<prost_types::Value> {
    json_to_struct(&serde_json::json!({ "v": v }))
        .fields
        .remove("v")
}

fn activity_to_proto(r: EventRow) -> Result<pb::Activity, Error> {
    let e = r.event;
    Ok(pb::Activity {
        id: e.id.to_string(),
        project_id: e.project_id.map(|p| p.to_string()).unwrap_or_default(),
        occur_time: Some(timestamp(e.occurred_at)),
        actor_type: actor_type_to_proto(&e.actor_type)? as i32,
        actor_id: e.actor_id.map(|a| a.to_string()).unwrap_or_default(),
        changes: field_changes(&e.changes)
            .into_iter()
            .map(|c| pb::FieldChange {
                field: c.field,
                old_value: c.old.and_then(proto_value),
                new_value: c.new.and_then(proto_value),
            })
            .collect(),
        action: e.action,
        resource_type: e.resource_type,
        resource_id: e.resource_id,
    })
}

/// `ListActivity`. A project of another organization (or none) has no
/// activity here: the feed is empty, never an error that would tell it
/// exists. A caller bound to another project is refused, whether or not
/// the project exists ([`foundry_tenancy::Caller::confine`]).
pub async fn list_activity(
    state: &State,
    req: Request<pb::ListActivityRequest>,
) -> Result<Response<pb::ListActivityResponse>, Status> {
    let who = caller(&req)?;
    let org_id = who.org_id()?;
    let req = req.into_inner();
    let project_id = Violations::require_id("project_id", &req.project_id)?;
    who.confine("project_id", Some(project_id))?;
    let page = state
        .pages
        .parse(req.page_size, &req.page_token, &project_id.to_string())?;
    let filter = ListFilter {
        project_id: Some(project_id),
        ..ListFilter::default()
    };
    let mut conn = state.db.read(org_id).await?;
    let keyset = Keyset::NewestFirst { before: page.after };
    let mut rows = store::list_events(&mut conn, org_id, &filter, keyset, page.limit()).await?;
    drop(conn);
    let next_page_token = state.pages.finish(&page, &mut rows, |r| r.event.id);
    Ok(Response::new(pb::ListActivityResponse {
        activities: rows
            .into_iter()
            .map(activity_to_proto)
            .collect::<Result<_, _>>()?,
        next_page_token,
    }))
}

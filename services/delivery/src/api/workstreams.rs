//! `WorkstreamService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::db::Tx;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1::{
    self as pb, workstream_service_server::WorkstreamService,
};
use foundry_resource::{Create, Delete, Update, WireStamp};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    Order, create_one, delete_one, get_one, hold, list_under, parse_changes, position,
    short_description, update_one,
};
use crate::domain::{
    NewWorkstream, Program, Workstream, WorkstreamChange, WorkstreamId, WorkstreamPath,
};
use crate::store;

/// Handlers of `WorkstreamService`.
#[derive(Clone, Debug)]
pub struct Workstreams(pub Arc<State>);

pub fn workstream_to_proto(w: &Workstream) -> pb::Workstream {
    let wire = WireStamp::from(&w.stamp);
    pb::Workstream {
        id: w.id.to_string(),
        program_id: w.fields.program_id.to_string(),
        name: w.fields.name.clone(),
        description: w.fields.description.clone(),
        position: w.fields.position,
        created_by: wire.created_by,
        create_time: wire.create_time,
        update_time: wire.update_time,
        etag: wire.etag,
    }
}

/// A `CreateWorkstreamRequest` as a [`NewWorkstream`] and its request id.
fn parse_create(req: &pb::CreateWorkstreamRequest) -> Result<(NewWorkstream, Option<Uuid>), Error> {
    let empty = pb::Workstream::default();
    let w = req.workstream.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let program_id = v.id_of("workstream.program_id", &w.program_id);
    let name = v.text("workstream.name", &w.name, 1, 200);
    let description = short_description(&mut v, "workstream.description", &w.description);
    let position = position(&mut v, "workstream.position", w.position, true);
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some((
            NewWorkstream {
                program_id: program_id?,
                name: name?,
                description: description?,
                position: position?,
            },
            request_id?,
        ))
    })
}

/// An `UpdateWorkstreamRequest` as the workstream's id, etag and the
/// changes its mask names.
fn parse_update(
    req: &pb::UpdateWorkstreamRequest,
) -> Result<(WorkstreamId, String, Vec<WorkstreamChange>), Error> {
    let empty = pb::Workstream::default();
    let w = req.workstream.as_ref().unwrap_or(&empty);
    parse_changes(
        "workstream",
        (&w.id, &w.etag),
        req.update_mask.as_ref(),
        |v, path| match path {
            WorkstreamPath::Name => v
                .text("workstream.name", &w.name, 1, 200)
                .map(WorkstreamChange::Name),
            WorkstreamPath::Description => {
                short_description(v, "workstream.description", &w.description)
                    .map(WorkstreamChange::Description)
            }
            WorkstreamPath::Position => position(v, "workstream.position", w.position, false)
                .flatten()
                .map(WorkstreamChange::Position),
        },
    )
}

#[async_trait]
impl Create for Workstream {
    /// The program is visible and held (`FOR KEY SHARE`) until commit.
    async fn check_new(new: &NewWorkstream, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        hold::<Program>(tx, call, new.program_id).await
    }
}

impl Update for Workstream {}

#[async_trait]
impl Delete for Workstream {
    /// Its requirements and their edges go with it; their tasks stay,
    /// detached.
    async fn remove(&self, tx: &mut Tx, org_id: Uuid) -> Result<Option<serde_json::Value>, Error> {
        let removed = store::delete_workstream(tx, org_id, self.id).await?;
        Ok(Some(serde_json::json!({
            "requirements": removed.requirements,
            "dependencies": removed.dependencies,
            "tasks_detached": removed.tasks_detached,
        })))
    }
}

#[tonic::async_trait]
impl WorkstreamService for Workstreams {
    #[tracing::instrument(skip_all)]
    async fn create_workstream(
        &self,
        req: Request<pb::CreateWorkstreamRequest>,
    ) -> Result<Response<pb::Workstream>, Status> {
        create_one(
            &self.0,
            &req,
            "CreateWorkstream",
            parse_create,
            workstream_to_proto,
        )
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_workstream(
        &self,
        req: Request<pb::GetWorkstreamRequest>,
    ) -> Result<Response<pb::Workstream>, Status> {
        get_one(&self.0, &req, &req.get_ref().id, workstream_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_workstreams(
        &self,
        req: Request<pb::ListWorkstreamsRequest>,
    ) -> Result<Response<pb::ListWorkstreamsResponse>, Status> {
        let by_position =
            Order::ByKey(|w: &Workstream| (i64::from(w.fields.position), w.id.uuid()));
        let r = req.get_ref();
        let (workstreams, next_page_token) = list_under::<Workstream, Program, _, _>(
            &self.0,
            &req,
            ("program_id", &r.program_id),
            (r.page_size, &r.page_token),
            by_position,
        )
        .await?;
        Ok(Response::new(pb::ListWorkstreamsResponse {
            workstreams: workstreams.iter().map(workstream_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_workstream(
        &self,
        req: Request<pb::UpdateWorkstreamRequest>,
    ) -> Result<Response<pb::Workstream>, Status> {
        update_one(&self.0, &req, parse_update, workstream_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_workstream(
        &self,
        req: Request<pb::DeleteWorkstreamRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.get_ref();
        delete_one::<Workstream, _, _>(&self.0, &req, &r.id, &r.etag).await
    }
}

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
use tonic::Request;
use uuid::Uuid;

use crate::State;
use crate::api::{
    Order, Reply, Wire, WireChange, WireNew, create, delete, get, hold, list_under, page, position,
    short_description, update,
};
use crate::domain::{NewWorkstream, Program, Workstream, WorkstreamChange, WorkstreamPath};
use crate::store;

/// Handlers of `WorkstreamService`.
#[derive(Clone, Debug)]
pub struct Workstreams(pub Arc<State>);

impl Wire for Workstream {
    type Message = pb::Workstream;

    fn to_proto(&self) -> pb::Workstream {
        let (f, w) = (&self.fields, WireStamp::from(&self.stamp));
        pb::Workstream {
            id: self.id.to_string(),
            program_id: f.program_id.to_string(),
            name: f.name.clone(),
            description: f.description.clone(),
            position: f.position,
            created_by: w.created_by,
            create_time: w.create_time,
            update_time: w.update_time,
            etag: w.etag,
        }
    }
}

impl WireNew for Workstream {
    fn parse_new(v: &mut Violations, w: &pb::Workstream) -> Option<NewWorkstream> {
        let program_id = v.id_of("workstream.program_id", &w.program_id);
        let name = name(v, &w.name);
        let description = short_description(v, "workstream.description", &w.description);
        let position = position(v, "workstream.position", w.position, true);
        Some(NewWorkstream {
            program_id: program_id?,
            name: name?,
            description: description?,
            position: position?,
        })
    }
}

impl WireChange for Workstream {
    fn parse_change(
        v: &mut Violations,
        path: WorkstreamPath,
        w: &pb::Workstream,
    ) -> Option<WorkstreamChange> {
        match path {
            WorkstreamPath::Name => name(v, &w.name).map(WorkstreamChange::Name),
            WorkstreamPath::Description => {
                short_description(v, "workstream.description", &w.description)
                    .map(WorkstreamChange::Description)
            }
            WorkstreamPath::Position => position(v, "workstream.position", w.position, false)
                .flatten()
                .map(WorkstreamChange::Position),
        }
    }
}

/// A workstream's name: 1..=200 characters on one line.
fn name(v: &mut Violations, value: &str) -> Option<String> {
    v.text("workstream.name", value, 1, 200)
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
    ) -> Reply<pb::Workstream> {
        create::<Workstream, _>(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn get_workstream(
        &self,
        req: Request<pb::GetWorkstreamRequest>,
    ) -> Reply<pb::Workstream> {
        get::<Workstream, _, _>(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_workstreams(
        &self,
        req: Request<pb::ListWorkstreamsRequest>,
    ) -> Reply<pb::ListWorkstreamsResponse> {
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
        page(&workstreams, next_page_token)
    }

    #[tracing::instrument(skip_all)]
    async fn update_workstream(
        &self,
        req: Request<pb::UpdateWorkstreamRequest>,
    ) -> Reply<pb::Workstream> {
        update::<Workstream, _, _>(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_workstream(&self, req: Request<pb::DeleteWorkstreamRequest>) -> Reply<()> {
        delete::<Workstream, _, _>(&self.0, req).await
    }
}

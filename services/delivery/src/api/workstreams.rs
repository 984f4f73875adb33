//! `WorkstreamService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_platform::Error;
use foundry_platform::db::Tx;
use foundry_platform::rpc::Served;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_proto::service::delivery_v1 as svc;
use foundry_resource::{Create, Delete, Update, stamped};
use uuid::Uuid;

use crate::State;
use crate::api::{Listed, list, standard};
use crate::api::{Order, PathOf, Wire, position, short_description};
use crate::domain::{NewWorkstream, Program, Workstream, WorkstreamChange, WorkstreamPath};
use crate::store;

impl Wire for Workstream {
    type Message = pb::Workstream;

    fn to_proto(&self) -> pb::Workstream {
        let f = &self.fields;
        pb::Workstream {
            program_id: f.program_id.to_string(),
            name: f.name.clone(),
            description: f.description.clone(),
            position: f.position,
            ..stamped(self.id, &self.stamp)
        }
    }

    fn parse(v: &mut Violations, w: &pb::Workstream) -> Option<NewWorkstream> {
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

    fn change(v: &mut Violations, path: PathOf<Self>, w: &Self::Message) -> Option<Self::Change> {
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

/// Its program is all there is to check (`Resource::WITHIN`): its insert
/// does.
impl Create for Workstream {
    fn checks(_: &NewWorkstream) -> bool {
        false
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

impl Listed for Workstream {
    fn order() -> Order<Self> {
        Order::ByKey(|w| (i64::from(w.fields.position), w.id.uuid()))
    }
}

/// `WorkstreamService`.
pub(crate) fn service(state: &Arc<State>) -> Served<svc::WorkstreamService> {
    standard::<Workstream, _>(state)
        .call(list::<Workstream, Program, _, pb::ListWorkstreamsRequest>)
        .complete()
}

//! `RequirementService`: requirements (here) and their dependency graph
//! (the handlers in [`super::dependencies`]).

use std::sync::Arc;

use async_trait::async_trait;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::db::Tx;
use foundry_platform::rpc::Served;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_proto::service::delivery_v1 as svc;
use foundry_resource::{self as resource, Create, Delete, Resource, Update, stamped};
use uuid::Uuid;

use crate::State;
use crate::api::standard;
use crate::api::{
    In, Order, Paging, PathOf, Reply, Wire, criteria, dependencies, list_page, long_description,
    other_program, page, title, visible_parent,
};
use crate::domain::{
    NewRequirement, Priority, Program, ProgramId, Requirement, RequirementChange, RequirementPath,
    RequirementStatus, Workstream, WorkstreamId,
};
use crate::store::{self, Lock, RequirementFilter};

impl Wire for Requirement {
    type Message = pb::Requirement;

    fn to_proto(&self) -> pb::Requirement {
        let f = &self.fields;
        pb::Requirement {
            program_id: self.program_id.to_string(),
            workstream_id: f.workstream_id.to_string(),
            title: f.title.clone(),
            description: f.description.clone(),
            priority: pb::RequirementPriority::from(f.priority) as i32,
            status: pb::RequirementStatus::from(f.status) as i32,
            acceptance_criteria: f.acceptance_criteria.clone(),
            batch: f.batch.clone(),
            ..stamped(self.id, &self.stamp)
        }
    }

    fn parse(v: &mut Violations, r: &pb::Requirement) -> Option<NewRequirement> {
        let workstream_id = v.id_of("requirement.workstream_id", &r.workstream_id);
        let title = title(v, "requirement.title", &r.title);
        let description = long_description(v, "requirement.description", &r.description);
        let priority = or_default(v, "requirement.priority", r.priority, Priority::Medium);
        let status = or_default(v, "requirement.status", r.status, RequirementStatus::Draft);
        let acceptance_criteria = acceptance_criteria(v, &r.acceptance_criteria);
        let batch = batch(v, &r.batch);
        Some(NewRequirement {
            workstream_id: workstream_id?,
            title: title?,
            description: description?,
            priority: priority?,
            status: status?,
            acceptance_criteria: acceptance_criteria?,
            batch: batch?,
        })
    }

    fn change(v: &mut Violations, path: PathOf<Self>, r: &Self::Message) -> Option<Self::Change> {
        match path {
            RequirementPath::WorkstreamId => v
                .id_of("requirement.workstream_id", &r.workstream_id)
                .map(RequirementChange::WorkstreamId),
            RequirementPath::Title => {
                title(v, "requirement.title", &r.title).map(RequirementChange::Title)
            }
            RequirementPath::Description => {
                long_description(v, "requirement.description", &r.description)
                    .map(RequirementChange::Description)
            }
            RequirementPath::Priority => v
                .enum_value("requirement.priority", r.priority)
                .map(RequirementChange::Priority),
            RequirementPath::Status => v
                .enum_value("requirement.status", r.status)
                .map(RequirementChange::Status),
            RequirementPath::AcceptanceCriteria => acceptance_criteria(v, &r.acceptance_criteria)
                .map(RequirementChange::AcceptanceCriteria),
            RequirementPath::Batch => batch(v, &r.batch).map(RequirementChange::Batch),
        }
    }
}

const MAX_CRITERIA: usize = 100;

/// An enum that defaults when unspecified (at creation).
fn or_default<E: TryFrom<i32>>(
    v: &mut Violations,
    field: &str,
    value: i32,
    default: E,
) -> Option<E> {
    if value == 0 {
        Some(default)
    } else {
        v.enum_value(field, value)
    }
}

fn acceptance_criteria(v: &mut Violations, items: &[String]) -> Option<Vec<String>> {
    criteria(
        v,
        "requirement.acceptance_criteria",
        items,
        MAX_CRITERIA,
        2000,
    )
}

fn batch(v: &mut Violations, value: &str) -> Option<String> {
    v.text("requirement.batch", value, 0, 100)
}

/// A workstream the caller may see, held (`lock`) until commit: its
/// program.
async fn workstream_program(
    tx: &mut sqlx::PgConnection,
    call: &Call,
    id: WorkstreamId,
    lock: Lock,
) -> Result<ProgramId, Error> {
    let w = resource::fetch::<Workstream>(tx, call, id, lock).await?;
    Ok(w.fields.program_id)
}

#[async_trait]
impl Create for Requirement {
    /// The workstream is visible and held (`FOR KEY SHARE`) until commit;
    /// the requirement goes in its program.
    async fn check_new(new: &NewRequirement, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        workstream_program(tx, call, new.workstream_id, Lock::KeyShare).await?;
        Ok(())
    }
}

#[async_trait]
impl Update for Requirement {
    /// A new workstream must be visible and in the requirement's program.
    async fn check(&self, before: &Requirement, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        if self.fields.workstream_id != before.fields.workstream_id
            && workstream_program(tx, call, self.fields.workstream_id, Lock::KeyShare).await?
                != self.program_id
        {
            return Err(other_program("workstream"));
        }
        Ok(())
    }
}

#[async_trait]
impl Delete for Requirement {
    /// Every edge touching it goes with it; its tasks stay, detached.
    async fn remove(&self, tx: &mut Tx, org_id: Uuid) -> Result<Option<serde_json::Value>, Error> {
        let removed = store::delete_requirements(tx, org_id, &[self.id.uuid()]).await?;
        // For the services holding links to it (knowledge's skill links).
        foundry_outbox::DomainEvent::new(
            org_id,
            ("delivery.requirement.deleted", 1),
            (<Requirement as Resource>::KIND, self.id.to_string()),
            serde_json::json!({
                "program_id": self.program_id,
                "workstream_id": self.fields.workstream_id,
            }),
        )
        .record(tx)
        .await?;
        Ok(Some(serde_json::json!({
            "dependencies": removed.dependencies,
            "tasks_detached": removed.tasks_detached,
        })))
    }
}

/// `RequirementService`.
pub(crate) fn service(state: &Arc<State>) -> Served<svc::RequirementService> {
    standard::<Requirement, _>(state)
        .call(list_requirements)
        .call(dependencies::add)
        .call(dependencies::remove)
        .call(dependencies::list)
        .call(dependencies::plan)
        .complete()
}

async fn list_requirements(
    c: In<pb::ListRequirementsRequest>,
) -> Reply<pb::ListRequirementsResponse> {
    let req = &c.req;
    let mut v = Violations::new();
    let program_id = v.maybe_id("program_id", &req.program_id);
    let workstream_id = v.maybe_id("workstream_id", &req.workstream_id);
    if req.program_id.is_empty() && req.workstream_id.is_empty() {
        v.add("program_id", "is required unless workstream_id is given");
    }
    let status = if req.status == 0 {
        Some(None)
    } else {
        v.enum_value::<RequirementStatus>("status", req.status)
            .map(Some)
    };
    let filter = v.finish_with(|| {
        Some(RequirementFilter {
            program_id: program_id?,
            workstream_id: workstream_id?,
            status: status?,
        })
    })?;
    let paging = Paging {
        size: req.page_size,
        token: &req.page_token,
        filters: format!(
            "program={};workstream={};status={}",
            req.program_id, req.workstream_id, req.status
        ),
    };
    let (requirements, next_page_token) =
        list_page(&c, paging, Order::newest(), |conn, call, page| {
            Box::pin(async move {
                // The parents named must exist and be visible, the
                // workstream first; both named but unrelated simply match
                // nothing. The list is read with its workstream, else its
                // program; a program named beside a workstream is checked
                // on its own.
                let (org, after, limit) = (call.org_id, page.after, page.limit());
                match (filter.workstream_id, filter.program_id) {
                    (Some(w), program) => {
                        let found = store::list_requirements(conn, org, (w, filter), after, limit);
                        let rows = visible_parent::<Workstream, _>(call, found.await?)?;
                        if let Some(p) = program {
                            resource::fetch::<Program>(conn, call, p, Lock::None).await?;
                        }
                        Ok(rows)
                    }
                    (None, Some(p)) => {
                        let found = store::list_requirements(conn, org, (p, filter), after, limit);
                        visible_parent::<Program, _>(call, found.await?)
                    }
                    (None, None) => Err(Error::internal(anyhow::anyhow!(
                        "ListRequirements parsed with neither a program nor a workstream"
                    ))),
                }
            })
        })
        .await?;
    page(&requirements, next_page_token)
}

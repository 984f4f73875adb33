//! `RequirementService`: requirements (here) and their dependency graph
//! (the handlers in [`super::dependencies`]).

use std::sync::Arc;

use foundry_domain::Id;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{Tx, check_etag, etag};
use foundry_platform::idempotency::{self, Begun};
use foundry_platform::validate::{Violations, mask};
use foundry_proto::foundry::delivery::v1::{
    self as pb, requirement_service_server::RequirementService,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    LONG_DESCRIPTION, SERVICE, criteria, dependencies, found, long_text, other_program, program,
    requirement_not_found, workstream_not_found,
};
use crate::domain::{
    NewRequirement, Priority, ProgramId, Requirement, RequirementChange, RequirementId,
    RequirementPath, RequirementStatus, WorkstreamId,
};
use crate::store::{self, Lock, RequirementFilter};

/// Handlers of `RequirementService`.
#[derive(Clone, Debug)]
pub struct Requirements(pub Arc<State>);

const RESOURCE: &str = "delivery.requirement";
const MAX_CRITERIA: usize = 100;

pub fn requirement_to_proto(r: &Requirement) -> pb::Requirement {
    pb::Requirement {
        id: r.id.to_string(),
        program_id: r.program_id.to_string(),
        workstream_id: r.workstream_id.to_string(),
        title: r.title.clone(),
        description: r.description.clone(),
        priority: pb::RequirementPriority::from(r.priority) as i32,
        status: pb::RequirementStatus::from(r.status) as i32,
        acceptance_criteria: r.acceptance_criteria.clone(),
        batch: r.batch.clone(),
        created_by: r.created_by.to_string(),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        etag: etag(r.version),
    }
}

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

fn title(v: &mut Violations, value: &str) -> Option<String> {
    v.text("requirement.title", value, 1, 500)
}

fn description(v: &mut Violations, value: &str) -> Option<String> {
    long_text(v, "requirement.description", value, 0, LONG_DESCRIPTION)
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

/// A `CreateRequirementRequest` as a [`NewRequirement`] and its request id.
fn parse_create(
    req: &pb::CreateRequirementRequest,
) -> Result<(NewRequirement, Option<Uuid>), Error> {
    let empty = pb::Requirement::default();
    let r = req.requirement.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let workstream_id = v.id_of("requirement.workstream_id", &r.workstream_id);
    let title = title(&mut v, &r.title);
    let description = description(&mut v, &r.description);
    let priority = or_default(&mut v, "requirement.priority", r.priority, Priority::Medium);
    let status = or_default(
        &mut v,
        "requirement.status",
        r.status,
        RequirementStatus::Draft,
    );
    let acceptance_criteria = acceptance_criteria(&mut v, &r.acceptance_criteria);
    let batch = batch(&mut v, &r.batch);
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some((
            NewRequirement {
                workstream_id: workstream_id?,
                title: title?,
                description: description?,
                priority: priority?,
                status: status?,
                acceptance_criteria: acceptance_criteria?,
                batch: batch?,
            },
            request_id?,
        ))
    })
}

/// An `UpdateRequirementRequest` as the requirement's id and the changes
/// its mask names.
fn parse_update(
    req: &pb::UpdateRequirementRequest,
) -> Result<(RequirementId, Vec<RequirementChange>), Error> {
    let empty = pb::Requirement::default();
    let r = req.requirement.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let id = v.id_of("requirement.id", &r.id);
    let mut changes = Vec::new();
    for path in mask::<RequirementPath>(&mut v, req.update_mask.as_ref()) {
        changes.push(match path {
            RequirementPath::WorkstreamId => v
                .id_of("requirement.workstream_id", &r.workstream_id)
                .map(RequirementChange::WorkstreamId),
            RequirementPath::Title => title(&mut v, &r.title).map(RequirementChange::Title),
            RequirementPath::Description => {
                description(&mut v, &r.description).map(RequirementChange::Description)
            }
            RequirementPath::Priority => v
                .enum_value("requirement.priority", r.priority)
                .map(RequirementChange::Priority),
            RequirementPath::Status => v
                .enum_value("requirement.status", r.status)
                .map(RequirementChange::Status),
            RequirementPath::AcceptanceCriteria => {
                acceptance_criteria(&mut v, &r.acceptance_criteria)
                    .map(RequirementChange::AcceptanceCriteria)
            }
            RequirementPath::Batch => batch(&mut v, &r.batch).map(RequirementChange::Batch),
        });
    }
    v.finish_with(|| Some((id?, changes.into_iter().collect::<Option<Vec<_>>>()?)))
}

/// A requirement the caller may see, with `lock`.
pub(crate) async fn visible_requirement(
    tx: &mut Tx,
    call: &Call,
    id: RequirementId,
    lock: Lock,
) -> Result<Requirement, Error> {
    found(
        store::get_requirement(tx, call.org_id, id, lock).await?,
        &call.caller,
        |r| r.program_id.uuid(),
        requirement_not_found,
    )
}

/// A workstream the caller may see, held (`lock`) until commit: its
/// program.
async fn workstream_program(
    tx: &mut Tx,
    call: &Call,
    id: WorkstreamId,
    lock: Lock,
) -> Result<ProgramId, Error> {
    let w = found(
        store::get_workstream(tx, call.org_id, id, lock).await?,
        &call.caller,
        |w| w.program_id.uuid(),
        workstream_not_found,
    )?;
    Ok(w.program_id)
}

#[tonic::async_trait]
impl RequirementService for Requirements {
    #[tracing::instrument(skip_all)]
    async fn create_requirement(
        &self,
        req: Request<pb::CreateRequirementRequest>,
    ) -> Result<Response<pb::Requirement>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (new, request_id) = parse_create(req.get_ref())?;
        let key = idempotency::Key::of(call.org_id, "CreateRequirement", request_id, req.get_ref());
        let mut tx = match idempotency::begin(self.0.db.tenant(call.org_id).await?, key).await? {
            Begun::Replay(previous) => return Ok(Response::new(previous)),
            Begun::New(tx) => tx,
        };
        let program_id =
            workstream_program(&mut tx, &call, new.workstream_id, Lock::KeyShare).await?;
        let r =
            store::insert_requirement(&mut tx, call.org_id, program_id, &new, call.principal_id())
                .await?;
        call.actor
            .event("delivery.requirement.create", RESOURCE, r.id)
            .project(Some(r.program_id.uuid()))
            .created(&r)
            .record(&mut tx)
            .await?;
        let out = requirement_to_proto(&r);
        tx.finish(&out).await?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_requirement(
        &self,
        req: Request<pb::GetRequirementRequest>,
    ) -> Result<Response<pb::Requirement>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let r = visible_requirement(&mut tx, &call, id, Lock::None).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(requirement_to_proto(&r)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_requirements(
        &self,
        req: Request<pb::ListRequirementsRequest>,
    ) -> Result<Response<pb::ListRequirementsResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
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
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!(
                "program={};workstream={};status={}",
                req.program_id, req.workstream_id, req.status
            ),
        )?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        // The parents named must exist and be visible; both named but
        // unrelated simply match nothing.
        if let Some(w) = filter.workstream_id {
            workstream_program(&mut tx, &call, w, Lock::None).await?;
        }
        if let Some(p) = filter.program_id {
            program(&mut tx, &call.caller, call.org_id, p.uuid(), Lock::None).await?;
        }
        let mut requirements =
            store::list_requirements(&mut tx, call.org_id, filter, page.after, page.limit())
                .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self
            .0
            .pages
            .finish(&page, &mut requirements, |r| r.id.uuid());
        Ok(Response::new(pb::ListRequirementsResponse {
            requirements: requirements.iter().map(requirement_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_requirement(
        &self,
        req: Request<pb::UpdateRequirementRequest>,
    ) -> Result<Response<pb::Requirement>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, changes) = parse_update(req.get_ref())?;
        let etag = req
            .get_ref()
            .requirement
            .as_ref()
            .map_or("", |r| r.etag.as_str());
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let before = visible_requirement(&mut tx, &call, id, Lock::NoKeyUpdate).await?;
        check_etag(etag, before.version, "requirement")?;
        let mut r = before.clone();
        r.apply(changes);
        // A new workstream must be visible and in the requirement's program.
        if r.workstream_id != before.workstream_id
            && workstream_program(&mut tx, &call, r.workstream_id, Lock::KeyShare).await?
                != r.program_id
        {
            return Err(other_program("workstream").into());
        }
        let r = store::update_requirement(&mut tx, call.org_id, &r).await?;
        call.actor
            .event("delivery.requirement.update", RESOURCE, id)
            .project(Some(r.program_id.uuid()))
            .diff(&before, &r)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(requirement_to_proto(&r)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_requirement(
        &self,
        req: Request<pb::DeleteRequirementRequest>,
    ) -> Result<Response<()>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id: RequirementId =
            Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let r = visible_requirement(&mut tx, &call, id, Lock::Update).await?;
        check_etag(&req.get_ref().etag, r.version, "requirement")?;
        let removed = store::delete_requirements(&mut tx, call.org_id, &[id.uuid()]).await?;
        call.actor
            .event("delivery.requirement.delete", RESOURCE, id)
            .project(Some(r.program_id.uuid()))
            .removed(&r)
            .set(
                "removed",
                serde_json::json!({
                    "dependencies": removed.dependencies,
                    "tasks_detached": removed.tasks_detached,
                }),
            )
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }

    async fn add_requirement_dependency(
        &self,
        req: Request<pb::AddRequirementDependencyRequest>,
    ) -> Result<Response<pb::RequirementDependency>, Status> {
        dependencies::add(&self.0, req).await
    }

    async fn remove_requirement_dependency(
        &self,
        req: Request<pb::RemoveRequirementDependencyRequest>,
    ) -> Result<Response<()>, Status> {
        dependencies::remove(&self.0, req).await
    }

    async fn list_requirement_dependencies(
        &self,
        req: Request<pb::ListRequirementDependenciesRequest>,
    ) -> Result<Response<pb::ListRequirementDependenciesResponse>, Status> {
        dependencies::list(&self.0, req).await
    }

    async fn get_program_plan(
        &self,
        req: Request<pb::GetProgramPlanRequest>,
    ) -> Result<Response<pb::ProgramPlan>, Status> {
        dependencies::plan(&self.0, req).await
    }
}

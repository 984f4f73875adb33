//! The dependency graph half of `RequirementService`: adding and removing
//! edges, walking them, and the program plan.

use std::collections::HashMap;

use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::requirements::requirement_to_proto;
use crate::api::{actor, found, other_program, program, requirement_not_found};
use crate::domain::graph::{self, Edge};
use crate::domain::{Priority, RequirementStatus};
use crate::store::{self, DependencyRow, Direction, Lock};

const RESOURCE: &str = "delivery.requirement";

fn dependency_to_proto(d: DependencyRow) -> pb::RequirementDependency {
    pb::RequirementDependency {
        requirement_id: d.requirement_id.to_string(),
        depends_on_id: d.depends_on_id.to_string(),
        program_id: d.program_id.to_string(),
        created_by: d.created_by.to_string(),
        create_time: Some(timestamp(d.created_at)),
    }
}

/// Both ends of an edge named by a request.
fn edge(requirement_id: &str, depends_on_id: &str) -> Result<Edge, Error> {
    let mut v = Violations::new();
    let a = v.id("requirement_id", requirement_id);
    let b = v.id("depends_on_id", depends_on_id);
    if a.is_some() && a == b {
        v.add("depends_on_id", "must differ from requirement_id");
    }
    v.finish()?;
    a.zip(b)
        .ok_or_else(|| Error::invalid_field("requirement_id", "is required"))
}

/// AddRequirementDependency. The program row is locked (`FOR NO KEY
/// UPDATE`) before the program's edges are read, so two edges added at
/// once are checked one after the other and cannot close a cycle together;
/// both ends are held (`FOR KEY SHARE`) so neither is deleted meanwhile.
#[tracing::instrument(skip_all)]
pub async fn add(
    state: &State,
    req: Request<pb::AddRequirementDependencyRequest>,
) -> Result<Response<pb::RequirementDependency>, Status> {
    let caller = caller(&req)?;
    let org_id = caller.org_id()?;
    let actor = actor(&req);
    let (requirement_id, depends_on_id) =
        edge(&req.get_ref().requirement_id, &req.get_ref().depends_on_id)?;
    let mut tx = state.db.tenant(org_id).await?;
    // Its program first (a requirement never changes program), then the
    // graph lock, then both ends.
    let program_id = found(
        store::get_requirement(&mut tx, org_id, requirement_id, Lock::None).await?,
        &caller,
        |r| r.program_id,
        requirement_not_found,
    )?
    .program_id;
    program(&mut tx, &caller, org_id, program_id, Lock::NoKeyUpdate).await?;
    store::get_requirement(&mut tx, org_id, requirement_id, Lock::KeyShare)
        .await?
        .ok_or_else(requirement_not_found)?;
    let target = found(
        store::get_requirement(&mut tx, org_id, depends_on_id, Lock::KeyShare).await?,
        &caller,
        |r| r.program_id,
        requirement_not_found,
    )?;
    if target.program_id != program_id {
        return Err(other_program("requirement named by depends_on_id").into());
    }
    let edges = store::program_edges(&mut tx, org_id, program_id).await?;
    if edges.contains(&(requirement_id, depends_on_id)) {
        return Err(store::dependency_exists().into());
    }
    if let Some(cycle) = graph::cycle_through(&edges, requirement_id, depends_on_id) {
        return Err(Error::from(graph::cycle_error(&cycle)).into());
    }
    let row = store::insert_dependency(
        &mut tx,
        org_id,
        program_id,
        requirement_id,
        depends_on_id,
        caller.principal_id(),
    )
    .await?;
    actor
        .event(
            "delivery.requirement.add_dependency",
            RESOURCE,
            requirement_id,
        )
        .project(Some(program_id))
        .set("depends_on_id", depends_on_id)
        .record(&mut tx)
        .await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Response::new(dependency_to_proto(row)))
}

/// RemoveRequirementDependency.
#[tracing::instrument(skip_all)]
pub async fn remove(
    state: &State,
    req: Request<pb::RemoveRequirementDependencyRequest>,
) -> Result<Response<()>, Status> {
    let caller = caller(&req)?;
    let org_id = caller.org_id()?;
    let actor = actor(&req);
    let (requirement_id, depends_on_id) =
        edge(&req.get_ref().requirement_id, &req.get_ref().depends_on_id)?;
    let mut tx = state.db.tenant(org_id).await?;
    let requirement = found(
        store::get_requirement(&mut tx, org_id, requirement_id, Lock::None).await?,
        &caller,
        |r| r.program_id,
        requirement_not_found,
    )?;
    store::delete_dependency(&mut tx, org_id, requirement_id, depends_on_id)
        .await?
        .ok_or_else(|| Error::not_found("DEPENDENCY_NOT_FOUND", "dependency"))?;
    actor
        .event(
            "delivery.requirement.remove_dependency",
            RESOURCE,
            requirement_id,
        )
        .project(Some(requirement.program_id))
        .change("depends_on_id", depends_on_id, None::<()>)
        .record(&mut tx)
        .await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Response::new(()))
}

/// ListRequirementDependencies.
#[tracing::instrument(skip_all)]
pub async fn list(
    state: &State,
    req: Request<pb::ListRequirementDependenciesRequest>,
) -> Result<Response<pb::ListRequirementDependenciesResponse>, Status> {
    let caller = caller(&req)?;
    let org_id = caller.org_id()?;
    let req = req.into_inner();
    let mut v = Violations::new();
    let id = v.id("requirement_id", &req.requirement_id);
    let direction = match v.opt_enum_value("direction", req.direction) {
        None | Some(pb::DependencyDirection::Upstream) => Direction::Upstream,
        Some(_) => Direction::Downstream,
    };
    v.finish()?;
    let Some(id) = id else {
        return Err(Error::invalid_field("requirement_id", "is required").into());
    };
    let page = state.pages.parse(
        req.page_size,
        &req.page_token,
        &format!(
            "requirement={id};direction={direction:?};transitive={}",
            req.transitive
        ),
    )?;
    let mut tx = state.db.tenant(org_id).await?;
    found(
        store::get_requirement(&mut tx, org_id, id, Lock::None).await?,
        &caller,
        |r| r.program_id,
        requirement_not_found,
    )?;
    let mut rows = store::list_dependencies(
        &mut tx,
        org_id,
        id,
        direction,
        req.transitive,
        page.after,
        page.limit(),
    )
    .await?;
    tx.commit().await.map_err(Error::from)?;
    let next_page_token = state.pages.finish(&page, &mut rows, |r| r.id);
    Ok(Response::new(pb::ListRequirementDependenciesResponse {
        requirements: rows.into_iter().map(requirement_to_proto).collect(),
        next_page_token,
    }))
}

/// GetProgramPlan: the program's requirements and edges, read in one
/// transaction, ordered by [`graph::plan`].
#[tracing::instrument(skip_all)]
pub async fn plan(
    state: &State,
    req: Request<pb::GetProgramPlanRequest>,
) -> Result<Response<pb::ProgramPlan>, Status> {
    let caller = caller(&req)?;
    let org_id = caller.org_id()?;
    let program_id = Violations::require_id("program_id", &req.get_ref().program_id)?;
    let mut tx = state.db.tenant(org_id).await?;
    program(&mut tx, &caller, org_id, program_id, Lock::None).await?;
    let requirements = store::plan_requirements(&mut tx, org_id, program_id).await?;
    let edges = store::program_edges(&mut tx, org_id, program_id).await?;
    tx.commit().await.map_err(Error::from)?;

    let nodes: Vec<(Uuid, Priority)> = requirements
        .iter()
        .map(|r| (r.id, Priority::from_db(&r.priority)))
        .collect();
    let order = graph::plan(&nodes, &edges).map_err(|stuck| {
        Error::internal(anyhow::anyhow!(
            "program {program_id} has a dependency cycle through {stuck:?}"
        ))
    })?;
    let mut depends_on: HashMap<Uuid, Vec<String>> = HashMap::new();
    let mut sorted_edges = edges.clone();
    sorted_edges.sort_unstable();
    for (a, b) in sorted_edges {
        depends_on.entry(a).or_default().push(b.to_string());
    }
    let by_id: HashMap<Uuid, &store::PlanRow> = requirements.iter().map(|r| (r.id, r)).collect();
    let planned = order
        .iter()
        .filter_map(|p| {
            let r = by_id.get(&p.id)?;
            Some(pb::PlannedRequirement {
                requirement_id: r.id.to_string(),
                workstream_id: r.workstream_id.to_string(),
                title: r.title.clone(),
                priority: pb::RequirementPriority::from(Priority::from_db(&r.priority)) as i32,
                status: pb::RequirementStatus::from(RequirementStatus::from_db(&r.status)) as i32,
                level: i32::try_from(p.level).unwrap_or(i32::MAX),
                depends_on_ids: depends_on.remove(&r.id).unwrap_or_default(),
            })
        })
        .collect();
    Ok(Response::new(pb::ProgramPlan {
        program_id: program_id.to_string(),
        requirements: planned,
        dependency_count: i32::try_from(edges.len()).unwrap_or(i32::MAX),
    }))
}

//! The dependency graph half of `RequirementService`: adding and removing
//! edges, walking them, and the program plan.

use std::collections::HashMap;

use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_resource::{self as resource, Resource};
use uuid::Uuid;

use crate::api::{In, Order, Paging, Reply, list_page, other_program, page, visible_parent};
use crate::domain::graph;
use crate::domain::{Dependency, PlanItem, Program, ProgramId, Requirement, RequirementId};
use crate::store::{self, Direction, Lock};

fn dependency_to_proto(d: &Dependency) -> pb::RequirementDependency {
    pb::RequirementDependency {
        requirement_id: d.requirement_id.to_string(),
        depends_on_id: d.depends_on_id.to_string(),
        program_id: d.program_id.to_string(),
        created_by: d.created_by.to_string(),
        create_time: Some(timestamp(d.created_at)),
    }
}

/// Both ends of an edge named by a request.
fn edge(
    requirement_id: &str,
    depends_on_id: &str,
) -> Result<(RequirementId, RequirementId), Error> {
    let mut v = Violations::new();
    let a = v.id_of("requirement_id", requirement_id);
    let b = v.id_of("depends_on_id", depends_on_id);
    if a.is_some() && a == b {
        v.add("depends_on_id", "must differ from requirement_id");
    }
    v.finish_with(|| Some((a?, b?)))
}

/// The requirements a plan covers at most (GetProgramPlan reads them in
/// one transaction and orders them in memory).
pub const PLAN_LIMIT: i64 = 10_000;

/// The dependencies a plan covers at most.
pub const PLAN_EDGE_LIMIT: i64 = 50_000;

/// The edges read at most to name a cycle a new edge would close.
const CYCLE_EDGES_READ: i64 = 50_000;

/// AddRequirementDependency. The program row is locked (`FOR NO KEY
/// UPDATE`) before the program's edges are read, so two edges added at
/// once are checked one after the other and cannot close a cycle together;
/// both ends are held (`FOR KEY SHARE`) so neither is deleted meanwhile.
#[tracing::instrument(skip_all)]
pub async fn add(c: In<pb::AddRequirementDependencyRequest>) -> Reply<pb::RequirementDependency> {
    let In { state, call, req } = c;
    let (requirement_id, depends_on_id) = edge(&req.requirement_id, &req.depends_on_id)?;
    let mut tx = state.db.tenant(call.org_id).await?;
    // Its program first (a requirement never changes program), then the
    // graph lock, then both ends.
    let program_id = resource::fetch::<Requirement>(&mut tx, &call, requirement_id, Lock::None)
        .await?
        .program_id;
    resource::fetch::<Program>(&mut tx, &call, program_id, Lock::NoKeyUpdate).await?;
    resource::read::<Requirement>(&mut tx, call.org_id, requirement_id, Lock::KeyShare)
        .await?
        .ok_or_else(Requirement::not_found)?;
    let target =
        resource::fetch::<Requirement>(&mut tx, &call, depends_on_id, Lock::KeyShare).await?;
    if target.program_id != program_id {
        return Err(other_program("requirement named by depends_on_id"));
    }
    let (a, b) = (requirement_id.uuid(), depends_on_id.uuid());
    if store::has_dependency(&mut tx, call.org_id, a, b).await? {
        return Err(store::dependency_exists());
    }
    // A cycle iff b already depends on a: a walk from b in the database,
    // not the program's every edge read into memory. Only when it finds
    // one is the part upstream of b read, to name the cycle.
    if store::depends_on(&mut tx, call.org_id, b, a).await? {
        let upstream = store::edges_upstream(&mut tx, call.org_id, b, CYCLE_EDGES_READ).await?;
        // Cut short (a graph past the read bound): the new edge and its
        // end, which is still a cycle's start and end.
        let cycle = graph::cycle_through(&upstream, a, b).unwrap_or_else(|| vec![a, b]);
        return Err(Error::from(graph::cycle_error(&cycle)));
    }
    let dependency = store::insert_dependency(
        &mut tx,
        call.org_id,
        program_id,
        requirement_id,
        depends_on_id,
        call.principal_id(),
    )
    .await?;
    call.actor
        .event(
            "delivery.requirement.add_dependency",
            Requirement::KIND,
            requirement_id,
        )
        .project(Some(program_id.uuid()))
        .set("depends_on_id", depends_on_id)
        .commit(tx)
        .await?;
    Ok(dependency_to_proto(&dependency))
}

/// RemoveRequirementDependency.
#[tracing::instrument(skip_all)]
pub async fn remove(c: In<pb::RemoveRequirementDependencyRequest>) -> Reply<()> {
    let In { state, call, req } = c;
    let (requirement_id, depends_on_id) = edge(&req.requirement_id, &req.depends_on_id)?;
    let mut tx = state.db.tenant(call.org_id).await?;
    let requirement =
        resource::fetch::<Requirement>(&mut tx, &call, requirement_id, Lock::None).await?;
    store::delete_dependency(&mut tx, call.org_id, requirement_id, depends_on_id)
        .await?
        .ok_or_else(|| Error::not_found("DEPENDENCY_NOT_FOUND", "dependency"))?;
    call.actor
        .event(
            "delivery.requirement.remove_dependency",
            Requirement::KIND,
            requirement_id,
        )
        .project(Some(requirement.program_id.uuid()))
        .change("depends_on_id", depends_on_id, None::<()>)
        .commit(tx)
        .await?;
    Ok(())
}

/// ListRequirementDependencies.
#[tracing::instrument(skip_all)]
pub async fn list(
    c: In<pb::ListRequirementDependenciesRequest>,
) -> Reply<pb::ListRequirementDependenciesResponse> {
    let req = &c.req;
    let mut v = Violations::new();
    let id: Option<RequirementId> = v.id_of("requirement_id", &req.requirement_id);
    let direction = match v.opt_enum_value("direction", req.direction) {
        None | Some(pb::DependencyDirection::Upstream) => Direction::Upstream,
        Some(_) => Direction::Downstream,
    };
    let id = v.finish_with(|| id)?;
    let paging = Paging {
        size: req.page_size,
        token: &req.page_token,
        filters: format!(
            "requirement={id};direction={direction:?};transitive={}",
            req.transitive
        ),
    };
    let transitive = req.transitive;
    let (requirements, next_page_token) =
        list_page(&c, paging, Order::newest(), |conn, call, page| {
            Box::pin(async move {
                let (walk, after, limit) = ((direction, transitive), page.after, page.limit());
                let found =
                    store::list_dependencies(conn, call.org_id, id, walk, after, limit).await?;
                visible_parent::<Requirement, _>(call, found)
            })
        })
        .await?;
    page(&requirements, next_page_token)
}

/// GetProgramPlan: the program's requirements and edges, read in one
/// transaction, ordered by [`graph::plan`].
#[tracing::instrument(skip_all)]
pub async fn plan(c: In<pb::GetProgramPlanRequest>) -> Reply<pb::ProgramPlan> {
    let In { state, call, req } = c;
    let program_id: ProgramId = Violations::require_id_of("program_id", &req.program_id)?;
    let mut tx = state.db.tenant(call.org_id).await?;
    resource::fetch::<Program>(&mut tx, &call, program_id, Lock::None).await?;
    let requirements =
        store::plan_requirements(&mut tx, call.org_id, program_id, PLAN_LIMIT + 1).await?;
    let edges = store::program_edges(&mut tx, call.org_id, program_id, PLAN_EDGE_LIMIT + 1).await?;
    tx.commit().await.map_err(Error::from)?;
    if requirements.len() as i64 > PLAN_LIMIT || edges.len() as i64 > PLAN_EDGE_LIMIT {
        return Err(Error::failed_precondition(
            "PROGRAM_PLAN_TOO_LARGE",
            format!(
                "a plan covers at most {PLAN_LIMIT} requirements and {PLAN_EDGE_LIMIT} dependencies; \
                 read this program's requirements with ListRequirements and their dependencies with ListRequirementDependencies"
            ),
        )
        .with_metadata("max_requirements", PLAN_LIMIT.to_string())
        .with_metadata("max_dependencies", PLAN_EDGE_LIMIT.to_string()));
    }

    let nodes: Vec<_> = requirements
        .iter()
        .map(|r| (r.id.uuid(), r.priority))
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
    let by_id: HashMap<Uuid, &PlanItem> = requirements.iter().map(|r| (r.id.uuid(), r)).collect();
    let planned = order
        .iter()
        .filter_map(|p| {
            let r = by_id.get(&p.id)?;
            Some(pb::PlannedRequirement {
                requirement_id: r.id.to_string(),
                workstream_id: r.workstream_id.to_string(),
                title: r.title.clone(),
                priority: pb::RequirementPriority::from(r.priority) as i32,
                status: pb::RequirementStatus::from(r.status) as i32,
                level: i32::try_from(p.level).unwrap_or(i32::MAX),
                depends_on_ids: depends_on.remove(&p.id).unwrap_or_default(),
            })
        })
        .collect();
    Ok(pb::ProgramPlan {
        program_id: program_id.to_string(),
        requirements: planned,
        dependency_count: i32::try_from(edges.len()).unwrap_or(i32::MAX),
    })
}

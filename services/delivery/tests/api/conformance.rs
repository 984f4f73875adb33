//! Delivery resources registered with the testkit's conformance harness:
//! what every resource must do is checked there, once.

use foundry_testkit::conformance::{self, Made, Resource, Scope, Setup};
use foundry_testkit::delivery::*;
use foundry_testkit::{TestApp, authed};

use crate::{
    mask, new_feature, new_gate, new_goal, new_planner_phase, new_program, new_requirement,
    new_risk, new_sprint, new_subtask, new_task, new_work_order, new_workstream, program, sprint,
    task, workstream,
};

/// Where every delivery resource's audit events go.
const OUTBOX: &str = "delivery.outbox";

fn made(id: String, etag: String) -> Made {
    Made { id, etag }
}

/// A fresh, distinct value for updated text fields.
fn fresh(what: &str) -> String {
    format!("{what} {}", uuid::Uuid::now_v7().simple())
}

/// An update mask of the harness's paths.
fn mask_of(paths: &[String]) -> Option<prost_types::FieldMask> {
    mask(&paths.iter().map(String::as_str).collect::<Vec<_>>())
}

fn fresh_slug() -> String {
    format!("conf-{}", uuid::Uuid::now_v7().simple())
}

/// A fresh program in each organization, for resources under a program.
fn in_program() -> Setup<Program> {
    conformance::setup(|app, m| async move { program(&app, &m.token, &fresh_slug()).await })
}

/// A fresh task (in a fresh program) in each organization, for subtasks.
fn in_task() -> Setup<Task> {
    conformance::setup(|app, m| async move {
        let p = program(&app, &m.token, &fresh_slug()).await;
        task(&app, &m.token, &p.id, "parent task").await
    })
}

/// A fresh workstream (in a fresh program) in each organization, for
/// requirements.
fn in_workstream() -> Setup<Workstream> {
    conformance::setup(|app, m| async move {
        let p = program(&app, &m.token, &fresh_slug()).await;
        workstream(&app, &m.token, &p.id, "parent workstream").await
    })
}

/// A fresh sprint (in a fresh program) in each organization, for gates.
fn in_sprint() -> Setup<Sprint> {
    conformance::setup(|app, m| async move {
        let p = program(&app, &m.token, &fresh_slug()).await;
        sprint(&app, &m.token, &p.id, "parent sprint").await
    })
}

type S = Scope<Program>;

/// Tasks, each organization with its own program.
fn task_resource() -> Resource<Program> {
    Resource {
        name: "task",
        outbox: OUTBOX,
        audit_resource_type: "delivery.task",
        audit_action_prefix: "delivery.task",
        update_path: "title",
        output_only_path: "create_time",
        setup: in_program(),
        create: conformance::create(|s: S, request_id, variant| async move {
            let mut req = new_task(&s.ctx.id, &format!("task {variant}"));
            req.request_id = request_id.unwrap_or_default();
            let t = s.app.tasks().create_task(authed(s.token(), req)).await?;
            let t = t.into_inner();
            Ok(made(t.id, t.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let t = s
                .app
                .tasks()
                .get_task(authed(s.token(), GetTaskRequest { id }))
                .await?
                .into_inner();
            Ok(made(t.id, t.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .tasks()
                .list_tasks(authed(
                    s.token(),
                    ListTasksRequest {
                        program_id: s.ctx.id.clone(),
                        page_size,
                        page_token,
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.tasks.into_iter().map(|t| t.id).collect(),
                page.next_page_token,
            ))
        }),
        update: conformance::update(|s: S, id, etag, paths| async move {
            let t = s
                .app
                .tasks()
                .update_task(authed(
                    s.token(),
                    UpdateTaskRequest {
                        task: Some(Task {
                            id,
                            title: fresh("title"),
                            description: fresh("description"),
                            etag,
                            ..Default::default()
                        }),
                        update_mask: mask_of(&paths),
                    },
                ))
                .await?
                .into_inner();
            Ok(t.etag)
        }),
        delete: conformance::delete(|s: S, id, etag| async move {
            s.app
                .tasks()
                .delete_task(authed(s.token(), DeleteTaskRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

/// Workstreams, each organization with its own program.
fn workstream_resource() -> Resource<Program> {
    Resource {
        name: "workstream",
        outbox: OUTBOX,
        audit_resource_type: "delivery.workstream",
        audit_action_prefix: "delivery.workstream",
        update_path: "name",
        output_only_path: "create_time",
        setup: in_program(),
        create: conformance::create(|s: S, request_id, variant| async move {
            let mut req = new_workstream(&s.ctx.id, &format!("workstream {variant}"));
            req.request_id = request_id.unwrap_or_default();
            let w = s
                .app
                .workstreams()
                .create_workstream(authed(s.token(), req))
                .await?
                .into_inner();
            Ok(made(w.id, w.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let w = s
                .app
                .workstreams()
                .get_workstream(authed(s.token(), GetWorkstreamRequest { id }))
                .await?
                .into_inner();
            Ok(made(w.id, w.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .workstreams()
                .list_workstreams(authed(
                    s.token(),
                    ListWorkstreamsRequest {
                        program_id: s.ctx.id.clone(),
                        page_size,
                        page_token,
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.workstreams.into_iter().map(|w| w.id).collect(),
                page.next_page_token,
            ))
        }),
        update: conformance::update(|s: S, id, etag, paths| async move {
            let w = s
                .app
                .workstreams()
                .update_workstream(authed(
                    s.token(),
                    UpdateWorkstreamRequest {
                        workstream: Some(Workstream {
                            id,
                            name: fresh("name"),
                            description: fresh("description"),
                            etag,
                            ..Default::default()
                        }),
                        update_mask: mask_of(&paths),
                    },
                ))
                .await?
                .into_inner();
            Ok(w.etag)
        }),
        delete: conformance::delete(|s: S, id, etag| async move {
            s.app
                .workstreams()
                .delete_workstream(authed(s.token(), DeleteWorkstreamRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

#[tokio::test]
async fn tasks_conform() {
    conformance::check(TestApp::start().await, &task_resource()).await;
}

#[tokio::test]
async fn workstreams_conform() {
    conformance::check(TestApp::start().await, &workstream_resource()).await;
}

#[tokio::test]
async fn goals_conform() {
    conformance::check(TestApp::start().await, &goal_resource()).await;
}

#[tokio::test]
async fn risks_conform() {
    conformance::check(TestApp::start().await, &risk_resource()).await;
}

#[tokio::test]
async fn programs_conform() {
    conformance::check(TestApp::start().await, &program_resource()).await;
}

/// Goals, each organization with its own program.
fn goal_resource() -> Resource<Program> {
    Resource {
        name: "goal",
        outbox: OUTBOX,
        audit_resource_type: "delivery.goal",
        audit_action_prefix: "delivery.goal",
        update_path: "title",
        output_only_path: "create_time",
        setup: in_program(),
        create: conformance::create(|s: S, request_id, variant| async move {
            let mut req = new_goal(&s.ctx.id, &format!("goal {variant}"));
            req.request_id = request_id.unwrap_or_default();
            let x = s
                .app
                .goals()
                .create_goal(authed(s.token(), req))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let x = s
                .app
                .goals()
                .get_goal(authed(s.token(), GetGoalRequest { id }))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .goals()
                .list_goals(authed(
                    s.token(),
                    ListGoalsRequest {
                        program_id: s.ctx.id.clone(),
                        page_size,
                        page_token,
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.goals.into_iter().map(|x| x.id).collect(),
                page.next_page_token,
            ))
        }),
        update: conformance::update(|s: S, id, etag, paths| async move {
            let x = s
                .app
                .goals()
                .update_goal(authed(
                    s.token(),
                    UpdateGoalRequest {
                        goal: Some(Goal {
                            id,
                            title: fresh("title"),
                            description: fresh("description"),
                            etag,
                            ..Default::default()
                        }),
                        update_mask: mask_of(&paths),
                    },
                ))
                .await?
                .into_inner();
            Ok(x.etag)
        }),
        delete: conformance::delete(|s: S, id, etag| async move {
            s.app
                .goals()
                .delete_goal(authed(s.token(), DeleteGoalRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

/// Risks, each organization with its own program.
fn risk_resource() -> Resource<Program> {
    Resource {
        name: "risk",
        outbox: OUTBOX,
        audit_resource_type: "delivery.risk",
        audit_action_prefix: "delivery.risk",
        update_path: "title",
        output_only_path: "create_time",
        setup: in_program(),
        create: conformance::create(|s: S, request_id, variant| async move {
            let mut req = new_risk(&s.ctx.id, &format!("risk {variant}"), 2, 3);
            req.request_id = request_id.unwrap_or_default();
            let x = s
                .app
                .risks()
                .create_risk(authed(s.token(), req))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let x = s
                .app
                .risks()
                .get_risk(authed(s.token(), GetRiskRequest { id }))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .risks()
                .list_risks(authed(
                    s.token(),
                    ListRisksRequest {
                        program_id: s.ctx.id.clone(),
                        page_size,
                        page_token,
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.risks.into_iter().map(|x| x.id).collect(),
                page.next_page_token,
            ))
        }),
        update: conformance::update(|s: S, id, etag, paths| async move {
            let x = s
                .app
                .risks()
                .update_risk(authed(
                    s.token(),
                    UpdateRiskRequest {
                        risk: Some(Risk {
                            id,
                            title: fresh("title"),
                            description: fresh("description"),
                            etag,
                            ..Default::default()
                        }),
                        update_mask: mask_of(&paths),
                    },
                ))
                .await?
                .into_inner();
            Ok(x.etag)
        }),
        delete: conformance::delete(|s: S, id, etag| async move {
            s.app
                .risks()
                .delete_risk(authed(s.token(), DeleteRiskRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

/// Programs: nothing to set up, listed across the organization.
fn program_resource() -> Resource<()> {
    Resource {
        name: "program",
        outbox: OUTBOX,
        audit_resource_type: "delivery.program",
        audit_action_prefix: "delivery.program",
        update_path: "name",
        output_only_path: "create_time",
        setup: conformance::setup(|_, _| async {}),
        create: conformance::create(|s: Scope<()>, request_id, variant| async move {
            let mut req = new_program(&format!("conf-{variant}"));
            req.request_id = request_id.unwrap_or_default();
            let x = s
                .app
                .programs()
                .create_program(authed(s.token(), req))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        get: conformance::get(|s: Scope<()>, id| async move {
            let x = s
                .app
                .programs()
                .get_program(authed(s.token(), GetProgramRequest { id }))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        list: conformance::list(|s: Scope<()>, page_size, page_token| async move {
            let page = s
                .app
                .programs()
                .list_programs(authed(
                    s.token(),
                    ListProgramsRequest {
                        page_size,
                        page_token,
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.programs.into_iter().map(|x| x.id).collect(),
                page.next_page_token,
            ))
        }),
        update: conformance::update(|s: Scope<()>, id, etag, paths| async move {
            let x = s
                .app
                .programs()
                .update_program(authed(
                    s.token(),
                    UpdateProgramRequest {
                        program: Some(Program {
                            id,
                            name: fresh("name"),
                            description: fresh("description"),
                            etag,
                            ..Default::default()
                        }),
                        update_mask: mask_of(&paths),
                    },
                ))
                .await?
                .into_inner();
            Ok(x.etag)
        }),
        delete: conformance::delete(|s: Scope<()>, id, etag| async move {
            s.app
                .programs()
                .delete_program(authed(s.token(), DeleteProgramRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

#[tokio::test]
async fn requirements_conform() {
    conformance::check(TestApp::start().await, &requirement_resource()).await;
}

#[tokio::test]
async fn subtasks_conform() {
    conformance::check(TestApp::start().await, &subtask_resource()).await;
}

#[tokio::test]
async fn sprints_conform() {
    conformance::check(TestApp::start().await, &sprint_resource()).await;
}

#[tokio::test]
async fn sprint_gates_conform() {
    conformance::check(TestApp::start().await, &sprint_gate_resource()).await;
}

#[tokio::test]
async fn work_orders_conform() {
    conformance::check(TestApp::start().await, &work_order_resource()).await;
}

#[tokio::test]
async fn features_conform() {
    conformance::check(TestApp::start().await, &feature_resource()).await;
}

#[tokio::test]
async fn planner_phases_conform() {
    conformance::check(TestApp::start().await, &planner_phase_resource()).await;
}

/// Requirements, each organization with its own workstream; listed by
/// workstream.
fn requirement_resource() -> Resource<Workstream> {
    type S = Scope<Workstream>;
    Resource {
        name: "requirement",
        outbox: OUTBOX,
        audit_resource_type: "delivery.requirement",
        audit_action_prefix: "delivery.requirement",
        update_path: "title",
        output_only_path: "create_time",
        setup: in_workstream(),
        create: conformance::create(|s: S, request_id, variant| async move {
            let mut req = new_requirement(&s.ctx.id, &format!("requirement {variant}"));
            req.request_id = request_id.unwrap_or_default();
            let x = s
                .app
                .requirements()
                .create_requirement(authed(s.token(), req))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let x = s
                .app
                .requirements()
                .get_requirement(authed(s.token(), GetRequirementRequest { id }))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .requirements()
                .list_requirements(authed(
                    s.token(),
                    ListRequirementsRequest {
                        workstream_id: s.ctx.id.clone(),
                        page_size,
                        page_token,
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.requirements.into_iter().map(|x| x.id).collect(),
                page.next_page_token,
            ))
        }),
        update: conformance::update(|s: S, id, etag, paths| async move {
            let x = s
                .app
                .requirements()
                .update_requirement(authed(
                    s.token(),
                    UpdateRequirementRequest {
                        requirement: Some(Requirement {
                            id,
                            title: fresh("title"),
                            description: fresh("description"),
                            etag,
                            ..Default::default()
                        }),
                        update_mask: mask_of(&paths),
                    },
                ))
                .await?
                .into_inner();
            Ok(x.etag)
        }),
        delete: conformance::delete(|s: S, id, etag| async move {
            s.app
                .requirements()
                .delete_requirement(authed(s.token(), DeleteRequirementRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

/// Subtasks, each organization with its own task; listed by task.
fn subtask_resource() -> Resource<Task> {
    type S = Scope<Task>;
    Resource {
        name: "subtask",
        outbox: OUTBOX,
        audit_resource_type: "delivery.subtask",
        audit_action_prefix: "delivery.subtask",
        update_path: "title",
        output_only_path: "create_time",
        setup: in_task(),
        create: conformance::create(|s: S, request_id, variant| async move {
            let mut req = new_subtask(&s.ctx.id, &format!("subtask {variant}"));
            req.request_id = request_id.unwrap_or_default();
            let x = s
                .app
                .subtasks()
                .create_subtask(authed(s.token(), req))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let x = s
                .app
                .subtasks()
                .get_subtask(authed(s.token(), GetSubtaskRequest { id }))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .subtasks()
                .list_subtasks(authed(
                    s.token(),
                    ListSubtasksRequest {
                        task_id: s.ctx.id.clone(),
                        page_size,
                        page_token,
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.subtasks.into_iter().map(|x| x.id).collect(),
                page.next_page_token,
            ))
        }),
        update: conformance::update(|s: S, id, etag, paths| async move {
            let x = s
                .app
                .subtasks()
                .update_subtask(authed(
                    s.token(),
                    UpdateSubtaskRequest {
                        subtask: Some(Subtask {
                            id,
                            title: fresh("title"),
                            description: fresh("description"),
                            etag,
                            ..Default::default()
                        }),
                        update_mask: mask_of(&paths),
                    },
                ))
                .await?
                .into_inner();
            Ok(x.etag)
        }),
        delete: conformance::delete(|s: S, id, etag| async move {
            s.app
                .subtasks()
                .delete_subtask(authed(s.token(), DeleteSubtaskRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

/// Sprints, each organization with its own program.
fn sprint_resource() -> Resource<Program> {
    Resource {
        name: "sprint",
        outbox: OUTBOX,
        audit_resource_type: "delivery.sprint",
        audit_action_prefix: "delivery.sprint",
        update_path: "name",
        output_only_path: "create_time",
        setup: in_program(),
        create: conformance::create(|s: S, request_id, variant| async move {
            let mut req = new_sprint(&s.ctx.id, &format!("sprint {variant}"));
            req.request_id = request_id.unwrap_or_default();
            let x = s
                .app
                .sprints()
                .create_sprint(authed(s.token(), req))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let x = s
                .app
                .sprints()
                .get_sprint(authed(s.token(), GetSprintRequest { id }))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .sprints()
                .list_sprints(authed(
                    s.token(),
                    ListSprintsRequest {
                        program_id: s.ctx.id.clone(),
                        page_size,
                        page_token,
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.sprints.into_iter().map(|x| x.id).collect(),
                page.next_page_token,
            ))
        }),
        update: conformance::update(|s: S, id, etag, paths| async move {
            let x = s
                .app
                .sprints()
                .update_sprint(authed(
                    s.token(),
                    UpdateSprintRequest {
                        sprint: Some(Sprint {
                            id,
                            name: fresh("name"),
                            goal: fresh("goal"),
                            etag,
                            ..Default::default()
                        }),
                        update_mask: mask_of(&paths),
                    },
                ))
                .await?
                .into_inner();
            Ok(x.etag)
        }),
        delete: conformance::delete(|s: S, id, etag| async move {
            s.app
                .sprints()
                .delete_sprint(authed(s.token(), DeleteSprintRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

/// Sprint gates, each organization with its own sprint; listed by sprint.
fn sprint_gate_resource() -> Resource<Sprint> {
    type S = Scope<Sprint>;
    Resource {
        name: "sprint gate",
        outbox: OUTBOX,
        audit_resource_type: "delivery.sprint_gate",
        audit_action_prefix: "delivery.sprint_gate",
        update_path: "name",
        output_only_path: "create_time",
        setup: in_sprint(),
        create: conformance::create(|s: S, request_id, variant| async move {
            let mut req = new_gate(&s.ctx.id, &format!("gate {variant}"));
            req.request_id = request_id.unwrap_or_default();
            let x = s
                .app
                .sprint_gates()
                .create_sprint_gate(authed(s.token(), req))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let x = s
                .app
                .sprint_gates()
                .get_sprint_gate(authed(s.token(), GetSprintGateRequest { id }))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .sprint_gates()
                .list_sprint_gates(authed(
                    s.token(),
                    ListSprintGatesRequest {
                        sprint_id: s.ctx.id.clone(),
                        page_size,
                        page_token,
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.sprint_gates.into_iter().map(|x| x.id).collect(),
                page.next_page_token,
            ))
        }),
        update: conformance::update(|s: S, id, etag, paths| async move {
            let x = s
                .app
                .sprint_gates()
                .update_sprint_gate(authed(
                    s.token(),
                    UpdateSprintGateRequest {
                        sprint_gate: Some(SprintGate {
                            id,
                            name: fresh("name"),
                            description: fresh("description"),
                            etag,
                            ..Default::default()
                        }),
                        update_mask: mask_of(&paths),
                    },
                ))
                .await?
                .into_inner();
            Ok(x.etag)
        }),
        delete: conformance::delete(|s: S, id, etag| async move {
            s.app
                .sprint_gates()
                .delete_sprint_gate(authed(s.token(), DeleteSprintGateRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

/// Work orders, each organization with its own program.
fn work_order_resource() -> Resource<Program> {
    Resource {
        name: "work order",
        outbox: OUTBOX,
        audit_resource_type: "delivery.work_order",
        audit_action_prefix: "delivery.work_order",
        update_path: "title",
        output_only_path: "create_time",
        setup: in_program(),
        create: conformance::create(|s: S, request_id, variant| async move {
            let mut req = new_work_order(&s.ctx.id, &format!("work order {variant}"));
            req.request_id = request_id.unwrap_or_default();
            let x = s
                .app
                .work_orders()
                .create_work_order(authed(s.token(), req))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let x = s
                .app
                .work_orders()
                .get_work_order(authed(s.token(), GetWorkOrderRequest { id }))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .work_orders()
                .list_work_orders(authed(
                    s.token(),
                    ListWorkOrdersRequest {
                        program_id: s.ctx.id.clone(),
                        page_size,
                        page_token,
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.work_orders.into_iter().map(|x| x.id).collect(),
                page.next_page_token,
            ))
        }),
        update: conformance::update(|s: S, id, etag, paths| async move {
            let x = s
                .app
                .work_orders()
                .update_work_order(authed(
                    s.token(),
                    UpdateWorkOrderRequest {
                        work_order: Some(WorkOrder {
                            id,
                            title: fresh("title"),
                            description: fresh("description"),
                            etag,
                            ..Default::default()
                        }),
                        update_mask: mask_of(&paths),
                    },
                ))
                .await?
                .into_inner();
            Ok(x.etag)
        }),
        delete: conformance::delete(|s: S, id, etag| async move {
            s.app
                .work_orders()
                .delete_work_order(authed(s.token(), DeleteWorkOrderRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

/// Features (roots), each organization with its own program.
fn feature_resource() -> Resource<Program> {
    Resource {
        name: "feature",
        outbox: OUTBOX,
        audit_resource_type: "delivery.feature",
        audit_action_prefix: "delivery.feature",
        update_path: "name",
        output_only_path: "create_time",
        setup: in_program(),
        create: conformance::create(|s: S, request_id, variant| async move {
            let mut req = new_feature(&s.ctx.id, &format!("feature-{variant}"), "");
            req.request_id = request_id.unwrap_or_default();
            let x = s
                .app
                .features()
                .create_feature(authed(s.token(), req))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let x = s
                .app
                .features()
                .get_feature(authed(s.token(), GetFeatureRequest { id }))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .features()
                .list_features(authed(
                    s.token(),
                    ListFeaturesRequest {
                        program_id: s.ctx.id.clone(),
                        page_size,
                        page_token,
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.features.into_iter().map(|x| x.id).collect(),
                page.next_page_token,
            ))
        }),
        update: conformance::update(|s: S, id, etag, paths| async move {
            let x = s
                .app
                .features()
                .update_feature(authed(
                    s.token(),
                    UpdateFeatureRequest {
                        feature: Some(Feature {
                            id,
                            name: fresh("name"),
                            description: fresh("description"),
                            etag,
                            ..Default::default()
                        }),
                        update_mask: mask_of(&paths),
                    },
                ))
                .await?
                .into_inner();
            Ok(x.etag)
        }),
        delete: conformance::delete(|s: S, id, etag| async move {
            s.app
                .features()
                .delete_feature(authed(s.token(), DeleteFeatureRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

/// Planner phases, each organization with its own program.
fn planner_phase_resource() -> Resource<Program> {
    Resource {
        name: "planner phase",
        outbox: OUTBOX,
        audit_resource_type: "delivery.planner_phase",
        audit_action_prefix: "delivery.planner_phase",
        update_path: "name",
        output_only_path: "create_time",
        setup: in_program(),
        create: conformance::create(|s: S, request_id, variant| async move {
            let mut req = new_planner_phase(&s.ctx.id, &format!("phase {variant}"));
            req.request_id = request_id.unwrap_or_default();
            let x = s
                .app
                .planner_phases()
                .create_planner_phase(authed(s.token(), req))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        get: conformance::get(|s: S, id| async move {
            let x = s
                .app
                .planner_phases()
                .get_planner_phase(authed(s.token(), GetPlannerPhaseRequest { id }))
                .await?
                .into_inner();
            Ok(made(x.id, x.etag))
        }),
        list: conformance::list(|s: S, page_size, page_token| async move {
            let page = s
                .app
                .planner_phases()
                .list_planner_phases(authed(
                    s.token(),
                    ListPlannerPhasesRequest {
                        program_id: s.ctx.id.clone(),
                        page_size,
                        page_token,
                    },
                ))
                .await?
                .into_inner();
            Ok((
                page.planner_phases.into_iter().map(|x| x.id).collect(),
                page.next_page_token,
            ))
        }),
        update: conformance::update(|s: S, id, etag, paths| async move {
            let x = s
                .app
                .planner_phases()
                .update_planner_phase(authed(
                    s.token(),
                    UpdatePlannerPhaseRequest {
                        planner_phase: Some(PlannerPhase {
                            id,
                            name: fresh("name"),
                            description: fresh("description"),
                            etag,
                            ..Default::default()
                        }),
                        update_mask: mask_of(&paths),
                    },
                ))
                .await?
                .into_inner();
            Ok(x.etag)
        }),
        delete: conformance::delete(|s: S, id, etag| async move {
            s.app
                .planner_phases()
                .delete_planner_phase(authed(s.token(), DeletePlannerPhaseRequest { id, etag }))
                .await?;
            Ok(())
        }),
    }
}

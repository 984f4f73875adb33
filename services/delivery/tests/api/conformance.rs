//! Delivery resources registered with the testkit's conformance harness:
//! what every resource must do is checked there, once.

use foundry_testkit::conformance::{self, Made, Resource, Scope};
use foundry_testkit::delivery::*;
use foundry_testkit::{TestApp, authed};

use crate::{mask, new_goal, new_program, new_risk, new_task, new_workstream, program};

fn made(id: String, etag: String) -> Made {
    Made { id, etag }
}

/// A fresh, distinct value for updated text fields.
fn fresh(what: &str) -> String {
    format!("{what} {}", uuid::Uuid::now_v7().simple())
}

type S = Scope<Program>;

/// Tasks, each organization with its own program.
fn task_resource() -> Resource<Program> {
    Resource {
        name: "task",
        outbox: "delivery.outbox",
        audit_resource_type: "delivery.task",
        audit_action_prefix: "delivery.task",
        update_path: "title",
        output_only_path: "create_time",
        setup: conformance::setup(|app, m| async move {
            program(
                &app,
                &m.token,
                &format!("conf-{}", uuid::Uuid::now_v7().simple()),
            )
            .await
        }),
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
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
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
                        update_mask: mask(&paths),
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
        outbox: "delivery.outbox",
        audit_resource_type: "delivery.workstream",
        audit_action_prefix: "delivery.workstream",
        update_path: "name",
        output_only_path: "create_time",
        setup: conformance::setup(|app, m| async move {
            program(
                &app,
                &m.token,
                &format!("conf-{}", uuid::Uuid::now_v7().simple()),
            )
            .await
        }),
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
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
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
                        update_mask: mask(&paths),
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
        outbox: "delivery.outbox",
        audit_resource_type: "delivery.goal",
        audit_action_prefix: "delivery.goal",
        update_path: "title",
        output_only_path: "create_time",
        setup: conformance::setup(|app, m| async move {
            program(
                &app,
                &m.token,
                &format!("conf-{}", uuid::Uuid::now_v7().simple()),
            )
            .await
        }),
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
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
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
                        update_mask: mask(&paths),
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
        outbox: "delivery.outbox",
        audit_resource_type: "delivery.risk",
        audit_action_prefix: "delivery.risk",
        update_path: "title",
        output_only_path: "create_time",
        setup: conformance::setup(|app, m| async move {
            program(
                &app,
                &m.token,
                &format!("conf-{}", uuid::Uuid::now_v7().simple()),
            )
            .await
        }),
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
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
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
                        update_mask: mask(&paths),
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
        outbox: "delivery.outbox",
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
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
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
                        update_mask: mask(&paths),
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

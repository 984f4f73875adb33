//! Delivery resources registered with the testkit's conformance harness:
//! what every resource must do is checked there, once.

use foundry_testkit::conformance::{self, Made, Resource, Scope};
use foundry_testkit::delivery::*;
use foundry_testkit::{TestApp, authed};

use crate::{mask, new_task, program};

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

#[tokio::test]
async fn tasks_conform() {
    conformance::check(TestApp::start().await, &task_resource()).await;
}

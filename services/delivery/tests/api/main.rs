//! Delivery service integration tests: real gRPC clients against the real
//! suite on a real PostgreSQL (one database per test). One binary, modules
//! per proto service, helpers here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dependencies;
mod indexes;
mod outbox;
mod programs;
mod requirements;
mod subtasks;
mod tasks;
mod workstreams;

use foundry_testkit::delivery::*;
use foundry_testkit::{TestApp, authed};
use serde_json::Value;

pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

/// A fresh request id.
pub fn rid() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn new_program(slug: &str) -> CreateProgramRequest {
    CreateProgramRequest {
        program: Some(Program {
            name: format!("Program {slug}"),
            slug: slug.into(),
            description: "Replatforming\nphase one".into(),
            source_platform: "salesforce_b2b".into(),
            target_platform: "commercetools".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn program(app: &TestApp, token: &str, slug: &str) -> Program {
    app.programs()
        .create_program(authed(token, new_program(slug)))
        .await
        .expect("create program")
        .into_inner()
}

pub fn new_workstream(program_id: &str, name: &str) -> CreateWorkstreamRequest {
    CreateWorkstreamRequest {
        workstream: Some(Workstream {
            program_id: program_id.into(),
            name: name.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn workstream(app: &TestApp, token: &str, program_id: &str, name: &str) -> Workstream {
    app.workstreams()
        .create_workstream(authed(token, new_workstream(program_id, name)))
        .await
        .expect("create workstream")
        .into_inner()
}

pub fn new_requirement(workstream_id: &str, title: &str) -> CreateRequirementRequest {
    CreateRequirementRequest {
        requirement: Some(Requirement {
            workstream_id: workstream_id.into(),
            title: title.into(),
            acceptance_criteria: vec!["it works".into()],
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn requirement(
    app: &TestApp,
    token: &str,
    workstream_id: &str,
    title: &str,
) -> Requirement {
    app.requirements()
        .create_requirement(authed(token, new_requirement(workstream_id, title)))
        .await
        .expect("create requirement")
        .into_inner()
}

pub fn new_task(program_id: &str, title: &str) -> CreateTaskRequest {
    CreateTaskRequest {
        task: Some(Task {
            program_id: program_id.into(),
            title: title.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn task(app: &TestApp, token: &str, program_id: &str, title: &str) -> Task {
    app.tasks()
        .create_task(authed(token, new_task(program_id, title)))
        .await
        .expect("create task")
        .into_inner()
}

pub fn new_subtask(task_id: &str, title: &str) -> CreateSubtaskRequest {
    CreateSubtaskRequest {
        subtask: Some(Subtask {
            task_id: task_id.into(),
            title: title.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn subtask(app: &TestApp, token: &str, task_id: &str, title: &str) -> Subtask {
    app.subtasks()
        .create_subtask(authed(token, new_subtask(task_id, title)))
        .await
        .expect("create subtask")
        .into_inner()
}

/// Adds the edge `a` depends on `b`.
pub async fn depend(app: &TestApp, token: &str, a: &str, b: &str) -> RequirementDependency {
    app.requirements()
        .add_requirement_dependency(authed(
            token,
            AddRequirementDependencyRequest {
                requirement_id: a.into(),
                depends_on_id: b.into(),
            },
        ))
        .await
        .expect("add dependency")
        .into_inner()
}

/// The payloads in delivery's outbox, oldest first.
pub async fn outbox(app: &TestApp) -> Vec<Value> {
    let mut db = app.admin_db().await;
    sqlx::query_scalar("SELECT payload FROM delivery.outbox ORDER BY id")
        .fetch_all(&mut db)
        .await
        .unwrap()
}

/// The actions of outbox payloads.
pub fn actions(rows: &[Value]) -> Vec<&str> {
    rows.iter().map(|e| e["action"].as_str().unwrap()).collect()
}

/// Rows of a delivery table (bypassing RLS).
pub async fn count(app: &TestApp, table: &str) -> i64 {
    let mut db = app.admin_db().await;
    sqlx::query_scalar(&format!("SELECT count(*) FROM delivery.{table}"))
        .fetch_one(&mut db)
        .await
        .unwrap()
}

/// The ErrorInfo metadata of a status.
pub fn error_metadata(status: &tonic::Status) -> std::collections::HashMap<String, String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.metadata.clone())
        .unwrap_or_default()
}

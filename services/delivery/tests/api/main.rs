//! Delivery service integration tests: real gRPC clients against the real
//! suite on a real PostgreSQL (one database per test). One binary, modules
//! per proto service, helpers here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod dependencies;
mod features;
mod gates;
mod goals;
mod indexes;
mod load;
mod members;
mod outbox;
mod planner_phases;
mod programs;
mod request_ids;
mod requirements;
mod risks;
mod round_trips;
mod scale;
mod sprints;
mod subtasks;
mod tasks;
mod work_orders;
mod workstreams;

use foundry_testkit::delivery::*;
use foundry_testkit::{TestApp, authed};
use serde_json::Value;

pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

/// A new member of alice's organization, once delivery's membership
/// replica has it: a user her tasks can be assigned to and her goals owned
/// by.
pub async fn member(app: &TestApp) -> String {
    let m = app
        .new_member(&app.alice, foundry_identity::domain::Role::Editor)
        .await;
    m.user_id.to_string()
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

pub fn new_risk(program_id: &str, title: &str, likelihood: i32, impact: i32) -> CreateRiskRequest {
    CreateRiskRequest {
        risk: Some(Risk {
            program_id: program_id.into(),
            title: title.into(),
            likelihood,
            impact,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn risk(
    app: &TestApp,
    token: &str,
    program_id: &str,
    title: &str,
    likelihood: i32,
    impact: i32,
) -> Risk {
    app.risks()
        .create_risk(authed(
            token,
            new_risk(program_id, title, likelihood, impact),
        ))
        .await
        .expect("create risk")
        .into_inner()
}

pub fn new_goal(program_id: &str, title: &str) -> CreateGoalRequest {
    CreateGoalRequest {
        goal: Some(Goal {
            program_id: program_id.into(),
            title: title.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn goal(app: &TestApp, token: &str, program_id: &str, title: &str) -> Goal {
    app.goals()
        .create_goal(authed(token, new_goal(program_id, title)))
        .await
        .expect("create goal")
        .into_inner()
}

pub fn new_work_order(program_id: &str, title: &str) -> CreateWorkOrderRequest {
    CreateWorkOrderRequest {
        work_order: Some(WorkOrder {
            program_id: program_id.into(),
            title: title.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn work_order(app: &TestApp, token: &str, program_id: &str, title: &str) -> WorkOrder {
    app.work_orders()
        .create_work_order(authed(token, new_work_order(program_id, title)))
        .await
        .expect("create work order")
        .into_inner()
}

pub fn new_planner_phase(program_id: &str, name: &str) -> CreatePlannerPhaseRequest {
    CreatePlannerPhaseRequest {
        planner_phase: Some(PlannerPhase {
            program_id: program_id.into(),
            name: name.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn planner_phase(
    app: &TestApp,
    token: &str,
    program_id: &str,
    name: &str,
) -> PlannerPhase {
    app.planner_phases()
        .create_planner_phase(authed(token, new_planner_phase(program_id, name)))
        .await
        .expect("create planner phase")
        .into_inner()
}

pub fn new_feature(program_id: &str, slug: &str, parent: &str) -> CreateFeatureRequest {
    CreateFeatureRequest {
        feature: Some(Feature {
            program_id: program_id.into(),
            parent_feature_id: parent.into(),
            name: slug.to_uppercase(),
            slug: slug.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn feature(
    app: &TestApp,
    token: &str,
    program_id: &str,
    slug: &str,
    parent: &str,
) -> Feature {
    app.features()
        .create_feature(authed(token, new_feature(program_id, slug, parent)))
        .await
        .expect("create feature")
        .into_inner()
}

/// A time `days` days after 2030-01-01.
pub fn day(days: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: 1_893_456_000 + days * 86_400,
        nanos: 0,
    }
}

pub fn new_sprint(program_id: &str, name: &str) -> CreateSprintRequest {
    CreateSprintRequest {
        sprint: Some(Sprint {
            program_id: program_id.into(),
            name: name.into(),
            start_time: Some(day(0)),
            end_time: Some(day(14)),
            capacity: 80.0,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn sprint(app: &TestApp, token: &str, program_id: &str, name: &str) -> Sprint {
    app.sprints()
        .create_sprint(authed(token, new_sprint(program_id, name)))
        .await
        .expect("create sprint")
        .into_inner()
}

pub fn criterion(id: &str, required: bool) -> SprintGateCriterion {
    SprintGateCriterion {
        id: id.into(),
        description: format!("{id} holds"),
        required,
    }
}

/// A gate with criteria `tests` (required), `review` (required) and
/// `docs` (optional).
pub fn new_gate(sprint_id: &str, name: &str) -> CreateSprintGateRequest {
    CreateSprintGateRequest {
        sprint_gate: Some(SprintGate {
            sprint_id: sprint_id.into(),
            name: name.into(),
            criteria: vec![
                criterion("tests", true),
                criterion("review", true),
                criterion("docs", false),
            ],
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

pub async fn gate(app: &TestApp, token: &str, sprint_id: &str, name: &str) -> SprintGate {
    app.sprint_gates()
        .create_sprint_gate(authed(token, new_gate(sprint_id, name)))
        .await
        .expect("create gate")
        .into_inner()
}

pub fn answer(id: &str, passed: bool) -> SprintGateCriterionResult {
    SprintGateCriterionResult {
        criterion_id: id.into(),
        passed,
        evidence: format!("evidence for {id}"),
        ..Default::default()
    }
}

/// Evaluates a gate made by [`gate`]: both required criteria `passed`.
pub async fn evaluate(
    app: &TestApp,
    token: &str,
    gate_id: &str,
    passed: bool,
) -> SprintGateEvaluation {
    app.sprint_gates()
        .evaluate_sprint_gate(authed(
            token,
            EvaluateSprintGateRequest {
                gate_id: gate_id.into(),
                results: vec![answer("tests", passed), answer("review", passed)],
                etag: String::new(),
            },
        ))
        .await
        .expect("evaluate gate")
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
    sqlx::query_scalar("SELECT payload FROM delivery.outbox WHERE kind = 'audit' ORDER BY id")
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

/// A deterministic UUID for rows seeded with SQL: `tag` tells the kinds
/// apart, `n` the rows (ids of one kind sort by `n`).
pub fn seed_uuid(tag: &str, n: u64) -> String {
    format!("00000000-0000-7000-{tag}-{n:012}")
}

/// [`seed_uuid`] as an SQL literal.
pub fn seed_id(tag: &str, n: u64) -> String {
    format!("'{}'", seed_uuid(tag, n))
}

/// [`seed_uuid`] computed in SQL from the integer expression `expr` (over a
/// series column, for inserts).
pub fn sql_seed_id(tag: &str, expr: &str) -> String {
    format!("('00000000-0000-7000-{tag}-' || lpad(({expr})::text, 12, '0'))::uuid")
}

/// Asserts that a plan (`EXPLAIN (FORMAT JSON)` output) of `what` scans no
/// table sequentially and walks at least one index.
pub fn assert_index_backed(what: &str, plan: &Value) {
    fn nodes<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
        out.push(node);
        for child in node["Plans"].as_array().into_iter().flatten() {
            nodes(child, out);
        }
    }
    let mut all = Vec::new();
    for root in plan.as_array().into_iter().flatten() {
        nodes(&root["Plan"], &mut all);
    }
    let kind = |n: &Value| n["Node Type"].as_str().unwrap_or_default().to_owned();
    let seq: Vec<&str> = all
        .iter()
        .filter(|n| kind(n) == "Seq Scan")
        .map(|n| n["Relation Name"].as_str().unwrap_or("?"))
        .collect();
    assert!(
        seq.is_empty(),
        "sequential scan of {seq:?} for {what}:\n{plan:#}"
    );
    assert!(
        all.iter().any(|n| kind(n).contains("Index")),
        "no index for {what}:\n{plan:#}"
    );
}

/// `EXPLAIN (FORMAT JSON)` of `sql`, checked by [`assert_index_backed`].
pub async fn assert_plan_index_backed(db: &mut sqlx::PgConnection, sql: &str) {
    let plan: Value = sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {sql}"))
        .fetch_one(db)
        .await
        .expect(sql);
    assert_index_backed(sql, &plan);
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

use foundry_testkit::delivery::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

use crate::{
    actions, count, day, error_metadata, evaluate, gate, mask, new_sprint, new_task, outbox,
    program, rid, sprint, task,
};

fn start(id: &str) -> StartSprintRequest {
    StartSprintRequest {
        id: id.into(),
        etag: String::new(),
    }
}

fn complete(id: &str) -> CompleteSprintRequest {
    CompleteSprintRequest {
        id: id.into(),
        etag: String::new(),
    }
}

#[tokio::test]
async fn a_sprint_is_created_planned_with_every_field_and_reads_back() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "sprints").await;
    let created = app
        .sprints()
        .create_sprint(authed(
            t,
            CreateSprintRequest {
                sprint: Some(Sprint {
                    program_id: p.id.clone(),
                    name: " Sprint 1 ".into(),
                    goal: "checkout\nend to end".into(),
                    start_time: Some(day(0)),
                    end_time: Some(day(14)),
                    capacity: 21.5,
                    capacity_unit: SprintCapacityUnit::Points as i32,
                    status: SprintStatus::Completed as i32, // output only: ignored
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.name, "Sprint 1");
    assert_eq!(created.status, SprintStatus::Planned as i32);
    assert_eq!(created.capacity, 21.5);
    assert_eq!(created.capacity_unit, SprintCapacityUnit::Points as i32);
    assert_eq!(created.start_time, Some(day(0)));
    assert_eq!(created.end_time, Some(day(14)));
    let got = app
        .sprints()
        .get_sprint(authed(
            t,
            GetSprintRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);
    let plain = sprint(&app, t, &p.id, "plain").await;
    assert_eq!(plain.capacity_unit, SprintCapacityUnit::Hours as i32);
}

#[tokio::test]
async fn every_bad_sprint_field_is_reported_by_name() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let r = app
        .sprints()
        .create_sprint(authed(
            t,
            CreateSprintRequest {
                sprint: Some(Sprint {
                    program_id: "p".into(),
                    name: String::new(),
                    start_time: None,
                    end_time: Some(prost_types::Timestamp {
                        seconds: 0,
                        nanos: -1,
                    }),
                    capacity: -1.0,
                    capacity_unit: 7,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&s),
        [
            "sprint.program_id",
            "sprint.name",
            "sprint.start_time",
            "sprint.end_time",
            "sprint.capacity",
            "sprint.capacity_unit"
        ]
    );
    // The end must follow the start.
    let p = program(&app, t, "sprint-dates").await;
    for end in [day(3), day(2)] {
        let mut req = new_sprint(&p.id, "backwards");
        let x = req.sprint.as_mut().unwrap();
        x.start_time = Some(day(3));
        x.end_time = Some(end);
        let r = app.sprints().create_sprint(authed(t, req)).await;
        let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&s), ["sprint.end_time"]);
    }
    let r = app
        .sprints()
        .list_sprints(authed(
            t,
            ListSprintsRequest {
                status: 9,
                ..Default::default()
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["program_id", "status"]);
}

#[tokio::test]
async fn sprints_go_planned_active_completed_one_active_at_a_time() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "sprint-flow").await;
    let other = program(&app, t, "sprint-flow-other").await;
    let s1 = sprint(&app, t, &p.id, "one").await;
    let s2 = sprint(&app, t, &p.id, "two").await;
    let elsewhere = sprint(&app, t, &other.id, "elsewhere").await;

    // Completing a planned sprint is refused.
    let r = app
        .sprints()
        .complete_sprint(authed(t, complete(&s1.id)))
        .await;
    assert_status(r, Code::FailedPrecondition, "SPRINT_NOT_ACTIVE");
    // A stale etag is refused before anything.
    let r = app
        .sprints()
        .start_sprint(authed(
            t,
            StartSprintRequest {
                id: s1.id.clone(),
                etag: "7".into(),
            },
        ))
        .await;
    assert_status(r, Code::Aborted, "ETAG_MISMATCH");
    let active = app
        .sprints()
        .start_sprint(authed(t, start(&s1.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active.status, SprintStatus::Active as i32);
    assert_eq!(active.etag, "2");
    // Starting it again, or a second sprint of the program, is refused; a
    // sprint of another program starts.
    let r = app.sprints().start_sprint(authed(t, start(&s1.id))).await;
    assert_status(r, Code::FailedPrecondition, "SPRINT_NOT_PLANNED");
    let r = app.sprints().start_sprint(authed(t, start(&s2.id))).await;
    let s = assert_status(r, Code::FailedPrecondition, "SPRINT_ALREADY_ACTIVE");
    assert_eq!(error_metadata(&s)["active_sprint_id"], s1.id);
    app.sprints()
        .start_sprint(authed(t, start(&elsewhere.id)))
        .await
        .expect("one active per program, not per org");
    // The same rule holds in the schema, even past the check.
    let mut db = app.admin_db().await;
    let r = sqlx::query("UPDATE delivery.sprints SET status = 'active' WHERE id = $1::uuid")
        .bind(&s2.id)
        .execute(&mut db)
        .await;
    assert!(
        r.unwrap_err()
            .to_string()
            .contains("sprints_one_active_key"),
        "the partial unique index refuses a second active sprint"
    );

    let done = app
        .sprints()
        .complete_sprint(authed(t, complete(&s1.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.status, SprintStatus::Completed as i32);
    // A completed sprint neither starts nor completes again.
    let r = app.sprints().start_sprint(authed(t, start(&s1.id))).await;
    assert_status(r, Code::FailedPrecondition, "SPRINT_NOT_PLANNED");
    let r = app
        .sprints()
        .complete_sprint(authed(t, complete(&s1.id)))
        .await;
    assert_status(r, Code::FailedPrecondition, "SPRINT_NOT_ACTIVE");
    // Now the next one may start.
    app.sprints()
        .start_sprint(authed(t, start(&s2.id)))
        .await
        .expect("no active sprint left");

    // Listing by status, newest first, across pages.
    let list = |status: SprintStatus, page_token: String| ListSprintsRequest {
        program_id: p.id.clone(),
        page_size: 1,
        page_token,
        status: status as i32,
    };
    let first = app
        .sprints()
        .list_sprints(authed(t, list(SprintStatus::Unspecified, String::new())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.sprints[0].id, s2.id);
    let second = app
        .sprints()
        .list_sprints(authed(
            t,
            list(SprintStatus::Unspecified, first.next_page_token),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.sprints[0].id, s1.id);
    assert!(second.next_page_token.is_empty());
    let completed = app
        .sprints()
        .list_sprints(authed(t, list(SprintStatus::Completed, String::new())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        completed
            .sprints
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        [s1.id.as_str()]
    );

    let events = outbox(&app).await;
    let acts: Vec<&str> = actions(&events)
        .into_iter()
        .filter(|a| a.starts_with("delivery.sprint."))
        .collect();
    assert_eq!(
        acts,
        [
            "delivery.sprint.create",
            "delivery.sprint.create",
            "delivery.sprint.create",
            "delivery.sprint.start",
            "delivery.sprint.start",
            "delivery.sprint.complete",
            "delivery.sprint.start",
        ]
    );
    let started = events
        .iter()
        .find(|e| e["action"] == "delivery.sprint.start")
        .unwrap();
    assert_eq!(started["changes"]["status"]["old"], "planned");
    assert_eq!(started["changes"]["status"]["new"], "active");
    assert_eq!(started["project_id"], p.id);
}

#[tokio::test]
async fn update_changes_masked_fields_and_checks_dates() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "sprint-update").await;
    let s = sprint(&app, t, &p.id, "Old").await;
    let update = |etag: &str, paths: &[&str]| UpdateSprintRequest {
        sprint: Some(Sprint {
            id: s.id.clone(),
            name: "New".into(),
            goal: "ship".into(),
            start_time: Some(day(20)),
            end_time: Some(day(30)),
            capacity: 40.0,
            capacity_unit: SprintCapacityUnit::Points as i32,
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    let out = app
        .sprints()
        .update_sprint(authed(
            t,
            update("1", &["name", "goal", "capacity", "capacity_unit"]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (out.name.as_str(), out.goal.as_str(), out.capacity),
        ("New", "ship", 40.0)
    );
    assert_eq!(out.capacity_unit, SprintCapacityUnit::Points as i32);
    assert_eq!(out.start_time, Some(day(0)), "not in the mask");
    assert_eq!(out.etag, "2");
    // Moving only the start past the stored end is refused.
    let r = app
        .sprints()
        .update_sprint(authed(t, update("", &["start_time"])))
        .await;
    let st = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&st), ["sprint.end_time"]);
    let out = app
        .sprints()
        .update_sprint(authed(t, update("2", &["start_time", "end_time"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (out.start_time, out.end_time),
        (Some(day(20)), Some(day(30)))
    );
    let r = app
        .sprints()
        .update_sprint(authed(t, update("", &["status", "program_id"])))
        .await;
    let st = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&st), ["update_mask", "update_mask"]);
    let mut bad = update("", &["capacity"]);
    bad.sprint.as_mut().unwrap().capacity = f64::NAN;
    let r = app.sprints().update_sprint(authed(t, bad)).await;
    let st = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&st), ["sprint.capacity"]);
}

#[tokio::test]
async fn another_organizations_sprints_are_not_found() {
    let app = TestApp::start().await;
    let bobs = program(&app, &app.bob.token, "bobs-sprints").await;
    let s = sprint(&app, &app.bob.token, &bobs.id, "Bob's").await;
    let t = &app.alice.token;
    let r = app
        .sprints()
        .create_sprint(authed(t, new_sprint(&bobs.id, "mine")))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    let r = app
        .sprints()
        .get_sprint(authed(t, GetSprintRequest { id: s.id.clone() }))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_NOT_FOUND");
    let r = app
        .sprints()
        .list_sprints(authed(
            t,
            ListSprintsRequest {
                program_id: bobs.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    let r = app
        .sprints()
        .update_sprint(authed(
            t,
            UpdateSprintRequest {
                sprint: Some(Sprint {
                    id: s.id.clone(),
                    name: "x".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_NOT_FOUND");
    let r = app.sprints().start_sprint(authed(t, start(&s.id))).await;
    assert_status(r, Code::NotFound, "SPRINT_NOT_FOUND");
    let r = app
        .sprints()
        .complete_sprint(authed(t, complete(&s.id)))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_NOT_FOUND");
    let r = app
        .sprints()
        .delete_sprint(authed(
            t,
            DeleteSprintRequest {
                id: s.id.clone(),
                etag: String::new(),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_NOT_FOUND");
    // Nor can a task be planned into it.
    let mine = program(&app, t, "alices").await;
    let mut req = new_task(&mine.id, "sneaky");
    req.task.as_mut().unwrap().sprint_id = s.id.clone();
    let r = app.tasks().create_task(authed(t, req)).await;
    assert_status(r, Code::NotFound, "SPRINT_NOT_FOUND");
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_sprint() {
    let app = TestApp::start().await;
    let p = program(&app, &app.alice.token, "sprint-idem").await;
    let mut req = new_sprint(&p.id, "Once");
    req.request_id = rid();
    let a = app
        .sprints()
        .create_sprint(authed(&app.alice.token, req.clone()))
        .await
        .unwrap()
        .into_inner();
    let b = app
        .sprints()
        .create_sprint(authed(&app.alice.token, req))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    assert_eq!(count(&app, "sprints").await, 1);
}

#[tokio::test]
async fn tasks_are_planned_only_into_sprints_of_their_program() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "planning").await;
    let other = program(&app, t, "planning-other").await;
    let s = sprint(&app, t, &p.id, "mine").await;
    let foreign = sprint(&app, t, &other.id, "theirs").await;
    let missing = uuid::Uuid::now_v7().to_string();
    for (sprint_id, code, reason) in [
        (&foreign.id, Code::FailedPrecondition, "DIFFERENT_PROGRAM"),
        (&missing, Code::NotFound, "SPRINT_NOT_FOUND"),
    ] {
        let mut req = new_task(&p.id, "x");
        req.task.as_mut().unwrap().sprint_id = sprint_id.clone();
        let r = app.tasks().create_task(authed(t, req)).await;
        assert_status(r, code, reason);
    }
    let x = task(&app, t, &p.id, "x").await;
    let plan = |sprint_id: &str| UpdateTaskRequest {
        task: Some(Task {
            id: x.id.clone(),
            sprint_id: sprint_id.into(),
            ..Default::default()
        }),
        update_mask: mask(&["sprint_id"]),
    };
    let r = app.tasks().update_task(authed(t, plan(&foreign.id))).await;
    assert_status(r, Code::FailedPrecondition, "DIFFERENT_PROGRAM");
    let r = app.tasks().update_task(authed(t, plan(&missing))).await;
    assert_status(r, Code::NotFound, "SPRINT_NOT_FOUND");
    let planned = app
        .tasks()
        .update_task(authed(t, plan(&s.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(planned.sprint_id, s.id);
    let listed = app
        .tasks()
        .list_tasks(authed(
            t,
            ListTasksRequest {
                program_id: p.id.clone(),
                sprint_id: s.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .tasks
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        [x.id.as_str()]
    );
    let unplanned = app
        .tasks()
        .update_task(authed(t, plan("")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unplanned.sprint_id, "");
}

#[tokio::test]
async fn deleting_a_sprint_unplans_its_tasks_and_removes_its_gates() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "sprint-delete").await;
    let s = sprint(&app, t, &p.id, "Going").await;
    let keep = sprint(&app, t, &p.id, "Staying").await;
    let mut req = new_task(&p.id, "planned");
    req.task.as_mut().unwrap().sprint_id = s.id.clone();
    let planned = app
        .tasks()
        .create_task(authed(t, req))
        .await
        .unwrap()
        .into_inner();
    let g = gate(&app, t, &s.id, "Done").await;
    evaluate(&app, t, &g.id, true).await;
    evaluate(&app, t, &g.id, false).await;
    let kg = gate(&app, t, &keep.id, "Kept").await;
    evaluate(&app, t, &kg.id, true).await;
    let before = outbox(&app).await.len();
    let r = app
        .sprints()
        .delete_sprint(authed(
            t,
            DeleteSprintRequest {
                id: s.id.clone(),
                etag: "9".into(),
            },
        ))
        .await;
    assert_status(r, Code::Aborted, "ETAG_MISMATCH");
    app.sprints()
        .delete_sprint(authed(
            t,
            DeleteSprintRequest {
                id: s.id.clone(),
                etag: s.etag.clone(),
            },
        ))
        .await
        .unwrap();
    let r = app
        .sprints()
        .get_sprint(authed(t, GetSprintRequest { id: s.id.clone() }))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_NOT_FOUND");
    let task = app
        .tasks()
        .get_task(authed(t, GetTaskRequest { id: planned.id }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(task.sprint_id, "");
    assert_eq!(task.etag, "2");
    assert_eq!(count(&app, "sprints").await, 1);
    assert_eq!(count(&app, "sprint_gates").await, 1);
    assert_eq!(count(&app, "sprint_gate_evaluations").await, 1);
    let events = outbox(&app).await.split_off(before);
    assert_eq!(actions(&events), ["delivery.sprint.delete"]);
    assert_eq!(
        events[0]["changes"]["removed"]["new"],
        serde_json::json!({"sprint_gates": 1, "sprint_gate_evaluations": 2, "tasks_unplanned": 1})
    );
    assert_eq!(events[0]["project_id"], p.id);
}

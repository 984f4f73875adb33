use foundry_testkit::delivery::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

use crate::{
    actions, count, error_metadata, mask, member, new_task, outbox, program, requirement, subtask,
    task, workstream,
};

fn status(id: &str, to: TaskStatus, force: bool) -> ChangeTaskStatusRequest {
    ChangeTaskStatusRequest {
        id: id.into(),
        status: to as i32,
        force,
        etag: String::new(),
    }
}

fn user() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[tokio::test]
async fn a_task_is_created_with_every_field_and_reads_back() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "tasks").await;
    let w = workstream(&app, t, &p.id, "w").await;
    let r = requirement(&app, t, &w.id, "r").await;
    let (u1, u2) = (member(&app).await, member(&app).await);
    let sprint = crate::sprint(&app, t, &p.id, "Sprint 1").await.id;
    let due = prost_types::Timestamp {
        seconds: 1_900_000_000,
        nanos: 0,
    };
    let created = app
        .tasks()
        .create_task(authed(
            t,
            CreateTaskRequest {
                task: Some(Task {
                    program_id: p.id.clone(),
                    requirement_id: r.id.clone(),
                    title: "  Wire Stripe  ".into(),
                    description: "keys\nwebhooks".into(),
                    status: TaskStatus::Todo as i32,
                    assignee_ids: vec![u1.clone(), u2.clone(), u1.clone()],
                    estimate_hours: Some(6.5),
                    due_time: Some(due),
                    labels: vec!["payments".into(), "backend".into(), "payments".into()],
                    sprint_id: sprint.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.title, "Wire Stripe");
    assert_eq!(created.status, TaskStatus::Todo as i32);
    assert_eq!(
        created.assignee_ids,
        [u1, u2],
        "repeats dropped, order kept"
    );
    assert_eq!(created.labels, ["payments", "backend"]);
    assert_eq!(created.estimate_hours, Some(6.5));
    assert_eq!(created.due_time, Some(due));
    assert_eq!(created.sprint_id, sprint);
    assert_eq!(created.requirement_id, r.id);
    assert_eq!(count(&app, "task_assignees").await, 2);
    let got = app
        .tasks()
        .get_task(authed(
            t,
            GetTaskRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);
    let plain = task(&app, t, &p.id, "plain").await;
    assert_eq!(plain.status, TaskStatus::Backlog as i32);
    assert_eq!(plain.estimate_hours, None);
}

#[tokio::test]
async fn every_bad_task_field_is_reported_by_name() {
    let app = TestApp::start().await;
    let r = app
        .tasks()
        .create_task(authed(
            &app.alice.token,
            CreateTaskRequest {
                task: Some(Task {
                    program_id: String::new(),
                    requirement_id: "nope".into(),
                    title: "t".repeat(501),
                    status: TaskStatus::Done as i32,
                    assignee_ids: vec![user(), "bob".into()],
                    estimate_hours: Some(-1.0),
                    due_time: Some(prost_types::Timestamp {
                        seconds: 0,
                        nanos: -5,
                    }),
                    labels: vec![String::new()],
                    sprint_id: "sprint 4".into(),
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
            "task.program_id",
            "task.requirement_id",
            "task.title",
            "task.status",
            "task.assignee_ids[1]",
            "task.estimate_hours",
            "task.due_time",
            "task.labels[0]",
            "task.sprint_id"
        ]
    );
}

#[tokio::test]
async fn tasks_of_another_organization_or_program_are_refused() {
    let app = TestApp::start().await;
    let bt = &app.bob.token;
    let bp = program(&app, bt, "bobs").await;
    let bw = workstream(&app, bt, &bp.id, "w").await;
    let br = requirement(&app, bt, &bw.id, "r").await;
    let btask = task(&app, bt, &bp.id, "bob's").await;
    let t = &app.alice.token;
    let p = program(&app, t, "mine").await;
    let q = program(&app, t, "mine-too").await;
    let qw = workstream(&app, t, &q.id, "w").await;
    let qr = requirement(&app, t, &qw.id, "other program").await;

    let r = app
        .tasks()
        .create_task(authed(t, new_task(&bp.id, "x")))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    let mut req = new_task(&p.id, "x");
    req.task.as_mut().unwrap().requirement_id = br.id.clone();
    let r = app.tasks().create_task(authed(t, req)).await;
    assert_status(r, Code::NotFound, "REQUIREMENT_NOT_FOUND");
    let mut req = new_task(&p.id, "x");
    req.task.as_mut().unwrap().requirement_id = qr.id.clone();
    let r = app.tasks().create_task(authed(t, req)).await;
    assert_status(r, Code::FailedPrecondition, "DIFFERENT_PROGRAM");

    let id = btask.id.clone();
    let r = app
        .tasks()
        .change_task_status(authed(t, status(&id, TaskStatus::Todo, false)))
        .await;
    assert_status(r, Code::NotFound, "TASK_NOT_FOUND");
    let r = app
        .tasks()
        .list_tasks(authed(
            t,
            ListTasksRequest {
                program_id: bp.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
}

async fn list_ids(app: &TestApp, mut req: ListTasksRequest) -> (Vec<String>, usize) {
    let (mut ids, mut pages) = (Vec::new(), 0);
    loop {
        let page = app
            .tasks()
            .list_tasks(authed(&app.alice.token, req.clone()))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        ids.extend(page.tasks.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            return (ids, pages);
        }
        req.page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn tasks_list_newest_first_by_status_assignee_requirement_and_sprint() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "task-list").await;
    let w = workstream(&app, t, &p.id, "w").await;
    let r = requirement(&app, t, &w.id, "r").await;
    let (ann, ben) = (member(&app).await, member(&app).await);
    let sprint = crate::sprint(&app, t, &p.id, "Sprint 1").await.id;
    let mut made = Vec::new();
    for i in 0..9 {
        let mut req = new_task(&p.id, &format!("t{i}"));
        let x = req.task.as_mut().unwrap();
        x.assignee_ids = match i % 3 {
            0 => vec![ann.clone()],
            1 => vec![ann.clone(), ben.clone()],
            _ => vec![],
        };
        if i % 2 == 0 {
            x.requirement_id = r.id.clone();
        }
        if i >= 6 {
            x.sprint_id = sprint.clone();
        }
        if i % 4 == 0 {
            x.status = TaskStatus::Todo as i32;
        }
        made.push(
            app.tasks()
                .create_task(authed(t, req))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    // Noise: another program of the org and another org.
    let q = program(&app, t, "tl-noise").await;
    let mut noise = new_task(&q.id, "noise");
    noise.task.as_mut().unwrap().assignee_ids = vec![ann.clone()];
    app.tasks().create_task(authed(t, noise)).await.unwrap();
    let bp = program(&app, &app.bob.token, "tl-bob").await;
    task(&app, &app.bob.token, &bp.id, "bob").await;

    let newest = |f: &dyn Fn(usize, &Task) -> bool| {
        made.iter()
            .enumerate()
            .filter(|(i, x)| f(*i, x))
            .map(|(_, x)| x.id.clone())
            .rev()
            .collect::<Vec<_>>()
    };
    let base = ListTasksRequest {
        program_id: p.id.clone(),
        page_size: 2,
        ..Default::default()
    };
    assert_eq!(
        list_ids(&app, base.clone()).await,
        (newest(&|_, _| true), 5)
    );
    let by_assignee = ListTasksRequest {
        assignee_id: ann.clone(),
        ..base.clone()
    };
    assert_eq!(
        list_ids(&app, by_assignee).await.0,
        newest(&|i, _| i % 3 != 2)
    );
    let by_ben_and_requirement = ListTasksRequest {
        assignee_id: ben.clone(),
        requirement_id: r.id.clone(),
        ..base.clone()
    };
    assert_eq!(
        list_ids(&app, by_ben_and_requirement).await.0,
        newest(&|i, _| i % 3 == 1 && i % 2 == 0)
    );
    let by_status = ListTasksRequest {
        status: TaskStatus::Todo as i32,
        ..base.clone()
    };
    assert_eq!(
        list_ids(&app, by_status).await.0,
        newest(&|i, _| i % 4 == 0)
    );
    let by_sprint_and_status = ListTasksRequest {
        sprint_id: sprint.clone(),
        status: TaskStatus::Backlog as i32,
        ..base.clone()
    };
    assert_eq!(
        list_ids(&app, by_sprint_and_status).await.0,
        newest(&|i, _| i >= 6 && i % 4 != 0)
    );
    let by_requirement = ListTasksRequest {
        requirement_id: r.id.clone(),
        ..base.clone()
    };
    assert_eq!(
        list_ids(&app, by_requirement).await.0,
        newest(&|i, _| i % 2 == 0)
    );

    // Tokens are bound to their filters; bad filter values name the field.
    let first = app
        .tasks()
        .list_tasks(authed(t, base.clone()))
        .await
        .unwrap()
        .into_inner();
    let r2 = app
        .tasks()
        .list_tasks(authed(
            t,
            ListTasksRequest {
                assignee_id: ann.clone(),
                page_token: first.next_page_token,
                ..base.clone()
            },
        ))
        .await;
    let s = assert_status(r2, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["page_token"]);
    let r2 = app
        .tasks()
        .list_tasks(authed(
            t,
            ListTasksRequest {
                program_id: p.id.clone(),
                status: 77,
                assignee_id: "ann".into(),
                ..Default::default()
            },
        ))
        .await;
    let s = assert_status(r2, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["status", "assignee_id"]);
}

#[tokio::test]
async fn update_changes_masked_fields_and_refuses_status() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "task-upd").await;
    let w = workstream(&app, t, &p.id, "w").await;
    let r = requirement(&app, t, &w.id, "r").await;
    let (ann, ben) = (member(&app).await, member(&app).await);
    let mut req = new_task(&p.id, "t");
    let x = req.task.as_mut().unwrap();
    x.assignee_ids = vec![ann.clone()];
    x.estimate_hours = Some(3.0);
    let made = app
        .tasks()
        .create_task(authed(t, req))
        .await
        .unwrap()
        .into_inner();
    let update = |etag: &str, paths: &[&str]| UpdateTaskRequest {
        task: Some(Task {
            id: made.id.clone(),
            requirement_id: r.id.clone(),
            title: "Renamed".into(),
            status: TaskStatus::Done as i32,
            assignee_ids: vec![ben.clone()],
            estimate_hours: None,
            labels: vec!["x".into()],
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    let out = app
        .tasks()
        .update_task(authed(
            t,
            update(
                "1",
                &[
                    "requirement_id",
                    "title",
                    "assignee_ids",
                    "estimate_hours",
                    "labels",
                ],
            ),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.requirement_id, r.id);
    assert_eq!(out.title, "Renamed");
    assert_eq!(out.assignee_ids, std::slice::from_ref(&ben));
    assert_eq!(out.estimate_hours, None, "cleared");
    assert_eq!(out.labels, ["x"]);
    assert_eq!(
        out.status,
        TaskStatus::Backlog as i32,
        "status not written here"
    );
    assert_eq!(out.etag, "2");
    // The assignee index follows.
    let listed = app
        .tasks()
        .list_tasks(authed(
            t,
            ListTasksRequest {
                program_id: p.id.clone(),
                assignee_id: ann.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.tasks.is_empty());

    let r2 = app
        .tasks()
        .update_task(authed(t, update("", &["status", "title"])))
        .await;
    let s = assert_status(r2, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["update_mask"]);
    assert!(s.message().contains("ChangeTaskStatus"), "{}", s.message());
    // Detaching from the requirement: an empty id.
    let mut detach = update("", &["requirement_id"]);
    detach.task.as_mut().unwrap().requirement_id = String::new();
    let out = app
        .tasks()
        .update_task(authed(t, detach))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.requirement_id, "");
    let e = outbox(&app)
        .await
        .into_iter()
        .filter(|e| e["action"] == "delivery.task.update")
        .collect::<Vec<_>>();
    assert_eq!(e.len(), 2);
    assert_eq!(
        e[0]["changes"]["assignee_ids"]["old"],
        serde_json::json!([ann])
    );
    assert_eq!(
        e[1]["changes"]["requirement_id"]["new"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn the_status_workflow_refuses_moves_it_does_not_allow() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "flow").await;
    let x = task(&app, t, &p.id, "flow").await;
    let r = app
        .tasks()
        .change_task_status(authed(t, status(&x.id, TaskStatus::Done, false)))
        .await;
    let s = assert_status(r, Code::FailedPrecondition, "TASK_TRANSITION_NOT_ALLOWED");
    assert!(s.message().contains("backlog"), "{}", s.message());
    let r = app
        .tasks()
        .change_task_status(authed(t, status(&x.id, TaskStatus::Done, true)))
        .await;
    assert_status(r, Code::FailedPrecondition, "TASK_TRANSITION_NOT_ALLOWED");
    for to in [
        TaskStatus::Todo,
        TaskStatus::InProgress,
        TaskStatus::Blocked,
        TaskStatus::InProgress,
        TaskStatus::InReview,
    ] {
        let out = app
            .tasks()
            .change_task_status(authed(t, status(&x.id, to, false)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(out.status, to as i32);
    }
    let mut stale = status(&x.id, TaskStatus::Done, false);
    stale.etag = "1".into();
    let r = app.tasks().change_task_status(authed(t, stale)).await;
    assert_status(r, Code::Aborted, "ETAG_MISMATCH");
    let r = app
        .tasks()
        .change_task_status(authed(t, status(&x.id, TaskStatus::Unspecified, false)))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["status"]);
    let done = app
        .tasks()
        .change_task_status(authed(t, status(&x.id, TaskStatus::Done, false)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.status, TaskStatus::Done as i32);
    let moves: Vec<_> = outbox(&app)
        .await
        .into_iter()
        .filter(|e| e["action"] == "delivery.task.change_status")
        .map(|e| e["changes"]["status"]["new"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        moves,
        [
            "todo",
            "in_progress",
            "blocked",
            "in_progress",
            "in_review",
            "done"
        ]
    );
}

#[tokio::test]
async fn a_task_with_an_open_subtask_is_done_only_when_forced() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "open-subtasks").await;
    let x = task(&app, t, &p.id, "parent").await;
    let s1 = subtask(&app, t, &x.id, "one").await;
    let s2 = subtask(&app, t, &x.id, "two").await;
    for to in [TaskStatus::InProgress, TaskStatus::InReview] {
        app.tasks()
            .change_task_status(authed(t, status(&x.id, to, false)))
            .await
            .unwrap();
    }
    let r = app
        .tasks()
        .change_task_status(authed(t, status(&x.id, TaskStatus::Done, false)))
        .await;
    let s = assert_status(r, Code::FailedPrecondition, "SUBTASKS_OPEN");
    assert_eq!(error_metadata(&s)["open_subtasks"], "2");
    // Closing one is not enough; closing both is.
    let close = |id: &str| UpdateSubtaskRequest {
        subtask: Some(Subtask {
            id: id.into(),
            status: SubtaskStatus::Done as i32,
            ..Default::default()
        }),
        update_mask: crate::mask(&["status"]),
    };
    app.subtasks()
        .update_subtask(authed(t, close(&s1.id)))
        .await
        .unwrap();
    let r = app
        .tasks()
        .change_task_status(authed(t, status(&x.id, TaskStatus::Done, false)))
        .await;
    let s = assert_status(r, Code::FailedPrecondition, "SUBTASKS_OPEN");
    assert_eq!(error_metadata(&s)["open_subtasks"], "1");
    let forced = app
        .tasks()
        .change_task_status(authed(t, status(&x.id, TaskStatus::Done, true)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(forced.status, TaskStatus::Done as i32);
    let e = outbox(&app)
        .await
        .into_iter()
        .rfind(|e| e["action"] == "delivery.task.change_status")
        .unwrap();
    assert_eq!(e["changes"]["forced"]["new"], true);
    assert_eq!(e["changes"]["open_subtasks"]["new"], 1);
    assert_eq!(e["project_id"], p.id);

    // Reopened, with every subtask closed, DONE needs no force.
    app.tasks()
        .change_task_status(authed(t, status(&x.id, TaskStatus::InProgress, false)))
        .await
        .unwrap();
    app.subtasks()
        .update_subtask(authed(t, close(&s2.id)))
        .await
        .unwrap();
    app.tasks()
        .change_task_status(authed(t, status(&x.id, TaskStatus::Done, false)))
        .await
        .unwrap();
    let last = outbox(&app)
        .await
        .into_iter()
        .rfind(|e| e["action"] == "delivery.task.change_status")
        .unwrap();
    assert!(last["changes"].get("forced").is_none());
}

#[tokio::test]
async fn deleting_a_task_removes_its_subtasks_with_one_event() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "task-del").await;
    let mut req = new_task(&p.id, "doomed");
    req.task.as_mut().unwrap().assignee_ids = vec![member(&app).await];
    let x = app
        .tasks()
        .create_task(authed(t, req))
        .await
        .unwrap()
        .into_inner();
    let kept = task(&app, t, &p.id, "kept").await;
    subtask(&app, t, &x.id, "a").await;
    subtask(&app, t, &x.id, "b").await;
    subtask(&app, t, &kept.id, "c").await;
    let before = outbox(&app).await.len();
    let r = app
        .tasks()
        .delete_task(authed(
            t,
            DeleteTaskRequest {
                id: x.id.clone(),
                etag: "5".into(),
            },
        ))
        .await;
    assert_status(r, Code::Aborted, "ETAG_MISMATCH");
    app.tasks()
        .delete_task(authed(
            t,
            DeleteTaskRequest {
                id: x.id.clone(),
                etag: x.etag.clone(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(count(&app, "subtasks").await, 1);
    assert_eq!(count(&app, "task_assignees").await, 0);
    let events = outbox(&app).await.split_off(before);
    assert_eq!(actions(&events), ["delivery.task.delete"]);
    assert_eq!(
        events[0]["changes"]["removed"]["new"],
        serde_json::json!({"subtasks": 2})
    );
    let r = app
        .tasks()
        .get_task(authed(t, GetTaskRequest { id: x.id }))
        .await;
    assert_status(r, Code::NotFound, "TASK_NOT_FOUND");
}

/// A list of a parent's children reads the parent with them, in one
/// statement (`store::under`), and still refuses, as the parent's
/// `NOT_FOUND`, a parent missing, of another organization or outside a
/// bound caller's project, whatever the filters (each set its own
/// statement); a visible parent without children is an empty last page.
/// Each list read that way is asked once under a bound key.
#[tokio::test]
async fn child_lists_refuse_a_parent_not_seen_and_answer_an_empty_one() {
    use foundry_testkit::identity as id;
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let mine = program(&app, t, "seen").await;
    let other = program(&app, t, "unseen").await;
    let empty = program(&app, t, "empty").await;
    let mine_task = task(&app, t, &mine.id, "mine").await;
    let hidden = task(&app, t, &other.id, "hidden").await;
    subtask(&app, t, &hidden.id, "hidden step").await;
    let hw = workstream(&app, t, &other.id, "hidden").await;
    let (hr, hr2) = (
        requirement(&app, t, &hw.id, "hidden").await,
        requirement(&app, t, &hw.id, "hidden too").await,
    );
    crate::depend(&app, t, &hr.id, &hr2.id).await;
    crate::feature(&app, t, &other.id, "hidden", "").await;
    let bp = program(&app, &app.bob.token, "bobs").await;
    task(&app, &app.bob.token, &bp.id, "bob's").await;
    let key = id::ApiKey {
        kind: id::ApiKeyKind::Agent as i32,
        display_name: "agent".into(),
        scopes: vec!["delivery.*.*".into()],
        project_id: mine.id.clone(),
        ..Default::default()
    };
    let (_, bound) = app.key_and_token(t, key).await;
    let missing = uuid::Uuid::now_v7().to_string();
    let someone = user();

    let tasks = |token: &str, program_id: &str, assignee_id: &str| {
        let req = ListTasksRequest {
            program_id: program_id.into(),
            assignee_id: assignee_id.into(),
            ..Default::default()
        };
        let mut client = app.tasks();
        let req = authed(token, req);
        async move { client.list_tasks(req).await }
    };
    for (token, program_id) in [(t, &bp.id), (t, &missing), (&bound, &other.id)] {
        for assignee in ["", &someone] {
            let r = tasks(token, program_id, assignee).await;
            assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
        }
    }
    let seen = tasks(&bound, &mine.id, "").await.unwrap().into_inner();
    let ids: Vec<_> = seen.tasks.iter().map(|x| &x.id).collect();
    assert_eq!(ids, [&mine_task.id]);
    for assignee in ["", &someone] {
        let page = tasks(t, &empty.id, assignee).await.unwrap().into_inner();
        assert!(page.tasks.is_empty(), "{page:?}");
        assert!(page.next_page_token.is_empty(), "{page:?}");
    }

    // The other lists read with their parent.
    let (mut ws, mut st, mut rq) = (app.workstreams(), app.subtasks(), app.requirements());
    let of_program = |program_id: &str| ListWorkstreamsRequest {
        program_id: program_id.into(),
        ..Default::default()
    };
    let of_task = |task_id: &str| ListSubtasksRequest {
        task_id: task_id.into(),
        ..Default::default()
    };
    let r = ws
        .list_workstreams(authed(&bound, of_program(&other.id)))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    let r = st.list_subtasks(authed(&bound, of_task(&hidden.id))).await;
    assert_status(r, Code::NotFound, "TASK_NOT_FOUND");
    let features = ListFeaturesRequest {
        program_id: other.id.clone(),
        ..Default::default()
    };
    let r = app.features().list_features(authed(&bound, features)).await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    let deps = ListRequirementDependenciesRequest {
        requirement_id: hr.id.clone(),
        ..Default::default()
    };
    let r = rq.list_requirement_dependencies(authed(&bound, deps)).await;
    assert_status(r, Code::NotFound, "REQUIREMENT_NOT_FOUND");
    for (program_id, workstream_id, reason) in [
        (&other.id[..], "", "PROGRAM_NOT_FOUND"),
        ("", &hw.id, "WORKSTREAM_NOT_FOUND"),
        (&mine.id, &hw.id, "WORKSTREAM_NOT_FOUND"),
    ] {
        let req = ListRequirementsRequest {
            program_id: program_id.into(),
            workstream_id: workstream_id.into(),
            ..Default::default()
        };
        let r = rq.list_requirements(authed(&bound, req)).await;
        assert_status(r, Code::NotFound, reason);
    }

    // A visible parent without children: an empty last page, in position
    // order too.
    let page = ws.list_workstreams(authed(t, of_program(&empty.id))).await;
    let page = page.unwrap().into_inner();
    assert!(page.workstreams.is_empty() && page.next_page_token.is_empty());
    let page = st
        .list_subtasks(authed(&bound, of_task(&mine_task.id)))
        .await;
    let page = page.unwrap().into_inner();
    assert!(page.subtasks.is_empty() && page.next_page_token.is_empty());
    // A workstream named with a program not its own: the program is
    // checked too (missing: not found), and then nothing matches.
    let unrelated = |program_id: &str| ListRequirementsRequest {
        program_id: program_id.into(),
        workstream_id: hw.id.clone(),
        ..Default::default()
    };
    let r = rq.list_requirements(authed(t, unrelated(&missing))).await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    let page = rq.list_requirements(authed(t, unrelated(&empty.id))).await;
    let page = page.unwrap().into_inner();
    assert!(page.requirements.is_empty() && page.next_page_token.is_empty());
}

/// The assignee index (`task_assignees`) of `task`, sorted.
async fn indexed(app: &TestApp, task: &str) -> Vec<String> {
    let mut db = app.admin_db().await;
    sqlx::query_scalar(
        "SELECT user_id::text FROM delivery.task_assignees WHERE task_id = $1::uuid ORDER BY 1",
    )
    .bind(task)
    .fetch_all(&mut db)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_assignee_index_follows_creates_and_every_change_of_assignees() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "task-index").await;
    let (ann, ben, cat) = (member(&app).await, member(&app).await, member(&app).await);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let create = |users: Vec<String>| {
        let mut req = new_task(&p.id, "t");
        req.task.as_mut().unwrap().assignee_ids = users;
        req
    };
    let none = app.tasks().create_task(authed(t, create(vec![]))).await;
    let none = none.unwrap().into_inner();
    assert_eq!(indexed(&app, &none.id).await, Vec::<String>::new());
    let two = app
        .tasks()
        .create_task(authed(t, create(vec![ann.clone(), ben.clone()])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        indexed(&app, &two.id).await,
        sorted(vec![ann.clone(), ben.clone()])
    );

    let update = |id: &str, users: &[&String], paths: &[&str]| UpdateTaskRequest {
        task: Some(Task {
            id: id.into(),
            title: "Renamed".into(),
            assignee_ids: users.iter().map(|u| (*u).clone()).collect(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    // Each step: the update and the index after it.
    let steps: [(&[&String], &[&str], Vec<String>); 6] = [
        // A title alone leaves the index.
        (&[], &["title"], sorted(vec![ann.clone(), ben.clone()])),
        // The same users in another order: the same index.
        (
            &[&ben, &ann],
            &["assignee_ids"],
            sorted(vec![ann.clone(), ben.clone()]),
        ),
        // One leaves, one comes.
        (
            &[&ben, &cat],
            &["assignee_ids"],
            sorted(vec![ben.clone(), cat.clone()]),
        ),
        // One more.
        (
            &[&ben, &cat, &ann],
            &["assignee_ids", "title"],
            sorted(vec![ann.clone(), ben.clone(), cat.clone()]),
        ),
        // All leave.
        (&[], &["assignee_ids"], vec![]),
        // Back again.
        (&[&cat], &["assignee_ids"], vec![cat.clone()]),
    ];
    for (i, (users, paths, index)) in steps.into_iter().enumerate() {
        let out = app
            .tasks()
            .update_task(authed(t, update(&two.id, users, paths)))
            .await
            .unwrap()
            .into_inner();
        if paths.contains(&"assignee_ids") {
            let listed: Vec<&String> = out.assignee_ids.iter().collect();
            assert_eq!(
                listed, users,
                "step {i}: the task lists its assignees as given"
            );
        }
        assert_eq!(indexed(&app, &two.id).await, index, "step {i}");
    }
    // The unassigned task was never in the index; assigned, it is.
    app.tasks()
        .update_task(authed(t, update(&none.id, &[&ann], &["assignee_ids"])))
        .await
        .unwrap();
    assert_eq!(indexed(&app, &none.id).await, vec![ann.clone()]);
    assert_eq!(count(&app, "task_assignees").await, 2);
}

/// A task's program is checked before anything else of it, and by the
/// insert itself when nothing else is: a missing program, another
/// organization's or one a bound credential does not see is what the
/// create is refused for, and nothing is written.
#[tokio::test]
async fn a_create_is_refused_for_its_program_first() {
    use foundry_testkit::identity::{ApiKey, ApiKeyKind};
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "first").await;
    let q = program(&app, t, "second").await;
    let qw = workstream(&app, t, &q.id, "w").await;
    let qr = requirement(&app, t, &qw.id, "r").await;
    let bp = program(&app, &app.bob.token, "bobs").await;
    let written = || async { (count(&app, "tasks").await, outbox(&app).await.len()) };
    let before = written().await;
    let missing = user();
    for program_id in [&missing, &bp.id] {
        // Nothing else to check: the insert finds no program.
        let r = app
            .tasks()
            .create_task(authed(t, new_task(program_id, "x")))
            .await;
        assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
        // A requirement of another program, a user who is no member: the
        // program still comes first.
        let mut req = new_task(program_id, "x");
        req.task.as_mut().unwrap().requirement_id = qr.id.clone();
        let r = app.tasks().create_task(authed(t, req)).await;
        assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
        let mut req = new_task(program_id, "x");
        req.task.as_mut().unwrap().assignee_ids = vec![user()];
        let r = app.tasks().create_task(authed(t, req)).await;
        assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    }
    // Refused with a request id, the id stays free.
    let key = crate::rid();
    let mut req = new_task(&missing, "x");
    req.request_id = key.clone();
    let r = app.tasks().create_task(authed(t, req)).await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    assert_eq!(written().await, before, "nothing written");
    let mut req = new_task(&p.id, "x");
    req.request_id = key;
    app.tasks()
        .create_task(authed(t, req))
        .await
        .expect("the id is free");

    // A credential bound to p sees q no more than bob's program.
    let bound = ApiKey {
        kind: ApiKeyKind::ApiKey as i32,
        display_name: "bound".into(),
        scopes: vec!["delivery.tasks.read".into(), "delivery.tasks.write".into()],
        project_id: p.id.clone(),
        ..Default::default()
    };
    let (_, bound) = app.key_and_token(t, bound).await;
    let r = app
        .tasks()
        .create_task(authed(&bound, new_task(&q.id, "x")))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    let made = app
        .tasks()
        .create_task(authed(&bound, new_task(&p.id, "x")))
        .await;
    assert_eq!(made.expect("its own program").into_inner().program_id, p.id);
}

/// The insert that finds a task's program holds it (`FOR KEY SHARE`), as
/// the statement of its own did: a create waits for a delete of the
/// program that holds it, and is then refused.
#[tokio::test]
async fn a_create_waits_for_its_programs_delete_and_is_refused_after() {
    use sqlx::Connection;
    let app = TestApp::start().await;
    let t = app.alice.token.clone();
    let p = program(&app, &t, "going").await;
    let mut db = app.admin_db().await;
    let mut deleting = db.begin().await.unwrap();
    sqlx::query("SELECT FROM delivery.programs WHERE id = $1::uuid FOR UPDATE")
        .bind(&p.id)
        .execute(&mut *deleting)
        .await
        .unwrap();
    let mut tasks = app.tasks();
    let req = new_task(&p.id, "x");
    let create = tokio::spawn(async move { tasks.create_task(authed(&t, req)).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!create.is_finished(), "the create waits for the program");
    sqlx::query("DELETE FROM delivery.programs WHERE id = $1::uuid")
        .bind(&p.id)
        .execute(&mut *deleting)
        .await
        .unwrap();
    deleting.commit().await.unwrap();
    assert_status(create.await.unwrap(), Code::NotFound, "PROGRAM_NOT_FOUND");
    assert_eq!(count(&app, "tasks").await, 0);
}

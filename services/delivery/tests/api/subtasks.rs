use foundry_testkit::delivery::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

use crate::{actions, count, mask, new_subtask, outbox, program, rid, subtask, task};

async fn list_titles(app: &TestApp, task_id: &str, size: i32) -> (Vec<String>, usize) {
    let mut req = ListSubtasksRequest {
        task_id: task_id.into(),
        page_size: size,
        page_token: String::new(),
    };
    let (mut out, mut pages) = (Vec::new(), 0);
    loop {
        let page = app
            .subtasks()
            .list_subtasks(authed(&app.alice.token, req.clone()))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        out.extend(page.subtasks.into_iter().map(|s| s.title));
        if page.next_page_token.is_empty() {
            return (out, pages);
        }
        req.page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn subtasks_append_in_order_list_by_position_and_reorder() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "subtasks").await;
    let x = task(&app, t, &p.id, "parent").await;
    let other = task(&app, t, &p.id, "other").await;
    let mut made = Vec::new();
    for title in ["a", "b", "c", "d", "e"] {
        made.push(subtask(&app, t, &x.id, title).await);
    }
    subtask(&app, t, &other.id, "noise").await;
    assert_eq!(
        made.iter().map(|s| s.position).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(made[0].status, SubtaskStatus::Todo as i32);
    assert_eq!(made[0].program_id, p.id);
    assert_eq!(
        list_titles(&app, &x.id, 2).await,
        (
            vec!["a".into(), "b".into(), "c".into(), "d".into(), "e".into()],
            3
        )
    );
    let got = app
        .subtasks()
        .get_subtask(authed(
            t,
            GetSubtaskRequest {
                id: made[2].id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, made[2]);

    // Move "a" between "c" and "d"; insert "x" explicitly at the front.
    app.subtasks()
        .update_subtask(authed(
            t,
            UpdateSubtaskRequest {
                subtask: Some(Subtask {
                    id: made[0].id.clone(),
                    position: 3,
                    etag: "1".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["position"]),
            },
        ))
        .await
        .unwrap();
    let mut front = new_subtask(&x.id, "x");
    front.subtask.as_mut().unwrap().position = 1;
    app.subtasks()
        .create_subtask(authed(t, front))
        .await
        .unwrap();
    assert_eq!(
        list_titles(&app, &x.id, 4).await.0,
        ["x", "b", "a", "c", "d", "e"],
        "by position, ties by creation"
    );
}

#[tokio::test]
async fn every_bad_subtask_field_is_reported_by_name() {
    let app = TestApp::start().await;
    let r = app
        .subtasks()
        .create_subtask(authed(
            &app.alice.token,
            CreateSubtaskRequest {
                subtask: Some(Subtask {
                    task_id: "t".into(),
                    title: String::new(),
                    status: 9,
                    position: 1_000_001,
                    ..Default::default()
                }),
                request_id: "r".into(),
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&s),
        [
            "subtask.task_id",
            "subtask.title",
            "subtask.status",
            "subtask.position",
            "request_id"
        ]
    );
    let r = app
        .subtasks()
        .list_subtasks(authed(&app.alice.token, ListSubtasksRequest::default()))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["task_id"]);
}

#[tokio::test]
async fn another_organizations_subtasks_are_not_found() {
    let app = TestApp::start().await;
    let bt = &app.bob.token;
    let bp = program(&app, bt, "bobs").await;
    let bx = task(&app, bt, &bp.id, "bob's").await;
    let bs = subtask(&app, bt, &bx.id, "bob's").await;
    let t = &app.alice.token;
    let r = app
        .subtasks()
        .create_subtask(authed(t, new_subtask(&bx.id, "mine")))
        .await;
    assert_status(r, Code::NotFound, "TASK_NOT_FOUND");
    let r = app
        .subtasks()
        .list_subtasks(authed(
            t,
            ListSubtasksRequest {
                task_id: bx.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "TASK_NOT_FOUND");
    let r = app
        .subtasks()
        .get_subtask(authed(t, GetSubtaskRequest { id: bs.id.clone() }))
        .await;
    assert_status(r, Code::NotFound, "SUBTASK_NOT_FOUND");
    let r = app
        .subtasks()
        .update_subtask(authed(
            t,
            UpdateSubtaskRequest {
                subtask: Some(Subtask {
                    id: bs.id.clone(),
                    title: "x".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["title"]),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "SUBTASK_NOT_FOUND");
    let r = app
        .subtasks()
        .delete_subtask(authed(
            t,
            DeleteSubtaskRequest {
                id: bs.id.clone(),
                etag: String::new(),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "SUBTASK_NOT_FOUND");
}

#[tokio::test]
async fn update_changes_masked_fields_and_refuses_output_only_paths() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "stu").await;
    let x = task(&app, t, &p.id, "parent").await;
    let s = subtask(&app, t, &x.id, "old").await;
    let update = |etag: &str, paths: &[&str]| UpdateSubtaskRequest {
        subtask: Some(Subtask {
            id: s.id.clone(),
            title: "new".into(),
            description: "notes".into(),
            status: SubtaskStatus::InProgress as i32,
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    let out = app
        .subtasks()
        .update_subtask(authed(t, update("1", &["title", "status"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (out.title.as_str(), out.description.as_str(), out.status),
        ("new", "", SubtaskStatus::InProgress as i32)
    );
    assert_eq!(out.etag, "2");
    let r = app
        .subtasks()
        .update_subtask(authed(t, update("", &["task_id"])))
        .await;
    let st = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&st), ["update_mask"]);
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_subtask_and_delete_is_recorded() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "sti").await;
    let x = task(&app, t, &p.id, "parent").await;
    let mut req = new_subtask(&x.id, "once");
    req.request_id = rid();
    let a = app
        .subtasks()
        .create_subtask(authed(t, req.clone()))
        .await
        .unwrap()
        .into_inner();
    let b = app
        .subtasks()
        .create_subtask(authed(t, req))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    assert_eq!(count(&app, "subtasks").await, 1);
    app.subtasks()
        .delete_subtask(authed(
            t,
            DeleteSubtaskRequest {
                id: a.id.clone(),
                etag: "1".into(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(count(&app, "subtasks").await, 0);
    let rows = outbox(&app).await;
    assert_eq!(
        actions(&rows)[actions(&rows).len() - 2..],
        ["delivery.subtask.create", "delivery.subtask.delete"]
    );
    let r = app
        .subtasks()
        .get_subtask(authed(t, GetSubtaskRequest { id: a.id }))
        .await;
    assert_status(r, Code::NotFound, "SUBTASK_NOT_FOUND");
}

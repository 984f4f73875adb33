use foundry_testkit::delivery::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

use crate::{
    actions, count, depend, mask, new_workstream, outbox, program, requirement, task, workstream,
};

async fn list_all(
    app: &TestApp,
    token: &str,
    program_id: &str,
    size: i32,
) -> (Vec<Workstream>, usize) {
    let (mut out, mut token_, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = app
            .workstreams()
            .list_workstreams(authed(
                token,
                ListWorkstreamsRequest {
                    program_id: program_id.into(),
                    page_size: size,
                    page_token: token_.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        out.extend(page.workstreams);
        if page.next_page_token.is_empty() {
            return (out, pages);
        }
        token_ = page.next_page_token;
    }
}

#[tokio::test]
async fn workstreams_append_in_order_and_list_by_position_across_pages() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "ws-order").await;
    let mut made = Vec::new();
    for name in ["one", "two", "three", "four"] {
        made.push(workstream(&app, t, &p.id, name).await);
    }
    assert_eq!(
        made.iter().map(|w| w.position).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    // An explicit position ties with "two" and sorts after it (by id).
    let mut req = new_workstream(&p.id, "two-bis");
    req.workstream.as_mut().unwrap().position = 2;
    app.workstreams()
        .create_workstream(authed(t, req))
        .await
        .unwrap();
    let (all, pages) = list_all(&app, t, &p.id, 2).await;
    assert_eq!(pages, 3);
    assert_eq!(
        all.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        ["one", "two", "two-bis", "three", "four"]
    );
    let got = app
        .workstreams()
        .get_workstream(authed(
            t,
            GetWorkstreamRequest {
                id: made[0].id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, made[0]);

    // Moving "one" last reorders the list; a page token survives the
    // deletion of the row it points at.
    app.workstreams()
        .update_workstream(authed(
            t,
            UpdateWorkstreamRequest {
                workstream: Some(Workstream {
                    id: made[0].id.clone(),
                    position: 10,
                    ..Default::default()
                }),
                update_mask: mask(&["position"]),
            },
        ))
        .await
        .unwrap();
    let first = app
        .workstreams()
        .list_workstreams(authed(
            t,
            ListWorkstreamsRequest {
                program_id: p.id.clone(),
                page_size: 1,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.workstreams[0].name, "two");
    app.workstreams()
        .delete_workstream(authed(
            t,
            DeleteWorkstreamRequest {
                id: first.workstreams[0].id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    let rest = app
        .workstreams()
        .list_workstreams(authed(
            t,
            ListWorkstreamsRequest {
                program_id: p.id.clone(),
                page_size: 10,
                page_token: first.next_page_token,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rest.workstreams
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>(),
        ["two-bis", "three", "four", "one"]
    );
}

#[tokio::test]
async fn every_bad_workstream_field_is_reported_by_name() {
    let app = TestApp::start().await;
    let r = app
        .workstreams()
        .create_workstream(authed(
            &app.alice.token,
            CreateWorkstreamRequest {
                workstream: Some(Workstream {
                    program_id: "x".into(),
                    name: " ".into(),
                    position: -1,
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
            "workstream.program_id",
            "workstream.name",
            "workstream.position"
        ]
    );
    let r = app
        .workstreams()
        .list_workstreams(authed(&app.alice.token, ListWorkstreamsRequest::default()))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["program_id"]);
}

#[tokio::test]
async fn another_organizations_workstreams_are_not_found() {
    let app = TestApp::start().await;
    let bobs = program(&app, &app.bob.token, "bobs").await;
    let t = &app.alice.token;
    let r = app
        .workstreams()
        .create_workstream(authed(t, new_workstream(&bobs.id, "mine now")))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    let r = app
        .workstreams()
        .list_workstreams(authed(
            t,
            ListWorkstreamsRequest {
                program_id: bobs.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
}

#[tokio::test]
async fn update_changes_masked_fields_and_refuses_output_only_paths() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "wsu").await;
    let w = workstream(&app, t, &p.id, "Old").await;
    let update = |etag: &str, paths: &[&str]| UpdateWorkstreamRequest {
        workstream: Some(Workstream {
            id: w.id.clone(),
            name: "New".into(),
            description: "line one\nline two".into(),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    let out = app
        .workstreams()
        .update_workstream(authed(t, update("1", &["name", "description"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (out.name.as_str(), out.description.as_str(), out.position),
        ("New", "line one\nline two", 1)
    );
    assert_eq!(out.etag, "2");
    let r = app
        .workstreams()
        .update_workstream(authed(t, update("", &["program_id"])))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["update_mask"]);
    let r = app
        .workstreams()
        .update_workstream(authed(t, update("", &["position"])))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&s),
        ["workstream.position"],
        "0 only appends at creation"
    );
}

#[tokio::test]
async fn deleting_a_workstream_removes_its_requirements_and_detaches_their_tasks() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "wsd").await;
    let w = workstream(&app, t, &p.id, "Going").await;
    let other = workstream(&app, t, &p.id, "Staying").await;
    let a = requirement(&app, t, &w.id, "a").await;
    let b = requirement(&app, t, &w.id, "b").await;
    let c = requirement(&app, t, &other.id, "c").await;
    depend(&app, t, &b.id, &a.id).await;
    depend(&app, t, &c.id, &b.id).await;
    let mut req = crate::new_task(&p.id, "under b");
    req.task.as_mut().unwrap().requirement_id = b.id.clone();
    let under = app
        .tasks()
        .create_task(authed(t, req))
        .await
        .unwrap()
        .into_inner();
    task(&app, t, &p.id, "free").await;
    let before = outbox(&app).await.len();
    app.workstreams()
        .delete_workstream(authed(
            t,
            DeleteWorkstreamRequest {
                id: w.id.clone(),
                etag: w.etag.clone(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(count(&app, "requirements").await, 1);
    assert_eq!(count(&app, "requirement_dependencies").await, 0);
    let detached = app
        .tasks()
        .get_task(authed(t, GetTaskRequest { id: under.id }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detached.requirement_id, "");
    assert_eq!(detached.etag, "2");
    let events = outbox(&app).await.split_off(before);
    assert_eq!(actions(&events), ["delivery.workstream.delete"]);
    assert_eq!(
        events[0]["changes"]["removed"]["new"],
        serde_json::json!({"requirements": 2, "dependencies": 2, "tasks_detached": 1})
    );
    assert_eq!(events[0]["project_id"], p.id);
}

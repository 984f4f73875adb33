use foundry_testkit::delivery::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

use crate::{actions, count, day, goal, mask, member, new_goal, outbox, program};

async fn list_titles(app: &TestApp, token: &str, req: ListGoalsRequest) -> (Vec<String>, usize) {
    let (mut out, mut req, mut pages) = (Vec::new(), req, 0);
    loop {
        let page = app
            .goals()
            .list_goals(authed(token, req.clone()))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        out.extend(page.goals.into_iter().map(|g| g.title));
        if page.next_page_token.is_empty() {
            return (out, pages);
        }
        req.page_token = page.next_page_token;
    }
}

fn set_status(id: &str, status: GoalStatus, etag: &str) -> UpdateGoalRequest {
    UpdateGoalRequest {
        goal: Some(Goal {
            id: id.into(),
            status: status as i32,
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(&["status"]),
    }
}

#[tokio::test]
async fn a_goal_is_created_with_every_field() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "goals").await;
    let owner = member(&app).await;
    let created = app
        .goals()
        .create_goal(authed(
            t,
            CreateGoalRequest {
                goal: Some(Goal {
                    program_id: p.id.clone(),
                    title: "  Faster checkout ".into(),
                    description: "Customers leave\nwhen it is slow".into(),
                    target_metric: "p95 checkout latency < 300 ms".into(),
                    target_time: Some(day(90)),
                    status: GoalStatus::Active as i32,
                    owner_user_id: owner.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.title, "Faster checkout");
    assert_eq!(created.target_metric, "p95 checkout latency < 300 ms");
    assert_eq!(created.target_time, Some(day(90)));
    assert_eq!(created.status, GoalStatus::Active as i32);
    assert_eq!(created.owner_user_id, owner);
    assert_eq!(created.etag, "1");
    let got = app
        .goals()
        .get_goal(authed(
            t,
            GetGoalRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);
    let plain = goal(&app, t, &p.id, "Plain").await;
    assert_eq!(
        plain.status,
        GoalStatus::Proposed as i32,
        "PROPOSED by default"
    );
    assert_eq!(plain.target_time, None);
    assert_eq!(plain.owner_user_id, "");
}

#[tokio::test]
async fn every_bad_goal_field_is_reported_by_name() {
    let app = TestApp::start().await;
    let r = app
        .goals()
        .create_goal(authed(
            &app.alice.token,
            CreateGoalRequest {
                goal: Some(Goal {
                    program_id: "p".into(),
                    title: " ".into(),
                    description: "bell\u{7}".into(),
                    target_metric: "m".repeat(2_001),
                    target_time: Some(prost_types::Timestamp {
                        seconds: i64::MAX,
                        nanos: 0,
                    }),
                    status: GoalStatus::Achieved as i32,
                    owner_user_id: "bob".into(),
                    ..Default::default()
                }),
                request_id: "again".into(),
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&s),
        [
            "goal.program_id",
            "goal.title",
            "goal.description",
            "goal.target_metric",
            "goal.target_time",
            "goal.status",
            "goal.owner_user_id",
            "request_id"
        ]
    );
    let mut bad = new_goal(&uuid::Uuid::now_v7().to_string(), "g");
    bad.goal.as_mut().unwrap().status = 42;
    let r = app.goals().create_goal(authed(&app.alice.token, bad)).await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["goal.status"]);
    let r = app
        .goals()
        .list_goals(authed(
            &app.alice.token,
            ListGoalsRequest {
                program_id: String::new(),
                status: 9,
                ..Default::default()
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["program_id", "status"]);
    let r = app
        .goals()
        .get_goal(authed(&app.alice.token, GetGoalRequest { id: "x".into() }))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["id"]);
}

#[tokio::test]
async fn goals_list_newest_first_by_status_across_pages() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "goal-list").await;
    let other = program(&app, t, "goal-other").await;
    goal(&app, t, &other.id, "elsewhere").await;
    for i in 0..7 {
        let g = goal(&app, t, &p.id, &format!("g{i}")).await;
        if i % 2 == 1 {
            app.goals()
                .update_goal(authed(t, set_status(&g.id, GoalStatus::Active, "")))
                .await
                .unwrap();
        }
    }
    let list = |status: GoalStatus, page_size| ListGoalsRequest {
        program_id: p.id.clone(),
        page_size,
        page_token: String::new(),
        status: status as i32,
    };
    let (all, pages) = list_titles(&app, t, list(GoalStatus::Unspecified, 3)).await;
    assert_eq!(all, ["g6", "g5", "g4", "g3", "g2", "g1", "g0"]);
    assert_eq!(pages, 3);
    let (active, pages) = list_titles(&app, t, list(GoalStatus::Active, 1)).await;
    assert_eq!(active, ["g5", "g3", "g1"]);
    assert_eq!(pages, 3);
    let (proposed, _) = list_titles(&app, t, list(GoalStatus::Proposed, 0)).await;
    assert_eq!(proposed, ["g6", "g4", "g2", "g0"]);
    // A token is bound to its filters.
    let first = app
        .goals()
        .list_goals(authed(t, list(GoalStatus::Active, 1)))
        .await
        .unwrap()
        .into_inner();
    let mut other_filter = list(GoalStatus::Proposed, 1);
    other_filter.page_token = first.next_page_token;
    let r = app.goals().list_goals(authed(t, other_filter)).await;
    assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn update_follows_the_workflow_and_refuses_output_only_fields() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "goal-update").await;
    let g = goal(&app, t, &p.id, "Old").await;
    let out = app
        .goals()
        .update_goal(authed(
            t,
            UpdateGoalRequest {
                goal: Some(Goal {
                    id: g.id.clone(),
                    title: "New".into(),
                    target_metric: "NPS > 50".into(),
                    target_time: Some(day(30)),
                    description: "ignored: not in the mask".into(),
                    etag: "1".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["title", "target_metric", "target_time"]),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.title, "New");
    assert_eq!(out.target_metric, "NPS > 50");
    assert_eq!(out.target_time, Some(day(30)));
    assert_eq!(out.description, "");
    assert_eq!(out.etag, "2");
    // PROPOSED cannot jump to ACHIEVED.
    let r = app
        .goals()
        .update_goal(authed(t, set_status(&g.id, GoalStatus::Achieved, "2")))
        .await;
    assert_status(r, Code::FailedPrecondition, "GOAL_TRANSITION_NOT_ALLOWED");
    for (to, etag) in [
        (GoalStatus::Active, "2"),
        (GoalStatus::Achieved, "3"),
        (GoalStatus::Active, "4"),
        (GoalStatus::Abandoned, "5"),
    ] {
        let out = app
            .goals()
            .update_goal(authed(t, set_status(&g.id, to, etag)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(out.status, to as i32);
    }
    let r = app
        .goals()
        .update_goal(authed(t, set_status(&g.id, GoalStatus::Active, "")))
        .await;
    assert_status(r, Code::FailedPrecondition, "GOAL_TRANSITION_NOT_ALLOWED");
    let mut bad = set_status(&g.id, GoalStatus::Proposed, "");
    bad.update_mask = mask(&["created_by", "program_id"]);
    let r = app.goals().update_goal(authed(t, bad)).await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["update_mask", "update_mask"]);
    let r = app
        .goals()
        .update_goal(authed(t, set_status(&g.id, GoalStatus::Unspecified, "")))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["goal.status"]);
    // Clearing the target date.
    let out = app
        .goals()
        .update_goal(authed(
            t,
            UpdateGoalRequest {
                goal: Some(Goal {
                    id: g.id.clone(),
                    ..Default::default()
                }),
                update_mask: mask(&["target_time"]),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.target_time, None);
}

#[tokio::test]
async fn another_organizations_goals_are_not_found() {
    let app = TestApp::start().await;
    let bobs = program(&app, &app.bob.token, "bobs-goals").await;
    goal(&app, &app.bob.token, &bobs.id, "Bob's").await;
    let t = &app.alice.token;
    let res = app
        .goals()
        .create_goal(authed(t, new_goal(&bobs.id, "mine")))
        .await;
    assert_status(res, Code::NotFound, "PROGRAM_NOT_FOUND");
    let res = app
        .goals()
        .list_goals(authed(
            t,
            ListGoalsRequest {
                program_id: bobs.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(res, Code::NotFound, "PROGRAM_NOT_FOUND");
    assert_eq!(count(&app, "goals").await, 1);
}

#[tokio::test]
async fn every_goal_mutation_writes_its_event() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "goal-events").await;
    let before = outbox(&app).await.len();
    let g = goal(&app, t, &p.id, "Zero lost orders").await;
    app.goals()
        .update_goal(authed(t, set_status(&g.id, GoalStatus::Active, "")))
        .await
        .unwrap();
    app.goals()
        .delete_goal(authed(
            t,
            DeleteGoalRequest {
                id: g.id.clone(),
                etag: "2".into(),
            },
        ))
        .await
        .unwrap();
    let res = app
        .goals()
        .get_goal(authed(t, GetGoalRequest { id: g.id.clone() }))
        .await;
    assert_status(res, Code::NotFound, "GOAL_NOT_FOUND");
    let events = outbox(&app).await.split_off(before);
    assert_eq!(
        actions(&events),
        [
            "delivery.goal.create",
            "delivery.goal.update",
            "delivery.goal.delete"
        ]
    );
    for e in &events {
        assert_eq!(e["project_id"], p.id);
        assert_eq!(e["resource_type"], "delivery.goal");
        assert_eq!(e["resource_id"], g.id);
    }
    assert_eq!(events[0]["changes"]["status"]["new"], "proposed");
    assert_eq!(events[1]["changes"]["status"]["old"], "proposed");
    assert_eq!(events[1]["changes"]["status"]["new"], "active");
    assert_eq!(events[2]["changes"]["title"]["old"], "Zero lost orders");
}

#[tokio::test]
async fn viewers_read_goals_and_editors_write_them() {
    use foundry_identity::domain::Role as R;
    let app = TestApp::start().await;
    let p = program(&app, &app.alice.token, "goal-roles").await;
    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let editor = app.new_member(&app.alice, R::Editor).await;
    let r = app
        .goals()
        .create_goal(authed(&viewer.token, new_goal(&p.id, "no")))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let made = goal(&app, &editor.token, &p.id, "yes").await;
    app.goals()
        .get_goal(authed(&viewer.token, GetGoalRequest { id: made.id }))
        .await
        .expect("viewers read");
}

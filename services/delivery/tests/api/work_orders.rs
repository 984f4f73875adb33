use foundry_testkit::delivery::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

use crate::{
    actions, count, feature, mask, member, new_work_order, outbox, planner_phase, program, rid,
    work_order,
};

async fn list_titles(
    app: &TestApp,
    token: &str,
    req: ListWorkOrdersRequest,
) -> (Vec<String>, usize) {
    let (mut out, mut req, mut pages) = (Vec::new(), req, 0);
    loop {
        let page = app
            .work_orders()
            .list_work_orders(authed(token, req.clone()))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        out.extend(page.work_orders.into_iter().map(|w| w.title));
        if page.next_page_token.is_empty() {
            return (out, pages);
        }
        req.page_token = page.next_page_token;
    }
}

fn change(id: &str, status: WorkOrderStatus, etag: &str) -> ChangeWorkOrderStatusRequest {
    ChangeWorkOrderStatusRequest {
        id: id.into(),
        status: status as i32,
        etag: etag.into(),
    }
}

fn assign(id: &str, users: &[&str]) -> UpdateWorkOrderRequest {
    UpdateWorkOrderRequest {
        work_order: Some(WorkOrder {
            id: id.into(),
            assignee_ids: users.iter().map(|u| (*u).to_owned()).collect(),
            ..Default::default()
        }),
        update_mask: mask(&["assignee_ids"]),
    }
}

#[tokio::test]
async fn a_work_order_is_created_with_every_field_and_reads_back() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "work-orders").await;
    let (u1, u2) = (member(&app).await, member(&app).await);
    let created = app
        .work_orders()
        .create_work_order(authed(
            t,
            CreateWorkOrderRequest {
                work_order: Some(WorkOrder {
                    program_id: p.id.clone(),
                    title: " Port the ledger ".into(),
                    description: "From COBOL\nto Rust".into(),
                    status: WorkOrderStatus::Ready as i32,
                    acceptance_criteria: vec!["balances match".into(), " replay is exact ".into()],
                    implementation_plan: "1. read\n2. write".into(),
                    assignee_ids: vec![u2.clone(), u1.clone(), u2.clone()],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.title, "Port the ledger");
    assert_eq!(created.status, WorkOrderStatus::Ready as i32);
    assert_eq!(
        created.acceptance_criteria,
        ["balances match", "replay is exact"]
    );
    assert_eq!(created.implementation_plan, "1. read\n2. write");
    assert_eq!(created.assignee_ids, [u2, u1], "each once, in order");
    assert_eq!(created.etag, "1");
    let got = app
        .work_orders()
        .get_work_order(authed(
            t,
            GetWorkOrderRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);
    let plain = work_order(&app, t, &p.id, "Plain").await;
    assert_eq!(
        plain.status,
        WorkOrderStatus::Backlog as i32,
        "BACKLOG by default"
    );
}

#[tokio::test]
async fn every_bad_work_order_field_is_reported_by_name() {
    let app = TestApp::start().await;
    let r = app
        .work_orders()
        .create_work_order(authed(
            &app.alice.token,
            CreateWorkOrderRequest {
                work_order: Some(WorkOrder {
                    program_id: "p".into(),
                    title: " ".into(),
                    description: "bell\u{7}".into(),
                    status: WorkOrderStatus::Done as i32,
                    acceptance_criteria: vec!["ok".into(), " ".into()],
                    implementation_plan: "x".repeat(20_001),
                    assignee_ids: vec!["bob".into()],
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
            "work_order.program_id",
            "work_order.title",
            "work_order.description",
            "work_order.status",
            "work_order.acceptance_criteria[1]",
            "work_order.implementation_plan",
            "work_order.assignee_ids[0]",
            "request_id"
        ]
    );
    let r = app
        .work_orders()
        .list_work_orders(authed(
            &app.alice.token,
            ListWorkOrdersRequest {
                program_id: String::new(),
                status: 9,
                assignee_id: "x".into(),
                phase_id: "not-a-uuid".into(),
                feature_id: "42".into(),
                ..Default::default()
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&s),
        [
            "program_id",
            "status",
            "assignee_id",
            "phase_id",
            "feature_id"
        ]
    );
    let r = app
        .work_orders()
        .change_work_order_status(authed(
            &app.alice.token,
            change("x", WorkOrderStatus::Unspecified, ""),
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["id", "status"]);
}

#[tokio::test]
async fn work_orders_list_newest_first_by_status_and_assignee_across_pages() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "wo-list").await;
    let other = program(&app, t, "wo-other").await;
    let (ann, ben) = (member(&app).await, member(&app).await);
    let elsewhere = work_order(&app, t, &other.id, "elsewhere").await;
    app.work_orders()
        .update_work_order(authed(t, assign(&elsewhere.id, &[&ann])))
        .await
        .unwrap();
    // w0..w6: ann on even ones, ben on multiples of 3; odd ones READY.
    let mut ids = Vec::new();
    for i in 0..7 {
        let w = work_order(&app, t, &p.id, &format!("w{i}")).await;
        ids.push(w.id.clone());
        let mut users = Vec::new();
        if i % 2 == 0 {
            users.push(ann.as_str());
        }
        if i % 3 == 0 {
            users.push(ben.as_str());
        }
        app.work_orders()
            .update_work_order(authed(t, assign(&w.id, &users)))
            .await
            .unwrap();
        if i % 2 == 1 {
            app.work_orders()
                .change_work_order_status(authed(t, change(&w.id, WorkOrderStatus::Ready, "2")))
                .await
                .unwrap();
        }
    }
    let list = |status: WorkOrderStatus, assignee: &str, page_size| ListWorkOrdersRequest {
        program_id: p.id.clone(),
        page_size,
        page_token: String::new(),
        status: status as i32,
        assignee_id: assignee.into(),
        ..Default::default()
    };
    let (all, pages) = list_titles(&app, t, list(WorkOrderStatus::Unspecified, "", 3)).await;
    assert_eq!(all, ["w6", "w5", "w4", "w3", "w2", "w1", "w0"]);
    assert_eq!(pages, 3);
    let (ready, _) = list_titles(&app, t, list(WorkOrderStatus::Ready, "", 2)).await;
    assert_eq!(ready, ["w5", "w3", "w1"]);
    let (anns, pages) = list_titles(&app, t, list(WorkOrderStatus::Unspecified, &ann, 1)).await;
    assert_eq!(anns, ["w6", "w4", "w2", "w0"]);
    assert_eq!(pages, 4);
    let (bens_ready, _) = list_titles(&app, t, list(WorkOrderStatus::Ready, &ben, 0)).await;
    assert_eq!(bens_ready, ["w3"]);
    let (bens, _) = list_titles(&app, t, list(WorkOrderStatus::Unspecified, &ben, 0)).await;
    assert_eq!(bens, ["w6", "w3", "w0"]);
    // Unassigning takes a work order off the assignee's list.
    app.work_orders()
        .update_work_order(authed(t, assign(&ids[0], &[&ann])))
        .await
        .unwrap();
    let (bens, _) = list_titles(&app, t, list(WorkOrderStatus::Unspecified, &ben, 0)).await;
    assert_eq!(bens, ["w6", "w3"]);
    // A token is bound to its filters.
    let first = app
        .work_orders()
        .list_work_orders(authed(t, list(WorkOrderStatus::Unspecified, &ann, 1)))
        .await
        .unwrap()
        .into_inner();
    let mut other_filter = list(WorkOrderStatus::Unspecified, &ben, 1);
    other_filter.page_token = first.next_page_token;
    let r = app
        .work_orders()
        .list_work_orders(authed(t, other_filter))
        .await;
    assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn the_status_workflow_refuses_moves_it_does_not_allow() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "wo-flow").await;
    let w = work_order(&app, t, &p.id, "Flow").await;
    let r = app
        .work_orders()
        .change_work_order_status(authed(t, change(&w.id, WorkOrderStatus::InProgress, "")))
        .await;
    let s = assert_status(
        r,
        Code::FailedPrecondition,
        "WORK_ORDER_TRANSITION_NOT_ALLOWED",
    );
    assert!(s.message().contains("allowed: ready"), "{}", s.message());
    let r = app
        .work_orders()
        .change_work_order_status(authed(t, change(&w.id, WorkOrderStatus::Ready, "7")))
        .await;
    assert_status(r, Code::Aborted, "ETAG_MISMATCH");
    for (to, etag) in [
        (WorkOrderStatus::Ready, "1"),
        (WorkOrderStatus::InProgress, "2"),
        (WorkOrderStatus::InReview, "3"),
        (WorkOrderStatus::Done, "4"),
    ] {
        let out = app
            .work_orders()
            .change_work_order_status(authed(t, change(&w.id, to, etag)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(out.status, to as i32);
    }
    // Already there: nothing changes.
    let out = app
        .work_orders()
        .change_work_order_status(authed(t, change(&w.id, WorkOrderStatus::Done, "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.etag, "5");
    let r = app
        .work_orders()
        .change_work_order_status(authed(t, change(&w.id, WorkOrderStatus::Backlog, "")))
        .await;
    assert_status(
        r,
        Code::FailedPrecondition,
        "WORK_ORDER_TRANSITION_NOT_ALLOWED",
    );
}

#[tokio::test]
async fn update_changes_masked_fields_and_refuses_status() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "wo-update").await;
    let w = work_order(&app, t, &p.id, "Old").await;
    let update = |etag: &str, paths: &[&str]| UpdateWorkOrderRequest {
        work_order: Some(WorkOrder {
            id: w.id.clone(),
            title: "New".into(),
            description: "not in the mask".into(),
            acceptance_criteria: vec!["green build".into()],
            implementation_plan: "small steps".into(),
            status: WorkOrderStatus::Done as i32,
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    let out = app
        .work_orders()
        .update_work_order(authed(
            t,
            update(
                "1",
                &["title", "acceptance_criteria", "implementation_plan"],
            ),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.title, "New");
    assert_eq!(out.acceptance_criteria, ["green build"]);
    assert_eq!(out.implementation_plan, "small steps");
    assert_eq!(out.description, "");
    assert_eq!(out.status, WorkOrderStatus::Backlog as i32);
    assert_eq!(out.etag, "2");
    let r = app
        .work_orders()
        .update_work_order(authed(t, update("", &["status", "program_id"])))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["update_mask", "update_mask"]);
    let mut bad = update("", &["acceptance_criteria"]);
    bad.work_order.as_mut().unwrap().acceptance_criteria = vec!["c".into(); 51];
    let r = app.work_orders().update_work_order(authed(t, bad)).await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["work_order.acceptance_criteria"]);
}

#[tokio::test]
async fn another_organizations_work_orders_are_not_found() {
    let app = TestApp::start().await;
    let bobs = program(&app, &app.bob.token, "bobs-wos").await;
    let w = work_order(&app, &app.bob.token, &bobs.id, "Bob's").await;
    let t = &app.alice.token;
    let res = app
        .work_orders()
        .create_work_order(authed(t, new_work_order(&bobs.id, "mine")))
        .await;
    assert_status(res, Code::NotFound, "PROGRAM_NOT_FOUND");
    let res = app
        .work_orders()
        .get_work_order(authed(t, GetWorkOrderRequest { id: w.id.clone() }))
        .await;
    assert_status(res, Code::NotFound, "WORK_ORDER_NOT_FOUND");
    let res = app
        .work_orders()
        .list_work_orders(authed(
            t,
            ListWorkOrdersRequest {
                program_id: bobs.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(res, Code::NotFound, "PROGRAM_NOT_FOUND");
    let res = app
        .work_orders()
        .update_work_order(authed(t, assign(&w.id, &[])))
        .await;
    assert_status(res, Code::NotFound, "WORK_ORDER_NOT_FOUND");
    let res = app
        .work_orders()
        .change_work_order_status(authed(t, change(&w.id, WorkOrderStatus::Ready, "")))
        .await;
    assert_status(res, Code::NotFound, "WORK_ORDER_NOT_FOUND");
    let res = app
        .work_orders()
        .delete_work_order(authed(
            t,
            DeleteWorkOrderRequest {
                id: w.id.clone(),
                etag: String::new(),
            },
        ))
        .await;
    assert_status(res, Code::NotFound, "WORK_ORDER_NOT_FOUND");
    assert_eq!(count(&app, "work_orders").await, 1);
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_work_order() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "wo-idem").await;
    let mut req = new_work_order(&p.id, "Once");
    req.request_id = rid();
    let a = app
        .work_orders()
        .create_work_order(authed(t, req.clone()))
        .await
        .unwrap()
        .into_inner();
    let b = app
        .work_orders()
        .create_work_order(authed(t, req))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    assert_eq!(count(&app, "work_orders").await, 1);
}

#[tokio::test]
async fn every_work_order_mutation_writes_its_event() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "wo-events").await;
    let before = outbox(&app).await.len();
    let w = work_order(&app, t, &p.id, "Cut over").await;
    let user = member(&app).await;
    app.work_orders()
        .update_work_order(authed(t, assign(&w.id, &[&user])))
        .await
        .unwrap();
    app.work_orders()
        .change_work_order_status(authed(t, change(&w.id, WorkOrderStatus::Ready, "2")))
        .await
        .unwrap();
    app.work_orders()
        .delete_work_order(authed(
            t,
            DeleteWorkOrderRequest {
                id: w.id.clone(),
                etag: "3".into(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(count(&app, "work_order_assignees").await, 0);
    let events = outbox(&app).await.split_off(before);
    assert_eq!(
        actions(&events),
        [
            "delivery.work_order.create",
            "delivery.work_order.update",
            "delivery.work_order.change_status",
            "delivery.work_order.delete"
        ]
    );
    for e in &events {
        assert_eq!(e["project_id"], p.id);
        assert_eq!(e["resource_type"], "delivery.work_order");
        assert_eq!(e["resource_id"], w.id);
    }
    assert_eq!(events[0]["changes"]["status"]["new"], "backlog");
    assert_eq!(events[1]["changes"]["assignee_ids"]["new"][0], user);
    assert_eq!(events[2]["changes"]["status"]["old"], "backlog");
    assert_eq!(events[2]["changes"]["status"]["new"], "ready");
    assert_eq!(events[3]["changes"]["title"]["old"], "Cut over");
}

#[tokio::test]
async fn viewers_read_work_orders_and_editors_write_them() {
    use foundry_identity::domain::Role as R;
    let app = TestApp::start().await;
    let p = program(&app, &app.alice.token, "wo-roles").await;
    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let editor = app.new_member(&app.alice, R::Editor).await;
    let r = app
        .work_orders()
        .create_work_order(authed(&viewer.token, new_work_order(&p.id, "no")))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let made = work_order(&app, &editor.token, &p.id, "yes").await;
    let r = app
        .work_orders()
        .change_work_order_status(authed(
            &viewer.token,
            change(&made.id, WorkOrderStatus::Ready, ""),
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    app.work_orders()
        .get_work_order(authed(&viewer.token, GetWorkOrderRequest { id: made.id }))
        .await
        .expect("viewers read");
}

#[tokio::test]
async fn a_work_order_links_a_phase_and_feature_of_its_program_until_they_go() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "wo-links").await;
    let other = program(&app, t, "wo-links-other").await;
    let phase = planner_phase(&app, t, &p.id, "Build").await;
    let feat = feature(&app, t, &p.id, "ledger", "").await;
    let foreign_phase = planner_phase(&app, t, &other.id, "Elsewhere").await;
    let foreign_feature = feature(&app, t, &other.id, "elsewhere", "").await;
    let mut req = new_work_order(&p.id, "Linked");
    let w = req.work_order.as_mut().unwrap();
    w.phase_id = phase.id.clone();
    w.feature_id = feat.id.clone();
    let made = app
        .work_orders()
        .create_work_order(authed(t, req))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(made.phase_id, phase.id);
    assert_eq!(made.feature_id, feat.id);
    for (phase_id, feature_id, reason) in [
        (foreign_phase.id.as_str(), "", "DIFFERENT_PROGRAM"),
        ("", foreign_feature.id.as_str(), "DIFFERENT_PROGRAM"),
    ] {
        let mut req = new_work_order(&p.id, "Crossed");
        let w = req.work_order.as_mut().unwrap();
        w.phase_id = phase_id.into();
        w.feature_id = feature_id.into();
        let r = app.work_orders().create_work_order(authed(t, req)).await;
        assert_status(r, Code::FailedPrecondition, reason);
    }
    let mut req = new_work_order(&p.id, "Ghost");
    req.work_order.as_mut().unwrap().phase_id = uuid::Uuid::now_v7().to_string();
    let r = app.work_orders().create_work_order(authed(t, req)).await;
    assert_status(r, Code::NotFound, "PLANNER_PHASE_NOT_FOUND");
    let r = app
        .work_orders()
        .update_work_order(authed(
            t,
            UpdateWorkOrderRequest {
                work_order: Some(WorkOrder {
                    id: made.id.clone(),
                    feature_id: foreign_feature.id.clone(),
                    ..Default::default()
                }),
                update_mask: mask(&["feature_id"]),
            },
        ))
        .await;
    assert_status(r, Code::FailedPrecondition, "DIFFERENT_PROGRAM");
    // Deleting the phase and the feature unlinks the work order.
    app.planner_phases()
        .delete_planner_phase(authed(
            t,
            DeletePlannerPhaseRequest {
                id: phase.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    app.features()
        .delete_feature(authed(
            t,
            DeleteFeatureRequest {
                id: feat.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    let got = app
        .work_orders()
        .get_work_order(authed(
            t,
            GetWorkOrderRequest {
                id: made.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.phase_id, "");
    assert_eq!(got.feature_id, "");
    // And linking again through an update.
    let phase2 = planner_phase(&app, t, &p.id, "Test").await;
    let out = app
        .work_orders()
        .update_work_order(authed(
            t,
            UpdateWorkOrderRequest {
                work_order: Some(WorkOrder {
                    id: made.id.clone(),
                    phase_id: phase2.id.clone(),
                    ..Default::default()
                }),
                update_mask: mask(&["phase_id"]),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.phase_id, phase2.id);
}

#[tokio::test]
async fn work_orders_list_by_phase_and_feature_across_pages() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "wo-by-phase").await;
    let build = planner_phase(&app, t, &p.id, "Build").await;
    let launch = planner_phase(&app, t, &p.id, "Launch").await;
    let ledger = feature(&app, t, &p.id, "ledger", "").await;
    // w0..w5: even ones in Build, odd ones in Launch; multiples of 3 are
    // the ledger's.
    for i in 0..6 {
        let mut req = new_work_order(&p.id, &format!("w{i}"));
        let w = req.work_order.as_mut().unwrap();
        w.phase_id = if i % 2 == 0 { &build.id } else { &launch.id }.clone();
        if i % 3 == 0 {
            w.feature_id = ledger.id.clone();
        }
        app.work_orders()
            .create_work_order(authed(t, req))
            .await
            .unwrap();
    }
    let list = |phase: &str, feature: &str, page_size| ListWorkOrdersRequest {
        program_id: p.id.clone(),
        page_size,
        phase_id: phase.into(),
        feature_id: feature.into(),
        ..Default::default()
    };
    let (in_build, pages) = list_titles(&app, t, list(&build.id, "", 2)).await;
    assert_eq!(in_build, ["w4", "w2", "w0"]);
    assert_eq!(pages, 2);
    let (in_launch, _) = list_titles(&app, t, list(&launch.id, "", 0)).await;
    assert_eq!(in_launch, ["w5", "w3", "w1"]);
    let (of_ledger, pages) = list_titles(&app, t, list("", &ledger.id, 1)).await;
    assert_eq!(of_ledger, ["w3", "w0"]);
    assert_eq!(pages, 2);
    let (both, _) = list_titles(&app, t, list(&launch.id, &ledger.id, 0)).await;
    assert_eq!(both, ["w3"]);
    // A phase of no work order, and a token bound to its filter.
    let (none, _) = list_titles(&app, t, list(&uuid::Uuid::now_v7().to_string(), "", 0)).await;
    assert!(none.is_empty());
    let first = app
        .work_orders()
        .list_work_orders(authed(t, list(&build.id, "", 1)))
        .await
        .unwrap()
        .into_inner();
    let mut other = list(&launch.id, "", 1);
    other.page_token = first.next_page_token;
    let r = app.work_orders().list_work_orders(authed(t, other)).await;
    assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    // Another organization's caller finds no such program.
    let r = app
        .work_orders()
        .list_work_orders(authed(&app.bob.token, list(&build.id, "", 0)))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
}

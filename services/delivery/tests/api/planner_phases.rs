use foundry_testkit::delivery::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

use crate::{actions, count, day, mask, new_planner_phase, outbox, planner_phase, program, rid};

async fn list_names(
    app: &TestApp,
    token: &str,
    program_id: &str,
    page_size: i32,
) -> (Vec<String>, usize) {
    let mut req = ListPlannerPhasesRequest {
        program_id: program_id.into(),
        page_size,
        page_token: String::new(),
    };
    let (mut out, mut pages) = (Vec::new(), 0);
    loop {
        let page = app
            .planner_phases()
            .list_planner_phases(authed(token, req.clone()))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        out.extend(page.planner_phases.into_iter().map(|p| p.name));
        if page.next_page_token.is_empty() {
            return (out, pages);
        }
        req.page_token = page.next_page_token;
    }
}

fn move_to(id: &str, position: i32, etag: &str) -> UpdatePlannerPhaseRequest {
    UpdatePlannerPhaseRequest {
        planner_phase: Some(PlannerPhase {
            id: id.into(),
            position,
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(&["position"]),
    }
}

#[tokio::test]
async fn a_phase_is_created_with_every_field_and_reads_back() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "phases").await;
    let created = app
        .planner_phases()
        .create_planner_phase(authed(
            t,
            CreatePlannerPhaseRequest {
                planner_phase: Some(PlannerPhase {
                    program_id: p.id.clone(),
                    name: " Discovery ".into(),
                    description: "Read the code\nInterview the team".into(),
                    position: 7,
                    start_time: Some(day(0)),
                    end_time: Some(day(14)),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.name, "Discovery");
    assert_eq!(created.position, 7);
    assert_eq!(created.start_time, Some(day(0)));
    assert_eq!(created.end_time, Some(day(14)));
    assert_eq!(created.etag, "1");
    let got = app
        .planner_phases()
        .get_planner_phase(authed(
            t,
            GetPlannerPhaseRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);
    let next = planner_phase(&app, t, &p.id, "Build").await;
    assert_eq!(next.position, 8, "appended after the last");
    assert_eq!(next.start_time, None);
}

#[tokio::test]
async fn every_bad_phase_field_is_reported_by_name() {
    let app = TestApp::start().await;
    let r = app
        .planner_phases()
        .create_planner_phase(authed(
            &app.alice.token,
            CreatePlannerPhaseRequest {
                planner_phase: Some(PlannerPhase {
                    program_id: "p".into(),
                    name: " ".into(),
                    description: "d".repeat(10_001),
                    position: -1,
                    start_time: Some(day(5)),
                    end_time: Some(day(5)),
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
            "planner_phase.program_id",
            "planner_phase.name",
            "planner_phase.description",
            "planner_phase.position",
            "planner_phase.end_time",
            "request_id"
        ]
    );
    let r = app
        .planner_phases()
        .list_planner_phases(authed(
            &app.alice.token,
            ListPlannerPhasesRequest {
                program_id: "x".into(),
                ..Default::default()
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["program_id"]);
}

#[tokio::test]
async fn phases_list_by_position_across_pages_and_reorder() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "phase-list").await;
    let other = program(&app, t, "phase-other").await;
    planner_phase(&app, t, &other.id, "elsewhere").await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        ids.push(planner_phase(&app, t, &p.id, name).await.id);
    }
    let (all, pages) = list_names(&app, t, &p.id, 2).await;
    assert_eq!(all, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);
    // "e" moves to 2 (tie with "b": creation breaks it), "a" to 10.
    app.planner_phases()
        .update_planner_phase(authed(t, move_to(&ids[4], 2, "1")))
        .await
        .unwrap();
    app.planner_phases()
        .update_planner_phase(authed(t, move_to(&ids[0], 10, "")))
        .await
        .unwrap();
    let (all, _) = list_names(&app, t, &p.id, 1).await;
    assert_eq!(all, ["b", "e", "c", "d", "a"]);
    // A token is bound to its program.
    let first = app
        .planner_phases()
        .list_planner_phases(authed(
            t,
            ListPlannerPhasesRequest {
                program_id: p.id.clone(),
                page_size: 1,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let r = app
        .planner_phases()
        .list_planner_phases(authed(
            t,
            ListPlannerPhasesRequest {
                program_id: other.id.clone(),
                page_size: 1,
                page_token: first.next_page_token,
            },
        ))
        .await;
    assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn update_changes_masked_fields_and_checks_dates() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "phase-update").await;
    let ph = planner_phase(&app, t, &p.id, "Old").await;
    let update = |etag: &str, paths: &[&str], start: i64, end: i64| UpdatePlannerPhaseRequest {
        planner_phase: Some(PlannerPhase {
            id: ph.id.clone(),
            name: "New".into(),
            description: "not in the mask".into(),
            start_time: Some(day(start)),
            end_time: Some(day(end)),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    let out = app
        .planner_phases()
        .update_planner_phase(authed(
            t,
            update("1", &["name", "start_time", "end_time"], 1, 9),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.name, "New");
    assert_eq!(out.description, "");
    assert_eq!(out.start_time, Some(day(1)));
    assert_eq!(out.end_time, Some(day(9)));
    assert_eq!(out.etag, "2");
    // A start after the stored end.
    let r = app
        .planner_phases()
        .update_planner_phase(authed(t, update("2", &["start_time"], 20, 0)))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["planner_phase.end_time"]);
    let r = app
        .planner_phases()
        .update_planner_phase(authed(t, update("", &["program_id", "etag"], 0, 1)))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["update_mask", "update_mask"]);
    let r = app
        .planner_phases()
        .update_planner_phase(authed(t, move_to(&ph.id, 0, "")))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["planner_phase.position"]);
    // Clearing the end date.
    let mut clear = update("", &["end_time"], 0, 0);
    clear.planner_phase.as_mut().unwrap().end_time = None;
    let out = app
        .planner_phases()
        .update_planner_phase(authed(t, clear))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.end_time, None);
    assert_eq!(out.start_time, Some(day(1)));
}

#[tokio::test]
async fn another_organizations_phases_are_not_found() {
    let app = TestApp::start().await;
    let bobs = program(&app, &app.bob.token, "bobs-phases").await;
    let ph = planner_phase(&app, &app.bob.token, &bobs.id, "Bob's").await;
    let t = &app.alice.token;
    let res = app
        .planner_phases()
        .create_planner_phase(authed(t, new_planner_phase(&bobs.id, "mine")))
        .await;
    assert_status(res, Code::NotFound, "PROGRAM_NOT_FOUND");
    let res = app
        .planner_phases()
        .get_planner_phase(authed(t, GetPlannerPhaseRequest { id: ph.id.clone() }))
        .await;
    assert_status(res, Code::NotFound, "PLANNER_PHASE_NOT_FOUND");
    let res = app
        .planner_phases()
        .list_planner_phases(authed(
            t,
            ListPlannerPhasesRequest {
                program_id: bobs.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(res, Code::NotFound, "PROGRAM_NOT_FOUND");
    let res = app
        .planner_phases()
        .update_planner_phase(authed(t, move_to(&ph.id, 3, "")))
        .await;
    assert_status(res, Code::NotFound, "PLANNER_PHASE_NOT_FOUND");
    let res = app
        .planner_phases()
        .delete_planner_phase(authed(
            t,
            DeletePlannerPhaseRequest {
                id: ph.id.clone(),
                etag: String::new(),
            },
        ))
        .await;
    assert_status(res, Code::NotFound, "PLANNER_PHASE_NOT_FOUND");
    assert_eq!(count(&app, "planner_phases").await, 1);
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_phase() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "phase-idem").await;
    let mut req = new_planner_phase(&p.id, "Once");
    req.request_id = rid();
    let a = app
        .planner_phases()
        .create_planner_phase(authed(t, req.clone()))
        .await
        .unwrap()
        .into_inner();
    let b = app
        .planner_phases()
        .create_planner_phase(authed(t, req))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    assert_eq!(count(&app, "planner_phases").await, 1);
}

#[tokio::test]
async fn every_phase_mutation_writes_its_event() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "phase-events").await;
    let before = outbox(&app).await.len();
    let ph = planner_phase(&app, t, &p.id, "Cutover").await;
    app.planner_phases()
        .update_planner_phase(authed(t, move_to(&ph.id, 4, "")))
        .await
        .unwrap();
    app.planner_phases()
        .delete_planner_phase(authed(
            t,
            DeletePlannerPhaseRequest {
                id: ph.id.clone(),
                etag: "2".into(),
            },
        ))
        .await
        .unwrap();
    let events = outbox(&app).await.split_off(before);
    assert_eq!(
        actions(&events),
        [
            "delivery.planner_phase.create",
            "delivery.planner_phase.update",
            "delivery.planner_phase.delete"
        ]
    );
    for e in &events {
        assert_eq!(e["project_id"], p.id);
        assert_eq!(e["resource_type"], "delivery.planner_phase");
        assert_eq!(e["resource_id"], ph.id);
    }
    assert_eq!(events[0]["changes"]["position"]["new"], 1);
    assert_eq!(events[1]["changes"]["position"]["old"], 1);
    assert_eq!(events[1]["changes"]["position"]["new"], 4);
    assert_eq!(events[2]["changes"]["name"]["old"], "Cutover");
}

#[tokio::test]
async fn viewers_read_phases_and_editors_write_them() {
    use foundry_identity::domain::Role as R;
    let app = TestApp::start().await;
    let p = program(&app, &app.alice.token, "phase-roles").await;
    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let editor = app.new_member(&app.alice, R::Editor).await;
    let r = app
        .planner_phases()
        .create_planner_phase(authed(&viewer.token, new_planner_phase(&p.id, "no")))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let made = planner_phase(&app, &editor.token, &p.id, "yes").await;
    app.planner_phases()
        .get_planner_phase(authed(
            &viewer.token,
            GetPlannerPhaseRequest { id: made.id },
        ))
        .await
        .expect("viewers read");
}

use foundry_identity::domain::Role as R;
use foundry_testkit::delivery::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

use crate::{
    actions, count, depend, evaluate, feature, gate, goal, mask, member, new_program, outbox,
    planner_phase, program, requirement, risk, sprint, subtask, task, work_order, workstream,
};

fn get(id: &str) -> GetProgramRequest {
    GetProgramRequest { id: id.into() }
}

fn advance(id: &str, phase: DeliveryPhase, force: bool) -> AdvanceProgramPhaseRequest {
    AdvanceProgramPhaseRequest {
        id: id.into(),
        phase: phase as i32,
        force,
        reason: String::new(),
        etag: String::new(),
    }
}

#[tokio::test]
async fn a_program_starts_in_discovery_and_reads_back() {
    let app = TestApp::start().await;
    let p = program(&app, &app.alice.token, "apollo").await;
    assert_eq!(p.phase, DeliveryPhase::Discovery as i32);
    assert_eq!(p.etag, "1");
    assert!(!p.archived && p.archive_time.is_none());
    assert_eq!(p.created_by, app.alice.user_id.to_string());
    assert_eq!(p.description, "Replatforming\nphase one");
    assert_eq!(uuid::Uuid::parse_str(&p.id).unwrap().get_version_num(), 7);
    let got = app
        .programs()
        .get_program(authed(&app.alice.token, get(&p.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, p);
}

#[tokio::test]
async fn every_bad_program_field_is_reported_by_name() {
    let app = TestApp::start().await;
    let r = app
        .programs()
        .create_program(authed(
            &app.alice.token,
            CreateProgramRequest {
                program: Some(Program {
                    name: "x".repeat(201),
                    slug: "Not A Slug".into(),
                    description: "bell\u{7}".into(),
                    source_platform: "s".repeat(101),
                    target_platform: "ok".into(),
                    ..Default::default()
                }),
                request_id: "not-a-uuid".into(),
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&s),
        [
            "program.name",
            "program.slug",
            "program.description",
            "program.source_platform",
            "request_id"
        ]
    );
    let r = app
        .programs()
        .create_program(authed(&app.alice.token, CreateProgramRequest::default()))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["program.name", "program.slug"]);
    let r = app
        .programs()
        .get_program(authed(&app.alice.token, get("nope")))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["id"]);
}

#[tokio::test]
async fn a_slug_is_unique_in_an_organization_only() {
    let app = TestApp::start().await;
    program(&app, &app.alice.token, "shared-slug").await;
    let r = app
        .programs()
        .create_program(authed(&app.alice.token, new_program("shared-slug")))
        .await;
    assert_status(r, Code::AlreadyExists, "PROGRAM_SLUG_TAKEN");
    // Another organization may use it.
    program(&app, &app.bob.token, "shared-slug").await;
    // Renaming onto a taken slug is refused the same way.
    let other = program(&app, &app.alice.token, "other-slug").await;
    let r = app
        .programs()
        .update_program(authed(
            &app.alice.token,
            UpdateProgramRequest {
                program: Some(Program {
                    id: other.id,
                    slug: "shared-slug".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["slug"]),
            },
        ))
        .await;
    assert_status(r, Code::AlreadyExists, "PROGRAM_SLUG_TAKEN");
}

#[tokio::test]
async fn another_organizations_program_is_not_found() {
    let app = TestApp::start().await;
    let p = program(&app, &app.bob.token, "bobs").await;
    let t = &app.alice.token;
    let r = app
        .programs()
        .advance_program_phase(authed(t, advance(&p.id, DeliveryPhase::Build, false)))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    let r = app
        .programs()
        .archive_program(authed(
            t,
            ArchiveProgramRequest {
                id: p.id.clone(),
                etag: String::new(),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    let listed = app
        .programs()
        .list_programs(authed(t, ListProgramsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.programs.is_empty());
    assert_eq!(count(&app, "programs").await, 1, "bob's program untouched");
}

#[tokio::test]
async fn update_changes_only_masked_fields() {
    let app = TestApp::start().await;
    let p = program(&app, &app.alice.token, "upd").await;
    let update = |etag: &str, paths: &[&str]| UpdateProgramRequest {
        program: Some(Program {
            id: p.id.clone(),
            name: "Renamed".into(),
            slug: "ignored-slug".into(),
            target_platform: "shopify".into(),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    let out = app
        .programs()
        .update_program(authed(
            &app.alice.token,
            update("1", &["name", "target_platform"]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (out.name.as_str(), out.slug.as_str()),
        ("Renamed", "upd"),
        "slug not in the mask"
    );
    assert_eq!(out.target_platform, "shopify");
    assert_eq!(out.source_platform, "salesforce_b2b");
    assert_eq!(out.etag, "2");

    for paths in [&["phase"][..], &["etag"], &[]] {
        let r = app
            .programs()
            .update_program(authed(&app.alice.token, update("", paths)))
            .await;
        let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&s), ["update_mask"], "{paths:?}");
    }
}

#[tokio::test]
async fn programs_list_newest_first_across_pages_and_by_filter() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(program(&app, t, &format!("list-{i}")).await.id);
    }
    program(&app, &app.bob.token, "noise").await;
    ids.reverse();
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = app
            .programs()
            .list_programs(authed(
                t,
                ListProgramsRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(page.programs.into_iter().map(|p| p.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);

    // Phase and archived filters.
    app.programs()
        .advance_program_phase(authed(t, advance(&ids[0], DeliveryPhase::Build, false)))
        .await
        .unwrap();
    app.programs()
        .archive_program(authed(
            t,
            ArchiveProgramRequest {
                id: ids[1].clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    let list = |phase: DeliveryPhase, archived: Option<bool>| ListProgramsRequest {
        phase: phase as i32,
        archived,
        ..Default::default()
    };
    let ids_of = |r: ListProgramsResponse| r.programs.into_iter().map(|p| p.id).collect::<Vec<_>>();
    let build = app
        .programs()
        .list_programs(authed(t, list(DeliveryPhase::Build, None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids_of(build), [ids[0].clone()]);
    let archived = app
        .programs()
        .list_programs(authed(t, list(DeliveryPhase::Unspecified, Some(true))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids_of(archived), [ids[1].clone()]);
    let active = app
        .programs()
        .list_programs(authed(t, list(DeliveryPhase::Discovery, Some(false))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids_of(active), ids[2..].to_vec());

    // A token is bound to its filters; a bad filter value names its field.
    let first = app
        .programs()
        .list_programs(authed(
            t,
            ListProgramsRequest {
                page_size: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let r = app
        .programs()
        .list_programs(authed(
            t,
            ListProgramsRequest {
                page_size: 1,
                page_token: first.next_page_token,
                archived: Some(true),
                ..Default::default()
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["page_token"]);
    let r = app
        .programs()
        .list_programs(authed(
            t,
            ListProgramsRequest {
                phase: 42,
                page_size: -1,
                ..Default::default()
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["phase"]);
}

#[tokio::test]
async fn a_phase_moves_one_step_forward_and_never_skips_or_goes_back_unforced() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "phases").await;
    let out = app
        .programs()
        .advance_program_phase(authed(t, advance(&p.id, DeliveryPhase::Build, false)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.phase, DeliveryPhase::Build as i32);
    assert_eq!(out.etag, "2");

    let r = app
        .programs()
        .advance_program_phase(authed(t, advance(&p.id, DeliveryPhase::Deploy, false)))
        .await;
    let s = assert_status(r, Code::FailedPrecondition, "PHASE_SKIP_NOT_ALLOWED");
    assert!(s.message().contains("test"), "names the next phase: {s:?}");
    let r = app
        .programs()
        .advance_program_phase(authed(t, advance(&p.id, DeliveryPhase::Discovery, false)))
        .await;
    assert_status(r, Code::FailedPrecondition, "PHASE_BACKWARDS_NOT_ALLOWED");
    // Asking for the current phase changes nothing.
    let same = app
        .programs()
        .advance_program_phase(authed(t, advance(&p.id, DeliveryPhase::Build, false)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.etag, "2");
    // A stale etag and a missing phase.
    let mut stale = advance(&p.id, DeliveryPhase::Test, false);
    stale.etag = "1".into();
    let r = app.programs().advance_program_phase(authed(t, stale)).await;
    assert_status(r, Code::Aborted, "ETAG_MISMATCH");
    let r = app
        .programs()
        .advance_program_phase(authed(t, advance(&p.id, DeliveryPhase::Unspecified, false)))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["phase"]);

    for phase in [
        DeliveryPhase::Test,
        DeliveryPhase::Deploy,
        DeliveryPhase::Complete,
    ] {
        app.programs()
            .advance_program_phase(authed(t, advance(&p.id, phase, false)))
            .await
            .unwrap();
    }
    let events: Vec<_> = outbox(&app)
        .await
        .into_iter()
        .filter(|e| e["action"] == "delivery.program.advance_phase")
        .collect();
    assert_eq!(events.len(), 4, "one event per real move");
    assert_eq!(events[0]["changes"]["phase"]["old"], "discovery");
    assert_eq!(events[0]["changes"]["phase"]["new"], "build");
    assert!(events.iter().all(|e| e["changes"].get("forced").is_none()));
}

#[tokio::test]
async fn an_admin_may_force_a_phase_change_and_it_is_recorded_as_forced() {
    let app = TestApp::start().await;
    let p = program(&app, &app.alice.token, "forced").await;
    let editor = app.new_member(&app.alice, R::Editor).await;
    let admin = app.new_member(&app.alice, R::Admin).await;

    let r = app
        .programs()
        .advance_program_phase(authed(
            &editor.token,
            advance(&p.id, DeliveryPhase::Deploy, true),
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "FORCE_NOT_PERMITTED");
    // An editor moves to the next phase without force.
    app.programs()
        .advance_program_phase(authed(
            &editor.token,
            advance(&p.id, DeliveryPhase::Build, false),
        ))
        .await
        .unwrap();

    let mut skip = advance(&p.id, DeliveryPhase::Deploy, true);
    skip.reason = "client signed off testing early".into();
    let out = app
        .programs()
        .advance_program_phase(authed(&admin.token, skip))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.phase, DeliveryPhase::Deploy as i32);
    let back = app
        .programs()
        .advance_program_phase(authed(
            &admin.token,
            advance(&p.id, DeliveryPhase::Discovery, true),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.phase, DeliveryPhase::Discovery as i32);

    let events: Vec<_> = outbox(&app)
        .await
        .into_iter()
        .filter(|e| e["action"] == "delivery.program.advance_phase")
        .collect();
    assert_eq!(events.len(), 3);
    assert!(events[0]["changes"].get("forced").is_none());
    assert_eq!(events[1]["actor_id"], admin.user_id.to_string());
    assert_eq!(events[1]["changes"]["forced"]["new"], true);
    assert_eq!(events[1]["changes"]["move"]["new"], "skip");
    assert_eq!(
        events[1]["changes"]["reason"]["new"],
        "client signed off testing early"
    );
    assert_eq!(events[1]["changes"]["phase"]["new"], "deploy");
    assert_eq!(events[2]["changes"]["move"]["new"], "back");
    assert_eq!(events[2]["project_id"], p.id);
}

#[tokio::test]
async fn an_archived_program_is_read_only_until_unarchived() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "arch").await;
    let archive = |etag: &str| ArchiveProgramRequest {
        id: p.id.clone(),
        etag: etag.into(),
    };
    let r = app
        .programs()
        .archive_program(authed(t, archive("7")))
        .await;
    assert_status(r, Code::Aborted, "ETAG_MISMATCH");
    let a = app
        .programs()
        .archive_program(authed(t, archive("1")))
        .await
        .unwrap()
        .into_inner();
    assert!(a.archived && a.archive_time.is_some());
    let r = app.programs().archive_program(authed(t, archive(""))).await;
    assert_status(r, Code::FailedPrecondition, "PROGRAM_ALREADY_ARCHIVED");
    let r = app
        .programs()
        .advance_program_phase(authed(t, advance(&p.id, DeliveryPhase::Build, false)))
        .await;
    assert_status(r, Code::FailedPrecondition, "PROGRAM_ARCHIVED");
    let r = app
        .programs()
        .update_program(authed(
            t,
            UpdateProgramRequest {
                program: Some(Program {
                    id: p.id.clone(),
                    name: "x".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            },
        ))
        .await;
    assert_status(r, Code::FailedPrecondition, "PROGRAM_ARCHIVED");

    let unarchive = || UnarchiveProgramRequest {
        id: p.id.clone(),
        etag: String::new(),
    };
    let u = app
        .programs()
        .unarchive_program(authed(t, unarchive()))
        .await
        .unwrap()
        .into_inner();
    assert!(!u.archived && u.archive_time.is_none());
    let r = app
        .programs()
        .unarchive_program(authed(t, unarchive()))
        .await;
    assert_status(r, Code::FailedPrecondition, "PROGRAM_NOT_ARCHIVED");
    let acts = actions(&outbox(&app).await)
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert_eq!(
        acts,
        [
            "delivery.program.create",
            "delivery.program.archive",
            "delivery.program.unarchive"
        ]
    );
}

#[tokio::test]
async fn deleting_a_program_removes_everything_in_it_with_one_event() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "doomed").await;
    let keep = program(&app, t, "kept").await;
    let w1 = workstream(&app, t, &p.id, "Checkout").await;
    let w2 = workstream(&app, t, &p.id, "Search").await;
    let r1 = requirement(&app, t, &w1.id, "Pay by card").await;
    let r2 = requirement(&app, t, &w1.id, "Pay by invoice").await;
    let r3 = requirement(&app, t, &w2.id, "Facets").await;
    depend(&app, t, &r2.id, &r1.id).await;
    depend(&app, t, &r3.id, &r2.id).await;
    let t1 = task(&app, t, &p.id, "Stripe").await;
    let t2 = task(&app, t, &p.id, "Invoice PDF").await;
    subtask(&app, t, &t1.id, "keys").await;
    subtask(&app, t, &t1.id, "webhook").await;
    subtask(&app, t, &t2.id, "template").await;
    risk(&app, t, &p.id, "Card fraud", 3, 4).await;
    goal(&app, t, &p.id, "Checkout p95 < 300 ms").await;
    goal(&app, t, &p.id, "Zero lost orders").await;
    planner_phase(&app, t, &p.id, "Discovery").await;
    planner_phase(&app, t, &p.id, "Build").await;
    planner_phase(&app, t, &p.id, "Cutover").await;
    let root = feature(&app, t, &p.id, "checkout", "").await;
    let mid = feature(&app, t, &p.id, "payments", &root.id).await;
    let leaf = feature(&app, t, &p.id, "cards", &mid.id).await;
    let ph = planner_phase(&app, t, &p.id, "Hardening").await;
    let wo = work_order(&app, t, &p.id, "Wire the PSP").await;
    app.work_orders()
        .update_work_order(authed(
            t,
            UpdateWorkOrderRequest {
                work_order: Some(WorkOrder {
                    id: wo.id,
                    assignee_ids: vec![member(&app).await],
                    phase_id: ph.id,
                    feature_id: leaf.id,
                    ..Default::default()
                }),
                update_mask: mask(&["assignee_ids", "phase_id", "feature_id"]),
            },
        ))
        .await
        .unwrap();
    let s1 = sprint(&app, t, &p.id, "Sprint 1").await;
    sprint(&app, t, &p.id, "Sprint 2").await;
    let g = gate(&app, t, &s1.id, "Done").await;
    evaluate(&app, t, &g.id, true).await;
    evaluate(&app, t, &g.id, false).await;
    // Something in the other program survives.
    let kw = workstream(&app, t, &keep.id, "Kept").await;
    let kt = task(&app, t, &keep.id, "Kept task").await;
    let ks = sprint(&app, t, &keep.id, "Kept sprint").await;
    let kg = gate(&app, t, &ks.id, "Kept gate").await;
    evaluate(&app, t, &kg.id, true).await;
    risk(&app, t, &keep.id, "Kept risk", 1, 1).await;
    goal(&app, t, &keep.id, "Kept goal").await;
    work_order(&app, t, &keep.id, "Kept work order").await;
    planner_phase(&app, t, &keep.id, "Kept phase").await;
    feature(&app, t, &keep.id, "checkout", "").await;
    subtask(&app, t, &kt.id, "kept subtask").await;
    let before = outbox(&app).await.len();

    let r = app
        .programs()
        .delete_program(authed(
            t,
            DeleteProgramRequest {
                id: p.id.clone(),
                etag: "0".into(),
            },
        ))
        .await;
    assert_status(r, Code::Aborted, "ETAG_MISMATCH");
    app.programs()
        .delete_program(authed(
            t,
            DeleteProgramRequest {
                id: p.id.clone(),
                etag: p.etag.clone(),
            },
        ))
        .await
        .unwrap();

    let r = app.programs().get_program(authed(t, get(&p.id))).await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    let r = app
        .tasks()
        .get_task(authed(t, GetTaskRequest { id: t1.id.clone() }))
        .await;
    assert_status(r, Code::NotFound, "TASK_NOT_FOUND");
    for (table, left) in [
        ("programs", 1),
        ("workstreams", 1),
        ("requirements", 0),
        ("requirement_dependencies", 0),
        ("tasks", 1),
        ("task_assignees", 0),
        ("subtasks", 1),
        ("risks", 1),
        ("goals", 1),
        ("work_orders", 1),
        ("work_order_assignees", 0),
        ("planner_phases", 1),
        ("features", 1),
        ("sprints", 1),
        ("sprint_gates", 1),
        ("sprint_gate_evaluations", 1),
    ] {
        assert_eq!(count(&app, table).await, left, "{table}");
    }
    app.workstreams()
        .get_workstream(authed(t, GetWorkstreamRequest { id: kw.id }))
        .await
        .expect("the other program's workstream is kept");

    let events = outbox(&app).await.split_off(before);
    assert_eq!(actions(&events), ["delivery.program.delete"]);
    let e = &events[0];
    assert_eq!(e["resource_id"], p.id);
    assert_eq!(e["project_id"], p.id);
    assert_eq!(e["changes"]["slug"]["old"], "doomed");
    assert_eq!(
        e["changes"]["removed"]["new"],
        serde_json::json!({
            "workstreams": 2, "requirements": 3, "dependencies": 2, "tasks": 2, "subtasks": 3,
            "risks": 1, "goals": 2, "work_orders": 1, "planner_phases": 4, "features": 3, "sprints": 2, "sprint_gates": 1, "sprint_gate_evaluations": 2
        })
    );
}

#[tokio::test]
async fn roles_decide_who_reads_writes_and_deletes_programs() {
    let app = TestApp::start().await;
    let p = program(&app, &app.alice.token, "roles").await;
    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let editor = app.new_member(&app.alice, R::Editor).await;
    app.programs()
        .get_program(authed(&viewer.token, get(&p.id)))
        .await
        .expect("a viewer reads");
    let r = app
        .programs()
        .create_program(authed(&viewer.token, new_program("nope")))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    program(&app, &editor.token, "by-editor").await;
    let r = app
        .programs()
        .delete_program(authed(
            &editor.token,
            DeleteProgramRequest {
                id: p.id.clone(),
                etag: String::new(),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
}

#[tokio::test]
async fn a_credential_bound_to_one_program_sees_only_that_program() {
    use foundry_testkit::identity as id;
    let app = TestApp::start().await;
    let mine = program(&app, &app.alice.token, "bound").await;
    let other = program(&app, &app.alice.token, "unbound").await;
    let ws = workstream(&app, &app.alice.token, &other.id, "Hidden").await;
    let key = app
        .api_keys()
        .create_api_key(authed(
            &app.alice.token,
            id::CreateApiKeyRequest {
                api_key: Some(id::ApiKey {
                    kind: id::ApiKeyKind::Agent as i32,
                    display_name: "agent".into(),
                    scopes: vec!["delivery.*.*".into()],
                    project_id: mine.id.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let token = app
        .auth()
        .exchange_token(id::ExchangeTokenRequest {
            grant: Some(id::exchange_token_request::Grant::AgentToken(key.secret)),
            org_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let listed = app
        .programs()
        .list_programs(authed(&token, ListProgramsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.programs.iter().map(|p| &p.id).collect::<Vec<_>>(),
        [&mine.id]
    );
    let r = app
        .programs()
        .get_program(authed(&token, get(&other.id)))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    let r = app
        .workstreams()
        .get_workstream(authed(&token, GetWorkstreamRequest { id: ws.id }))
        .await;
    assert_status(r, Code::NotFound, "WORKSTREAM_NOT_FOUND");
    let r = app
        .programs()
        .create_program(authed(&token, new_program("sneaky")))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");
    workstream(&app, &token, &mine.id, "Allowed").await;
}

use foundry_testkit::delivery::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

use crate::{
    actions, count, depend, mask, new_requirement, outbox, program, requirement, rid, workstream,
};

#[tokio::test]
async fn a_requirement_takes_its_program_from_its_workstream_with_defaults() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "req").await;
    let w = workstream(&app, t, &p.id, "Checkout").await;
    let r = requirement(&app, t, &w.id, "Pay by card").await;
    assert_eq!(r.program_id, p.id);
    assert_eq!(r.workstream_id, w.id);
    assert_eq!(r.priority, RequirementPriority::Medium as i32);
    assert_eq!(r.status, RequirementStatus::Draft as i32);
    assert_eq!(r.acceptance_criteria, ["it works"]);
    let got = app
        .requirements()
        .get_requirement(authed(t, GetRequirementRequest { id: r.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, r);

    let mut req = new_requirement(&w.id, "Critical one");
    let x = req.requirement.as_mut().unwrap();
    x.priority = RequirementPriority::Critical as i32;
    x.status = RequirementStatus::Approved as i32;
    x.batch = "wave-1".into();
    x.acceptance_criteria = vec!["Given a card\nWhen paying\nThen it is charged".into()];
    let c = app
        .requirements()
        .create_requirement(authed(t, req))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (c.priority, c.status, c.batch.as_str()),
        (
            RequirementPriority::Critical as i32,
            RequirementStatus::Approved as i32,
            "wave-1"
        )
    );
}

#[tokio::test]
async fn every_bad_requirement_field_is_reported_by_name() {
    let app = TestApp::start().await;
    let r = app
        .requirements()
        .create_requirement(authed(
            &app.alice.token,
            CreateRequirementRequest {
                requirement: Some(Requirement {
                    workstream_id: "0190b6a0-0000-7000-8000-00000000000".into(),
                    title: String::new(),
                    priority: 99,
                    acceptance_criteria: vec!["fine".into(), "  ".into(), "\u{1b}[31m".into()],
                    batch: "b".repeat(101),
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
            "requirement.workstream_id",
            "requirement.title",
            "requirement.priority",
            "requirement.acceptance_criteria[1]",
            "requirement.acceptance_criteria[2]",
            "requirement.batch"
        ]
    );
    let r = app
        .requirements()
        .list_requirements(authed(&app.alice.token, ListRequirementsRequest::default()))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["program_id"]);
}

#[tokio::test]
async fn another_organizations_requirements_are_not_found() {
    let app = TestApp::start().await;
    let bt = &app.bob.token;
    let bp = program(&app, bt, "bobs").await;
    let bw = workstream(&app, bt, &bp.id, "Bob's").await;
    let br = requirement(&app, bt, &bw.id, "Bob's req").await;
    let t = &app.alice.token;
    let r = app
        .requirements()
        .create_requirement(authed(t, new_requirement(&bw.id, "mine")))
        .await;
    assert_status(r, Code::NotFound, "WORKSTREAM_NOT_FOUND");
    let r = app
        .requirements()
        .get_requirement(authed(t, GetRequirementRequest { id: br.id.clone() }))
        .await;
    assert_status(r, Code::NotFound, "REQUIREMENT_NOT_FOUND");
    let r = app
        .requirements()
        .update_requirement(authed(
            t,
            UpdateRequirementRequest {
                requirement: Some(Requirement {
                    id: br.id.clone(),
                    title: "x".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["title"]),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "REQUIREMENT_NOT_FOUND");
    let r = app
        .requirements()
        .delete_requirement(authed(
            t,
            DeleteRequirementRequest {
                id: br.id.clone(),
                etag: String::new(),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "REQUIREMENT_NOT_FOUND");
    let r = app
        .requirements()
        .list_requirements(authed(
            t,
            ListRequirementsRequest {
                workstream_id: bw.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "WORKSTREAM_NOT_FOUND");
    let r = app
        .requirements()
        .list_requirements(authed(
            t,
            ListRequirementsRequest {
                program_id: bp.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
}

async fn list_ids(
    app: &TestApp,
    token: &str,
    mut req: ListRequirementsRequest,
) -> (Vec<String>, usize) {
    let (mut ids, mut pages) = (Vec::new(), 0);
    loop {
        let page = app
            .requirements()
            .list_requirements(authed(token, req.clone()))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        ids.extend(page.requirements.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            return (ids, pages);
        }
        req.page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn requirements_list_by_program_workstream_and_status_across_pages() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "reql").await;
    let w1 = workstream(&app, t, &p.id, "one").await;
    let w2 = workstream(&app, t, &p.id, "two").await;
    let mut all = Vec::new();
    let mut in_w1 = Vec::new();
    let mut approved = Vec::new();
    for i in 0..7 {
        let w = if i % 2 == 0 { &w1 } else { &w2 };
        let mut req = new_requirement(&w.id, &format!("r{i}"));
        if i % 3 == 0 {
            req.requirement.as_mut().unwrap().status = RequirementStatus::Approved as i32;
        }
        let r = app
            .requirements()
            .create_requirement(authed(t, req))
            .await
            .unwrap()
            .into_inner();
        if i % 2 == 0 {
            in_w1.push(r.id.clone());
        }
        if i % 3 == 0 {
            approved.push(r.id.clone());
        }
        all.push(r.id);
    }
    // Noise: another program, another org.
    let q = program(&app, t, "reql-noise").await;
    let qw = workstream(&app, t, &q.id, "noise").await;
    requirement(&app, t, &qw.id, "noise").await;
    let bp = program(&app, &app.bob.token, "reql-bob").await;
    let bw = workstream(&app, &app.bob.token, &bp.id, "bob").await;
    requirement(&app, &app.bob.token, &bw.id, "bob").await;
    for v in [&mut all, &mut in_w1, &mut approved] {
        v.reverse();
    }

    let by_program = ListRequirementsRequest {
        program_id: p.id.clone(),
        page_size: 3,
        ..Default::default()
    };
    assert_eq!(list_ids(&app, t, by_program.clone()).await, (all, 3));
    let by_workstream = ListRequirementsRequest {
        workstream_id: w1.id.clone(),
        page_size: 2,
        ..Default::default()
    };
    assert_eq!(list_ids(&app, t, by_workstream).await, (in_w1.clone(), 2));
    let by_status = ListRequirementsRequest {
        program_id: p.id.clone(),
        status: RequirementStatus::Approved as i32,
        page_size: 2,
        ..Default::default()
    };
    assert_eq!(list_ids(&app, t, by_status).await.0, approved);
    let both = ListRequirementsRequest {
        workstream_id: w1.id.clone(),
        status: RequirementStatus::Approved as i32,
        ..Default::default()
    };
    let expected: Vec<String> = in_w1
        .iter()
        .filter(|id| approved.contains(id))
        .cloned()
        .collect();
    assert_eq!(list_ids(&app, t, both).await.0, expected);

    // A page token of one filter set is refused under another.
    let first = app
        .requirements()
        .list_requirements(authed(t, by_program.clone()))
        .await
        .unwrap()
        .into_inner();
    let r = app
        .requirements()
        .list_requirements(authed(
            t,
            ListRequirementsRequest {
                status: RequirementStatus::Done as i32,
                page_token: first.next_page_token,
                ..by_program
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["page_token"]);
}

#[tokio::test]
async fn a_requirement_moves_within_its_program_only() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "move").await;
    let w1 = workstream(&app, t, &p.id, "one").await;
    let w2 = workstream(&app, t, &p.id, "two").await;
    let q = program(&app, t, "elsewhere").await;
    let qw = workstream(&app, t, &q.id, "other program").await;
    let r = requirement(&app, t, &w1.id, "movable").await;
    let update = |ws: &str, etag: &str, paths: &[&str]| UpdateRequirementRequest {
        requirement: Some(Requirement {
            id: r.id.clone(),
            workstream_id: ws.into(),
            title: "Moved".into(),
            priority: RequirementPriority::High as i32,
            status: RequirementStatus::InProgress as i32,
            acceptance_criteria: vec!["a".into(), "b".into()],
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    let out = app
        .requirements()
        .update_requirement(authed(
            t,
            update(
                &w2.id,
                "1",
                &[
                    "workstream_id",
                    "title",
                    "priority",
                    "status",
                    "acceptance_criteria",
                ],
            ),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.workstream_id, w2.id);
    assert_eq!(out.title, "Moved");
    assert_eq!(out.priority, RequirementPriority::High as i32);
    assert_eq!(out.status, RequirementStatus::InProgress as i32);
    assert_eq!(out.acceptance_criteria, ["a", "b"]);
    assert_eq!(out.etag, "2");
    let r2 = app
        .requirements()
        .update_requirement(authed(t, update(&qw.id, "", &["workstream_id"])))
        .await;
    assert_status(r2, Code::FailedPrecondition, "DIFFERENT_PROGRAM");
    let r2 = app
        .requirements()
        .update_requirement(authed(t, update(&w1.id, "", &["program_id"])))
        .await;
    let s = assert_status(r2, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["update_mask"]);
    let e = outbox(&app)
        .await
        .into_iter()
        .find(|e| e["action"] == "delivery.requirement.update")
        .unwrap();
    assert_eq!(e["changes"]["workstream_id"]["new"], w2.id);
    assert_eq!(e["changes"]["priority"]["old"], "medium");
    assert!(e["changes"].get("batch").is_none());
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_requirement() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "reqi").await;
    let w = workstream(&app, t, &p.id, "w").await;
    let mut req = new_requirement(&w.id, "once");
    req.request_id = rid();
    let a = app
        .requirements()
        .create_requirement(authed(t, req.clone()))
        .await
        .unwrap()
        .into_inner();
    let b = app
        .requirements()
        .create_requirement(authed(t, req))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    assert_eq!(count(&app, "requirements").await, 1);
}

#[tokio::test]
async fn deleting_a_requirement_removes_its_edges_and_detaches_its_tasks() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "reqd").await;
    let w = workstream(&app, t, &p.id, "w").await;
    let a = requirement(&app, t, &w.id, "a").await;
    let b = requirement(&app, t, &w.id, "b").await;
    let c = requirement(&app, t, &w.id, "c").await;
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
    let before = outbox(&app).await.len();
    let r = app
        .requirements()
        .delete_requirement(authed(
            t,
            DeleteRequirementRequest {
                id: b.id.clone(),
                etag: "9".into(),
            },
        ))
        .await;
    assert_status(r, Code::Aborted, "ETAG_MISMATCH");
    app.requirements()
        .delete_requirement(authed(
            t,
            DeleteRequirementRequest {
                id: b.id.clone(),
                etag: b.etag.clone(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(count(&app, "requirement_dependencies").await, 0);
    let t1 = app
        .tasks()
        .get_task(authed(t, GetTaskRequest { id: under.id }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t1.requirement_id, "");
    let events = outbox(&app).await.split_off(before);
    assert_eq!(actions(&events), ["delivery.requirement.delete"]);
    assert_eq!(
        events[0]["changes"]["removed"]["new"],
        serde_json::json!({"dependencies": 2, "tasks_detached": 1})
    );
    // Beside the audit event, the domain event other services react to.
    let mut db = app.admin_db().await;
    let facts: Vec<(String, i32, serde_json::Value)> = sqlx::query_as(
        "SELECT type, version, payload FROM delivery.outbox WHERE kind = 'domain' ORDER BY seq",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(facts.len(), 1, "{facts:?}");
    let (r#type, version, fact) = &facts[0];
    assert_eq!(
        (r#type.as_str(), *version),
        ("delivery.requirement.deleted", 1)
    );
    assert_eq!(fact["subject_type"], "delivery.requirement");
    assert_eq!(fact["subject_id"], b.id.as_str());
    assert_eq!(fact["org_id"], app.alice.org_id.to_string());
    assert_eq!(fact["data"]["program_id"], p.id.as_str());
    assert_eq!(fact["data"]["workstream_id"], w.id.as_str());
    let r = app
        .requirements()
        .get_requirement(authed(t, GetRequirementRequest { id: b.id }))
        .await;
    assert_status(r, Code::NotFound, "REQUIREMENT_NOT_FOUND");
}

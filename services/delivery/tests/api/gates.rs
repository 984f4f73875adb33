use foundry_testkit::delivery::*;
use foundry_testkit::identity as idp;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

use crate::{
    actions, answer, count, criterion, evaluate, gate, mask, new_gate, outbox, program, rid, sprint,
};

fn eval_req(gate_id: &str, results: Vec<SprintGateCriterionResult>) -> EvaluateSprintGateRequest {
    EvaluateSprintGateRequest {
        gate_id: gate_id.into(),
        results,
        etag: String::new(),
    }
}

#[tokio::test]
async fn gates_are_created_listed_updated_and_deleted() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "gates").await;
    let s = sprint(&app, t, &p.id, "s").await;
    let mut req = new_gate(&s.id, "Definition of done");
    req.sprint_gate
        .as_mut()
        .unwrap()
        .criteria
        .push(SprintGateCriterion {
            id: String::new(),
            description: "demo recorded".into(),
            required: false,
        });
    let g = app
        .sprint_gates()
        .create_sprint_gate(authed(t, req))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.program_id, p.id);
    assert_eq!(g.sprint_id, s.id);
    assert_eq!(
        g.criteria[..3]
            .iter()
            .map(|c| (c.id.as_str(), c.required))
            .collect::<Vec<_>>(),
        [("tests", true), ("review", true), ("docs", false)]
    );
    assert!(
        uuid::Uuid::parse_str(&g.criteria[3].id).is_ok(),
        "an empty id is assigned"
    );
    let got = app
        .sprint_gates()
        .get_sprint_gate(authed(t, GetSprintGateRequest { id: g.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, g);
    let g2 = gate(&app, t, &s.id, "Second").await;
    let g3 = gate(&app, t, &s.id, "Third").await;
    // Newest first, across pages.
    let (mut names, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = app
            .sprint_gates()
            .list_sprint_gates(authed(
                t,
                ListSprintGatesRequest {
                    sprint_id: s.id.clone(),
                    page_size: 2,
                    page_token: token.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        names.extend(page.sprint_gates.into_iter().map(|g| g.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(names, ["Third", "Second", "Definition of done"]);
    assert_eq!(pages, 2);

    // Update: masked fields only; criteria replaced whole; stale etag.
    let update = |etag: &str, paths: &[&str]| UpdateSprintGateRequest {
        sprint_gate: Some(SprintGate {
            id: g2.id.clone(),
            name: "Renamed".into(),
            description: "what done means".into(),
            criteria: vec![criterion("ci-green", true)],
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    let out = app
        .sprint_gates()
        .update_sprint_gate(authed(t, update("1", &["name", "criteria"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.name, "Renamed");
    assert_eq!(out.description, "");
    assert_eq!(out.criteria, [criterion("ci-green", true)]);
    assert_eq!(out.etag, "2");
    let r = app
        .sprint_gates()
        .update_sprint_gate(authed(t, update("", &["sprint_id"])))
        .await;
    let st = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&st), ["update_mask"]);

    evaluate(&app, t, &g3.id, true).await;
    app.sprint_gates()
        .delete_sprint_gate(authed(
            t,
            DeleteSprintGateRequest {
                id: g3.id.clone(),
                etag: g3.etag.clone(),
            },
        ))
        .await
        .unwrap();
    let r = app
        .sprint_gates()
        .get_sprint_gate(authed(t, GetSprintGateRequest { id: g3.id.clone() }))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_GATE_NOT_FOUND");
    assert_eq!(
        count(&app, "sprint_gate_evaluations").await,
        0,
        "the gate's evaluations went with it, by cascade"
    );

    let events = outbox(&app).await;
    let acts: Vec<&str> = actions(&events)
        .into_iter()
        .filter(|a| a.starts_with("delivery.sprint_gate."))
        .collect();
    assert_eq!(
        acts,
        [
            "delivery.sprint_gate.create",
            "delivery.sprint_gate.create",
            "delivery.sprint_gate.create",
            "delivery.sprint_gate.update",
            "delivery.sprint_gate.evaluate",
            "delivery.sprint_gate.delete",
        ]
    );
    let deleted = events.last().unwrap();
    assert_eq!(deleted["project_id"], p.id);
    assert_eq!(
        deleted["changes"]["removed"]["new"],
        serde_json::json!({"sprint_gate_evaluations": 1})
    );
}

#[tokio::test]
async fn every_bad_gate_field_is_reported_by_name() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let r = app
        .sprint_gates()
        .create_sprint_gate(authed(
            t,
            CreateSprintGateRequest {
                sprint_gate: Some(SprintGate {
                    sprint_id: "s".into(),
                    name: String::new(),
                    criteria: vec![
                        criterion("ok", true),
                        criterion("has space", true),
                        criterion("ok", false),
                        SprintGateCriterion {
                            id: "x".into(),
                            description: " ".into(),
                            required: true,
                        },
                    ],
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
            "sprint_gate.sprint_id",
            "sprint_gate.name",
            "sprint_gate.criteria[1].id",
            "sprint_gate.criteria[2].id",
            "sprint_gate.criteria[3].description"
        ]
    );
    let p = program(&app, t, "gate-bad").await;
    let sp = sprint(&app, t, &p.id, "s").await;
    let mut req = new_gate(&sp.id, "none");
    req.sprint_gate.as_mut().unwrap().criteria.clear();
    let r = app.sprint_gates().create_sprint_gate(authed(t, req)).await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["sprint_gate.criteria"]);
    let r = app
        .sprint_gates()
        .list_sprint_gates(authed(t, ListSprintGatesRequest::default()))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["sprint_id"]);
}

#[tokio::test]
async fn a_gate_passes_only_when_every_required_criterion_passed() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "gate-eval").await;
    let s = sprint(&app, t, &p.id, "s").await;
    let g = gate(&app, t, &s.id, "Done").await;
    let ev = |results| async {
        app.sprint_gates()
            .evaluate_sprint_gate(authed(t, eval_req(&g.id, results)))
            .await
    };
    // Both required passed, the optional one not answered: passes.
    let e1 = ev(vec![answer("review", true), answer("tests", true)])
        .await
        .unwrap()
        .into_inner();
    assert!(e1.passed);
    assert_eq!(e1.gate_id, g.id);
    assert_eq!(e1.sprint_id, s.id);
    assert_eq!(e1.program_id, p.id);
    assert_eq!(e1.evaluator_id, app.alice.user_id.to_string());
    assert_eq!(e1.evaluator_type, SprintGateEvaluatorType::User as i32);
    assert_eq!(
        e1.results
            .iter()
            .map(|r| (r.criterion_id.as_str(), r.passed, r.required))
            .collect::<Vec<_>>(),
        [
            ("tests", true, true),
            ("review", true, true),
            ("docs", false, false)
        ],
        "in the gate's order, with the criterion as evaluated"
    );
    assert_eq!(e1.results[0].evidence, "evidence for tests");
    assert_eq!(e1.results[0].description, "tests holds");
    // A failed optional criterion does not fail the gate; a failed required
    // one does.
    let e2 = ev(vec![
        answer("tests", true),
        answer("review", true),
        answer("docs", false),
    ])
    .await
    .unwrap()
    .into_inner();
    assert!(e2.passed);
    let e3 = ev(vec![
        answer("tests", true),
        answer("review", false),
        answer("docs", true),
    ])
    .await
    .unwrap()
    .into_inner();
    assert!(!e3.passed);

    // A required criterion unanswered; an unknown id; a repeat.
    let r = ev(vec![answer("tests", true)]).await;
    let st = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&st), ["results"]);
    let r = ev(vec![
        answer("tests", true),
        answer("nope", true),
        answer("review", true),
        answer("tests", false),
    ])
    .await;
    let st = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&st),
        ["results[1].criterion_id", "results[3].criterion_id"]
    );
    let r = ev(vec![answer("", true)]).await;
    let st = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&st), ["results[0].criterion_id"]);
    // A stale gate etag is refused.
    let mut stale = eval_req(&g.id, vec![answer("tests", true), answer("review", true)]);
    stale.etag = "3".into();
    let r = app
        .sprint_gates()
        .evaluate_sprint_gate(authed(t, stale))
        .await;
    assert_status(r, Code::Aborted, "ETAG_MISMATCH");

    // Listed newest first, across pages; each readable by id.
    let first = app
        .sprint_gates()
        .list_sprint_gate_evaluations(authed(
            t,
            ListSprintGateEvaluationsRequest {
                gate_id: g.id.clone(),
                page_size: 2,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.sprint_gate_evaluations, [e3.clone(), e2.clone()]);
    let rest = app
        .sprint_gates()
        .list_sprint_gate_evaluations(authed(
            t,
            ListSprintGateEvaluationsRequest {
                gate_id: g.id.clone(),
                page_size: 2,
                page_token: first.next_page_token,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.sprint_gate_evaluations, std::slice::from_ref(&e1));
    assert!(rest.next_page_token.is_empty());
    let got = app
        .sprint_gates()
        .get_sprint_gate_evaluation(authed(
            t,
            GetSprintGateEvaluationRequest { id: e3.id.clone() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, e3);

    // Changing the criteria afterwards leaves past evaluations as they were.
    app.sprint_gates()
        .update_sprint_gate(authed(
            t,
            UpdateSprintGateRequest {
                sprint_gate: Some(SprintGate {
                    id: g.id.clone(),
                    criteria: vec![criterion("other", true)],
                    ..Default::default()
                }),
                update_mask: mask(&["criteria"]),
            },
        ))
        .await
        .unwrap();
    let again = app
        .sprint_gates()
        .get_sprint_gate_evaluation(authed(
            t,
            GetSprintGateEvaluationRequest { id: e1.id.clone() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, e1);

    let events = outbox(&app).await;
    let evals: Vec<_> = events
        .iter()
        .filter(|e| e["action"] == "delivery.sprint_gate.evaluate")
        .collect();
    assert_eq!(evals.len(), 3, "one event per recorded evaluation");
    assert_eq!(evals[2]["resource_type"], "delivery.sprint_gate_evaluation");
    assert_eq!(evals[2]["resource_id"], e3.id);
    assert_eq!(evals[2]["project_id"], p.id);
    assert_eq!(evals[2]["changes"]["passed"]["new"], false);
    assert_eq!(evals[2]["changes"]["gate_id"]["new"], g.id);
}

#[tokio::test]
async fn evaluations_are_immutable_for_the_service_role() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "gate-immutable").await;
    let s = sprint(&app, t, &p.id, "s").await;
    let g = gate(&app, t, &s.id, "Done").await;
    let e = evaluate(&app, t, &g.id, false).await;
    let mut db = app.admin_db().await;
    sqlx::query("SET ROLE foundry_delivery")
        .execute(&mut db)
        .await
        .unwrap();
    for sql in [
        "UPDATE delivery.sprint_gate_evaluations SET passed = true",
        "DELETE FROM delivery.sprint_gate_evaluations",
    ] {
        let r = sqlx::query(sql).execute(&mut db).await;
        let err = r.expect_err(sql).to_string();
        assert!(err.contains("permission denied"), "{sql}: {err}");
    }
    sqlx::query("RESET ROLE").execute(&mut db).await.unwrap();
    let got = app
        .sprint_gates()
        .get_sprint_gate_evaluation(authed(
            t,
            GetSprintGateEvaluationRequest { id: e.id.clone() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!got.passed, "unchanged");
    // Yet the cascade from the program removes them.
    let p = app
        .programs()
        .get_program(authed(t, GetProgramRequest { id: p.id.clone() }))
        .await
        .unwrap()
        .into_inner();
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
    assert_eq!(count(&app, "sprint_gate_evaluations").await, 0);
    assert_eq!(count(&app, "sprint_gates").await, 0);
}

#[tokio::test]
async fn the_evaluator_is_the_tokens_principal_user_or_agent() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "gate-agent").await;
    let s = sprint(&app, t, &p.id, "s").await;
    let g = gate(&app, t, &s.id, "Done").await;
    let agent = app
        .api_keys()
        .create_api_key(authed(
            t,
            idp::CreateApiKeyRequest {
                api_key: Some(idp::ApiKey {
                    kind: idp::ApiKeyKind::Agent as i32,
                    display_name: "gatekeeper".into(),
                    scopes: vec![
                        "delivery.sprints.read".into(),
                        "delivery.sprints.write".into(),
                    ],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .expect("agent key")
        .into_inner();
    let token = app
        .auth()
        .exchange_token(idp::ExchangeTokenRequest {
            grant: Some(idp::exchange_token_request::Grant::AgentToken(
                agent.secret.clone(),
            )),
            org_id: String::new(),
        })
        .await
        .expect("exchange")
        .into_inner()
        .access_token;
    let by_agent = evaluate(&app, &token, &g.id, true).await;
    assert_eq!(
        by_agent.evaluator_type,
        SprintGateEvaluatorType::Agent as i32
    );
    assert_eq!(by_agent.evaluator_id, agent.id);
    let by_user = evaluate(&app, t, &g.id, true).await;
    assert_eq!(by_user.evaluator_type, SprintGateEvaluatorType::User as i32);
    assert_eq!(by_user.evaluator_id, app.alice.user_id.to_string());
    let mut db = app.admin_db().await;
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT evaluator_type FROM delivery.sprint_gate_evaluations ORDER BY id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(stored, ["agent", "user"]);
    let events = outbox(&app).await;
    let evaluated: Vec<_> = events
        .iter()
        .filter(|e| e["action"] == "delivery.sprint_gate.evaluate")
        .collect();
    assert_eq!(evaluated[0]["actor_type"], "agent");
    assert_eq!(evaluated[1]["actor_type"], "user");
}

#[tokio::test]
async fn another_organizations_gates_and_evaluations_are_not_found() {
    let app = TestApp::start().await;
    let b = &app.bob.token;
    let bobs = program(&app, b, "bobs-gates").await;
    let s = sprint(&app, b, &bobs.id, "s").await;
    let g = gate(&app, b, &s.id, "Bob's").await;
    let e = evaluate(&app, b, &g.id, true).await;
    let t = &app.alice.token;
    let gates = app.sprint_gates();
    let r = gates
        .clone()
        .create_sprint_gate(authed(t, new_gate(&s.id, "mine")))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_NOT_FOUND");
    let r = gates
        .clone()
        .list_sprint_gates(authed(
            t,
            ListSprintGatesRequest {
                sprint_id: s.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_NOT_FOUND");
    let r = gates
        .clone()
        .get_sprint_gate(authed(t, GetSprintGateRequest { id: g.id.clone() }))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_GATE_NOT_FOUND");
    let r = gates
        .clone()
        .update_sprint_gate(authed(
            t,
            UpdateSprintGateRequest {
                sprint_gate: Some(SprintGate {
                    id: g.id.clone(),
                    name: "x".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_GATE_NOT_FOUND");
    let r = gates
        .clone()
        .delete_sprint_gate(authed(
            t,
            DeleteSprintGateRequest {
                id: g.id.clone(),
                etag: String::new(),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_GATE_NOT_FOUND");
    let r = gates
        .clone()
        .evaluate_sprint_gate(authed(
            t,
            eval_req(&g.id, vec![answer("tests", true), answer("review", true)]),
        ))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_GATE_NOT_FOUND");
    let r = gates
        .clone()
        .list_sprint_gate_evaluations(authed(
            t,
            ListSprintGateEvaluationsRequest {
                gate_id: g.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_GATE_NOT_FOUND");
    let r = gates
        .clone()
        .get_sprint_gate_evaluation(authed(t, GetSprintGateEvaluationRequest { id: e.id }))
        .await;
    assert_status(r, Code::NotFound, "SPRINT_GATE_EVALUATION_NOT_FOUND");
    assert_eq!(count(&app, "sprint_gate_evaluations").await, 1);
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_gate() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "gate-idem").await;
    let s = sprint(&app, t, &p.id, "s").await;
    let mut req = new_gate(&s.id, "Once");
    req.request_id = rid();
    let a = app
        .sprint_gates()
        .create_sprint_gate(authed(t, req.clone()))
        .await
        .unwrap()
        .into_inner();
    let b = app
        .sprint_gates()
        .create_sprint_gate(authed(t, req))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    assert_eq!(count(&app, "sprint_gates").await, 1);
}

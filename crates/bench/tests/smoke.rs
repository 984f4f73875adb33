//! Smoke: every benchmark scenario runs to completion without errors (a
//! second each; the figures are not asserted: speed lives in the report).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn the_outbox_benchmark_runs_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("outbox.json");
    let out = Command::new(env!("CARGO_BIN_EXE_foundry-bench"))
        .args(["outbox", "--smoke", "--json"])
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
    assert!(stdout.contains("The outbox adds"), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for scenario in [
        "tx_without_outbox",
        "tx_with_outbox",
        "rpc_update_organization",
    ] {
        assert!(
            report[scenario]["calls"].as_u64().unwrap() > 0,
            "{scenario}: {report}"
        );
        assert_eq!(report[scenario]["errors"], 0, "{scenario}");
    }
    let lag = &report["relay_lag"];
    assert!(lag["mutations"].as_u64().unwrap() > 0);
    assert_eq!(
        lag["events_delivered"].as_u64(),
        lag["mutations"].as_u64(),
        "every event delivered"
    );
}

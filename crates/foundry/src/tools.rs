//! Outside tools the end-to-end tests and the bench drive (Envoy, grpcurl):
//! where to find them.

use std::path::PathBuf;

/// `name`: the path in `$env`, the repository's `.venv/bin/NAME` (where
/// `.ci/run` installs it from PyPI), or `NAME` on PATH if it runs.
pub fn find(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(p.into());
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.venv/bin")
        .join(name);
    if venv.exists() {
        return Some(venv);
    }
    std::process::Command::new(name)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| name.into())
}

/// A loopback port free now (for a tool's listener).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

//! A second load generator in a process of its own: `h2load` (nghttp2's
//! HTTP/2 benchmark, Debian's `nghttp2-client`) sending framed gRPC
//! requests, so that the in-process client's own cost shows beside it.
//! Each of its `clients` connections keeps one call in flight, like the
//! in-process closed loop; per-request latencies come from its log into
//! the same histogram. h2load sees HTTP statuses, not gRPC's (a refused
//! call is still HTTP 200), so the request is first made once through
//! tonic and must succeed.

use std::path::PathBuf;
use std::time::Duration;

use crate::load::{Summary, histogram, summarise};

/// The `h2load` binary, when installed (`FOUNDRY_BENCH_H2LOAD` or `PATH`).
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FOUNDRY_BENCH_H2LOAD") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("h2load"))
            .find(|p| p.is_file())
    })
}

/// One gRPC method called with one message.
pub struct Call<'a> {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// `/package.Service/Method`.
    pub path: &'a str,
    /// The bearer token.
    pub token: &'a str,
    /// The request message, encoded.
    pub body: Vec<u8>,
}

/// Runs `call` from `clients` connections for `warmup + duration`.
pub async fn run(
    bin: &std::path::Path,
    name: &str,
    call: &Call<'_>,
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Summary> {
    let dir = tempfile::Builder::new()
        .prefix("foundry-h2load")
        .tempdir()?;
    // The gRPC frame: uncompressed, length, message.
    let body = &call.body;
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(body.len())?.to_be_bytes());
    framed.extend_from_slice(body);
    let data = dir.path().join("request.bin");
    std::fs::write(&data, framed)?;
    let log = dir.path().join("log.tsv");
    let out = tokio::process::Command::new(bin)
        .args(["-c", &clients.to_string(), "-m", "1", "-t", "1"])
        .arg(format!("--warm-up-time={}ms", warmup.as_millis().max(100)))
        .arg(format!("--duration={}ms", duration.as_millis().max(100)))
        .arg(format!("--log-file={}", log.display()))
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg("-H")
        .arg(format!("authorization: Bearer {}", call.token))
        .arg("-d")
        .arg(&data)
        .arg(format!("{}{}", call.base, call.path))
        .kill_on_drop(true)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        anyhow::bail!(
            "h2load ({name}) failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Log lines: start (µs since the epoch), HTTP status, latency (µs).
    let text = std::fs::read_to_string(&log)?;
    let mut done: Vec<(u64, &str, u64)> = vec![];
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if let (Some(Ok(start)), Some(status), Some(Ok(lat))) = (
            f.first().map(|s| s.parse::<u64>()),
            f.get(1),
            f.get(2).map(|s| s.parse::<u64>()),
        ) {
            done.push((start, status, lat));
        }
    }
    // The last `duration` of it (whether or not h2load logs its warm-up).
    let end = done.iter().map(|d| d.0 + d.2).max().unwrap_or_default();
    let from = end.saturating_sub(duration.as_micros() as u64);
    let (mut h, mut failed, mut first) = (histogram(), 0u64, u64::MAX);
    for (start, status, lat) in done {
        if start < from {
            continue;
        }
        first = first.min(start);
        if status == "200" {
            let _ = h.record(lat.max(1));
        } else {
            failed += 1;
        }
    }
    let window = Duration::from_micros(end.saturating_sub(first).max(1));
    Ok(summarise(name, &h, failed, window))
}

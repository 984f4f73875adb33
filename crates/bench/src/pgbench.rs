//! The database ceiling: `pgbench` from the machine's PostgreSQL running the
//! very statements a handler runs, prepared, at the same concurrency, as
//! the same role with the same `search_path` (so row-level security costs
//! the same), against the same database. Per-transaction latencies come
//! from pgbench's log (`-l`) into the same histogram as the gRPC callers';
//! the first `warmup` of completions is discarded like theirs.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::load::{Summary, histogram, summarise};

/// Where and as whom pgbench connects.
#[derive(Clone)]
pub struct Target {
    /// The pgbench binary.
    pub bin: PathBuf,
    /// The database URL, password included; libpq takes it whole as the database name.
    url: String,
}

impl Target {
    /// pgbench from the PostgreSQL the embedded cluster runs, against `url`.
    pub fn new(url: &str) -> anyhow::Result<Target> {
        let bin = foundry_pgembed::find_bin_dir()?.join("pgbench");
        PgConnectOptions::from_str(url)?;
        Ok(Target {
            bin,
            url: url.to_owned(),
        })
    }
}

/// A script and what it runs as.
#[derive(Clone, Debug)]
pub struct Script {
    /// The service's schema: its role and `search_path`.
    pub schema: &'static str,
    /// The organization each connection's session is set to (`app.org_id`,
    /// as the service's read connections are).
    pub org: uuid::Uuid,
    /// pgbench's script.
    pub text: String,
    /// Its variables (`-D name=value`).
    pub vars: Vec<(String, String)>,
}

/// Runs `script` as its service's role with `clients` connections for
/// `warmup + duration`.
pub async fn run(
    t: &Target,
    name: &str,
    script: &Script,
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Summary> {
    let dir = tempfile::Builder::new()
        .prefix("foundry-pgbench")
        .tempdir()?;
    let file = dir.path().join("script.sql");
    std::fs::write(&file, &script.text)?;
    let seconds = (warmup + duration).as_secs_f64().ceil().max(1.0) as u64;
    let out = tokio::process::Command::new(&t.bin)
        .args(["-n", "-M", "prepared", "-l"])
        .arg(format!("--log-prefix={}", dir.path().join("log").display()))
        .args(["-c", &clients.to_string()])
        .args(["-j", &clients.clamp(1, 2).to_string()])
        .args(["-T", &seconds.to_string()])
        .args(
            script
                .vars
                .iter()
                .flat_map(|(k, v)| ["-D".to_owned(), format!("{k}={v}")]),
        )
        .arg("-f")
        .arg(&file)
        .arg(&t.url)
        .env(
            "PGOPTIONS",
            format!(
                "-c search_path={schema} -c role={role} -c app.org_id={org}",
                schema = script.schema,
                role = foundry_platform::db::app_role(script.schema),
                org = script.org,
            ),
        )
        .kill_on_drop(true)
        .output()
        .await?;
    if !out.status.success() {
        anyhow::bail!(
            "pgbench ({name}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of failed transactions: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    // Log lines: client transaction latency_us script epoch_s epoch_us.
    let mut done: Vec<(f64, u64)> = vec![];
    for entry in std::fs::read_dir(dir.path())? {
        let path = entry?.path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("log."))
        {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let (Some(lat), Some(s), Some(us)) = (f.get(2), f.get(4), f.get(5))
                && let (Ok(lat), Ok(s), Ok(us)) =
                    (lat.parse::<u64>(), s.parse::<f64>(), us.parse::<f64>())
            {
                done.push((s + us / 1e6, lat));
            }
        }
    }
    let first = done.iter().map(|d| d.0).fold(f64::INFINITY, f64::min);
    let from = first + warmup.as_secs_f64();
    let mut h = histogram();
    let mut last = from;
    for (at, lat) in done {
        if at >= from {
            let _ = h.record(lat.max(1));
            last = last.max(at);
        }
    }
    let window = Duration::from_secs_f64((last - from).max(1e-3));
    Ok(summarise(name, &h, failed, window))
}

//! `foundry-bench`: benchmarks of the suite, measured side by side in one
//! run and reported as ratios (these machines are shared; absolute times
//! drift, ratios of runs made together much less).
//!
//! - `foundry-bench api`: the API scenarios beside the framework ceiling
//!   (bare tonic), the database ceiling (pgbench running the handlers' SQL)
//!   and the tenancy layer off; growth from a small to a large table; the
//!   token exchange; a 90/10 mix; HTTP/JSON through Envoy.
//! - `foundry-bench outbox`: what the transactional outbox costs a mutation
//!   and the relay's lag under sustained load.
//! - `foundry-bench all`: both, written to `bench-report.md`.
//!
//! `--smoke` runs each scenario for a moment at a small scale (the test
//! suite uses it to prove they work; its figures mean nothing).

mod api;
mod capture;
mod ceiling;
mod env;
mod gateway;
mod h2load;
mod jobs;
mod load;
mod outbox;
mod pgbench;
mod report;
mod seed;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(name = "foundry-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// A fraction of a second per scenario at a small scale: proves each
    /// scenario runs, measures nothing worth quoting.
    #[arg(long, global = true)]
    smoke: bool,
    /// Write the figures as JSON here.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Concurrent callers (and pgbench clients).
    #[arg(long, global = true, default_value_t = 8)]
    concurrency: usize,
    /// Seconds measured per scenario (after one second of warm-up).
    #[arg(long, global = true, default_value_t = 5)]
    seconds: u64,
}

#[derive(Args, Debug, Clone)]
struct ApiArgs {
    /// Run only these scenarios (repeatable; default: all).
    #[arg(long = "scenario", value_enum)]
    scenarios: Vec<api::Scenario>,
    /// Rows per table for the side-by-side runs and the small scale.
    #[arg(long, default_value_t = 10_000)]
    small: u64,
    /// Rows per table at the large scale.
    #[arg(long, default_value_t = 1_000_000)]
    large: u64,
    /// Skip the Envoy gateway comparison even if Envoy is installed.
    #[arg(long)]
    no_envoy: bool,
}

#[derive(Args, Debug, Clone)]
struct OutboxArgs {
    /// Mutations per second in the lag run.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
}

#[derive(Args, Debug, Clone)]
struct JobsArgs {
    /// No-op jobs in the throughput run.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Jobs per enqueue batch and per claim.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Offered jobs per second in the pickup-latency run.
    #[arg(long, default_value_t = 500.0)]
    job_rate: f64,
    /// The big organization's backlog in the fairness run.
    #[arg(long, default_value_t = 100_000)]
    backlog: usize,
    /// Workers held back for organizations with nothing running, beside
    /// the claim loop's `--batch` (the worker runs both at once).
    #[arg(long, default_value_t = 128)]
    reserved: usize,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The API scenarios beside their baselines, and their growth.
    Api(ApiArgs),
    /// The outbox's cost per mutation and the relay's lag.
    Outbox(OutboxArgs),
    /// The job queue: throughput, pickup latency, fairness.
    Jobs(JobsArgs),
    /// Everything, written to a Markdown report.
    All {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        outbox: OutboxArgs,
        #[command(flatten)]
        jobs: JobsArgs,
        /// Where the report goes.
        #[arg(long, default_value = "bench-report.md")]
        out: PathBuf,
    },
}

impl Cli {
    fn api_params(&self, a: &ApiArgs) -> api::Params {
        let envoy = if a.no_envoy {
            None
        } else {
            gateway::find_envoy()
        };
        if self.smoke {
            api::Params {
                scenarios: a.scenarios.clone(),
                concurrency: 2,
                duration: Duration::from_millis(300),
                warmup: Duration::from_millis(50),
                small: 500,
                large: 2_000,
                mixed_orgs: 3,
                mixed_tasks: 100,
                admit_calls: 100,
                envoy,
                h2load: h2load::find(),
            }
        } else {
            api::Params {
                scenarios: a.scenarios.clone(),
                concurrency: self.concurrency,
                duration: Duration::from_secs(self.seconds),
                warmup: Duration::from_secs(1),
                small: a.small,
                large: a.large,
                mixed_orgs: 100,
                mixed_tasks: 1_000,
                admit_calls: 100_000,
                envoy,
                h2load: h2load::find(),
            }
        }
    }

    fn jobs_params(&self, j: &JobsArgs) -> jobs::Params {
        if self.smoke {
            jobs::Params {
                jobs: 2_000,
                batch: j.batch,
                concurrency: 16 + 24,
                reserved: 24,
                rate: 100.0,
                duration: Duration::from_millis(500),
                backlog: 5_000,
                few: 20,
                rounds: 2,
            }
        } else {
            jobs::Params {
                jobs: j.jobs,
                batch: j.batch,
                concurrency: j.batch + j.reserved,
                reserved: j.reserved,
                rate: j.job_rate,
                duration: Duration::from_secs(self.seconds),
                backlog: j.backlog,
                few: 100,
                rounds: 20,
            }
        }
    }

    fn outbox_params(&self, o: &OutboxArgs) -> outbox::Params {
        if self.smoke {
            outbox::Params {
                concurrency: 2,
                duration: Duration::from_millis(500),
                warmup: Duration::from_millis(50),
                rate: 50.0,
            }
        } else {
            outbox::Params {
                concurrency: self.concurrency,
                duration: Duration::from_secs(self.seconds),
                warmup: Duration::from_secs(1),
                rate: o.rate,
            }
        }
    }
}

/// The JSON form of a run.
#[derive(Serialize)]
struct Json<'a> {
    api: Option<&'a api::Report>,
    outbox: Option<&'a outbox::Report>,
    jobs: Option<&'a jobs::Report>,
}

fn check_outbox(r: &outbox::Report) -> anyhow::Result<()> {
    let l = &r.relay_lag;
    let errors = r.tx_without_outbox.errors
        + r.tx_with_outbox.errors
        + r.rpc_update_organization.errors
        + l.rpc.errors;
    anyhow::ensure!(errors == 0, "{errors} outbox calls failed");
    anyhow::ensure!(
        l.events_delivered == l.mutations as i64,
        "{} mutations but {} events delivered",
        l.mutations,
        l.events_delivered
    );
    Ok(())
}

/// The log filter when `RUST_LOG` is unset.
const LOG_FILTER: &str = "warn,foundry_bench=info";

/// What the report says about where and when it was measured.
fn preamble(started: Instant) -> String {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let pg = foundry_pgembed::find_bin_dir()
        .ok()
        .and_then(|d| {
            std::process::Command::new(d.join("postgres"))
                .arg("--version")
                .output()
                .ok()
        })
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "# Foundry benchmark report\n\n\
         Generated by `foundry-bench all` at {} (commit {commit}) on {} CPU(s), against {pg} \
         (embedded cluster, this machine's binaries), in {:.0} s. Load generator, servers and \
         PostgreSQL share the same cores, as in production on one host; compare rows of one \
         report, not absolute figures across machines. Log filter: `{}` (the servers' per-call \
         access log is at info).\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64(),
        std::env::var("RUST_LOG").unwrap_or_else(|_| LOG_FILTER.to_owned())
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The measured servers' per-call access log (info) is off unless
    // RUST_LOG asks for it: the bench's own progress is what prints.
    let _telemetry = foundry_platform::telemetry::init_with_default(
        "foundry-bench",
        foundry_platform::telemetry::LogFormat::Text,
        LOG_FILTER,
    );
    let started = Instant::now();
    let (api_report, outbox_report, jobs_report) = match &cli.command {
        Command::Api(a) => (Some(api::run(&cli.api_params(a)).await?), None, None),
        Command::Outbox(o) => (None, Some(outbox::run(&cli.outbox_params(o)).await?), None),
        Command::Jobs(j) => (None, None, Some(jobs::run(&cli.jobs_params(j)).await?)),
        Command::All {
            api: a,
            outbox: o,
            jobs: j,
            ..
        } => {
            let api_report = api::run(&cli.api_params(a)).await?;
            let outbox_report = outbox::run(&cli.outbox_params(o)).await?;
            let jobs_report = jobs::run(&cli.jobs_params(j)).await?;
            (Some(api_report), Some(outbox_report), Some(jobs_report))
        }
    };
    let mut md = String::new();
    if let Some(r) = &api_report {
        md.push_str(&report::api(r));
        md.push('\n');
    }
    if let Some(r) = &outbox_report {
        let c = if cli.smoke { 2 } else { cli.concurrency };
        md.push_str(&report::outbox(r, c));
    }
    if let Some(r) = &jobs_report {
        md.push('\n');
        md.push_str(&report::jobs(r));
    }
    println!("{md}");
    if let Command::All { out, .. } = &cli.command {
        let text = format!("{}\n{md}", preamble(started));
        std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    if let Some(path) = &cli.json {
        let json = Json {
            api: api_report.as_ref(),
            outbox: outbox_report.as_ref(),
            jobs: jobs_report.as_ref(),
        };
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(r) = &api_report {
        let errors = report::errors(r);
        anyhow::ensure!(errors == 0, "{errors} calls failed");
    }
    if let Some(r) = &outbox_report {
        check_outbox(r)?;
    }
    Ok(())
}

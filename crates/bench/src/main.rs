//! `foundry-bench`: benchmarks of the suite, measured side by side in one
//! run. `foundry-bench outbox` reports what the transactional outbox costs a
//! mutation and the relay's lag under sustained load. `--smoke` runs each
//! scenario for a moment (the test suite uses it to prove they work).

mod env;
mod load;
mod outbox;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::load::Summary;

#[derive(Parser, Debug)]
#[command(name = "foundry-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// A few seconds per benchmark: proves each scenario runs, measures
    /// nothing worth quoting.
    #[arg(long, global = true)]
    smoke: bool,
    /// Write the report as JSON here.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The outbox's cost per mutation and the relay's lag.
    Outbox {
        /// Concurrent callers for the cost scenarios.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Seconds measured per scenario.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Mutations per second in the lag run.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
    },
}

fn row(s: &Summary) -> String {
    format!(
        "| {} | {} | {} | {:.0} | {} | {} | {} | {} |",
        s.name, s.calls, s.errors, s.throughput, s.p50_us, s.p90_us, s.p99_us, s.max_us
    )
}

const HEADER: &str = "| scenario | calls | errors | calls/s | p50 µs | p90 µs | p99 µs | max µs |\n|---|---:|---:|---:|---:|---:|---:|---:|";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = foundry_platform::telemetry::init(
        "foundry-bench",
        foundry_platform::telemetry::LogFormat::Text,
    );
    match cli.command {
        Command::Outbox {
            concurrency,
            seconds,
            rate,
        } => {
            let params = if cli.smoke {
                outbox::Params {
                    concurrency: 2,
                    duration: Duration::from_secs(1),
                    warmup: Duration::from_millis(200),
                    rate: 50.0,
                }
            } else {
                outbox::Params {
                    concurrency,
                    duration: Duration::from_secs(seconds),
                    warmup: Duration::from_secs(2),
                    rate,
                }
            };
            let r = outbox::run(&params).await?;
            println!(
                "## Outbox cost per mutation ({} callers)\n\n{HEADER}",
                params.concurrency
            );
            for s in [
                &r.tx_without_outbox,
                &r.tx_with_outbox,
                &r.rpc_update_organization,
            ] {
                println!("{}", row(s));
            }
            println!(
                "\nThe outbox adds {} µs at p50 and {} µs at p99 to the mutation's transaction.\n",
                r.outbox_cost_p50_us, r.outbox_cost_p99_us
            );
            let l = &r.relay_lag;
            println!(
                "## Relay lag at {:.0} mutations/s\n\n{HEADER}\n{}\n\n{} mutations, {} events in the audit log; lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms.",
                l.rate,
                row(&l.rpc),
                l.mutations,
                l.events_delivered,
                l.p50_ms,
                l.p99_ms,
                l.max_ms
            );
            let errors = r.tx_without_outbox.errors
                + r.tx_with_outbox.errors
                + r.rpc_update_organization.errors
                + l.rpc.errors;
            if let Some(path) = cli.json {
                std::fs::write(&path, serde_json::to_vec_pretty(&r)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if errors > 0 {
                anyhow::bail!("{errors} calls failed");
            }
            if l.events_delivered != l.mutations as i64 {
                anyhow::bail!(
                    "{} mutations but {} events delivered",
                    l.mutations,
                    l.events_delivered
                );
            }
        }
    }
    Ok(())
}

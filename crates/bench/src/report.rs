//! The report, as Markdown: tables of figures and ratios, and the targets
//! with how far each is met or missed.

use std::fmt::Write;

use crate::api::{self, SideBySide};
use crate::load::Summary;
use crate::outbox;

const HEADER: &str = "| scenario | calls | errors | calls/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |\n\
                      |---|---:|---:|---:|---:|---:|---:|---:|---:|";

fn row(s: &Summary) -> String {
    format!(
        "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
        s.name, s.calls, s.errors, s.throughput, s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us
    )
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// Calls that failed, over every scenario of the report.
pub fn errors(r: &api::Report) -> u64 {
    let mut n = 0;
    for s in sides(r) {
        n += s.rows().map(|row| row.errors).sum::<u64>();
    }
    for s in [&r.exchange_token, &r.mixed].into_iter().flatten() {
        n += s.errors;
    }
    for g in &r.growth {
        n += g.small.errors + g.large.errors;
    }
    if let Some(g) = &r.gateway {
        n += g.native_grpc.errors + g.grpc_via_envoy.errors + g.http_via_envoy.errors;
    }
    n
}

fn sides(r: &api::Report) -> impl Iterator<Item = &SideBySide> {
    [
        &r.get_organization,
        &r.get_task,
        &r.list_tasks,
        &r.create_task,
        &r.update_task,
    ]
    .into_iter()
    .flatten()
}

fn percent(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{:.0}%", x * 100.0))
}

/// The ceiling target of a scenario: GetTask and GetOrganization
/// at 70 % of their serial ceiling, ListTasks at 60 %, the writes at 80 %.
fn ceiling_target(name: &str) -> f64 {
    match name {
        "GetTask" | "GetOrganization" => 0.7,
        "ListTasks" => 0.6,
        _ => 0.8,
    }
}

/// The API section.
pub fn api(r: &api::Report) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "## Side by side ({} callers; {} tasks, {} organizations)\n\n\
         Each scenario against (a) the framework ceiling, a bare tonic server returning the same message \
         with no database and no layers, and (b) the database ceiling, pgbench running the handler's \
         statements prepared, as the service's role (row-level security on), with as many clients. \
         \"tenancy off\" is the same server with the tenancy layer replaced by a fixed caller.\n",
        r.concurrency, r.tasks_small, r.orgs_small
    );
    if sides(r).next().is_some() {
        let _ = writeln!(w, "{HEADER}");
        for s in sides(r) {
            for summary in s.rows() {
                let _ = writeln!(w, "{}", row(summary));
            }
        }
        let _ = writeln!(
            w,
            "\nThe serial ceiling is what a call could reach if nothing but the framework and the database \
             worked, one after the other: 1 / (1 / bare tonic + 1 / pgbench) calls/s. \"statements\" is what \
             one call sent, as the server logged it (pgbench runs exactly those). \"full tenant transaction\" \
             is the same handler with each read in `BEGIN; SET LOCAL …; …; COMMIT` (`--db-read-path \
             transaction`), the read path before; \"h2load\" is the same suite driven by h2load from a \
             process of its own; \"store alone\" is the Get's read without gRPC (`Db::read` and the store's \
             statement through sqlx, in process), the driver's side of pgbench's figure.\n\n\
             | scenario | statements | calls/s | serial ceiling | ÷ ceiling | × full tenant transaction | ÷ bare tonic | ÷ pgbench | tenancy on ÷ off | h2load ÷ in-process | p99 ÷ p50 |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for s in sides(r) {
            let t = s.suite.throughput;
            let by = |o: &Option<crate::load::Summary>| o.as_ref().map(|o| ratio(t, o.throughput));
            let _ = writeln!(
                w,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
                s.suite.name,
                s.statements.map_or("–".into(), |n| n.to_string()),
                t,
                s.ceiling().map_or("–".into(), |c| format!("{c:.0}")),
                percent(s.ceiling().map(|c| ratio(t, c))),
                s.full_transaction
                    .as_ref()
                    .map_or("–".into(), |f| format!("{:.2}×", ratio(t, f.throughput))),
                percent(by(&s.framework)),
                percent(by(&s.database)),
                percent(by(&s.no_tenancy)),
                percent(s.h2load.as_ref().map(|h| ratio(h.throughput, t))),
                ratio(s.suite.p99_us as f64, s.suite.p50_us as f64),
            );
        }
    }
    if let Some(a) = &r.admit {
        let _ = writeln!(
            w,
            "\nThe tenancy layer alone (`Tenancy::admit`: bearer parsing, token verification against cached keys, \
             method look-up, permission check), timed in process, {} calls each: with a token seen before \
             (verified claims cached) p50 {:.1} µs, p99 {:.1} µs; with a token never seen (Ed25519 signature \
             verified) p50 {:.1} µs, p99 {:.1} µs, of which the Ed25519 signature check alone is {:.1} µs.",
            a.calls,
            a.cached_p50_ns as f64 / 1000.0,
            a.cached_p99_ns as f64 / 1000.0,
            a.fresh_p50_ns as f64 / 1000.0,
            a.fresh_p99_ns as f64 / 1000.0,
            a.ed25519_verify_p50_ns as f64 / 1000.0
        );
    }
    let extra: Vec<&Summary> = [&r.exchange_token, &r.mixed]
        .into_iter()
        .flatten()
        .collect();
    if !extra.is_empty() {
        let _ = writeln!(w, "\n## Token exchange and the mixed workload\n\n{HEADER}");
        for s in extra {
            let _ = writeln!(w, "{}", row(s));
        }
    }
    if !r.growth.is_empty() {
        let _ = writeln!(
            w,
            "\n## Growth: {} → {} tasks, {} → {} organizations\n\n\
             The same calls with the table grown (one program holds every task; GetOrganization reads \
             random seeded organizations).\n\n{HEADER}",
            r.tasks_small,
            r.tasks_large.unwrap_or_default(),
            r.orgs_small,
            r.orgs_large.unwrap_or_default()
        );
        for g in &r.growth {
            let _ = writeln!(w, "{}\n{}", row(&g.small), row(&g.large));
        }
        let _ = writeln!(
            w,
            "\n| scenario | p50 large ÷ small | p99 large ÷ small | calls/s large ÷ small |\n|---|---:|---:|---:|"
        );
        for g in &r.growth {
            let _ = writeln!(
                w,
                "| {} | {:.2} | {:.2} | {:.2} |",
                g.small.name.split(" @ ").next().unwrap_or_default(),
                ratio(g.large.p50_us as f64, g.small.p50_us as f64),
                ratio(g.large.p99_us as f64, g.small.p99_us as f64),
                ratio(g.large.throughput, g.small.throughput)
            );
        }
    }
    if let Some(g) = &r.gateway {
        let _ = writeln!(
            w,
            "\n## Gateway: HTTP/JSON through Envoy against native gRPC\n\n{HEADER}\n{}\n{}\n{}\n\n\
             HTTP/JSON through Envoy runs at {:.0}% of native gRPC's throughput (gRPC through the same Envoy: {:.0}%).",
            row(&g.native_grpc),
            row(&g.grpc_via_envoy),
            row(&g.http_via_envoy),
            ratio(g.http_via_envoy.throughput, g.native_grpc.throughput) * 100.0,
            ratio(g.grpc_via_envoy.throughput, g.native_grpc.throughput) * 100.0,
        );
    }
    let _ = writeln!(w, "\n## Targets\n");
    if let Some(a) = &r.admit {
        let (hot, cold) = (
            a.cached_p50_ns as f64 / 1000.0,
            a.fresh_p50_ns as f64 / 1000.0,
        );
        let _ = writeln!(
            w,
            "- Tenancy layer under 20 µs per call at p50: {hot:.1} µs for a token seen before ({}), \
             {cold:.1} µs for a token never seen ({}).",
            verdict(hot < 20.0),
            verdict(cold < 20.0)
        );
    }
    for s in sides(r) {
        let name = s.suite.name.as_str();
        if let Some(c) = s.ceiling() {
            let (x, want) = (ratio(s.suite.throughput, c), ceiling_target(name));
            let _ = writeln!(
                w,
                "- {name} at least {:.0}% of its serial ceiling: {:.0}% of {c:.0} calls/s ({}).",
                want * 100.0,
                x * 100.0,
                verdict(x >= want)
            );
        }
        if matches!(name, "GetTask" | "GetOrganization")
            && let Some(f) = &s.full_transaction
        {
            let x = ratio(s.suite.throughput, f.throughput);
            let _ = writeln!(
                w,
                "- {name} at least 1.8× the full tenant transaction: {x:.2}× ({}).",
                verdict(x >= 1.8)
            );
        }
        let x = ratio(s.suite.p99_us as f64, s.suite.p50_us as f64);
        let _ = writeln!(
            w,
            "- {name} p99 within 3× p50: {} µs ÷ {} µs = {x:.1}× ({}).",
            s.suite.p99_us,
            s.suite.p50_us,
            verdict(x <= 3.0)
        );
    }
    if let Some(g) = r
        .growth
        .iter()
        .find(|g| g.small.name.starts_with("ListTasks"))
    {
        let x = ratio(g.large.p99_us as f64, g.small.p99_us as f64);
        let _ = writeln!(
            w,
            "- ListTasks p99 at {} rows within 1.5× of {} rows: {x:.2}× ({}).",
            r.tasks_large.unwrap_or_default(),
            r.tasks_small,
            verdict(x <= 1.5)
        );
    }
    out
}

/// The outbox section.
pub fn outbox(r: &outbox::Report, concurrency: usize) -> String {
    let l = &r.relay_lag;
    format!(
        "## Outbox cost per mutation ({concurrency} callers)\n\n{HEADER}\n{}\n{}\n{}\n\n\
         The outbox adds {} µs at p50 and {} µs at p99 to the mutation's transaction.\n\n\
         ## Relay lag at {:.0} mutations/s\n\n{HEADER}\n{}\n\n\
         {} mutations, {} events in the audit log; lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms.\n",
        row(&r.tx_without_outbox),
        row(&r.tx_with_outbox),
        row(&r.rpc_update_organization),
        r.outbox_cost_p50_us,
        r.outbox_cost_p99_us,
        l.rate,
        row(&l.rpc),
        l.mutations,
        l.events_delivered,
        l.p50_ms,
        l.p99_ms,
        l.max_ms
    )
}

/// The job queue's figures.
pub fn jobs(r: &crate::jobs::Report) -> String {
    let mut out = String::from(
        "## Job queue\n\n\
         | cluster | no-op jobs/s (batch, held-back workers) | pickup p50 / p99 at rate | small org p95 beside backlog / idle (from enqueue call) | same, from commit |\n\
         | --- | ---: | ---: | ---: | ---: |\n",
    );
    for run in &r.runs {
        out.push_str(&format!(
            "| {} | {:.0} ({} of {}, {} held back) | {:.1} / {:.1} ms at {:.0}/s | {:.1} / {:.1} ms | {:.1} / {:.1} ms |\n",
            run.cluster,
            run.jobs_per_second,
            run.batch,
            run.jobs,
            run.reserved,
            run.pickup_p50_ms,
            run.pickup_p99_ms,
            run.rate,
            run.fair_p95_ms,
            run.idle_p95_ms,
            run.fair_commit_p95_ms,
            run.idle_commit_p95_ms,
        ));
    }
    out
}

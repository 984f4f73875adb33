//! What the transactional outbox costs a mutation, and how far the relay
//! lags behind under sustained load.
//!
//! Cost: the same mutation transaction run as the handler runs it, with
//! and without the outbox write (`UPDATE organizations` then, with, the
//! `INSERT INTO outbox` of a real event payload and its NOTIFY trigger),
//! side by side at the same concurrency, plus the full `UpdateOrganization`
//! RPC (which always writes its event) for scale. Each caller renames its
//! own organization, as tenants do (callers on one hot row would measure
//! that row's lock instead).
//!
//! Lag: a fixed rate of `UpdateOrganization` calls with the relay on; for
//! every event the audit log records both when it occurred (the mutation)
//! and when it was appended, so lag is `recorded_at - occurred_at`.

use std::sync::Arc;
use std::time::Duration;

use foundry::AuditDelivery;
use foundry_platform::db::Db;
use foundry_proto::foundry::identity::v1 as pb;
use serde::Serialize;
use uuid::Uuid;

use crate::env::{Env, Tenant, authed};
use crate::load::{self, Mode, Summary};

/// Knobs of the outbox benchmark.
#[derive(Clone, Debug)]
pub struct Params {
    /// Callers for the cost scenarios.
    pub concurrency: usize,
    /// Measured time per scenario.
    pub duration: Duration,
    /// Warm-up per scenario.
    pub warmup: Duration,
    /// Mutations per second in the lag run.
    pub rate: f64,
}

/// The figures.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Transaction without the outbox write.
    pub tx_without_outbox: Summary,
    /// The same transaction with it.
    pub tx_with_outbox: Summary,
    /// `UpdateOrganization` end to end (gRPC, tenancy, handler, outbox).
    pub rpc_update_organization: Summary,
    /// p50 difference with − without, microseconds.
    pub outbox_cost_p50_us: i64,
    /// p99 difference with − without, microseconds.
    pub outbox_cost_p99_us: i64,
    /// Relay lag under `rate` mutations per second.
    pub relay_lag: Lag,
}

/// Relay lag figures (milliseconds).
#[derive(Debug, Serialize)]
pub struct Lag {
    /// Offered mutations per second.
    pub rate: f64,
    /// Mutations made (calls that succeeded).
    pub mutations: u64,
    /// Their events found in the audit log.
    pub events_delivered: i64,
    /// Median lag.
    pub p50_ms: f64,
    /// 99th percentile lag.
    pub p99_ms: f64,
    /// Worst lag.
    pub max_ms: f64,
    /// The RPC latency during the run.
    pub rpc: Summary,
}

/// A realistic event payload (what identity writes for a rename).
pub fn payload(org: Uuid) -> serde_json::Value {
    serde_json::json!({
        "id": Uuid::now_v7(), "org_id": org, "occurred_at": chrono::Utc::now(),
        "service": "identity", "actor_type": "user", "actor_id": Uuid::now_v7(),
        "action": "identity.organization.update", "resource_type": "identity.organization",
        "resource_id": org.to_string(), "project_id": null,
        "changes": {"name": {"old": "before", "new": "after"}},
        "request_id": Uuid::now_v7().to_string(), "trace_id": "", "client_ip": "127.0.0.1",
        "user_agent": "foundry-bench",
    })
}

/// Runs the benchmark.
pub async fn run(p: &Params) -> anyhow::Result<Report> {
    // Cost, with no relay draining the outbox (so rows accumulate like an
    // outage would; the insert cost does not depend on the backlog).
    let env = Env::start(AuditDelivery::Off).await?;
    let db = Db::connect(
        &env.database_url,
        foundry_identity::SCHEMA,
        p.concurrency as u32 + 2,
    )
    .await?;
    let orgs = Arc::new(env.orgs(p.concurrency).await?);
    let mode = Mode::Closed(p.concurrency);
    let tx_without_outbox = {
        let (db, orgs) = (db.clone(), orgs.clone());
        load::run("tx without outbox", mode, p.warmup, p.duration, move |i| {
            rename_tx(db.clone(), orgs[i as usize % orgs.len()].org, i, false)
        })
        .await
    };
    let tx_with_outbox = {
        let (db, orgs) = (db.clone(), orgs.clone());
        load::run("tx with outbox", mode, p.warmup, p.duration, move |i| {
            rename_tx(db.clone(), orgs[i as usize % orgs.len()].org, i, true)
        })
        .await
    };
    let rpc_update_organization = update_org_load(
        orgs,
        &env,
        mode,
        p.warmup,
        p.duration,
        "UpdateOrganization (with outbox)",
    )
    .await;
    env.stop().await?;

    // Lag, with the relay delivering to the suite's own audit service.
    let env = Env::start(AuditDelivery::Local).await?;
    let orgs = Arc::new(env.orgs(4).await?);
    let rpc = update_org_load(
        orgs.clone(),
        &env,
        Mode::Open(p.rate),
        Duration::ZERO,
        p.duration,
        "UpdateOrganization at fixed rate",
    )
    .await;
    // Let the relay finish what is in flight, then read the lag per event.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&env.database_url).await?;
    let (n, p50, p99, max): (i64, Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT count(*), \
                percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms) \
         FROM (SELECT (extract(epoch FROM recorded_at - occurred_at) * 1000)::float8 AS ms \
               FROM audit.events WHERE org_id = ANY($1) AND action = 'identity.organization.update') l",
    )
    .bind(orgs.iter().map(|o| o.org).collect::<Vec<_>>())
    .fetch_one(&mut conn)
    .await?;
    let relay_lag = Lag {
        rate: p.rate,
        mutations: rpc.calls,
        events_delivered: n,
        p50_ms: p50.unwrap_or_default(),
        p99_ms: p99.unwrap_or_default(),
        max_ms: max.unwrap_or_default(),
        rpc,
    };
    env.stop().await?;
    Ok(Report {
        outbox_cost_p50_us: tx_with_outbox.p50_us as i64 - tx_without_outbox.p50_us as i64,
        outbox_cost_p99_us: tx_with_outbox.p99_us as i64 - tx_without_outbox.p99_us as i64,
        tx_without_outbox,
        tx_with_outbox,
        rpc_update_organization,
        relay_lag,
    })
}

/// The rename transaction as the handler runs it, with or without the
/// outbox write.
async fn rename_tx(db: Db, org: Uuid, i: u64, with_outbox: bool) -> anyhow::Result<()> {
    let mut tx = db.tenant(org).await?;
    sqlx::query(
        "UPDATE organizations SET name = $2, version = version + 1, updated_at = now() WHERE id = $1",
    )
    .bind(org)
    .bind(format!("n{i}"))
    .execute(&mut *tx)
    .await?;
    if with_outbox {
        sqlx::query("INSERT INTO outbox (id, org_id, payload) VALUES ($1, $2, $3)")
            .bind(Uuid::now_v7())
            .bind(org)
            .bind(payload(org))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn update_org_load(
    orgs: Arc<Vec<Tenant>>,
    env: &Env,
    mode: Mode,
    warmup: Duration,
    duration: Duration,
    name: &str,
) -> Summary {
    let client =
        pb::organization_service_client::OrganizationServiceClient::new(env.channel.clone());
    load::run(name, mode, warmup, duration, move |i| {
        let mut client = client.clone();
        let Tenant { org, token, .. } = orgs[i as usize % orgs.len()].clone();
        async move {
            let req = authed(
                &token,
                pb::UpdateOrganizationRequest {
                    organization: Some(pb::Organization {
                        id: org.to_string(),
                        name: format!("n{i}"),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["name".into()],
                    }),
                },
            )?;
            client.update_organization(req).await?;
            Ok(())
        }
    })
    .await
}

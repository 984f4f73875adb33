//! `foundry-audit`: the audit service alone, for split deployments. Needs
//! `DATABASE_URL` and the identity endpoint (whose JWKS verifies tokens);
//! `--migrate` applies the schema first.

use foundry_keyring::KekArgs;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use foundry_audit::Audit;
use foundry_platform::config::{MigrateArgs, ServerArgs, service_db};
use foundry_platform::server::Background;
use foundry_tenancy::{IdentityArgs, Tenancy};

/// The audit service.
#[derive(Parser, Debug)]
#[command(name = "foundry-audit", version)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    migrate: MigrateArgs,
    #[command(flatten)]
    identity: IdentityArgs,
    #[command(flatten)]
    retention: foundry::RetentionArgs,
    /// Seconds between rounds that sign each organization's moved chain
    /// head into a checkpoint (and apply retention).
    #[arg(long, env = "FOUNDRY_AUDIT_CHECKPOINT_SECONDS", default_value_t = 300)]
    checkpoint_seconds: u64,
    #[command(flatten)]
    kek: KekArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = foundry_platform::telemetry::init("foundry-audit", cli.server.log_format);
    let Some(db) = service_db(
        &cli.server,
        &cli.migrate,
        "foundry-audit",
        foundry_audit::SCHEMA,
        &foundry_audit::MIGRATOR,
    )
    .await?
    else {
        return Ok(());
    };
    let audit = Audit::new(
        db,
        cli.server.page_tokens(),
        cli.kek.required("foundry-audit")?,
        cli.retention.policy(),
    )?;
    audit.load_keys().await?;
    let tenancy = Arc::new(
        Tenancy::remote(&cli.identity.identity_endpoint, cli.server.jwks_refresh())
            .await?
            .with_trusted_proxy_hops(cli.server.trusted_proxy_hops)
            .with_limits(cli.server.limits()),
    );
    let listener = tokio::net::TcpListener::bind(cli.server.listen)
        .await
        .with_context(|| format!("binding {}", cli.server.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "foundry-audit serving");
    let mut background = Background::default();
    let every = std::time::Duration::from_secs(cli.checkpoint_seconds);
    foundry::jobs::ServiceJobs::audit(&audit, &foundry_platform::clock::system(), Some(every))
        .start(&mut background)
        .await?;
    foundry_platform::metrics::serve(cli.server.metrics_addr, &mut background).await?;
    foundry::serve_service(
        ("audit", audit.db().clone()),
        foundry_audit::SERVICE_NAMES,
        |routes| audit.add_routes(routes),
        (listener, tenancy),
        background,
    )
    .await?;
    tracing::info!("foundry-audit stopped");
    Ok(())
}

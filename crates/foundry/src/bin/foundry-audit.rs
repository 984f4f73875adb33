//! `foundry-audit`: the audit service alone, for split deployments. Needs
//! `DATABASE_URL` and the identity endpoint (whose JWKS verifies tokens);
//! `--migrate` applies the schema first.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use foundry_audit::Audit;
use foundry_platform::config::{MigrateArgs, ServerArgs, service_db};
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
    let audit = Audit::new(db, cli.server.page_tokens())?;
    let tenancy = Arc::new(Tenancy::remote(&cli.identity.identity_endpoint).await?);
    let listener = tokio::net::TcpListener::bind(cli.server.listen)
        .await
        .with_context(|| format!("binding {}", cli.server.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "foundry-audit serving");
    foundry_tenancy::server::serve_services(
        listener,
        |routes| audit.add_routes(routes),
        foundry_audit::SERVICE_NAMES,
        tenancy,
        foundry_platform::server::shutdown_signal(),
    )
    .await?;
    tracing::info!("foundry-audit stopped");
    Ok(())
}

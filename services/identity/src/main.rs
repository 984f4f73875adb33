//! `foundry-identity`: the identity & tenancy service alone, for split
//! deployments. Needs `DATABASE_URL`; `--migrate` applies the schema first.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use foundry_identity::{Identity, OidcArgs, RingSource, TokenConfig};
use foundry_platform::config::ServerArgs;
use foundry_platform::db::{self, Db};
use foundry_tenancy::{Tenancy, Verifier};

/// The identity & tenancy service.
#[derive(Parser, Debug)]
#[command(name = "foundry-identity", version)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    oidc: OidcArgs,
    /// Apply the identity schema's migrations before serving.
    #[arg(long, env = "FOUNDRY_MIGRATE")]
    migrate: bool,
    /// Apply the migrations and exit (a deploy step or init container).
    #[arg(long, conflicts_with = "migrate")]
    migrate_only: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = foundry_platform::telemetry::init("foundry-identity", cli.server.log_format);
    let url = cli.server.required_database_url("foundry-identity")?;
    if cli.migrate || cli.migrate_only {
        db::migrate(url, foundry_identity::SCHEMA, &foundry_identity::MIGRATOR).await?;
        tracing::info!("identity schema migrated");
        if cli.migrate_only {
            return Ok(());
        }
    }
    let db = Db::connect(url, foundry_identity::SCHEMA, cli.server.db_max_connections).await?;
    let tokens = TokenConfig::default();
    let identity = Identity::new(
        db,
        tokens.clone(),
        cli.server.page_tokens(),
        cli.oidc.providers,
    )
    .await?;
    let verifier = Verifier::new(tokens.expectations(), Arc::new(RingSource(identity.keys())));
    let tenancy = Arc::new(Tenancy::new(verifier).await?);
    let listener = tokio::net::TcpListener::bind(cli.server.listen)
        .await
        .with_context(|| format!("binding {}", cli.server.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "foundry-identity serving");
    foundry_tenancy::server::serve_services(
        listener,
        |routes| identity.add_routes(routes),
        foundry_identity::SERVICE_NAMES,
        tenancy,
        foundry_platform::server::shutdown_signal(),
    )
    .await?;
    tracing::info!("foundry-identity stopped");
    Ok(())
}

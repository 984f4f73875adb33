//! `foundry-delivery`: the delivery service alone, for split deployments.
//! Needs `DATABASE_URL` and the identity endpoint (whose JWKS verifies
//! tokens, and which exchanges the relay's service-account key for access
//! tokens); `--migrate` applies the schema first.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use foundry_delivery::Delivery;
use foundry_outbox::RelayArgs;
use foundry_platform::config::{MigrateArgs, ServerArgs, service_db};
use foundry_platform::server::Background;
use foundry_tenancy::{IdentityArgs, Tenancy};

/// The delivery service.
#[derive(Parser, Debug)]
#[command(name = "foundry-delivery", version)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    migrate: MigrateArgs,
    #[command(flatten)]
    identity: IdentityArgs,
    #[command(flatten)]
    relay: RelayArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = foundry_platform::telemetry::init("foundry-delivery", cli.server.log_format);
    let Some(db) = service_db(
        &cli.server,
        &cli.migrate,
        "foundry-delivery",
        foundry_delivery::SCHEMA,
        &foundry_delivery::MIGRATOR,
    )
    .await?
    else {
        return Ok(());
    };
    let delivery = Delivery::new(db, cli.server.page_tokens());
    let tenancy = Arc::new(
        Tenancy::remote(&cli.identity.identity_endpoint, cli.server.jwks_refresh())
            .await?
            .with_trusted_proxy_hops(cli.server.trusted_proxy_hops)
            .with_limits(cli.server.limits()),
    );
    let listener = tokio::net::TcpListener::bind(cli.server.listen)
        .await
        .with_context(|| format!("binding {}", cli.server.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "foundry-delivery serving");
    let mut background = Background::default();
    let clock = foundry_platform::clock::system();
    let retention = cli.server.request_id_retention();
    foundry::jobs::ServiceJobs::delivery(&delivery, &clock, retention)
        .start(&mut background)
        .await?;
    // The relay's token: its service-account key exchanged at identity.
    let endpoint_of = |subscriber: &str| match subscriber {
        foundry_outbox::AUDIT => cli.relay.audit_endpoint.clone(),
        _ => None,
    };
    let tokens = || async {
        let key = cli.relay.service_account_key.clone().context(
            "FOUNDRY_AUDIT_ENDPOINT needs FOUNDRY_SERVICE_ACCOUNT_KEY (the relay's service-account key)",
        )?;
        let identity =
            tonic::transport::Channel::from_shared(cli.identity.identity_endpoint.clone())?
                .connect_lazy();
        Ok(foundry_outbox::exchanged_token(identity, key))
    };
    let db = (foundry_delivery::SCHEMA, delivery.db().clone());
    let relays = foundry::Relays::of(db, endpoint_of, tokens).await?;
    relays.warn_waiting();
    relays.spawn(&mut background);
    foundry_platform::metrics::serve(cli.server.metrics_addr, &mut background).await?;
    foundry::serve_service(
        ("delivery", delivery.db().clone()),
        foundry_delivery::SERVICE_NAMES,
        |routes| delivery.add_routes(routes),
        (listener, tenancy),
        background,
    )
    .await?;
    tracing::info!("foundry-delivery stopped");
    Ok(())
}

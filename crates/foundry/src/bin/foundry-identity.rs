//! `foundry-identity`: the identity & tenancy service alone, for split
//! deployments. Needs `DATABASE_URL`; `--migrate` applies the schema first.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use foundry_identity::{Identity, OidcArgs, RingSource, TokenConfig};
use foundry_keyring::KekArgs;
use foundry_outbox::RelayArgs;
use foundry_platform::config::{MigrateArgs, ServerArgs, service_db};
use foundry_platform::server::Background;
use foundry_tenancy::{Tenancy, Verifier};

/// The identity & tenancy service.
#[derive(Parser, Debug)]
#[command(name = "foundry-identity", version)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    migrate: MigrateArgs,
    #[command(flatten)]
    oidc: OidcArgs,
    #[command(flatten)]
    relay: RelayArgs,
    /// The delivery service the outbox relay delivers membership events to
    /// (`http://host:port`), for delivery's membership replica. Unset: they
    /// wait in the outbox, and delivery does not see membership changes.
    #[arg(long, env = "FOUNDRY_DELIVERY_ENDPOINT")]
    delivery_endpoint: Option<String>,
    #[command(flatten)]
    kek: KekArgs,
    /// Creates the service account `<SERVICE>-relay` (running as SERVICE,
    /// holding only what that service's outbox relay needs:
    /// `audit.events.append`, and `<subscriber>.events.receive` for each
    /// other service that subscribes to its events), prints its key once
    /// and exits. The key goes in that service's
    /// FOUNDRY_SERVICE_ACCOUNT_KEY.
    #[arg(long, value_name = "SERVICE")]
    create_relay_account: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = foundry_platform::telemetry::init("foundry-identity", cli.server.log_format);
    let Some(db) = service_db(
        &cli.server,
        &cli.migrate,
        "foundry-identity",
        foundry_identity::SCHEMA,
        &foundry_identity::MIGRATOR,
    )
    .await?
    else {
        return Ok(());
    };
    let tokens = TokenConfig::default();
    let identity = Identity::new(
        db,
        tokens.clone(),
        cli.server.page_tokens(),
        cli.oidc.providers,
        cli.kek.required("foundry-identity")?,
    )
    .await?;
    if let Some(service) = &cli.create_relay_account {
        let (_, key) = identity
            .create_service_account(
                &foundry_outbox::relay_service_account(service),
                &format!("ships {service}'s outbox to its subscribers"),
                service,
                &foundry_outbox::relay_capabilities(service)
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            )
            .await?;
        println!("{key}");
        return Ok(());
    }
    let verifier = Verifier::new(tokens.expectations(), Arc::new(RingSource(identity.keys())))
        .with_refresh_every(cli.server.jwks_refresh());
    let tenancy = Arc::new(
        Tenancy::new(verifier)
            .await?
            .with_trusted_proxy_hops(cli.server.trusted_proxy_hops)
            .with_limits(cli.server.limits()),
    );
    let listener = tokio::net::TcpListener::bind(cli.server.listen)
        .await
        .with_context(|| format!("binding {}", cli.server.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "foundry-identity serving");
    let mut background = Background::default();
    let clock = foundry_platform::clock::system();
    let retention = cli.server.request_id_retention();
    foundry::jobs::ServiceJobs::identity(&identity, &clock, retention)
        .start(&mut background)
        .await?;
    // Identity mints its own relay tokens: no key to configure.
    let endpoint_of = |subscriber: &str| match subscriber {
        foundry_outbox::AUDIT => cli.relay.audit_endpoint.clone(),
        "delivery" => cli.delivery_endpoint.clone(),
        _ => None,
    };
    let relay_identity = identity.clone();
    let tokens = || async move {
        let sa = relay_identity
            .ensure_relay_account(foundry_identity::api::SERVICE)
            .await?;
        Ok(relay_identity.service_tokens(sa))
    };
    let db = (foundry_identity::SCHEMA, identity.db().clone());
    let relays = foundry::Relays::of(db, endpoint_of, tokens).await?;
    relays.warn_waiting();
    relays.spawn(&mut background);
    foundry_platform::metrics::serve(cli.server.metrics_addr, &mut background).await?;
    foundry::serve_service(
        ("identity", identity.db().clone()),
        foundry_identity::SERVICE_NAMES,
        |routes| identity.add_routes(routes),
        (listener, tenancy),
        background,
    )
    .await?;
    tracing::info!("foundry-identity stopped");
    Ok(())
}

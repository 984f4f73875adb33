//! `foundry`: the whole suite in one process.
//!
//! `foundry serve` (the default) starts an embedded PostgreSQL unless
//! `DATABASE_URL` is set, migrates, creates a development organization on
//! first start and prints a grpcurl command that works as pasted.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use foundry::{Suite, SuiteConfig};
use foundry_identity::domain::Role;
use foundry_identity::{OidcArgs, TokenConfig};
use foundry_keyring::KekArgs;
use foundry_pgembed::{EmbeddedPg, PgOptions};
use foundry_platform::config::ServerArgs;

#[derive(Parser, Debug)]
#[command(
    name = "foundry",
    version,
    about = "Foundry: every service in one process"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    oidc: OidcArgs,
    #[command(flatten)]
    kek: KekArgs,
    #[command(flatten)]
    retention: foundry::RetentionArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve every service on one port (the default).
    Serve,
    /// Apply every service's migrations and exit.
    Migrate,
    /// Write the descriptor set (for gateways such as Envoy).
    Descriptors {
        /// Output file.
        #[arg(short, long, default_value = "foundry.binpb")]
        output: PathBuf,
    },
    /// Mint a development access token for the owner of the development organization.
    Token {
        /// Role to put in the token.
        #[arg(long, default_value = "owner")]
        role: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

const DEV_SLUG: &str = "dev";
const DEV_TOKEN_TTL: Duration = Duration::from_secs(8 * 3600);
/// How often the audit service signs checkpoints of the chains that grew.
const AUDIT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5 * 60);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    let _telemetry = foundry_platform::telemetry::init("foundry", cli.server.log_format);
    match cli.command.take().unwrap_or(Command::Serve) {
        Command::Descriptors { output } => {
            std::fs::write(&output, foundry_proto::FILE_DESCRIPTOR_SET)
                .with_context(|| format!("writing {}", output.display()))?;
            println!("wrote {}", output.display());
            Ok(())
        }
        Command::Migrate => {
            let (url, pg) = database(&cli.server).await?;
            foundry::migrate(&url).await?;
            println!("migrated");
            stop(pg).await;
            Ok(())
        }
        Command::Serve => serve(&cli).await,
        Command::Token { role, ttl } => {
            let role = Role::parse(&role)
                .context("role must be owner, admin, editor, viewer or billing")?;
            let (url, pg) = database(&cli.server).await?;
            let suite = Suite::start(config(&cli, url)?).await?;
            let (org_id, user_id) = suite
                .identity
                .find_org_by_slug(DEV_SLUG)
                .await?
                .context("no development organization yet: run `foundry serve` once")?;
            let token = suite.identity.mint_member_token(
                user_id,
                Some(org_id),
                Some(role),
                Duration::from_secs(ttl),
            )?;
            println!("{token}");
            stop(pg).await;
            Ok(())
        }
    }
}

fn config(cli: &Cli, database_url: String) -> anyhow::Result<SuiteConfig> {
    let args = &cli.server;
    // Zero configuration still seals the private keys: with a key of its own,
    // generated beside the embedded cluster's directory, not inside it.
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let keyring = cli
        .kek
        .or_generated(&args.data_dir.join(foundry_keyring::GENERATED_FILE))?;
    Ok(SuiteConfig {
        database_url,
        page_tokens: args.page_tokens(),
        tokens: TokenConfig::default(),
        keyring,
        jwks_refresh: args.jwks_refresh(),
        max_connections: args.db_max_connections,
        read_path: args.db_read_path,
        oidc: cli.oidc.providers.clone(),
        audit_delivery: foundry::AuditDelivery::Local,
        audit_checkpoint_interval: Some(AUDIT_CHECKPOINT_INTERVAL),
        request_id_retention: args.request_id_retention(),
        audit_retention: cli.retention.policy(),
        trusted_proxy_hops: args.trusted_proxy_hops,
        limits: args.limits(),
    })
}

/// The database URL, starting the embedded cluster if none is configured.
async fn database(args: &ServerArgs) -> anyhow::Result<(String, Option<EmbeddedPg>)> {
    if let Some(url) = &args.database_url {
        return Ok((url.clone(), None));
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let meant = args.data_dir.join("pg");
    let dir = foundry_pgembed::reachable_dir(&meant)?;
    if dir != meant {
        tracing::warn!(
            meant = %meant.display(),
            data_dir = %dir.display(),
            "running as root, and PostgreSQL's unprivileged user cannot reach the data directory: \
             the cluster lives in data_dir instead"
        );
    }
    tracing::info!(data_dir = %dir.display(), "starting embedded PostgreSQL");
    let pg = EmbeddedPg::start(PgOptions::persistent(dir)).await?;
    foundry::ensure_database(&pg.url("postgres"), "foundry").await?;
    Ok((pg.url("foundry"), Some(pg)))
}

async fn stop(pg: Option<EmbeddedPg>) {
    if let Some(pg) = pg
        && let Err(e) = pg.stop().await
    {
        tracing::warn!(error = %e, "stopping embedded PostgreSQL");
    }
}

async fn serve(cli: &Cli) -> anyhow::Result<()> {
    let args = &cli.server;
    let (url, pg) = database(args).await?;
    let suite = Suite::start(config(cli, url)?).await?;

    let (org_id, user_id) = match suite.identity.find_org_by_slug(DEV_SLUG).await? {
        Some(found) => found,
        None => {
            let dev = suite
                .identity
                .create_user_with_org("dev@foundry.local", "Developer", DEV_SLUG)
                .await?;
            tracing::info!(org_id = %dev.org_id, user_id = %dev.user_id, "created development organization");
            (dev.org_id, dev.user_id)
        }
    };
    let token = suite.identity.mint_member_token(
        user_id,
        Some(org_id),
        Some(Role::Owner),
        DEV_TOKEN_TTL,
    )?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("Foundry is serving on {addr} (development organization {org_id}).");
    println!("Try it (token valid 8 h; `foundry token` mints another):\n");
    println!("  export TOKEN={token}");
    println!("  grpcurl -plaintext {addr} list");
    println!(
        "  grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -d '{{\"id\":\"{org_id}\"}}' {addr} foundry.identity.v1.OrganizationService/GetOrganization\n"
    );
    let mut metrics = foundry_platform::server::Background::default();
    foundry_platform::metrics::serve(args.metrics_addr, &mut metrics).await?;
    let result = suite
        .serve(listener, foundry_platform::server::shutdown_signal())
        .await;
    metrics.stop().await;
    tracing::info!("drained; stopping");
    stop(pg).await;
    result
}

//! Configuration shared by every server binary: flags, each with an
//! environment variable and a default that works on a developer machine.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::telemetry::LogFormat;

/// Flags every Foundry server takes.
#[derive(Clone, Debug, clap::Args)]
pub struct ServerArgs {
    /// Address to serve gRPC on.
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub listen: SocketAddr,

    /// PostgreSQL URL. Unset: an embedded cluster is started from the
    /// machine's PostgreSQL binaries in `<data-dir>/pg`.
    #[arg(long, global = true, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Where the embedded cluster and local state live.
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_DATA_DIR",
        default_value = ".foundry"
    )]
    pub data_dir: PathBuf,

    /// Log line format.
    #[arg(long, global = true, env = "FOUNDRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Secret that MACs page tokens; replicas behind one load balancer must
    /// share it. Unset: a random one per process.
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_PAGE_TOKEN_KEY",
        hide_env_values = true
    )]
    pub page_token_key: Option<String>,

    /// Connections per service pool.
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_DB_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub db_max_connections: u32,

    /// How tenant reads reach PostgreSQL: `session`, on connections of
    /// their own that keep the organization as a session setting (one round
    /// trip per read), or `transaction`, a tenant transaction per read.
    /// Choose `transaction` when a pooler in transaction or statement mode
    /// (PgBouncer) sits between the service and PostgreSQL: it would not
    /// keep a session setting with the connection it was set on.
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_DB_READ_PATH",
        value_enum,
        default_value_t = crate::reads::ReadPath::Session
    )]
    pub db_read_path: crate::reads::ReadPath,

    /// How long an idempotent create's request id is remembered (AIP-155):
    /// a repeat within it is answered with the first response, after it the
    /// request runs anew. Older ids are swept.
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_REQUEST_ID_RETENTION_SECONDS",
        default_value_t = 86_400
    )]
    pub request_id_retention_seconds: u64,

    /// How often token verifiers refetch the published signing keys (and
    /// identity reloads its key ring), in seconds: a retired or revoked key
    /// stops verifying in every process within this interval.
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_JWKS_REFRESH_SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=60)
    )]
    pub jwks_refresh_seconds: u64,

    /// How many proxies in front of this server append the address they
    /// saw to `X-Forwarded-For` (Envoy with `use_remote_address`): the
    /// caller's address is the one the outermost of them saw. 0 (the
    /// default): `X-Forwarded-For` is ignored and the caller is the
    /// connection's peer.
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_TRUSTED_PROXY_HOPS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u8).range(0..=16)
    )]
    pub trusted_proxy_hops: u8,

    /// The longest a call may take, in milliseconds; a shorter
    /// `grpc-timeout` from the caller wins. Past it the call ends with
    /// `DEADLINE_EXCEEDED` and what it changed is rolled back.
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_CALL_DEADLINE_MS",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub call_deadline_ms: u64,

    /// Calls the server runs at once; the next is refused at once with
    /// `RESOURCE_EXHAUSTED` (`SERVER_BUSY`) and a `RetryInfo`.
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_MAX_CONCURRENT_CALLS",
        default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_concurrent_calls: u32,

    /// Calls one organization runs at once on the server
    /// (`ORGANIZATION_BUSY` past it).
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_MAX_CONCURRENT_CALLS_PER_ORG",
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_concurrent_calls_per_org: u32,

    /// Calls one principal (user, service account, API key) runs at once
    /// on the server (`PRINCIPAL_BUSY` past it).
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_MAX_CONCURRENT_CALLS_PER_PRINCIPAL",
        default_value_t = 32,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_concurrent_calls_per_principal: u32,

    /// The wait a refusal for load asks of the caller (`RetryInfo`), in
    /// milliseconds.
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_RETRY_AFTER_MS",
        default_value_t = 1_000
    )]
    pub retry_after_ms: u64,

    /// Address to serve the Prometheus scrape endpoint (`GET /metrics`)
    /// on. Unset: none (metrics still go over OTLP when
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
    #[arg(long, global = true, env = "FOUNDRY_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

impl ServerArgs {
    /// The load limits these flags describe ([`crate::load`]).
    pub fn limits(&self) -> crate::load::Limits {
        crate::load::Limits {
            deadline: std::time::Duration::from_millis(self.call_deadline_ms),
            concurrent: self.max_concurrent_calls as usize,
            per_org: self.max_concurrent_calls_per_org as usize,
            per_principal: self.max_concurrent_calls_per_principal as usize,
            retry_after: std::time::Duration::from_millis(self.retry_after_ms),
        }
    }

    /// The request-id retention window.
    pub fn request_id_retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.request_id_retention_seconds.max(1))
    }

    /// How often verifiers refetch the signing keys.
    pub fn jwks_refresh(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.jwks_refresh_seconds)
    }

    /// The page token signer these flags describe.
    pub fn page_tokens(&self) -> crate::page::PageTokens {
        self.page_token_key
            .as_deref()
            .map(|k| crate::page::PageTokens::new(k.as_bytes()))
            .unwrap_or_else(crate::page::PageTokens::random)
    }

    /// The database URL a per-service binary needs (only the all-in-one
    /// `foundry` starts an embedded cluster).
    pub fn required_database_url(&self, binary: &str) -> anyhow::Result<&str> {
        self.database_url.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "{binary} needs DATABASE_URL (or --database-url); \
                 run `foundry` for the all-in-one server with an embedded PostgreSQL"
            )
        })
    }
}

/// The migration flags of a per-service binary.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct MigrateArgs {
    /// Apply the service's schema migrations before serving.
    #[arg(long, env = "FOUNDRY_MIGRATE")]
    pub migrate: bool,
    /// Apply the migrations and exit (a deploy step or init container).
    #[arg(long, conflicts_with = "migrate")]
    pub migrate_only: bool,
}

/// Opens a per-service binary's database: requires `DATABASE_URL`,
/// migrates when asked; `None` when `--migrate-only` is done.
pub async fn service_db(
    server: &ServerArgs,
    migrate: &MigrateArgs,
    binary: &str,
    schema: &'static str,
    migrator: &sqlx::migrate::Migrator,
) -> anyhow::Result<Option<crate::db::Db>> {
    let url = server.required_database_url(binary)?;
    if migrate.migrate || migrate.migrate_only {
        crate::db::migrate(url, schema, migrator).await?;
        tracing::info!(schema, "migrated");
        if migrate.migrate_only {
            return Ok(None);
        }
    }
    let db = crate::db::Db::connect(url, schema, server.db_max_connections).await?;
    db.set_read_path(server.db_read_path);
    Ok(Some(db))
}

//! The suite's wiring, shared by the `foundry` binary and the test kit: the
//! same migrations, pools, verifier and routes in both.

pub mod gateway;
pub mod jobs;
pub mod tools;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use foundry_audit::Audit;
pub use foundry_audit::RetentionPolicy;
use foundry_delivery::Delivery;
use foundry_identity::{Identity, OidcProvider, RingSource, TokenConfig};
use foundry_keyring::Keyring;
use foundry_outbox::subscriptions::subscribers_of;
use foundry_outbox::{Relay, RelayConfig};
use foundry_platform::db::{self, Db};
use foundry_platform::page::PageTokens;
use foundry_platform::server::Background;
use foundry_tenancy::{Tenancy, Verifier};
use sqlx::Connection;
use tokio::net::TcpListener;

/// How to start the suite.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    /// PostgreSQL URL.
    pub database_url: String,
    /// Page token signer.
    pub page_tokens: PageTokens,
    /// Access token settings.
    pub tokens: TokenConfig,
    /// The key-encryption keys that seal identity's and audit's private
    /// signing keys in the database.
    pub keyring: Keyring,
    /// How often token verifiers refetch the published keys (and identity
    /// reloads its key ring).
    pub jwks_refresh: Duration,
    /// Connections per service pool.
    pub max_connections: u32,
    /// How tenant reads reach PostgreSQL ([`foundry_platform::db::ReadPath`]).
    pub read_path: foundry_platform::db::ReadPath,
    /// Trusted external OIDC issuers for sign-in.
    pub oidc: Vec<OidcProvider>,
    /// Where the outbox relays deliver audit events (the relays to the
    /// suite's other subscribers, delivery's inbox of identity's
    /// membership events, always run).
    pub audit_delivery: AuditDelivery,
    /// How often the audit checkpointer signs a checkpoint of every chain
    /// that grew (and applies retention); `None` runs no checkpointer.
    pub audit_checkpoint_interval: Option<Duration>,
    /// How long idempotent creates' request ids are kept; older ones are
    /// swept.
    pub request_id_retention: Duration,
    /// The operator's bounds on organizations' audit retention.
    pub audit_retention: RetentionPolicy,
    /// Proxies in front of the server that append to `X-Forwarded-For`
    /// (`foundry_tenancy::ClientIp`).
    pub trusted_proxy_hops: u8,
    /// Deadlines and bounds on calls in flight, per server.
    pub limits: foundry_platform::load::Limits,
}

/// The operator's bounds on audit retention: flags of `foundry` and
/// `foundry-audit` (a tenant's setting cannot go past them).
#[derive(Clone, Debug, clap::Args)]
pub struct RetentionArgs {
    /// The shortest audit retention an organization may set, in days:
    /// younger events are never removed, whatever was set.
    #[arg(long, env = "FOUNDRY_AUDIT_MIN_RETENTION_DAYS", default_value_t = 30)]
    pub audit_min_retention_days: i32,
    /// How long a shorter audit retention waits before it takes effect, in
    /// seconds (an owner can revert it meanwhile); 0: at once.
    #[arg(
        long,
        env = "FOUNDRY_AUDIT_RETENTION_REDUCTION_DELAY_SECONDS",
        default_value_t = 7 * 86_400
    )]
    pub audit_retention_reduction_delay_seconds: u32,
}

impl RetentionArgs {
    /// The policy these flags describe.
    pub fn policy(&self) -> RetentionPolicy {
        RetentionPolicy::new(
            self.audit_min_retention_days,
            chrono::TimeDelta::seconds(i64::from(self.audit_retention_reduction_delay_seconds)),
        )
    }
}

/// Where the services' outbox relays deliver audit events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditDelivery {
    /// No relay to audit runs: audit events stay in the outboxes (tests
    /// that inspect them).
    Off,
    /// The suite's own audit service, over gRPC on its own listener: the
    /// same path, token and ingest checks as a split deployment.
    Local,
    /// An audit service elsewhere (`http://host:port`).
    Endpoint(String),
}

/// Every service, ready to serve.
#[derive(Clone, Debug)]
pub struct Suite {
    /// Where relays deliver.
    pub audit_delivery: AuditDelivery,
    /// How often the audit checkpointer runs, if it does.
    pub audit_checkpoint_interval: Option<Duration>,
    /// How long request ids are kept.
    pub request_id_retention: Duration,
    /// Identity & tenancy.
    pub identity: Identity,
    /// The audit log.
    pub audit: Audit,
    /// Delivery: programs, workstreams, requirements, tasks.
    pub delivery: Delivery,
    /// The tenancy layer's state.
    pub tenancy: Arc<Tenancy>,
}

/// The long-running operations service every binary serves for its own
/// services (`operations/{service}/{id}`).
pub const OPERATIONS_SERVICE: &str = "google.longrunning.Operations";

/// Serves one service as its own binary does, until the process is
/// signalled to stop: its gRPC services (what `add` registers, named
/// `names` on health) and its own long-running operations
/// (`operations/{service}/{id}`, from `db`'s job queue) behind the tenancy
/// layer, with `background`'s tasks (relays, job workers) stopped first.
pub async fn serve_service(
    (service, db): (&'static str, Db),
    names: &[&str],
    add: impl FnOnce(&mut tonic::service::RoutesBuilder),
    (listener, tenancy): (TcpListener, Arc<Tenancy>),
    background: Background,
) -> anyhow::Result<()> {
    let operations = foundry_jobs::operations::Operations::new().serve(
        service,
        db,
        foundry_platform::clock::system(),
    );
    let names: Vec<&str> = names.iter().copied().chain([OPERATIONS_SERVICE]).collect();
    background
        .serve(foundry_platform::server::shutdown_signal(), |stop| {
            foundry_tenancy::server::serve_services(
                listener,
                |routes| {
                    add(routes);
                    routes.add_service(operations.into_server());
                },
                &names,
                tenancy,
                stop,
            )
        })
        .await
}

/// Applies every service's migrations.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    db::migrate(
        database_url,
        foundry_identity::SCHEMA,
        &foundry_identity::MIGRATOR,
    )
    .await?;
    db::migrate(
        database_url,
        foundry_audit::SCHEMA,
        &foundry_audit::MIGRATOR,
    )
    .await?;
    db::migrate(
        database_url,
        foundry_delivery::SCHEMA,
        &foundry_delivery::MIGRATOR,
    )
    .await
}

/// Creates a database if it does not exist (on the embedded cluster).
pub async fn ensure_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

impl Suite {
    /// Migrates, connects and loads keys.
    pub async fn start(cfg: SuiteConfig) -> anyhow::Result<Suite> {
        migrate(&cfg.database_url).await?;
        Self::connect(cfg).await
    }

    /// Connects to an already migrated database.
    pub async fn connect(cfg: SuiteConfig) -> anyhow::Result<Suite> {
        let identity_db = Db::connect(
            &cfg.database_url,
            foundry_identity::SCHEMA,
            cfg.max_connections,
        )
        .await?;
        let identity = Identity::new(
            identity_db,
            cfg.tokens.clone(),
            cfg.page_tokens.clone(),
            cfg.oidc.clone(),
            cfg.keyring.clone(),
        )
        .await?;
        let verifier = Verifier::new(
            cfg.tokens.expectations(),
            Arc::new(RingSource(identity.keys())),
        )
        .with_refresh_every(cfg.jwks_refresh);
        let tenancy = Arc::new(
            Tenancy::new(verifier)
                .await?
                .with_trusted_proxy_hops(cfg.trusted_proxy_hops)
                .with_limits(cfg.limits),
        );
        let audit_db = Db::connect(
            &cfg.database_url,
            foundry_audit::SCHEMA,
            cfg.max_connections,
        )
        .await?;
        let audit = Audit::new(
            audit_db,
            cfg.page_tokens.clone(),
            cfg.keyring.clone(),
            cfg.audit_retention,
        )?;
        audit.load_keys().await?;
        let delivery_db = Db::connect(
            &cfg.database_url,
            foundry_delivery::SCHEMA,
            cfg.max_connections,
        )
        .await?;
        let delivery = Delivery::new(delivery_db, cfg.page_tokens.clone());
        let suite = Suite {
            audit_delivery: cfg.audit_delivery.clone(),
            audit_checkpoint_interval: cfg.audit_checkpoint_interval,
            request_id_retention: cfg.request_id_retention,
            identity,
            audit,
            delivery,
            tenancy,
        };
        suite.set_read_path(cfg.read_path);
        Ok(suite)
    }

    /// How every service's tenant reads reach PostgreSQL from now on
    /// ([`foundry_platform::db::ReadPath`]; `foundry-bench` switches it to
    /// measure the transaction path as a baseline).
    pub fn set_read_path(&self, path: foundry_platform::db::ReadPath) {
        for db in [self.identity.db(), self.audit.db(), self.delivery.db()] {
            db.set_read_path(path);
        }
    }

    /// Serves every service on `listener` until `shutdown` resolves. The
    /// outbox relays and each service's job queue (which runs the audit
    /// checkpointer, the request-id sweeps and identity's sweep of spent
    /// credentials as schedules) run beside it; on shutdown they stop first
    /// (the relays flush to the still-serving audit service), then the
    /// server drains.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let mut background = Background::default();
        self.start_relays(listener.local_addr()?, &mut background)
            .await?;
        // Each service's queue runs its maintenance as schedules.
        let clock = foundry_platform::clock::system();
        for service_jobs in [
            jobs::ServiceJobs::identity(&self.identity, &clock, self.request_id_retention),
            jobs::ServiceJobs::audit(&self.audit, &clock, self.audit_checkpoint_interval),
            jobs::ServiceJobs::delivery(&self.delivery, &clock, self.request_id_retention),
        ] {
            service_jobs.start(&mut background).await?;
        }
        let (identity, audit, delivery) = (
            self.identity.clone(),
            self.audit.clone(),
            self.delivery.clone(),
        );
        let names: Vec<&str> = foundry_identity::SERVICE_NAMES
            .iter()
            .chain(foundry_audit::SERVICE_NAMES)
            .chain(foundry_delivery::SERVICE_NAMES)
            .chain(&[OPERATIONS_SERVICE])
            .copied()
            .collect();
        // One Operations service for the three, by the service its names
        // carry.
        let operations = foundry_jobs::operations::Operations::new()
            .serve("identity", self.identity.db().clone(), clock.clone())
            .serve("audit", self.audit.db().clone(), clock.clone())
            .serve("delivery", self.delivery.db().clone(), clock.clone());
        background
            .serve(shutdown, |stop| {
                foundry_tenancy::server::serve_services(
                    listener,
                    move |routes| {
                        identity.add_routes(routes);
                        audit.add_routes(routes);
                        delivery.add_routes(routes);
                        routes.add_service(operations.into_server());
                    },
                    &names,
                    self.tenancy,
                    stop,
                )
            })
            .await
    }

    /// Starts each service's outbox relays: one per subscriber of its
    /// events. Audit's is where [`AuditDelivery`] says; every other
    /// subscriber is a service of this suite, reached on the suite's own
    /// listener (the same path, token and checks as a split deployment).
    async fn start_relays(
        &self,
        addr: std::net::SocketAddr,
        background: &mut Background,
    ) -> anyhow::Result<()> {
        let local = format!("http://{addr}");
        let audit = match &self.audit_delivery {
            AuditDelivery::Off => None,
            AuditDelivery::Local => Some(local.clone()),
            AuditDelivery::Endpoint(e) => Some(e.clone()),
        };
        let endpoint_of = |subscriber: &str| match subscriber {
            foundry_outbox::AUDIT => audit.clone(),
            _ => Some(local.clone()),
        };
        // Every relay is made (its service account ensured) before any
        // runs: a running relay's round holds a connection of its pool
        // while it waits for the server, which starts after this.
        let mut relays = vec![];
        for (service, db) in [
            (foundry_identity::api::SERVICE, self.identity.db().clone()),
            (foundry_delivery::api::SERVICE, self.delivery.db().clone()),
        ] {
            let identity = self.identity.clone();
            // Each service's relays as its own service account: audit takes
            // from it only that service's events, a subscriber's inbox only
            // what it subscribes to of that service.
            let tokens = || async move {
                let sa = identity.ensure_relay_account(service).await?;
                Ok(identity.service_tokens(sa))
            };
            relays.push(Relays::of((service, db), endpoint_of, tokens).await?);
        }
        for r in relays {
            r.spawn(background);
        }
        Ok(())
    }
}

/// A producer's outbox relays: one for each subscriber of its events
/// (`foundry_outbox::subscriptions`) that has an endpoint, and the
/// subscribers that have none.
pub struct Relays {
    running: Vec<Arc<Relay>>,
    /// The subscribers left without an endpoint: their events wait in the
    /// outbox (and hold it, since an event leaves once every subscriber
    /// has it).
    pub waiting: Vec<String>,
}

impl Relays {
    /// `producer`'s relays over its `db`, to each subscriber whose
    /// endpoint `endpoint_of` knows, authenticated with `tokens` (the
    /// producer's relay service account, asked for only if a relay runs).
    pub async fn of<F, Fut>(
        (producer, db): (&'static str, Db),
        endpoint_of: impl Fn(&str) -> Option<String>,
        tokens: F,
    ) -> anyhow::Result<Relays>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = anyhow::Result<Arc<dyn foundry_outbox::TokenSource>>>,
    {
        let all = subscribers_of(producer);
        let (mut reached, mut waiting) = (vec![], vec![]);
        for s in &all {
            match endpoint_of(s) {
                Some(endpoint) => reached.push((s.clone(), endpoint)),
                None => waiting.push(s.clone()),
            }
        }
        let mut running = vec![];
        if !reached.is_empty() {
            let tokens = tokens().await?;
            for (subscriber, endpoint) in reached {
                let channel = tonic::transport::Channel::from_shared(endpoint)?.connect_lazy();
                let to = foundry_outbox::inboxes::over_grpc(
                    producer,
                    &subscriber,
                    channel,
                    tokens.clone(),
                )?;
                running.push(Arc::new(Relay::subscriber(
                    db.clone(),
                    to,
                    all.clone(),
                    RelayConfig::default(),
                )));
            }
        }
        Ok(Relays { running, waiting })
    }

    /// Runs them beside the server (stopped, and flushed, before it).
    pub fn spawn(self, background: &mut Background) {
        for relay in self.running {
            background.spawn(|stop| relay.run(stop));
        }
    }

    /// Logs, for a per-service binary, each subscriber left without an
    /// endpoint (its `FOUNDRY_<SUBSCRIBER>_ENDPOINT` unset).
    pub fn warn_waiting(&self) {
        for subscriber in &self.waiting {
            tracing::warn!(
                "FOUNDRY_{}_ENDPOINT unset: the events {subscriber} takes wait in the outbox",
                subscriber.to_uppercase()
            );
        }
    }
}

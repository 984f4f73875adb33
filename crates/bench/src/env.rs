//! The system under test: a private embedded PostgreSQL (or `DATABASE_URL`)
//! and the suite served in process on loopback, exactly as `foundry` runs it.

use std::time::Duration;

use foundry::{AuditDelivery, Suite, SuiteConfig};
use foundry_identity::TokenConfig;
use foundry_identity::domain::Role;
use foundry_pgembed::{EmbeddedPg, PgOptions};
use foundry_platform::page::PageTokens;
use tonic::transport::Channel;
use uuid::Uuid;

/// A running suite and its database.
pub struct Env {
    /// The suite being measured.
    pub suite: Suite,
    /// A channel to it.
    pub channel: Channel,
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// The database URL (superuser).
    pub database_url: String,
    /// The embedded cluster's statement log (none with `DATABASE_URL`).
    pub capture: Option<crate::capture::Capture>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pg: Option<EmbeddedPg>,
    _dir: Option<tempfile::TempDir>,
}

impl Env {
    /// Starts PostgreSQL (embedded unless `DATABASE_URL` is set) and the
    /// suite with `delivery` for the outbox relays.
    pub async fn start(delivery: AuditDelivery) -> anyhow::Result<Env> {
        let (database_url, pg, dir, capture) = match std::env::var("DATABASE_URL") {
            Ok(url) => (url, None, None, None),
            Err(_) => {
                let dir = tempfile::Builder::new().prefix("foundry-bench").tempdir()?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
                }
                let mut options = PgOptions::ephemeral(dir.path().join("pg"));
                options.settings = crate::capture::server_settings();
                let pg = EmbeddedPg::start(options).await?;
                let name = format!("bench_{}", Uuid::now_v7().simple());
                foundry::ensure_database(&pg.url("postgres"), &name).await?;
                let url = pg.url(&name);
                let capture = crate::capture::Capture::new(&url, pg.data_dir());
                (url, Some(pg), Some(dir), Some(capture))
            }
        };
        let suite = Suite::start(SuiteConfig {
            database_url: database_url.clone(),
            page_tokens: PageTokens::random(),
            tokens: TokenConfig::default(),
            keyring: foundry_keyring::Keyring::generate(),
            jwks_refresh: foundry_tenancy::verifier::DEFAULT_REFRESH,
            max_connections: 16,
            read_path: foundry_platform::db::ReadPath::Session,
            oidc: vec![],
            audit_delivery: delivery,
            audit_checkpoint_interval: None,
            request_id_retention: foundry_platform::idempotency::DEFAULT_RETENTION,
            audit_retention: foundry::RetentionPolicy::default(),
            trusted_proxy_hops: 0,
            // The bench drives one principal from many callers: the
            // per-principal and per-organization bounds would refuse
            // what it came to measure.
            limits: foundry_platform::load::Limits {
                concurrent: 4096,
                per_org: 4096,
                per_principal: 4096,
                ..foundry_platform::load::Limits::default()
            },
        })
        .await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(suite.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        Ok(Env {
            suite,
            channel,
            addr,
            database_url,
            capture,
            stop: Some(stop),
            serving: Some(serving),
            pg,
            _dir: dir,
        })
    }

    /// `n` more organizations, each with its owner's token: callers that
    /// mutate different rows, as tenants do.
    pub async fn orgs(&self, n: usize) -> anyhow::Result<Vec<Tenant>> {
        let mut out = vec![];
        for _ in 0..n {
            let slug = format!("bench-{}", &Uuid::now_v7().simple().to_string()[16..]);
            let dev = self
                .suite
                .identity
                .create_user_with_org(&format!("{slug}@bench.local"), "Bench", &slug)
                .await?;
            let token = self.owner_token(dev.user_id, dev.org_id)?;
            out.push(Tenant {
                org: dev.org_id,
                user: dev.user_id,
                token,
            });
        }
        Ok(out)
    }

    /// A fresh hour-long token of `user` acting as owner of `org` (minted
    /// in process: the verifier checks the signature, not the membership).
    pub fn owner_token(&self, user: Uuid, org: Uuid) -> anyhow::Result<String> {
        self.suite.identity.mint_member_token(
            user,
            Some(org),
            Some(Role::Owner),
            Duration::from_secs(3600),
        )
    }

    /// Stops the suite (relays flush) and the embedded PostgreSQL.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            serving.await??;
        }
        if let Some(pg) = self.pg.take() {
            pg.stop().await?;
        }
        Ok(())
    }
}

/// An organization and its owner.
#[derive(Clone, Debug)]
pub struct Tenant {
    /// The organization.
    pub org: Uuid,
    /// Its owner.
    pub user: Uuid,
    /// The owner's access token, acting in the organization.
    pub token: String,
}

/// A server like the suite's (same handlers, pools and request tracing)
/// but with the tenancy layer replaced by one that inserts a fixed,
/// already verified caller: the "tenancy off" side of the comparison.
pub async fn serve_without_tenancy(
    suite: &Suite,
    token: &str,
) -> anyhow::Result<(std::net::SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    let claims = suite.tenancy.verifier.verify(token).await?;
    let caller = foundry_tenancy::Caller {
        claims,
        token: std::sync::Arc::from(token),
        request_id: Uuid::now_v7(),
    };
    let (mut routes, _health) = foundry_platform::server::platform_routes()?;
    suite.identity.add_routes(&mut routes);
    suite.delivery.add_routes(&mut routes);
    let layers = tower::ServiceBuilder::new()
        .layer(foundry_platform::trace::RequestTraceLayer)
        .map_request(move |mut req: http::Request<tonic::body::Body>| {
            req.extensions_mut().insert(caller.clone());
            req
        })
        .into_inner();
    let (l, stop) = Loopback::bind().await?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layers)
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(l.incoming, l.stopped),
    );
    Ok((l.addr, stop))
}

/// A loopback listener for a bench server, and how to stop it: the server
/// serves `incoming` until `stopped` resolves (the returned sender fires or
/// is dropped).
pub struct Loopback {
    /// Connections, with TCP_NODELAY.
    pub incoming: tonic::transport::server::TcpIncoming,
    /// The bound address.
    pub addr: std::net::SocketAddr,
    /// Resolves on stop.
    pub stopped: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl Loopback {
    /// Binds `127.0.0.1:0`.
    pub async fn bind() -> anyhow::Result<(Loopback, tokio::sync::oneshot::Sender<()>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = Box::pin(async {
            let _ = stopped.await;
        });
        Ok((
            Loopback {
                incoming,
                addr,
                stopped,
            },
            stop,
        ))
    }
}

/// A channel to a loopback address.
pub async fn channel(addr: std::net::SocketAddr) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?)
}

/// A request carrying a bearer token.
pub fn authed<T>(token: &str, msg: T) -> anyhow::Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(req)
}

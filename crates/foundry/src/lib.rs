//! The suite's wiring, shared by the `foundry` binary and the test kit: the
//! same migrations, pools, verifier and routes in both.

use std::future::Future;
use std::sync::Arc;

use foundry_identity::{Identity, RingSource, TokenConfig};
use foundry_platform::db::{self, Db};
use foundry_platform::page::PageTokens;
use foundry_tenancy::{MethodTable, Tenancy, Verifier};
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
    /// Connections per service pool.
    pub max_connections: u32,
}

/// Every service, ready to serve.
#[derive(Clone, Debug)]
pub struct Suite {
    /// Identity & tenancy.
    pub identity: Identity,
    /// The tenancy layer's state.
    pub tenancy: Arc<Tenancy>,
}

/// Applies every service's migrations.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    db::migrate(
        database_url,
        foundry_identity::SCHEMA,
        &foundry_identity::MIGRATOR,
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
        let identity =
            Identity::new(identity_db, cfg.tokens.clone(), cfg.page_tokens.clone()).await?;
        let verifier = Verifier::new(
            cfg.tokens.expectations(),
            Arc::new(RingSource(identity.keys())),
        );
        verifier.refresh().await?;
        let methods = MethodTable::from_descriptor_set(foundry_proto::FILE_DESCRIPTOR_SET)?;
        if !methods.undeclared().is_empty() {
            anyhow::bail!(
                "methods without an access declaration: {:?}",
                methods.undeclared()
            );
        }
        let tenancy = Arc::new(Tenancy {
            verifier: Arc::new(verifier),
            methods,
        });
        Ok(Suite { identity, tenancy })
    }

    /// Serves every service on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let (mut routes, health) = foundry_platform::server::platform_routes()?;
        self.identity.add_routes(&mut routes);
        for name in foundry_identity::SERVICE_NAMES {
            health
                .set_service_status(*name, tonic_health::ServingStatus::Serving)
                .await;
        }
        foundry_tenancy::server::serve(listener, routes.routes(), self.tenancy, shutdown).await
    }
}

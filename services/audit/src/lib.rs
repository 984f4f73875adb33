//! The audit service: every mutation of every service, delivered by the
//! producers' outboxes at least once and appended exactly once, chained by
//! hash per organization so that an edited, deleted or reordered event is
//! found by `VerifyAuditChain`; signed checkpoints of each chain, so that
//! removing the newest events or rewriting a chain is found too; export,
//! the activity feed, execution audit records and retention. The log is
//! append only for the service's own database role.

pub mod api;
pub mod chain;
pub mod domain;
pub mod keys;
pub mod maintenance;
pub mod store;

use std::sync::Arc;

use foundry_platform::Error;
use foundry_platform::db::Db;
use foundry_platform::page::PageTokens;
use sqlx::migrate::Migrator;
use tokio::sync::OnceCell;
use tonic::service::RoutesBuilder;

pub use crate::domain::settings::RetentionPolicy;
use crate::keys::Signer;

/// The audit schema's migrations, embedded.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/audit");

/// The Postgres schema of this service.
pub const SCHEMA: &str = "audit";

/// gRPC service names this crate serves (for health).
pub const SERVICE_NAMES: &[&str] = &[
    "foundry.audit.v1.AuditService",
    "foundry.audit.v1.AuditIngestService",
];

/// What the handlers share.
#[derive(Debug)]
pub struct State {
    /// The service's database.
    pub db: Db,
    /// Page token signer.
    pub pages: PageTokens,
    /// Seals the checkpoint signing key at rest.
    keyring: foundry_keyring::Keyring,
    /// The operator's bounds on organizations' retention.
    pub retention: RetentionPolicy,
    /// The checkpoint signing key, loaded (or created) on first use or by
    /// [`Audit::load_keys`].
    signer: OnceCell<Signer>,
}

impl State {
    /// The key that signs checkpoints.
    pub async fn signer(&self) -> Result<&Signer, Error> {
        self.signer
            .get_or_try_init(|| Signer::load_or_create(&self.db, &self.keyring))
            .await
            .map_err(Error::internal)
    }
}

/// The running service.
#[derive(Clone, Debug)]
pub struct Audit {
    state: Arc<State>,
}

impl Audit {
    /// The service over its database. The checkpoint signing key is loaded
    /// on first use; call [`Audit::load_keys`] to load (or, on the first
    /// start, create) it now.
    pub fn new(
        db: Db,
        pages: PageTokens,
        keyring: foundry_keyring::Keyring,
        retention: RetentionPolicy,
    ) -> anyhow::Result<Audit> {
        Ok(Audit {
            state: Arc::new(State {
                db,
                pages,
                keyring,
                retention,
                signer: OnceCell::new(),
            }),
        })
    }

    /// Loads the checkpoint signing key, creating it on the first start.
    pub async fn load_keys(&self) -> anyhow::Result<()> {
        self.state.signer().await?;
        Ok(())
    }

    /// The service's database.
    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// One round of the checkpointer now: retention for every organization
    /// that has one, then a signed checkpoint of every chain whose head
    /// moved since its newest checkpoint.
    pub async fn checkpoint_round(&self) -> anyhow::Result<maintenance::Round> {
        Ok(maintenance::round(&self.state).await?)
    }

    /// The handler of background chain verifications (its job kind:
    /// [`api::verify::VERIFY_JOB`]).
    pub fn verification_job(&self) -> api::verify::VerifyJob {
        api::verify::VerifyJob(self.state.clone())
    }

    /// Adds the service's handlers.
    pub fn add_routes(&self, routes: &mut RoutesBuilder) {
        use foundry_proto::foundry::audit::v1::{
            audit_ingest_service_server::AuditIngestServiceServer,
            audit_service_server::AuditServiceServer,
        };
        let s = &self.state;
        routes
            .add_service(AuditServiceServer::new(api::events::Events(s.clone())))
            .add_service(AuditIngestServiceServer::new(api::ingest::Ingest(
                s.clone(),
            )));
    }
}

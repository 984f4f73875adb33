//! The audit service: every mutation of every service, delivered by the
//! producers' outboxes at least once and appended exactly once, chained by
//! hash per organization so that an edited, deleted or reordered event is
//! found by `VerifyAuditChain`. The log is append only for the service's
//! own database role.

pub mod api;
pub mod domain;
pub mod store;

use std::sync::Arc;

use foundry_platform::db::Db;
use foundry_platform::page::PageTokens;
use sqlx::migrate::Migrator;
use tonic::service::RoutesBuilder;

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
}

/// The running service.
#[derive(Clone, Debug)]
pub struct Audit {
    state: Arc<State>,
}

impl Audit {
    /// The service over its database.
    pub fn new(db: Db, pages: PageTokens) -> anyhow::Result<Audit> {
        Ok(Audit {
            state: Arc::new(State { db, pages }),
        })
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

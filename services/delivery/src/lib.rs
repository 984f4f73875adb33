//! The delivery service: programs and their delivery phases, workstreams,
//! requirements and the dependency graph between them, tasks and subtasks,
//! risks, sprints and sprint gates with their evaluations, goals, work
//! orders, planner phases and the feature tree; and, from identity's
//! membership events, a replica of memberships that user references are
//! checked against.
//! Every call acts in one organization (row-level security binds its
//! transaction), and every mutation records its audit event in the same
//! transaction (the program is the event's project).

pub mod api;
pub mod domain;
pub mod store;

use std::sync::Arc;

use foundry_platform::db::Db;
use foundry_platform::page::PageTokens;
use sqlx::migrate::Migrator;
use tonic::service::RoutesBuilder;

/// The delivery schema's migrations, embedded.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/delivery");

/// The Postgres schema of this service.
pub const SCHEMA: &str = "delivery";

/// gRPC service names this crate serves (for health).
pub const SERVICE_NAMES: &[&str] = &[
    "foundry.delivery.v1.ProgramService",
    "foundry.delivery.v1.WorkstreamService",
    "foundry.delivery.v1.RequirementService",
    "foundry.delivery.v1.TaskService",
    "foundry.delivery.v1.SubtaskService",
    "foundry.delivery.v1.RiskService",
    "foundry.delivery.v1.SprintService",
    "foundry.delivery.v1.SprintGateService",
    "foundry.delivery.v1.GoalService",
    "foundry.delivery.v1.WorkOrderService",
    "foundry.delivery.v1.PlannerPhaseService",
    "foundry.delivery.v1.FeatureService",
    "foundry.delivery.v1.InboxService",
];

/// What the handlers share.
#[derive(Debug)]
pub struct State {
    /// The service's database.
    pub db: Db,
    /// Page token signer.
    pub pages: PageTokens,
}

impl foundry_outbox::Serves for State {
    const SERVICE: &'static str = api::SERVICE;
}

/// The running service.
#[derive(Clone, Debug)]
pub struct Delivery {
    state: Arc<State>,
}

impl Delivery {
    /// The service over its (migrated) database.
    pub fn new(db: Db, pages: PageTokens) -> Delivery {
        Delivery {
            state: Arc::new(State { db, pages }),
        }
    }

    /// The service's database (its outbox relay runs over it).
    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// Adds the service's handlers.
    pub fn add_routes(&self, routes: &mut RoutesBuilder) {
        let s = &self.state;
        routes
            .add_service(api::programs::service(s))
            .add_service(api::workstreams::service(s))
            .add_service(api::requirements::service(s))
            .add_service(api::tasks::service(s))
            .add_service(api::subtasks::service(s))
            .add_service(api::risks::service(s))
            .add_service(api::sprints::service(s))
            .add_service(api::gates::service(s))
            .add_service(api::goals::service(s))
            .add_service(api::work_orders::service(s))
            .add_service(api::planner_phases::service(s))
            .add_service(api::features::service(s))
            .add_service(api::inbox::service(s));
    }
}

//! The delivery service: programs and their delivery phases, workstreams,
//! requirements and the dependency graph between them, tasks and subtasks,
//! risks, sprints and sprint gates with their evaluations, goals, work
//! orders, planner phases and the feature tree.
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
        use foundry_proto::foundry::delivery::v1::{
            feature_service_server::FeatureServiceServer, goal_service_server::GoalServiceServer,
            planner_phase_service_server::PlannerPhaseServiceServer,
            program_service_server::ProgramServiceServer,
            requirement_service_server::RequirementServiceServer,
            risk_service_server::RiskServiceServer,
            sprint_gate_service_server::SprintGateServiceServer,
            sprint_service_server::SprintServiceServer,
            subtask_service_server::SubtaskServiceServer, task_service_server::TaskServiceServer,
            work_order_service_server::WorkOrderServiceServer,
            workstream_service_server::WorkstreamServiceServer,
        };
        let s = &self.state;
        routes
            .add_service(ProgramServiceServer::new(api::programs::Programs(
                s.clone(),
            )))
            .add_service(WorkstreamServiceServer::new(api::workstreams::Workstreams(
                s.clone(),
            )))
            .add_service(RequirementServiceServer::new(
                api::requirements::Requirements(s.clone()),
            ))
            .add_service(TaskServiceServer::new(api::tasks::Tasks(s.clone())))
            .add_service(SubtaskServiceServer::new(api::subtasks::Subtasks(
                s.clone(),
            )))
            .add_service(RiskServiceServer::new(api::risks::Risks(s.clone())))
            .add_service(SprintServiceServer::new(api::sprints::Sprints(s.clone())))
            .add_service(SprintGateServiceServer::new(api::gates::SprintGates(
                s.clone(),
            )))
            .add_service(GoalServiceServer::new(api::goals::Goals(s.clone())))
            .add_service(WorkOrderServiceServer::new(api::work_orders::WorkOrders(
                s.clone(),
            )))
            .add_service(PlannerPhaseServiceServer::new(
                api::planner_phases::PlannerPhases(s.clone()),
            ))
            .add_service(FeatureServiceServer::new(api::features::Features(
                s.clone(),
            )));
    }
}

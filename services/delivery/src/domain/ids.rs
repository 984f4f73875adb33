//! The ids of delivery's resources: one type per kind, so a sprint id
//! cannot be passed as a requirement id. The markers are never built.

use foundry_domain::Id;

macro_rules! kinds {
    ($($(#[$doc:meta])* $marker:ident => $alias:ident),+ $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub enum $marker {}
            $(#[$doc])*
            pub type $alias = Id<$marker>;
        )+
    };
}

kinds! {
    /// A program.
    ProgramKind => ProgramId,
    /// A workstream.
    WorkstreamKind => WorkstreamId,
    /// A requirement.
    RequirementKind => RequirementId,
    /// A task.
    TaskKind => TaskId,
    /// A subtask.
    SubtaskKind => SubtaskId,
    /// A risk.
    RiskKind => RiskId,
    /// A sprint.
    SprintKind => SprintId,
    /// A sprint gate.
    SprintGateKind => SprintGateId,
    /// A sprint gate evaluation.
    EvaluationKind => EvaluationId,
    /// A goal.
    GoalKind => GoalId,
    /// A work order.
    WorkOrderKind => WorkOrderId,
    /// A planner phase.
    PlannerPhaseKind => PlannerPhaseId,
    /// A feature.
    FeatureKind => FeatureId,
    /// A user (of the identity service).
    UserKind => UserId,
}

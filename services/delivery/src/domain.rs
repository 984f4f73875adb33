//! Delivery rules: the states of programs, requirements, tasks, subtasks
//! and sprints and which moves between them are allowed, a risk's severity,
//! a sprint gate's verdict, and the requirement graph (cycle detection,
//! planning order) in [`graph`]. No I/O.

pub mod graph;

use foundry_platform::Error;
use foundry_proto::foundry::delivery::v1 as pb;

/// An enum stored as lowercase text (CHECK-constrained in the schema) and
/// sent as a proto enum whose `*_UNSPECIFIED` maps to nothing.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident => $pb:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Database spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the database spelling.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// Parses a stored value the schema's CHECK constraint admitted.
            pub fn from_db(s: &str) -> $name {
                Self::parse(s).unwrap_or(Self::ALL[0])
            }
        }

        impl From<$name> for pb::$pb {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$variant => pb::$pb::$variant),+
                }
            }
        }

        impl TryFrom<i32> for $name {
            type Error = ();
            fn try_from(v: i32) -> Result<Self, ()> {
                match pb::$pb::try_from(v).map_err(|_| ())? {
                    $(pb::$pb::$variant => Ok($name::$variant),)+
                    pb::$pb::Unspecified => Err(()),
                }
            }
        }
    };
}

text_enum! {
    /// The delivery phase of a program, in order.
    Phase => DeliveryPhase {
        /// Understanding the current system; where every program starts.
        Discovery = "discovery",
        /// Building.
        Build = "build",
        /// Testing.
        Test = "test",
        /// Deploying.
        Deploy = "deploy",
        /// Delivered.
        Complete = "complete",
    }
}

text_enum! {
    /// How much a requirement matters (declared most important first, so
    /// the derived order is planning order).
    Priority => RequirementPriority {
        /// Blocks the delivery.
        Critical = "critical",
        /// Must have.
        High = "high",
        /// Should have.
        Medium = "medium",
        /// Nice to have.
        Low = "low",
    }
}

text_enum! {
    /// Where a requirement stands.
    RequirementStatus => RequirementStatus {
        /// Being written.
        Draft = "draft",
        /// Agreed.
        Approved = "approved",
        /// Being built.
        InProgress = "in_progress",
        /// Delivered.
        Done = "done",
        /// Postponed.
        Deferred = "deferred",
    }
}

text_enum! {
    /// The workflow status of a task.
    TaskStatus => TaskStatus {
        /// Not planned yet.
        Backlog = "backlog",
        /// Planned.
        Todo = "todo",
        /// Being worked on.
        InProgress = "in_progress",
        /// Waiting for review.
        InReview = "in_review",
        /// Finished.
        Done = "done",
        /// Cannot proceed.
        Blocked = "blocked",
    }
}

text_enum! {
    /// Where a subtask stands.
    SubtaskStatus => SubtaskStatus {
        /// Not started.
        Todo = "todo",
        /// Being worked on.
        InProgress = "in_progress",
        /// Finished.
        Done = "done",
    }
}

impl SubtaskStatus {
    /// Whether the subtask still holds its task back from DONE.
    pub fn is_open(self) -> bool {
        self != SubtaskStatus::Done
    }
}

/// How a phase change relates to the phase order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhaseMove {
    /// Already there: nothing to do.
    Unchanged,
    /// The next phase: always allowed.
    Next,
    /// Further ahead than the next phase: forced only.
    Skip,
    /// An earlier phase: forced only.
    Back,
}

impl PhaseMove {
    /// Classifies a move from `from` to `to`.
    pub fn of(from: Phase, to: Phase) -> PhaseMove {
        let (a, b) = (from as i32, to as i32);
        if b == a {
            PhaseMove::Unchanged
        } else if b == a + 1 {
            PhaseMove::Next
        } else if b > a {
            PhaseMove::Skip
        } else {
            PhaseMove::Back
        }
    }

    /// The audit spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseMove::Unchanged => "unchanged",
            PhaseMove::Next => "next",
            PhaseMove::Skip => "skip",
            PhaseMove::Back => "back",
        }
    }
}

/// Checks a phase change. Moving to the next phase is always allowed;
/// skipping ahead or going back only when forced (the caller checked that
/// the forcer may). Returns what kind of move it is.
pub fn advance_phase(from: Phase, to: Phase, force: bool) -> Result<PhaseMove, Error> {
    let step = PhaseMove::of(from, to);
    match step {
        PhaseMove::Skip if !force => Err(Error::failed_precondition(
            "PHASE_SKIP_NOT_ALLOWED",
            format!(
                "a program in phase {} moves to {} next; skipping to {} needs force",
                from.as_str(),
                next_phase(from).map_or("nothing", Phase::as_str),
                to.as_str()
            ),
        )),
        PhaseMove::Back if !force => Err(Error::failed_precondition(
            "PHASE_BACKWARDS_NOT_ALLOWED",
            format!(
                "a program in phase {} cannot go back to {} without force",
                from.as_str(),
                to.as_str()
            ),
        )),
        _ => Ok(step),
    }
}

/// The phase after `p`, if any.
pub fn next_phase(p: Phase) -> Option<Phase> {
    Phase::ALL.get(p as usize + 1).copied()
}

impl TaskStatus {
    /// The statuses the workflow allows moving to from this one.
    pub fn successors(self) -> &'static [TaskStatus] {
        use TaskStatus::*;
        match self {
            Backlog => &[Todo, InProgress, Blocked],
            Todo => &[Backlog, InProgress, Blocked],
            InProgress => &[Todo, InReview, Done, Blocked],
            InReview => &[InProgress, Done, Blocked],
            Done => &[Todo, InProgress],
            Blocked => &[Backlog, Todo, InProgress],
        }
    }

    /// Statuses a task may be created in.
    pub fn is_initial(self) -> bool {
        matches!(self, TaskStatus::Backlog | TaskStatus::Todo)
    }
}

/// What a status change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskMove {
    /// Already there: nothing to do.
    Unchanged,
    /// An allowed move.
    Allowed,
    /// DONE with open subtasks, allowed because forced.
    Forced,
}

/// Checks a task status change against the workflow and the subtask rule:
/// DONE needs every subtask closed, unless forced. `open_subtasks` is how
/// many are open (the caller counts them only for moves to DONE).
pub fn change_task_status(
    from: TaskStatus,
    to: TaskStatus,
    open_subtasks: i64,
    force: bool,
) -> Result<TaskMove, Error> {
    if from == to {
        return Ok(TaskMove::Unchanged);
    }
    if !from.successors().contains(&to) {
        let allowed: Vec<&str> = from.successors().iter().map(|s| s.as_str()).collect();
        return Err(Error::failed_precondition(
            "TASK_TRANSITION_NOT_ALLOWED",
            format!(
                "a task cannot move from {} to {}; allowed: {}",
                from.as_str(),
                to.as_str(),
                allowed.join(", ")
            ),
        ));
    }
    if to == TaskStatus::Done && open_subtasks > 0 {
        if !force {
            return Err(Error::failed_precondition(
                "SUBTASKS_OPEN",
                format!("{open_subtasks} subtask(s) still open; close them or force"),
            )
            .with_metadata("open_subtasks", open_subtasks.to_string()));
        }
        return Ok(TaskMove::Forced);
    }
    Ok(TaskMove::Allowed)
}

text_enum! {
    /// How serious a risk is (least first), derived by [`severity`].
    RiskSeverity => RiskSeverity {
        /// Score 1..4.
        Low = "low",
        /// Score 5..9.
        Medium = "medium",
        /// Score 10..15.
        High = "high",
        /// Score 16..25.
        Critical = "critical",
    }
}

text_enum! {
    /// Where a risk stands.
    RiskStatus => RiskStatus {
        /// Identified, nothing done yet.
        Open = "open",
        /// Being mitigated.
        Mitigating = "mitigating",
        /// Accepted as it is.
        Accepted = "accepted",
        /// No longer a risk.
        Closed = "closed",
    }
}

text_enum! {
    /// Where a goal stands.
    GoalStatus => GoalStatus {
        /// Suggested, not yet pursued.
        Proposed = "proposed",
        /// Being pursued.
        Active = "active",
        /// Reached.
        Achieved = "achieved",
        /// Given up.
        Abandoned = "abandoned",
    }
}

impl GoalStatus {
    /// The statuses a goal may move to from this one.
    pub fn successors(self) -> &'static [GoalStatus] {
        use GoalStatus::*;
        match self {
            Proposed => &[Active, Abandoned],
            Active => &[Achieved, Abandoned],
            Achieved => &[Active],
            Abandoned => &[Proposed],
        }
    }

    /// Statuses a goal may be created in.
    pub fn is_initial(self) -> bool {
        matches!(self, GoalStatus::Proposed | GoalStatus::Active)
    }
}

/// Checks a goal status change; staying put is allowed.
pub fn change_goal_status(from: GoalStatus, to: GoalStatus) -> Result<(), Error> {
    if from == to || from.successors().contains(&to) {
        return Ok(());
    }
    let allowed: Vec<&str> = from.successors().iter().map(|s| s.as_str()).collect();
    Err(Error::failed_precondition(
        "GOAL_TRANSITION_NOT_ALLOWED",
        format!(
            "a goal cannot move from {} to {}; allowed: {}",
            from.as_str(),
            to.as_str(),
            allowed.join(", ")
        ),
    ))
}

text_enum! {
    /// The workflow of a work order.
    WorkOrderStatus => WorkOrderStatus {
        /// Not yet ready to start; where a work order starts by default.
        Backlog = "backlog",
        /// Specified and ready to be picked up.
        Ready = "ready",
        /// Being implemented.
        InProgress = "in_progress",
        /// Implemented, under review.
        InReview = "in_review",
        /// Accepted.
        Done = "done",
    }
}

impl WorkOrderStatus {
    /// The statuses a work order may move to from this one: one step
    /// forward or back, and DONE reopens to IN_PROGRESS.
    pub fn successors(self) -> &'static [WorkOrderStatus] {
        use WorkOrderStatus::*;
        match self {
            Backlog => &[Ready],
            Ready => &[Backlog, InProgress],
            InProgress => &[Ready, InReview],
            InReview => &[InProgress, Done],
            Done => &[InProgress],
        }
    }

    /// Statuses a work order may be created in.
    pub fn is_initial(self) -> bool {
        matches!(self, WorkOrderStatus::Backlog | WorkOrderStatus::Ready)
    }
}

/// Checks a work order status change against the workflow; `Ok(false)`
/// when it is already there (nothing to do).
pub fn change_work_order_status(from: WorkOrderStatus, to: WorkOrderStatus) -> Result<bool, Error> {
    if from == to {
        return Ok(false);
    }
    if from.successors().contains(&to) {
        return Ok(true);
    }
    let allowed: Vec<&str> = from.successors().iter().map(|s| s.as_str()).collect();
    Err(Error::failed_precondition(
        "WORK_ORDER_TRANSITION_NOT_ALLOWED",
        format!(
            "a work order cannot move from {} to {}; allowed: {}",
            from.as_str(),
            to.as_str(),
            allowed.join(", ")
        ),
    ))
}

/// Checks that `id` may take the parent whose chain up to the root is
/// `ancestry` (the parent first): refused when `id` is on it, naming the
/// cycle `id → parent → … → id`.
pub fn check_feature_parent(id: uuid::Uuid, ancestry: &[uuid::Uuid]) -> Result<(), Error> {
    let Some(at) = ancestry.iter().position(|a| *a == id) else {
        return Ok(());
    };
    let cycle: Vec<String> = std::iter::once(id)
        .chain(ancestry[..=at].iter().copied())
        .map(|x| x.to_string())
        .collect();
    Err(Error::failed_precondition(
        "FEATURE_PARENT_CYCLE",
        format!("the parent would make a cycle: {}", cycle.join(" -> ")),
    )
    .with_metadata("cycle", cycle.join(",")))
}

/// A step of the five-step likelihood and impact scale: 1 (very low) to 5
/// (very high), the proto enum's numbers and the stored `smallint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RiskLevel(u8);

impl RiskLevel {
    /// The lowest step.
    pub const MIN: RiskLevel = RiskLevel(1);
    /// The highest step.
    pub const MAX: RiskLevel = RiskLevel(5);

    /// The step `n` (1..=5).
    pub fn new(n: u8) -> Option<RiskLevel> {
        (1..=5).contains(&n).then_some(RiskLevel(n))
    }

    /// The stored value.
    pub fn value(self) -> i16 {
        i16::from(self.0)
    }

    /// Parses a stored value the schema's CHECK constraint admitted.
    pub fn from_db(v: i16) -> RiskLevel {
        u8::try_from(v)
            .ok()
            .and_then(RiskLevel::new)
            .unwrap_or(RiskLevel::MIN)
    }
}

impl TryFrom<i32> for RiskLevel {
    type Error = ();
    fn try_from(v: i32) -> Result<Self, ()> {
        u8::try_from(v).ok().and_then(RiskLevel::new).ok_or(())
    }
}

impl From<RiskLevel> for pb::RiskLevel {
    fn from(v: RiskLevel) -> Self {
        pb::RiskLevel::try_from(i32::from(v.0)).unwrap_or(pb::RiskLevel::Unspecified)
    }
}

/// A risk's severity from its likelihood and impact: the score
/// likelihood × impact (1..25) is LOW up to 4, MEDIUM up to 9, HIGH up to
/// 15, CRITICAL from 16 (the schema checks the same rule).
pub fn severity(likelihood: RiskLevel, impact: RiskLevel) -> RiskSeverity {
    match likelihood.0 * impact.0 {
        16.. => RiskSeverity::Critical,
        10.. => RiskSeverity::High,
        5.. => RiskSeverity::Medium,
        _ => RiskSeverity::Low,
    }
}

text_enum! {
    /// The life of a sprint, in order.
    SprintStatus => SprintStatus {
        /// Not started.
        Planned = "planned",
        /// Running (at most one per program).
        Active = "active",
        /// Finished.
        Completed = "completed",
    }
}

text_enum! {
    /// What a sprint's capacity counts.
    CapacityUnit => SprintCapacityUnit {
        /// Hours of work.
        Hours = "hours",
        /// Story points.
        Points = "points",
    }
}

/// Checks that a sprint in `from` may start: only a PLANNED one.
pub fn start_sprint(from: SprintStatus) -> Result<(), Error> {
    match from {
        SprintStatus::Planned => Ok(()),
        other => Err(Error::failed_precondition(
            "SPRINT_NOT_PLANNED",
            format!(
                "only a planned sprint starts; this one is {}",
                other.as_str()
            ),
        )),
    }
}

/// Checks that a sprint in `from` may complete: only an ACTIVE one.
pub fn complete_sprint(from: SprintStatus) -> Result<(), Error> {
    match from {
        SprintStatus::Active => Ok(()),
        other => Err(Error::failed_precondition(
            "SPRINT_NOT_ACTIVE",
            format!(
                "only an active sprint completes; this one is {}",
                other.as_str()
            ),
        )),
    }
}

text_enum! {
    /// Who evaluated a sprint gate: the principal type of the caller.
    EvaluatorType => SprintGateEvaluatorType {
        /// A person.
        User = "user",
        /// An agent token.
        Agent = "agent",
        /// An API key.
        ApiKey = "api_key",
        /// A platform service account.
        Service = "service",
    }
}

impl From<foundry_tenancy::PrincipalType> for EvaluatorType {
    fn from(p: foundry_tenancy::PrincipalType) -> Self {
        use foundry_tenancy::PrincipalType as P;
        match p {
            P::User => EvaluatorType::User,
            P::Agent => EvaluatorType::Agent,
            P::ApiKey => EvaluatorType::ApiKey,
            P::Service => EvaluatorType::Service,
        }
    }
}

/// One criterion of a sprint gate (stored in the gate's `criteria`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Criterion {
    /// Key within the gate.
    pub id: String,
    /// What must hold.
    pub description: String,
    /// Whether the gate needs it to pass.
    pub required: bool,
}

/// An evaluator's answer for one criterion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The criterion's id.
    pub criterion_id: String,
    /// Whether it passed.
    pub passed: bool,
    /// What shows it.
    pub evidence: String,
}

/// A recorded answer, with the criterion as it was when evaluated (stored
/// in an evaluation's `results`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CriterionResult {
    /// The criterion's id.
    pub criterion_id: String,
    /// Whether it passed (false for an unanswered optional criterion).
    pub passed: bool,
    /// What shows it.
    pub evidence: String,
    /// The criterion's description when evaluated.
    pub description: String,
    /// Whether the criterion was required when evaluated.
    pub required: bool,
}

/// What is wrong with an evaluation's answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerProblem {
    /// `answers[index]` names no criterion of the gate.
    Unknown(usize),
    /// `answers[index]` answers a criterion already answered.
    Repeated(usize),
    /// Required criteria without an answer (their ids, in gate order).
    Unanswered(Vec<String>),
}

/// Evaluates a gate: every answer names a criterion of the gate, once, and
/// every required criterion is answered. Returns the results in the gate's
/// criterion order (unanswered optional criteria as not passed) and whether
/// the gate passed: every required criterion passed.
pub fn evaluate_gate(
    criteria: &[Criterion],
    answers: &[Answer],
) -> Result<(Vec<CriterionResult>, bool), Vec<AnswerProblem>> {
    let mut problems = Vec::new();
    let mut given: Vec<Option<&Answer>> = vec![None; criteria.len()];
    for (i, a) in answers.iter().enumerate() {
        match criteria.iter().position(|c| c.id == a.criterion_id) {
            None => problems.push(AnswerProblem::Unknown(i)),
            Some(k) if given[k].is_some() => problems.push(AnswerProblem::Repeated(i)),
            Some(k) => given[k] = Some(a),
        }
    }
    let unanswered: Vec<String> = criteria
        .iter()
        .zip(&given)
        .filter(|(c, a)| c.required && a.is_none())
        .map(|(c, _)| c.id.clone())
        .collect();
    if !unanswered.is_empty() {
        problems.push(AnswerProblem::Unanswered(unanswered));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let results: Vec<CriterionResult> = criteria
        .iter()
        .zip(given)
        .map(|(c, a)| CriterionResult {
            criterion_id: c.id.clone(),
            passed: a.is_some_and(|a| a.passed),
            evidence: a.map(|a| a.evidence.clone()).unwrap_or_default(),
            description: c.description.clone(),
            required: c.required,
        })
        .collect();
    let passed = results.iter().all(|r| r.passed || !r.required);
    Ok((results, passed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_cannot_sit_under_itself_or_a_descendant() {
        let ids: Vec<uuid::Uuid> = (0..4).map(|_| uuid::Uuid::now_v7()).collect();
        // ids[0] <- ids[1] <- ids[2] <- ids[3] (child to parent: 3 under 2 ...).
        assert!(check_feature_parent(ids[3], &[ids[0]]).is_ok());
        assert!(check_feature_parent(ids[0], &[]).is_ok());
        let e = check_feature_parent(ids[0], &[ids[0]]).expect_err("itself");
        assert_eq!(e.reason(), "FEATURE_PARENT_CYCLE");
        // Moving ids[0] under ids[3], whose chain is 3, 2, 1, 0.
        let e = check_feature_parent(ids[0], &[ids[3], ids[2], ids[1], ids[0]]).expect_err("cycle");
        assert_eq!(e.reason(), "FEATURE_PARENT_CYCLE");
        assert_eq!(
            e.message(),
            format!(
                "the parent would make a cycle: {} -> {} -> {} -> {} -> {}",
                ids[0], ids[3], ids[2], ids[1], ids[0]
            )
        );
    }

    #[test]
    fn work_orders_move_one_step_at_a_time() {
        use WorkOrderStatus::*;
        for (from, to) in [
            (Backlog, Ready),
            (Ready, InProgress),
            (Ready, Backlog),
            (InProgress, InReview),
            (InProgress, Ready),
            (InReview, Done),
            (InReview, InProgress),
            (Done, InProgress),
        ] {
            assert!(
                change_work_order_status(from, to).expect("allowed"),
                "{from:?} -> {to:?}"
            );
        }
        assert!(!change_work_order_status(Done, Done).expect("unchanged"));
        for (from, to) in [
            (Backlog, InProgress),
            (Backlog, Done),
            (Ready, InReview),
            (InProgress, Done),
            (Done, Backlog),
            (Done, Ready),
        ] {
            assert_eq!(
                change_work_order_status(from, to)
                    .expect_err("refused")
                    .reason(),
                "WORK_ORDER_TRANSITION_NOT_ALLOWED",
                "{from:?} -> {to:?}"
            );
        }
        assert!(Backlog.is_initial() && Ready.is_initial());
        assert!(!InProgress.is_initial() && !Done.is_initial());
        for s in WorkOrderStatus::ALL {
            assert_eq!(
                WorkOrderStatus::try_from(pb::WorkOrderStatus::from(*s) as i32),
                Ok(*s)
            );
        }
    }

    #[test]
    fn goals_move_along_their_workflow() {
        use GoalStatus::*;
        for (from, to) in [
            (Proposed, Active),
            (Proposed, Abandoned),
            (Active, Achieved),
            (Active, Abandoned),
            (Achieved, Active),
            (Abandoned, Proposed),
            (Active, Active),
        ] {
            assert!(change_goal_status(from, to).is_ok(), "{from:?} -> {to:?}");
        }
        for (from, to) in [
            (Proposed, Achieved),
            (Achieved, Abandoned),
            (Achieved, Proposed),
            (Abandoned, Active),
            (Abandoned, Achieved),
            (Active, Proposed),
        ] {
            assert_eq!(
                change_goal_status(from, to).expect_err("refused").reason(),
                "GOAL_TRANSITION_NOT_ALLOWED",
                "{from:?} -> {to:?}"
            );
        }
        assert!(Proposed.is_initial() && Active.is_initial());
        assert!(!Achieved.is_initial() && !Abandoned.is_initial());
        for s in GoalStatus::ALL {
            assert_eq!(
                GoalStatus::try_from(pb::GoalStatus::from(*s) as i32),
                Ok(*s)
            );
        }
    }

    fn level(n: u8) -> RiskLevel {
        RiskLevel::new(n).expect("1..=5")
    }

    #[test]
    fn severity_follows_likelihood_times_impact() {
        use RiskSeverity::*;
        for (l, i, want) in [
            (1, 1, Low),
            (2, 2, Low),
            (4, 1, Low),
            (5, 1, Medium),
            (3, 3, Medium),
            (2, 5, High),
            (3, 4, High),
            (5, 3, High),
            (4, 4, Critical),
            (5, 5, Critical),
        ] {
            assert_eq!(severity(level(l), level(i)), want, "{l} x {i}");
            assert_eq!(severity(level(i), level(l)), want, "symmetric");
        }
        // Monotonic: raising either never lowers the severity.
        for l in 1..=5 {
            for i in 1..5 {
                assert!(severity(level(l), level(i)) <= severity(level(l), level(i + 1)));
            }
        }
        assert_eq!(RiskLevel::try_from(0), Err(()));
        assert_eq!(RiskLevel::try_from(6), Err(()));
        assert_eq!(RiskLevel::from_db(3), level(3));
        assert_eq!(pb::RiskLevel::from(level(5)), pb::RiskLevel::VeryHigh);
        for s in RiskSeverity::ALL {
            assert_eq!(
                RiskSeverity::try_from(pb::RiskSeverity::from(*s) as i32),
                Ok(*s)
            );
        }
    }

    #[test]
    fn sprints_start_when_planned_and_complete_when_active() {
        use SprintStatus::*;
        assert!(start_sprint(Planned).is_ok());
        assert_eq!(
            start_sprint(Active).expect_err("active").reason(),
            "SPRINT_NOT_PLANNED"
        );
        assert_eq!(
            start_sprint(Completed).expect_err("completed").reason(),
            "SPRINT_NOT_PLANNED"
        );
        assert!(complete_sprint(Active).is_ok());
        assert_eq!(
            complete_sprint(Planned).expect_err("planned").reason(),
            "SPRINT_NOT_ACTIVE"
        );
        assert_eq!(
            complete_sprint(Completed).expect_err("completed").reason(),
            "SPRINT_NOT_ACTIVE"
        );
    }

    fn criterion(id: &str, required: bool) -> Criterion {
        Criterion {
            id: id.into(),
            description: format!("{id} holds"),
            required,
        }
    }

    fn answer(id: &str, passed: bool) -> Answer {
        Answer {
            criterion_id: id.into(),
            passed,
            evidence: format!("see {id}"),
        }
    }

    #[test]
    fn a_gate_passes_only_when_every_required_criterion_passed() {
        let gate = [
            criterion("tests", true),
            criterion("docs", false),
            criterion("review", true),
        ];
        let (results, passed) =
            evaluate_gate(&gate, &[answer("review", true), answer("tests", true)]).expect("valid");
        assert!(passed, "an unanswered optional criterion does not block");
        assert_eq!(
            results
                .iter()
                .map(|r| (r.criterion_id.as_str(), r.passed, r.required))
                .collect::<Vec<_>>(),
            [
                ("tests", true, true),
                ("docs", false, false),
                ("review", true, true)
            ],
            "in gate order"
        );
        let (_, passed) = evaluate_gate(
            &gate,
            &[
                answer("tests", true),
                answer("docs", false),
                answer("review", false),
            ],
        )
        .expect("valid");
        assert!(!passed, "a failed required criterion fails the gate");
        let (_, passed) = evaluate_gate(
            &gate,
            &[
                answer("tests", true),
                answer("docs", false),
                answer("review", true),
            ],
        )
        .expect("valid");
        assert!(passed, "a failed optional criterion does not");
    }

    #[test]
    fn every_required_criterion_is_answered_once_and_only_known_ones() {
        let gate = [
            criterion("a", true),
            criterion("b", true),
            criterion("c", false),
        ];
        let problems = evaluate_gate(
            &gate,
            &[answer("a", true), answer("zzz", true), answer("a", false)],
        )
        .expect_err("invalid");
        assert_eq!(
            problems,
            [
                AnswerProblem::Unknown(1),
                AnswerProblem::Repeated(2),
                AnswerProblem::Unanswered(vec!["b".into()]),
            ]
        );
    }

    #[test]
    fn phases_advance_one_step_at_a_time_unless_forced() {
        use Phase::*;
        assert_eq!(
            advance_phase(Discovery, Build, false).ok(),
            Some(PhaseMove::Next)
        );
        assert_eq!(
            advance_phase(Deploy, Complete, false).ok(),
            Some(PhaseMove::Next)
        );
        assert_eq!(
            advance_phase(Build, Build, false).ok(),
            Some(PhaseMove::Unchanged)
        );
        let skip = advance_phase(Discovery, Test, false).expect_err("skip");
        assert_eq!(skip.reason(), "PHASE_SKIP_NOT_ALLOWED");
        assert!(skip.message().contains("build"), "{}", skip.message());
        let back = advance_phase(Test, Build, false).expect_err("back");
        assert_eq!(back.reason(), "PHASE_BACKWARDS_NOT_ALLOWED");
        assert_eq!(
            advance_phase(Discovery, Complete, true).ok(),
            Some(PhaseMove::Skip)
        );
        assert_eq!(
            advance_phase(Complete, Discovery, true).ok(),
            Some(PhaseMove::Back)
        );
        assert_eq!(next_phase(Complete), None);
        assert_eq!(next_phase(Discovery), Some(Build));
    }

    #[test]
    fn enums_round_trip_through_text_and_proto() {
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Some(*p));
            assert_eq!(Phase::try_from(pb::DeliveryPhase::from(*p) as i32), Ok(*p));
        }
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(*s));
            assert_eq!(
                TaskStatus::try_from(pb::TaskStatus::from(*s) as i32),
                Ok(*s)
            );
        }
        assert!(TaskStatus::try_from(0).is_err());
        assert!(TaskStatus::try_from(99).is_err());
        assert!(
            Priority::Critical < Priority::Low,
            "declared most important first"
        );
    }

    #[test]
    fn the_task_workflow_allows_only_its_moves() {
        use TaskStatus::*;
        assert_eq!(
            change_task_status(Backlog, Todo, 0, false).ok(),
            Some(TaskMove::Allowed)
        );
        assert_eq!(
            change_task_status(InReview, Done, 0, false).ok(),
            Some(TaskMove::Allowed)
        );
        assert_eq!(
            change_task_status(Done, InProgress, 0, false).ok(),
            Some(TaskMove::Allowed)
        );
        assert_eq!(
            change_task_status(Todo, Todo, 3, false).ok(),
            Some(TaskMove::Unchanged)
        );
        for (from, to) in [
            (Backlog, Done),
            (Todo, InReview),
            (Done, Blocked),
            (Blocked, Done),
        ] {
            let e = change_task_status(from, to, 0, true).expect_err("not in the workflow");
            assert_eq!(
                e.reason(),
                "TASK_TRANSITION_NOT_ALLOWED",
                "{from:?} -> {to:?}"
            );
        }
        // Every status is reachable and none is a dead end.
        for s in TaskStatus::ALL {
            assert!(!s.successors().is_empty());
            assert!(TaskStatus::ALL.iter().any(|f| f.successors().contains(s)));
        }
    }

    #[test]
    fn a_task_with_open_subtasks_is_done_only_when_forced() {
        use TaskStatus::*;
        let e = change_task_status(InReview, Done, 2, false).expect_err("open subtasks");
        assert_eq!(e.reason(), "SUBTASKS_OPEN");
        assert_eq!(
            change_task_status(InReview, Done, 2, true).ok(),
            Some(TaskMove::Forced)
        );
        assert_eq!(
            change_task_status(InProgress, InReview, 2, false).ok(),
            Some(TaskMove::Allowed)
        );
        assert!(SubtaskStatus::Todo.is_open() && !SubtaskStatus::Done.is_open());
    }
}

//! Sprint gates: criteria, answers, evaluation, who evaluated.

use chrono::{DateTime, Utc};
use foundry_domain::{Audited, Change, Patch, Record, Stamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::*;

/// A checklist a sprint is held to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Record, Audited)]
#[record(project = program_id)]
pub struct SprintGate {
    pub id: SprintGateId,
    pub fields: NewSprintGate,
    /// Its sprint's program.
    pub program_id: ProgramId,
    pub stamp: Stamp,
}

/// A sprint gate's own fields, held by a [`SprintGate`]: to create, as parsed
/// at the edge (its program is its sprint's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewSprintGate {
    pub sprint_id: SprintId,
    pub name: String,
    pub description: String,
    /// At least one; ids unique within the gate.
    pub criteria: Vec<Criterion>,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = SprintGatePath, fields = NewSprintGate, output_only = &program_child_output_only_and::<7>(&["sprint_id"]))]
pub enum SprintGateChange {
    Name(String),
    Description(String),
    Criteria(Vec<Criterion>),
}

impl Patch for SprintGate {
    type Change = SprintGateChange;
}

/// A recorded evaluation of a sprint gate (immutable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Audited)]
pub struct Evaluation {
    pub id: EvaluationId,
    pub fields: NewEvaluation,
    pub created_at: DateTime<Utc>,
}

/// An evaluation's own fields, held by an [`Evaluation`]: to record, a gate's,
/// with [`evaluate_gate`]'s verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEvaluation {
    pub gate_id: SprintGateId,
    pub sprint_id: SprintId,
    pub program_id: ProgramId,
    /// The principal that evaluated.
    pub evaluator_id: Uuid,
    pub evaluator_type: EvaluatorType,
    /// In the gate's criterion order ([`evaluate_gate`]).
    pub results: Vec<CriterionResult>,
    pub passed: bool,
}

/// An evaluation is never changed: its version is always 1.
impl Record for Evaluation {
    type Key = EvaluationId;

    fn key(&self) -> EvaluationId {
        self.id
    }

    fn version(&self) -> i64 {
        1
    }

    fn project(&self) -> Option<Uuid> {
        Some(self.fields.program_id.uuid())
    }
}

foundry_domain::stored_enum! {
    /// Who evaluated a sprint gate: the principal type of the caller.
    EvaluatorType {
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
}

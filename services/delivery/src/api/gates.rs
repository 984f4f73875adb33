//! `SprintGateService`: gates with criteria, and their immutable
//! evaluations.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_domain::Record;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{Tx, check_etag};
use foundry_platform::rpc::Served;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_proto::service::delivery_v1 as svc;
use foundry_resource::{self as resource, Create, Delete, Resource, Update, stamped};
use uuid::Uuid;

use crate::State;
use crate::api::{In, Listed, list, standard};
use crate::api::{
    Order, PathOf, Reply, Wire, get_one, hold, list_under, long_text, short_description,
};
use crate::domain::{
    self, Answer, AnswerProblem, Criterion, Evaluation, EvaluatorType, NewEvaluation,
    NewSprintGate, Sprint, SprintGate, SprintGateChange, SprintGateId, SprintGatePath,
};
use crate::store::{self, Lock};

impl Wire for SprintGate {
    type Message = pb::SprintGate;

    fn to_proto(&self) -> pb::SprintGate {
        let f = &self.fields;
        pb::SprintGate {
            sprint_id: f.sprint_id.to_string(),
            program_id: self.program_id.to_string(),
            name: f.name.clone(),
            description: f.description.clone(),
            criteria: f
                .criteria
                .iter()
                .map(|c| pb::SprintGateCriterion {
                    id: c.id.clone(),
                    description: c.description.clone(),
                    required: c.required,
                })
                .collect(),
            ..stamped(self.id, &self.stamp)
        }
    }

    fn parse(v: &mut Violations, g: &pb::SprintGate) -> Option<NewSprintGate> {
        let sprint_id = v.id_of("sprint_gate.sprint_id", &g.sprint_id);
        let name = name(v, &g.name);
        let description = short_description(v, "sprint_gate.description", &g.description);
        let criteria = criteria(v, &g.criteria);
        Some(NewSprintGate {
            sprint_id: sprint_id?,
            name: name?,
            description: description?,
            criteria: criteria?,
        })
    }

    fn change(v: &mut Violations, path: PathOf<Self>, g: &Self::Message) -> Option<Self::Change> {
        match path {
            SprintGatePath::Name => name(v, &g.name).map(SprintGateChange::Name),
            SprintGatePath::Description => {
                short_description(v, "sprint_gate.description", &g.description)
                    .map(SprintGateChange::Description)
            }
            SprintGatePath::Criteria => criteria(v, &g.criteria).map(SprintGateChange::Criteria),
        }
    }
}

const MAX_CRITERIA: usize = 100;
const MAX_CRITERION_ID: usize = 64;
const MAX_CRITERION_DESCRIPTION: usize = 2_000;
const MAX_EVIDENCE: usize = 10_000;

pub fn evaluation_to_proto(e: &Evaluation) -> pb::SprintGateEvaluation {
    pb::SprintGateEvaluation {
        id: e.id.to_string(),
        gate_id: e.fields.gate_id.to_string(),
        sprint_id: e.fields.sprint_id.to_string(),
        program_id: e.fields.program_id.to_string(),
        evaluator_id: e.fields.evaluator_id.to_string(),
        evaluator_type: pb::SprintGateEvaluatorType::from(e.fields.evaluator_type) as i32,
        results: e
            .fields
            .results
            .iter()
            .map(|x| pb::SprintGateCriterionResult {
                criterion_id: x.criterion_id.clone(),
                passed: x.passed,
                evidence: x.evidence.clone(),
                description: x.description.clone(),
                required: x.required,
            })
            .collect(),
        passed: e.fields.passed,
        create_time: Some(timestamp(e.created_at)),
    }
}

fn name(v: &mut Violations, value: &str) -> Option<String> {
    v.text("sprint_gate.name", value, 1, 200)
}

/// The criteria of a gate: 1..MAX_CRITERIA, ids unique (assigned when
/// empty), each with a description.
fn criteria(v: &mut Violations, given: &[pb::SprintGateCriterion]) -> Option<Vec<Criterion>> {
    const FIELD: &str = "sprint_gate.criteria";
    if given.is_empty() {
        v.add(FIELD, "at least one criterion");
        return None;
    }
    if given.len() > MAX_CRITERIA {
        v.add(FIELD, format!("at most {MAX_CRITERIA} criteria"));
        return None;
    }
    let mut out: Vec<Criterion> = Vec::with_capacity(given.len());
    let mut ok = true;
    for (i, c) in given.iter().enumerate() {
        let id = c.id.trim();
        let id = if id.is_empty() {
            Some(Uuid::now_v7().to_string())
        } else if id.chars().count() > MAX_CRITERION_ID
            || !id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
        {
            v.add(
                format!("{FIELD}[{i}].id"),
                format!("1..{MAX_CRITERION_ID} letters, digits, `-`, `_` or `.`"),
            );
            None
        } else if out.iter().any(|o| o.id == id) {
            v.add(
                format!("{FIELD}[{i}].id"),
                "repeats an earlier criterion's id",
            );
            None
        } else {
            Some(id.to_owned())
        };
        let description = long_text(
            v,
            &format!("{FIELD}[{i}].description"),
            &c.description,
            1,
            MAX_CRITERION_DESCRIPTION,
        );
        match (id, description) {
            (Some(id), Some(description)) => out.push(Criterion {
                id,
                description,
                required: c.required,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// An `EvaluateSprintGateRequest` as the gate's id and the answers.
fn parse_evaluate(
    req: &pb::EvaluateSprintGateRequest,
) -> Result<(SprintGateId, Vec<Answer>), Error> {
    let mut v = Violations::new();
    let gate_id = v.id_of("gate_id", &req.gate_id);
    let answers = if req.results.len() > MAX_CRITERIA {
        v.add("results", format!("at most {MAX_CRITERIA} results"));
        None
    } else {
        req.results
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let id = r.criterion_id.trim();
                if id.is_empty() {
                    v.add(format!("results[{i}].criterion_id"), "is required");
                }
                let evidence = long_text(
                    &mut v,
                    &format!("results[{i}].evidence"),
                    &r.evidence,
                    0,
                    MAX_EVIDENCE,
                );
                (!id.is_empty()).then_some(Answer {
                    criterion_id: id.to_owned(),
                    passed: r.passed,
                    evidence: evidence?,
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Option<Vec<_>>>()
    };
    v.finish_with(|| Some((gate_id?, answers?)))
}

/// The violations of answers that do not answer the gate.
fn answer_problems(problems: Vec<AnswerProblem>) -> Error {
    let mut v = Violations::new();
    for p in problems {
        match p {
            AnswerProblem::Unknown(i) => v.add(
                format!("results[{i}].criterion_id"),
                "names no criterion of the gate",
            ),
            AnswerProblem::Repeated(i) => v.add(
                format!("results[{i}].criterion_id"),
                "answers a criterion already answered",
            ),
            AnswerProblem::Unanswered(ids) => v.add(
                "results",
                format!("required criteria not answered: {}", ids.join(", ")),
            ),
        }
    }
    v.finish()
        .err()
        .unwrap_or_else(|| Error::invalid_field("results", "do not answer the gate"))
}

#[async_trait]
impl Create for SprintGate {
    /// The sprint is visible and held (`FOR KEY SHARE`) until commit.
    async fn check_new(new: &NewSprintGate, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        hold::<Sprint>(tx, call, new.sprint_id).await
    }
}

impl Update for SprintGate {}

#[async_trait]
impl Delete for SprintGate {
    /// Its evaluations go with it. [`resource::delete`] locks it `FOR
    /// UPDATE`: evaluations hold `FOR SHARE` on the gate.
    async fn remove(&self, tx: &mut Tx, org_id: Uuid) -> Result<Option<serde_json::Value>, Error> {
        let evaluations = store::delete_gate(tx, org_id, self.id).await?;
        Ok(Some(
            serde_json::json!({ "sprint_gate_evaluations": evaluations }),
        ))
    }
}

impl Listed for SprintGate {}

/// `SprintGateService`.
pub(crate) fn service(state: &Arc<State>) -> Served<svc::SprintGateService> {
    standard::<SprintGate, _>(state)
        .call(list::<SprintGate, Sprint, _, pb::ListSprintGatesRequest>)
        .call(evaluate_sprint_gate)
        .call(get_sprint_gate_evaluation)
        .call(list_sprint_gate_evaluations)
        .complete()
}

/// The gate is read `FOR SHARE`: its criteria cannot change (updates
/// take `FOR NO KEY UPDATE`) nor the gate vanish before the evaluation
/// commits.
async fn evaluate_sprint_gate(
    c: In<pb::EvaluateSprintGateRequest>,
) -> Reply<pb::SprintGateEvaluation> {
    let In { state, call, req } = c;
    let (gate_id, answers) = parse_evaluate(&req)?;
    let mut tx = state.db.tenant(call.org_id).await?;
    let gate: SprintGate = resource::fetch(&mut tx, &call, gate_id, Lock::Share).await?;
    check_etag(&req.etag, gate.stamp.version, SprintGate::NAME)?;
    let (results, passed) =
        domain::evaluate_gate(&gate.fields.criteria, &answers).map_err(answer_problems)?;
    let evaluation = store::insert_evaluation(
        &mut tx,
        call.org_id,
        &NewEvaluation {
            gate_id,
            sprint_id: gate.fields.sprint_id,
            program_id: gate.program_id,
            evaluator_id: call.principal_id(),
            evaluator_type: EvaluatorType::from(call.caller.principal_type()),
            results,
            passed,
        },
    )
    .await?;
    call.actor
        .event(
            "delivery.sprint_gate.evaluate",
            Evaluation::KIND,
            evaluation.id,
        )
        .project(evaluation.project())
        .created(&evaluation)
        .commit(tx)
        .await?;
    Ok(evaluation_to_proto(&evaluation))
}

async fn get_sprint_gate_evaluation(
    c: In<pb::GetSprintGateEvaluationRequest>,
) -> Reply<pb::SprintGateEvaluation> {
    get_one(&c, &c.req.id, evaluation_to_proto).await
}

async fn list_sprint_gate_evaluations(
    c: In<pb::ListSprintGateEvaluationsRequest>,
) -> Reply<pb::ListSprintGateEvaluationsResponse> {
    let r = &c.req;
    let (evaluations, next_page_token) = list_under::<Evaluation, SprintGate, _, _>(
        &c,
        ("gate_id", &r.gate_id),
        (r.page_size, &r.page_token),
        Order::newest(),
    )
    .await?;
    Ok(pb::ListSprintGateEvaluationsResponse {
        sprint_gate_evaluations: evaluations.iter().map(evaluation_to_proto).collect(),
        next_page_token,
    })
}

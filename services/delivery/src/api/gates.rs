//! `SprintGateService`: gates with criteria, and their immutable
//! evaluations.

use std::sync::Arc;

use chrono::Utc;
use foundry_domain::Id;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{check_etag, etag, idempotency};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::delivery::v1::{
    self as pb, sprint_gate_service_server::SprintGateService,
};
use foundry_tenancy::caller;
use sqlx::types::Json;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    SHORT_DESCRIPTION, actor, evaluation_not_found, found, long_text, sprint_gate_not_found,
    sprint_not_found,
};
use crate::domain::{self, Answer, AnswerProblem, Criterion, EvaluatorType};
use crate::store::{self, EvaluationRow, GateRow, Lock};

/// Handlers of `SprintGateService`.
#[derive(Clone, Debug)]
pub struct SprintGates(pub Arc<State>);

const RESOURCE: &str = "delivery.sprint_gate";
const EVALUATION: &str = "delivery.sprint_gate_evaluation";
const MAX_CRITERIA: usize = 100;
const MAX_CRITERION_ID: usize = 64;
const MAX_CRITERION_DESCRIPTION: usize = 2_000;
const MAX_EVIDENCE: usize = 10_000;

pub fn gate_to_proto(r: GateRow) -> pb::SprintGate {
    pb::SprintGate {
        id: r.id.to_string(),
        sprint_id: r.sprint_id.to_string(),
        program_id: r.program_id.to_string(),
        name: r.name,
        description: r.description,
        criteria: r
            .criteria
            .0
            .into_iter()
            .map(|c| pb::SprintGateCriterion {
                id: c.id,
                description: c.description,
                required: c.required,
            })
            .collect(),
        created_by: r.created_by.to_string(),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        etag: etag(r.version),
    }
}

pub fn evaluation_to_proto(r: EvaluationRow) -> pb::SprintGateEvaluation {
    pb::SprintGateEvaluation {
        id: r.id.to_string(),
        gate_id: r.gate_id.to_string(),
        sprint_id: r.sprint_id.to_string(),
        program_id: r.program_id.to_string(),
        evaluator_id: r.evaluator_id.to_string(),
        evaluator_type: pb::SprintGateEvaluatorType::from(EvaluatorType::from_db(&r.evaluator_type))
            as i32,
        results: r
            .results
            .0
            .into_iter()
            .map(|x| pb::SprintGateCriterionResult {
                criterion_id: x.criterion_id,
                passed: x.passed,
                evidence: x.evidence,
                description: x.description,
                required: x.required,
            })
            .collect(),
        passed: r.passed,
        create_time: Some(timestamp(r.created_at)),
    }
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

#[tonic::async_trait]
impl SprintGateService for SprintGates {
    #[tracing::instrument(skip_all)]
    async fn create_sprint_gate(
        &self,
        req: Request<pb::CreateSprintGateRequest>,
    ) -> Result<Response<pb::SprintGate>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let g = req.sprint_gate.unwrap_or_default();
        let mut v = Violations::new();
        let sprint_id = v.id("sprint_gate.sprint_id", &g.sprint_id);
        let name = v.text("sprint_gate.name", &g.name, 1, 200);
        let description = long_text(
            &mut v,
            "sprint_gate.description",
            &g.description,
            0,
            SHORT_DESCRIPTION,
        );
        let criteria = criteria(&mut v, &g.criteria);
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (Some(sprint_id), Some(name), Some(description), Some(criteria)) =
            (sprint_id, name, description, criteria)
        else {
            return Err(Error::invalid_field("sprint_gate", "is required").into());
        };

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::SprintGate>(&mut tx, org_id, "CreateSprintGate", rid)
                    .await?
        {
            return Ok(Response::new(prev));
        }
        let sprint = found(
            store::get_sprint(&mut tx, org_id, Id::from_uuid(sprint_id), Lock::KeyShare).await?,
            &caller,
            |s| s.program_id.uuid(),
            sprint_not_found,
        )?;
        let now = Utc::now();
        let row = store::insert_gate(
            &mut tx,
            &GateRow {
                org_id,
                id: Uuid::nil(),
                program_id: sprint.program_id.uuid(),
                sprint_id,
                name,
                description,
                criteria: Json(criteria),
                created_by: caller.principal_id(),
                version: 1,
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        actor
            .event("delivery.sprint_gate.create", RESOURCE, row.id)
            .project(Some(row.program_id))
            .set("sprint_id", sprint_id)
            .set("name", &row.name)
            .set("description", &row.description)
            .set("criteria", &row.criteria.0)
            .record(&mut tx)
            .await?;
        let out = gate_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, org_id, "CreateSprintGate", rid, &out).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_sprint_gate(
        &self,
        req: Request<pb::GetSprintGateRequest>,
    ) -> Result<Response<pb::SprintGate>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_gate(&mut tx, org_id, id, Lock::None).await?,
            &caller,
            |g| g.program_id,
            sprint_gate_not_found,
        )?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(gate_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_sprint_gates(
        &self,
        req: Request<pb::ListSprintGatesRequest>,
    ) -> Result<Response<pb::ListSprintGatesResponse>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let req = req.into_inner();
        let sprint_id = Violations::require_id("sprint_id", &req.sprint_id)?;
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!("sprint={sprint_id}"),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        found(
            store::get_sprint(&mut tx, org_id, Id::from_uuid(sprint_id), Lock::None).await?,
            &caller,
            |s| s.program_id.uuid(),
            sprint_not_found,
        )?;
        let mut rows =
            store::list_gates(&mut tx, org_id, sprint_id, page.after, page.limit()).await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.id);
        Ok(Response::new(pb::ListSprintGatesResponse {
            sprint_gates: rows.into_iter().map(gate_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_sprint_gate(
        &self,
        req: Request<pb::UpdateSprintGateRequest>,
    ) -> Result<Response<pb::SprintGate>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let g = req.sprint_gate.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.id("sprint_gate.id", &g.id);
        let paths = update_mask(
            &mut v,
            req.update_mask.as_ref(),
            &["name", "description", "criteria"],
            &[
                "id",
                "sprint_id",
                "program_id",
                "created_by",
                "create_time",
                "update_time",
                "etag",
            ],
        );
        let (mut name, mut description, mut new_criteria) = (None, None, None);
        for path in &paths {
            match *path {
                "name" => name = v.text("sprint_gate.name", &g.name, 1, 200),
                "description" => {
                    description = long_text(
                        &mut v,
                        "sprint_gate.description",
                        &g.description,
                        0,
                        SHORT_DESCRIPTION,
                    )
                }
                _ => new_criteria = criteria(&mut v, &g.criteria),
            }
        }
        v.finish()?;
        let Some(id) = id else {
            return Err(Error::invalid_field("sprint_gate.id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut row = found(
            store::get_gate(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |g| g.program_id,
            sprint_gate_not_found,
        )?;
        check_etag(&g.etag, row.version, "sprint gate")?;
        let before = row.clone();
        if let Some(x) = name {
            row.name = x;
        }
        if let Some(x) = description {
            row.description = x;
        }
        if let Some(x) = new_criteria {
            row.criteria = Json(x);
        }
        let row = store::update_gate(&mut tx, &row).await?;
        actor
            .event("delivery.sprint_gate.update", RESOURCE, id)
            .project(Some(row.program_id))
            .change("name", &before.name, &row.name)
            .change("description", &before.description, &row.description)
            .change("criteria", &before.criteria.0, &row.criteria.0)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(gate_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_sprint_gate(
        &self,
        req: Request<pb::DeleteSprintGateRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        // FOR UPDATE: evaluations hold FOR SHARE on the gate.
        let row = found(
            store::get_gate(&mut tx, org_id, id, Lock::Update).await?,
            &caller,
            |g| g.program_id,
            sprint_gate_not_found,
        )?;
        check_etag(&req.get_ref().etag, row.version, "sprint gate")?;
        let evaluations = store::delete_gate(&mut tx, org_id, id).await?;
        actor
            .event("delivery.sprint_gate.delete", RESOURCE, id)
            .project(Some(row.program_id))
            .change("name", &row.name, None::<()>)
            .set(
                "removed",
                serde_json::json!({ "sprint_gate_evaluations": evaluations }),
            )
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }

    /// The gate is read `FOR SHARE`: its criteria cannot change (updates
    /// take `FOR NO KEY UPDATE`) nor the gate vanish before the evaluation
    /// commits.
    #[tracing::instrument(skip_all)]
    async fn evaluate_sprint_gate(
        &self,
        req: Request<pb::EvaluateSprintGateRequest>,
    ) -> Result<Response<pb::SprintGateEvaluation>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let mut v = Violations::new();
        let gate_id = v.id("gate_id", &req.gate_id);
        let mut answers = Vec::with_capacity(req.results.len());
        if req.results.len() > MAX_CRITERIA {
            v.add("results", format!("at most {MAX_CRITERIA} results"));
        } else {
            for (i, r) in req.results.iter().enumerate() {
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
                answers.push(Answer {
                    criterion_id: id.to_owned(),
                    passed: r.passed,
                    evidence: evidence.unwrap_or_default(),
                });
            }
        }
        v.finish()?;
        let Some(gate_id) = gate_id else {
            return Err(Error::invalid_field("gate_id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let gate = found(
            store::get_gate(&mut tx, org_id, gate_id, Lock::Share).await?,
            &caller,
            |g| g.program_id,
            sprint_gate_not_found,
        )?;
        check_etag(&req.etag, gate.version, "sprint gate")?;
        let (results, passed) =
            domain::evaluate_gate(&gate.criteria.0, &answers).map_err(|problems| {
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
            })?;
        let evaluator_type = EvaluatorType::from(caller.principal_type());
        let row = store::insert_evaluation(
            &mut tx,
            &EvaluationRow {
                org_id,
                id: Uuid::nil(),
                gate_id,
                sprint_id: gate.sprint_id,
                program_id: gate.program_id,
                evaluator_id: caller.principal_id(),
                evaluator_type: evaluator_type.as_str().to_owned(),
                results: Json(results),
                passed,
                created_at: Utc::now(),
            },
        )
        .await?;
        actor
            .event("delivery.sprint_gate.evaluate", EVALUATION, row.id)
            .project(Some(row.program_id))
            .set("gate_id", gate_id)
            .set("sprint_id", row.sprint_id)
            .set("evaluator_type", &row.evaluator_type)
            .set("passed", row.passed)
            .set("results", &row.results.0)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(evaluation_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn get_sprint_gate_evaluation(
        &self,
        req: Request<pb::GetSprintGateEvaluationRequest>,
    ) -> Result<Response<pb::SprintGateEvaluation>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_evaluation(&mut tx, org_id, id).await?,
            &caller,
            |e| e.program_id,
            evaluation_not_found,
        )?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(evaluation_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_sprint_gate_evaluations(
        &self,
        req: Request<pb::ListSprintGateEvaluationsRequest>,
    ) -> Result<Response<pb::ListSprintGateEvaluationsResponse>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let req = req.into_inner();
        let gate_id = Violations::require_id("gate_id", &req.gate_id)?;
        let page =
            self.0
                .pages
                .parse(req.page_size, &req.page_token, &format!("gate={gate_id}"))?;
        let mut tx = self.0.db.tenant(org_id).await?;
        found(
            store::get_gate(&mut tx, org_id, gate_id, Lock::None).await?,
            &caller,
            |g| g.program_id,
            sprint_gate_not_found,
        )?;
        let mut rows =
            store::list_evaluations(&mut tx, org_id, gate_id, page.after, page.limit()).await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.id);
        Ok(Response::new(pb::ListSprintGateEvaluationsResponse {
            sprint_gate_evaluations: rows.into_iter().map(evaluation_to_proto).collect(),
            next_page_token,
        }))
    }
}

//! `AuditService`: list, get and verify the caller organization's events.

use std::sync::Arc;

use foundry_platform::Error;
use foundry_platform::convert::from_timestamp;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::audit::v1::{self as pb, audit_service_server::AuditService};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::event_to_proto;
use crate::domain::{self, ChainWalk, Finding, GENESIS, Problem};
use crate::store::{self, Head, ListFilter};

/// Handlers of `AuditService`.
#[derive(Clone, Debug)]
pub struct Events(pub Arc<State>);

/// Events read per query while a chain is verified.
pub const VERIFY_CHUNK: i64 = 5000;

fn not_found() -> Error {
    Error::not_found("AUDIT_EVENT_NOT_FOUND", "audit event")
}

fn time(
    v: &mut Violations,
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let t = t?;
    let parsed = from_timestamp(t);
    if parsed.is_none() {
        v.add(field, "is not a valid time");
    }
    parsed
}

#[tonic::async_trait]
impl AuditService for Events {
    #[tracing::instrument(skip_all)]
    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let org_id = caller(&req)?.org_id()?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let actor_id = v.opt_id("actor_id", &req.actor_id);
        let action = (!req.action.is_empty()).then(|| req.action.clone());
        if action.as_deref().is_some_and(|a| !domain::is_action(a)) {
            v.add("action", "must be `<service>.<resource>.<verb>`");
        }
        let resource_type = (!req.resource_type.is_empty()).then(|| req.resource_type.clone());
        if resource_type
            .as_deref()
            .is_some_and(|t| !domain::is_resource_type(t))
        {
            v.add(
                "resource_type",
                "must be a resource type such as `identity.membership`",
            );
        }
        let resource_id = (!req.resource_id.is_empty()).then(|| req.resource_id.clone());
        if resource_id.is_some() && resource_type.is_none() {
            v.add("resource_id", "requires resource_type");
        }
        if req.resource_id.chars().count() > domain::MAX_RESOURCE_ID {
            v.add(
                "resource_id",
                format!("must be at most {} characters", domain::MAX_RESOURCE_ID),
            );
        }
        let project_id = v.opt_id("project_id", &req.project_id);
        let start = time(&mut v, "start_time", req.start_time.as_ref());
        let end = time(&mut v, "end_time", req.end_time.as_ref());
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            v.add("end_time", "must not be before start_time");
        }
        v.finish()?;
        let stamp = |t: &Option<prost_types::Timestamp>| {
            t.as_ref()
                .map(|t| format!("{}.{:09}", t.seconds, t.nanos))
                .unwrap_or_default()
        };
        // Unambiguous (a JSON array), so no two filter sets share a token.
        let filters = serde_json::json!([
            req.actor_id,
            req.action,
            req.resource_type,
            req.resource_id,
            req.project_id,
            stamp(&req.start_time),
            stamp(&req.end_time),
        ])
        .to_string();
        let page = self
            .0
            .pages
            .parse(req.page_size, &req.page_token, &filters)?;
        let (min_id, max_id) = domain::id_bounds(start, end);
        let filter = ListFilter {
            actor_id,
            action,
            resource_type,
            resource_id,
            project_id,
            min_id,
            max_id,
            start,
            end,
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut rows =
            store::list_events(&mut tx, org_id, &filter, page.after, page.limit()).await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.event.id);
        Ok(Response::new(pb::ListAuditEventsResponse {
            audit_events: rows.into_iter().map(event_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_audit_event(
        &self,
        req: Request<pb::GetAuditEventRequest>,
    ) -> Result<Response<pb::AuditEvent>, Status> {
        let org_id = caller(&req)?.org_id()?;
        let mut v = Violations::new();
        let id = v.id("id", &req.get_ref().id);
        v.finish()?;
        let Some(id) = id else {
            return Err(not_found().into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = store::get_event(&mut tx, org_id, id)
            .await?
            .ok_or_else(not_found)?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(event_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn verify_audit_chain(
        &self,
        req: Request<pb::VerifyAuditChainRequest>,
    ) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
        let org_id = caller(&req)?.org_id()?;
        let pb::VerifyAuditChainRequest {
            start_sequence,
            end_sequence,
        } = req.into_inner();
        let mut v = Violations::new();
        if start_sequence < 0 {
            v.add("start_sequence", "must not be negative");
        }
        if end_sequence < 0 {
            v.add("end_sequence", "must not be negative");
        }
        if end_sequence > 0 && start_sequence > end_sequence {
            v.add("end_sequence", "must not be before start_sequence");
        }
        v.finish()?;
        let start = start_sequence.max(1);

        let mut tx = self.0.db.tenant(org_id).await?;
        // One snapshot for the head and every chunk: appends that commit
        // while we walk are neither half seen nor taken for tampering.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
        let head = store::get_head(&mut tx, org_id).await?.unwrap_or(Head {
            sequence: 0,
            hash: GENESIS.to_vec(),
        });
        if end_sequence == 0 && start > head.sequence.max(1) {
            return Err(Error::invalid_field(
                "start_sequence",
                format!("is past the chain's head (event {})", head.sequence),
            )
            .into());
        }
        // To the head: read on past it, so events added behind the
        // service's back are found too.
        let to_head = end_sequence == 0 || end_sequence >= head.sequence;
        let to = (end_sequence > 0).then_some(end_sequence);

        let predecessor = if start == 1 {
            Some(GENESIS.to_vec())
        } else {
            store::hash_at(&mut tx, org_id, start - 1).await?
        };
        let mut walk = ChainWalk::new(start, predecessor.clone().unwrap_or_default());
        let finding = match predecessor {
            None => Some(Finding {
                problem: Problem::MissingEvents,
                sequence: start - 1,
                event_id: None,
                detail: format!(
                    "event {}, which event {start} links to, is missing",
                    start - 1
                ),
            }),
            Some(_) => {
                let mut beyond = None;
                let mut from = start;
                let walked: Result<(), Finding> = 'walk: loop {
                    let rows = store::chain_chunk(&mut tx, org_id, from, to, VERIFY_CHUNK).await?;
                    for r in &rows {
                        if r.event.sequence == head.sequence + 1 {
                            beyond = Some(r.event.id);
                        }
                        if let Err(f) = walk.check(&r.event, &r.hash) {
                            break 'walk Err(f);
                        }
                    }
                    match rows.last() {
                        Some(last) if rows.len() as i64 == VERIFY_CHUNK => {
                            from = last.event.sequence + 1;
                        }
                        _ => break Ok(()),
                    }
                };
                walked
                    .and_then(|()| {
                        if to_head {
                            walk.finish_head(head.sequence, &head.hash, beyond)
                        } else {
                            walk.finish_range(end_sequence)
                        }
                    })
                    .err()
            }
        };
        tx.commit().await.map_err(Error::from)?;

        let checked = walk.checked();
        let head_hash = if checked > 0 {
            hex::encode(walk.last_hash())
        } else {
            String::new()
        };
        Ok(Response::new(match finding {
            None => pb::VerifyAuditChainResponse {
                valid: true,
                events_checked: checked,
                problem: pb::ChainProblem::Unspecified as i32,
                problem_sequence: 0,
                problem_event_id: String::new(),
                detail: if checked == 0 {
                    "no events to verify".to_owned()
                } else {
                    format!("events {start} to {} verify", walk.next_sequence() - 1)
                },
                head_hash,
            },
            Some(f) => {
                tracing::warn!(
                    %org_id,
                    problem = ?f.problem,
                    sequence = f.sequence,
                    "audit chain does not verify"
                );
                pb::VerifyAuditChainResponse {
                    valid: false,
                    events_checked: checked,
                    problem: pb::ChainProblem::from(f.problem) as i32,
                    problem_sequence: f.sequence,
                    problem_event_id: f.event_id.map(|i| i.to_string()).unwrap_or_default(),
                    detail: f.detail,
                    head_hash,
                }
            }
        }))
    }
}

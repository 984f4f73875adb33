//! `VerifyAuditChain`: recompute the caller organization's chain over a
//! range, and prove it still extends a signed checkpoint the customer kept.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use foundry_platform::Error;
use foundry_platform::convert::from_timestamp;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::audit::v1 as pb;
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::chain;
use crate::domain::checkpoints::{Checkpoint, Reason};
use crate::domain::{self, ChainWalk, Finding, GENESIS, Problem};
use crate::keys::verifying_key;
use crate::store::settings::{self as settings, Watermark};
use crate::store::{self, Head};
use foundry_jobs::operations::progress;
use foundry_jobs::{Handler, JobContext, JobError, NewJob};
use prost::Message;

impl From<Problem> for pb::ChainProblem {
    fn from(p: Problem) -> Self {
        match p {
            Problem::HashMismatch => pb::ChainProblem::HashMismatch,
            Problem::BrokenLink => pb::ChainProblem::BrokenLink,
            Problem::MissingEvents => pb::ChainProblem::MissingEvents,
            Problem::HeadMismatch => pb::ChainProblem::HeadMismatch,
            Problem::CheckpointMismatch => pb::ChainProblem::CheckpointMismatch,
            Problem::CheckpointSignatureInvalid => pb::ChainProblem::CheckpointSignatureInvalid,
            Problem::TimeOrder => pb::ChainProblem::TimeOrder,
        }
    }
}

/// A checkpoint as the caller sent it, and its signature.
pub(crate) struct Presented {
    checkpoint: Checkpoint,
    signature: Vec<u8>,
}

/// A time of a presented checkpoint: valid, and whole microseconds (what
/// the service signs), or a violation.
fn micros_time(
    v: &mut Violations,
    field: &str,
    t: Option<&prost_types::Timestamp>,
    required: bool,
) -> Option<Option<DateTime<Utc>>> {
    match t {
        None if required => {
            v.add(field, "is required");
            None
        }
        None => Some(None),
        Some(t) => match from_timestamp(t) {
            Some(parsed) if t.nanos % 1000 == 0 => Some(Some(parsed)),
            Some(_) => {
                v.add(
                    field,
                    "must be whole microseconds, as the checkpoint was signed",
                );
                None
            }
            None => {
                v.add(field, "is not a valid time");
                None
            }
        },
    }
}

/// Parses `checkpoint` (fields named `checkpoint.<field>`). A well-formed
/// checkpoint whose content was edited parses: its signature then fails.
fn parse_checkpoint(v: &mut Violations, c: &pb::AuditCheckpoint) -> Option<Presented> {
    let f = |name: &str| format!("checkpoint.{name}");
    let id = v.id(&f("id"), &c.id);
    let org_id = v.id(&f("org_id"), &c.org_id);
    let reason: Option<Reason> = v.enum_value(&f("reason"), c.reason);
    if c.sequence < 0 {
        v.add(f("sequence"), "must not be negative");
    }
    if c.event_count < 0 {
        v.add(f("event_count"), "must not be negative");
    }
    let head_hash = match hex::decode(&c.head_hash) {
        Ok(h) if h.len() == 32 => Some(h),
        _ => {
            v.add(f("head_hash"), "must be 64 hex digits");
            None
        }
    };
    let first = micros_time(
        v,
        &f("first_occur_time"),
        c.first_occur_time.as_ref(),
        false,
    );
    let last = micros_time(v, &f("last_occur_time"), c.last_occur_time.as_ref(), false);
    let created = micros_time(v, &f("create_time"), c.create_time.as_ref(), true);
    if c.key_id.is_empty() {
        v.add(f("key_id"), "is required");
    }
    let signature = match URL_SAFE_NO_PAD.decode(&c.signature) {
        Ok(s) if s.len() == 64 => Some(s),
        _ => {
            v.add(
                f("signature"),
                "must be an Ed25519 signature: 64 bytes, unpadded base64url",
            );
            None
        }
    };
    Some(Presented {
        checkpoint: Checkpoint {
            id: id?,
            org_id: org_id?,
            reason: reason?,
            sequence: c.sequence,
            head_hash: head_hash?,
            event_count: c.event_count,
            first_occurred_at: first?,
            last_occurred_at: last?,
            created_at: created??,
            key_id: c.key_id.clone(),
        },
        signature: signature?,
    })
}

fn response(
    finding: Option<Finding>,
    walk: Option<&ChainWalk>,
    start: i64,
) -> pb::VerifyAuditChainResponse {
    let checked = walk.map_or(0, ChainWalk::checked);
    let withheld_events = walk.map_or(0, ChainWalk::withheld);
    let head_hash = match walk {
        Some(w) if checked > 0 => hex::encode(w.last_hash()),
        _ => String::new(),
    };
    match finding {
        None => pb::VerifyAuditChainResponse {
            valid: true,
            events_checked: checked,
            problem: pb::ChainProblem::Unspecified as i32,
            problem_sequence: 0,
            problem_event_id: String::new(),
            detail: match walk {
                Some(w) if checked > 0 => {
                    format!("events {start} to {} verify", w.next_sequence() - 1)
                }
                _ => "no events to verify".to_owned(),
            },
            head_hash,
            withheld_events,
        },
        Some(f) => pb::VerifyAuditChainResponse {
            valid: false,
            events_checked: checked,
            problem: pb::ChainProblem::from(f.problem) as i32,
            problem_sequence: f.sequence,
            problem_event_id: f.event_id.map(|i| i.to_string()).unwrap_or_default(),
            detail: f.detail,
            head_hash,
            withheld_events,
        },
    }
}

/// `VerifyAuditChain`.
pub async fn verify_audit_chain(
    state: &State,
    req: Request<pb::VerifyAuditChainRequest>,
) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
    let who = caller(&req)?;
    let org_id = who.org_id()?;
    let q = req.into_inner();
    let presented = checked(&who, &q)?;
    Ok(Response::new(
        verify(state, org_id, &q, presented.as_ref()).await?,
    ))
}

/// A verification request's violations, all at once, and its checkpoint
/// parsed (another organization's refused, revealing nothing).
pub(crate) fn checked(
    who: &foundry_tenancy::Caller,
    q: &pb::VerifyAuditChainRequest,
) -> Result<Option<Presented>, Error> {
    let pb::VerifyAuditChainRequest {
        start_sequence,
        end_sequence,
        checkpoint,
    } = q;
    let (start_sequence, end_sequence) = (*start_sequence, *end_sequence);
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
    let presented = checkpoint
        .as_ref()
        .and_then(|c| parse_checkpoint(&mut v, c));
    if checkpoint.is_some() && end_sequence != 0 {
        v.add(
            "end_sequence",
            "must be 0 with a checkpoint (the chain is verified to its head)",
        );
    }
    if let Some(p) = &presented
        && start_sequence > p.checkpoint.sequence
    {
        v.add("start_sequence", "must not be after checkpoint.sequence");
    }
    v.finish()?;
    if let Some(p) = &presented {
        who.require_org("checkpoint.org_id", &p.checkpoint.org_id.to_string())?;
    }
    Ok(presented)
}

/// Verifies `org_id`'s chain as `q` asks (checked by [`checked`], which
/// parsed its checkpoint into `presented`).
pub(crate) async fn verify(
    state: &State,
    org_id: uuid::Uuid,
    q: &pb::VerifyAuditChainRequest,
    presented: Option<&Presented>,
) -> Result<pb::VerifyAuditChainResponse, Status> {
    let (start_sequence, end_sequence) = (q.start_sequence, q.end_sequence);
    let mut tx = state.db.tenant(org_id).await?;
    // One snapshot for the head and every chunk: appends that commit
    // while we walk are neither half seen nor taken for tampering.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;

    if let Some(p) = presented {
        let c = &p.checkpoint;
        let key = crate::store::checkpoints::public_key(&mut *tx, &c.key_id).await?;
        let finding = match key.as_deref().and_then(verifying_key) {
            None => Some(format!(
                "the checkpoint names key {:?}, which is not one of the audit service's keys: it was forged",
                c.key_id
            )),
            Some(k) if !c.verify(&k, &p.signature) => Some(format!(
                "the checkpoint's signature does not verify with key {}: it was edited or forged",
                c.key_id
            )),
            Some(_) => None,
        };
        if let Some(detail) = finding {
            tx.commit().await.map_err(Error::from)?;
            tracing::warn!(%org_id, checkpoint = %c.id, "checkpoint signature does not verify");
            return Ok(response(
                Some(Finding {
                    problem: Problem::CheckpointSignatureInvalid,
                    sequence: c.sequence,
                    event_id: None,
                    detail,
                }),
                None,
                0,
            ));
        }
    }

    let head = store::get_head(&mut tx, org_id).await?.unwrap_or(Head {
        sequence: 0,
        hash: GENESIS.to_vec(),
    });
    let mark = settings::get_watermark(&mut tx, org_id)
        .await?
        .unwrap_or(Watermark {
            sequence: 0,
            hash: GENESIS.to_vec(),
        });
    let mut v = Violations::new();
    let removed = |v: &mut Violations, field: &str| {
        v.add(
            field,
            format!(
                "names an event retention removed: the retained chain starts at event {}",
                mark.sequence + 1
            ),
        );
    };
    if start_sequence > 0 && start_sequence <= mark.sequence {
        removed(&mut v, "start_sequence");
    }
    if end_sequence > 0 && end_sequence <= mark.sequence {
        removed(&mut v, "end_sequence");
    }
    if start_sequence > 0 && end_sequence == 0 && start_sequence > head.sequence.max(1) {
        v.add(
            "start_sequence",
            format!("is past the chain's head (event {})", head.sequence),
        );
    }
    v.finish()?;
    if let Some(p) = &presented
        && p.checkpoint.sequence < mark.sequence
    {
        return Err(Error::failed_precondition(
            "CHECKPOINT_BEFORE_RETENTION",
            format!(
                "retention removed events up to {}, the checkpoint's event {} among them: verify against a checkpoint taken after event {}",
                mark.sequence, p.checkpoint.sequence, mark.sequence
            ),
        )
        .into());
    }
    let start = if start_sequence == 0 {
        mark.sequence + 1
    } else {
        start_sequence
    };
    // To the head: read on past it, so events added behind the service's
    // back are found too.
    let to_head = end_sequence == 0 || end_sequence >= head.sequence;
    let to = (end_sequence > 0).then_some(end_sequence);
    // The checkpoint's position, where the walk passes it (it may be the
    // watermark itself, checked here).
    let mut anchor = presented
        .as_ref()
        .map(|p| (p.checkpoint.sequence, p.checkpoint.head_hash.as_slice()));
    let mut early = None;
    if let Some((sequence, expected)) = anchor
        && sequence == mark.sequence
    {
        if expected != mark.hash.as_slice() {
            early = Some(Finding {
                problem: Problem::CheckpointMismatch,
                sequence,
                event_id: None,
                detail: format!(
                    "event {sequence}, where retention cut the chain, does not have the hash the checkpoint signed: the chain was rewritten"
                ),
            });
        }
        anchor = None;
    }

    let predecessor = if start - 1 == mark.sequence {
        Some(mark.hash.clone())
    } else {
        store::hash_at(&mut tx, org_id, start - 1).await?
    };
    let mut walk = ChainWalk::new(start, predecessor.clone().unwrap_or_default());
    let finding = match (early, predecessor) {
        (Some(f), _) => Some(f),
        (None, None) => Some(Finding {
            problem: Problem::MissingEvents,
            sequence: start - 1,
            event_id: None,
            detail: format!(
                "event {}, which event {start} links to, is missing",
                start - 1
            ),
        }),
        (None, Some(_)) => {
            let walked =
                chain::walk_events(&mut tx, org_id, &mut walk, to, head.sequence, anchor).await?;
            walked
                .and_then(|beyond| {
                    if to_head {
                        walk.finish_head(head.sequence, &head.hash, beyond)
                    } else {
                        walk.finish_range(end_sequence)
                    }
                })
                .and_then(|()| match anchor {
                    Some((sequence, _)) => {
                        domain::check_anchor_reached(walk.next_sequence() - 1, sequence)
                    }
                    None => Ok(()),
                })
                .err()
        }
    };
    tx.commit().await.map_err(Error::from)?;
    if let Some(f) = &finding {
        tracing::warn!(
            %org_id,
            problem = ?f.problem,
            sequence = f.sequence,
            "audit chain does not verify"
        );
    }
    Ok(response(finding, Some(&walk), start))
}

/// The job kind of a background verification.
pub const VERIFY_JOB: &str = "audit.chain.verify";

/// The service part of the operations' names (`operations/audit/{id}`).
pub const OPERATIONS: &str = "audit";

/// `StartAuditChainVerification`: checked as `VerifyAuditChain` is (its
/// violations named under `verification`), then a job the organization
/// sees as an operation.
pub async fn start_verification(
    state: &State,
    req: Request<pb::StartAuditChainVerificationRequest>,
) -> Result<Response<foundry_proto::google::longrunning::Operation>, Status> {
    let who = caller(&req)?;
    let org_id = who.org_id()?;
    let q = req.into_inner();
    let verification = q.verification.unwrap_or_default();
    let mut v = Violations::new();
    let request_id = v.maybe_request_id(&q.request_id);
    v.finish()?;
    checked(&who, &verification).map_err(|e| e.within("verification"))?;
    let args =
        serde_json::json!({ "request": URL_SAFE_NO_PAD.encode(verification.encode_to_vec()) });
    let mut job = NewJob::new(VERIFY_JOB, org_id, args)
        .operation()
        .attempts(3);
    let mut tx = state.db.tenant(org_id).await?;
    // A repeated request id answers the operation it started, done or
    // not (AIP-155), for as long as that operation is kept.
    let key = request_id.flatten().map(|id| format!("request:{id}"));
    let started: Option<uuid::Uuid> = match &key {
        Some(key) => sqlx::query_scalar(
            "SELECT id FROM jobs WHERE org_id = $1 AND kind = $2 AND unique_key = $3 \
             ORDER BY id LIMIT 1",
        )
        .bind(org_id)
        .bind(VERIFY_JOB)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::from)?,
        None => None,
    };
    let id = match started {
        Some(id) => id,
        None => {
            if let Some(key) = key {
                job = job.unique(key);
            }
            let clock = foundry_platform::clock::SystemClock;
            foundry_jobs::enqueue(&mut tx, &clock, job).await?.id
        }
    };
    let job = foundry_jobs::admin::get(&mut tx, id)
        .await
        .map_err(Error::from)?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("the job just enqueued is not there")))?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Response::new(foundry_jobs::operations::operation(
        OPERATIONS, &job,
    )))
}

/// Runs background verifications: the chain as the request asked, its
/// progress reported, its `VerifyAuditChainResponse` the operation's
/// response (a refusal, such as a start retention removed since, the
/// operation's error).
#[derive(Clone, Debug)]
pub struct VerifyJob(pub std::sync::Arc<State>);

#[async_trait::async_trait]
impl Handler for VerifyJob {
    async fn run(&self, job: &JobContext) -> Result<Option<serde_json::Value>, JobError> {
        #[derive(serde::Deserialize)]
        struct Args {
            request: String,
        }
        let args: Args = job.args()?;
        let q = URL_SAFE_NO_PAD
            .decode(&args.request)
            .ok()
            .and_then(|b| pb::VerifyAuditChainRequest::decode(b.as_slice()).ok())
            .ok_or_else(|| JobError::Fail("the verification request does not decode".into()))?;
        let mut v = Violations::new();
        let presented = q
            .checkpoint
            .as_ref()
            .and_then(|c| parse_checkpoint(&mut v, c));
        let org_id = job.job.org_id;
        let total = {
            let mut tx = self
                .0
                .db
                .tenant(org_id)
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
            let head = store::get_head(&mut tx, org_id)
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
            tx.commit()
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
            head.map_or(0, |h| h.sequence)
        };
        job.progress(progress("verifying", 0, total)).await?;
        match verify(&self.0, org_id, &q, presented.as_ref()).await {
            Ok(r) => {
                job.progress(progress("verified", r.events_checked, total))
                    .await?;
                Ok(Some(foundry_jobs::operations::response(
                    "foundry.audit.v1.VerifyAuditChainResponse",
                    &r,
                )))
            }
            Err(s) if s.code() == tonic::Code::Unavailable => {
                Err(JobError::Retry(s.message().into()))
            }
            Err(s) => Ok(Some(foundry_jobs::operations::failure(
                s.code(),
                s.message(),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_malformed_checkpoint_names_each_bad_field() {
        let mut v = Violations::new();
        let c = pb::AuditCheckpoint {
            id: "x".into(),
            org_id: Uuid::now_v7().to_string(),
            head_hash: "zz".into(),
            sequence: -1,
            signature: "!".into(),
            create_time: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 1,
            }),
            ..Default::default()
        };
        assert!(parse_checkpoint(&mut v, &c).is_none());
        let fields: Vec<String> = v
            .finish()
            .expect_err("invalid")
            .violations()
            .iter()
            .map(|f| f.field.clone())
            .collect();
        assert_eq!(
            fields,
            [
                "checkpoint.id",
                "checkpoint.reason",
                "checkpoint.sequence",
                "checkpoint.head_hash",
                "checkpoint.create_time",
                "checkpoint.key_id",
                "checkpoint.signature"
            ]
        );
    }
}

//! Execution audit records: written by delivery through the internal
//! `CreateExecutionAuditRecord`, listed by the organization.

use chrono::SubsecRound;
use foundry_platform::Error;
use foundry_platform::convert::from_timestamp;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::audit::v1 as pb;
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::{json_object, record_to_proto};
use crate::domain::records::{self, ExecutionRecord, Outcome};
use crate::store::records as store;

/// Parses a record to store; problems are `execution_audit_record.<field>`.
fn parse_record(v: &mut Violations, r: &pb::ExecutionAuditRecord) -> Option<ExecutionRecord> {
    let f = |name: &str| format!("execution_audit_record.{name}");
    let id = match v.id(&f("id"), &r.id) {
        Some(id) if id.get_version_num() != 7 => {
            v.add(
                f("id"),
                "must be a UUID v7 minted when the execution ended (it orders the records)",
            );
            None
        }
        id => id,
    };
    let org_id = v.id(&f("org_id"), &r.org_id);
    let execution_id = v.opt_id(&f("execution_id"), &r.execution_id);
    let program_id = v.id(&f("program_id"), &r.program_id);
    let task_id = v.id(&f("task_id"), &r.task_id);
    let task_title = v.text(&f("task_title"), &r.task_title, 1, records::MAX_TASK_TITLE);
    let skill_name = v.text(&f("skill_name"), &r.skill_name, 1, records::MAX_NAME);
    let skill_version = v.text(
        &f("skill_version"),
        &r.skill_version,
        1,
        records::MAX_SKILL_VERSION,
    );
    let user_id = v.opt_id(&f("user_id"), &r.user_id);
    let user_display_name = v.text(
        &f("user_display_name"),
        &r.user_display_name,
        0,
        records::MAX_NAME,
    );
    let environment = json_object(
        v,
        f("environment"),
        r.environment.as_ref(),
        records::MAX_ENVIRONMENT_BYTES,
    );
    let model = v.text(&f("model"), &r.model, 1, records::MAX_NAME);
    let outcome: Option<Outcome> = v.enum_value(&f("outcome"), r.outcome);
    let mut time = |name: &str, t: Option<&prost_types::Timestamp>| match t {
        None => {
            v.add(f(name), "is required");
            None
        }
        // Kept to the microsecond, as stored.
        Some(t) => from_timestamp(t).map(|t| t.trunc_subsecs(6)).or_else(|| {
            v.add(f(name), "is not a valid time");
            None
        }),
    };
    let started_at = time("start_time", r.start_time.as_ref());
    let ended_at = time("end_time", r.end_time.as_ref());
    if let (Some(s), Some(e)) = (started_at, ended_at)
        && e < s
    {
        v.add(f("end_time"), "must not be before start_time");
    }
    let duration_us = match &r.duration {
        Some(d) if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 => {
            v.add(f("duration"), "must be a duration of zero or more");
            None
        }
        Some(d) => d
            .seconds
            .checked_mul(1_000_000)
            .and_then(|us| us.checked_add(i64::from(d.nanos / 1000)))
            .or_else(|| {
                v.add(f("duration"), "is too long");
                None
            }),
        None => match (started_at, ended_at) {
            (Some(s), Some(e)) => (e - s).num_microseconds().or_else(|| {
                v.add(f("duration"), "is too long");
                None
            }),
            _ => None,
        },
    };
    Some(ExecutionRecord {
        id: id?,
        org_id: org_id?,
        execution_id,
        program_id: program_id?,
        task_id: task_id?,
        task_title: task_title?,
        skill_name: skill_name?,
        skill_version: skill_version?,
        user_id,
        user_display_name: user_display_name?,
        environment: environment?,
        model: model?,
        outcome: outcome?,
        started_at: started_at?,
        ended_at: ended_at?,
        duration_us: duration_us?,
    })
}

/// A `CreateExecutionAuditRecordRequest`, parsed: every problem at once.
fn parse_create(req: &pb::CreateExecutionAuditRecordRequest) -> Result<ExecutionRecord, Error> {
    let mut v = Violations::new();
    let record = match &req.execution_audit_record {
        Some(r) => parse_record(&mut v, r),
        None => {
            v.add("execution_audit_record", "is required");
            None
        }
    };
    v.finish_with(|| record)
}

/// `CreateExecutionAuditRecord` (internal). The first record with an id
/// is kept as sent; a repeat returns it unchanged.
pub async fn create_execution_audit_record(
    state: &State,
    req: Request<pb::CreateExecutionAuditRecordRequest>,
) -> Result<Response<pb::ExecutionAuditRecord>, Status> {
    let record = parse_create(req.get_ref())?;
    let mut tx = state.db.tenant(record.org_id).await?;
    let inserted = store::insert_record(&mut tx, &record).await?;
    // Row-level security shows this organization's rows only: an id taken
    // by another organization's record is not found here.
    let row = store::get_record(&mut tx, record.org_id, record.id)
        .await?
        .ok_or_else(|| {
            Error::already_exists(
                "EXECUTION_AUDIT_RECORD_EXISTS",
                "execution_audit_record.id",
                "another record has this id",
            )
        })?;
    tx.commit().await.map_err(Error::from)?;
    if inserted {
        tracing::debug!(record = %record.id, "execution audit record stored");
    }
    Ok(Response::new(record_to_proto(row)))
}

/// `ListExecutionAuditRecords`.
pub async fn list_execution_audit_records(
    state: &State,
    req: Request<pb::ListExecutionAuditRecordsRequest>,
) -> Result<Response<pb::ListExecutionAuditRecordsResponse>, Status> {
    let who = caller(&req)?;
    let org_id = who.org_id()?;
    let req = req.into_inner();
    let mut v = Violations::new();
    let program_id = v.opt_id("program_id", &req.program_id);
    let task_id = v.opt_id("task_id", &req.task_id);
    v.finish()?;
    let program_id = who.confine("program_id", program_id)?;
    let filters = serde_json::json!([req.program_id, req.task_id]).to_string();
    let page = state
        .pages
        .parse(req.page_size, &req.page_token, &filters)?;
    let mut conn = state.db.read(org_id).await?;
    let mut rows = store::list_records(
        &mut conn,
        org_id,
        program_id,
        task_id,
        page.after,
        page.limit(),
    )
    .await?;
    drop(conn);
    let next_page_token = state.pages.finish(&page, &mut rows, |r| r.record.id);
    Ok(Response::new(pb::ListExecutionAuditRecordsResponse {
        execution_audit_records: rows.into_iter().map(record_to_proto).collect(),
        next_page_token,
    }))
}

//! gRPC handlers: proto ↔ domain, access, one transaction per call (the
//! mutation and its audit event commit together).

pub mod dependencies;
pub mod features;
pub mod gates;
pub mod goals;
pub mod planner_phases;
pub mod programs;
pub mod requirements;
pub mod risks;
pub mod sprints;
pub mod subtasks;
pub mod tasks;
pub mod work_orders;
pub mod workstreams;

use foundry_platform::Error;
use foundry_platform::db::Tx;
use foundry_platform::validate::Violations;
use foundry_tenancy::Caller;
use uuid::Uuid;

use crate::store::{self, Lock, ProgramRow};

/// The service name on audit events.
pub const SERVICE: &str = "delivery";

/// The audit actor of a call to this service.
pub fn actor<T>(req: &tonic::Request<T>) -> foundry_outbox::Actor {
    foundry_outbox::Actor::of(SERVICE, req)
}

/// Longest descriptions of programs and workstreams.
pub(crate) const SHORT_DESCRIPTION: usize = 10_000;
/// Longest descriptions of requirements, tasks and subtasks.
pub(crate) const LONG_DESCRIPTION: usize = 20_000;

/// Free text of `min..=max` characters, trimmed, that may span lines: tabs
/// and line breaks are allowed, other control characters are not.
pub(crate) fn long_text(
    v: &mut Violations,
    field: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Option<String> {
    let trimmed = value.trim();
    let len = trimmed.chars().count();
    if len == 0 && min > 0 {
        v.add(field, "is required");
        None
    } else if len > max {
        v.add(field, format!("must be at most {max} characters"));
        None
    } else if trimmed
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        v.add(
            field,
            "must not contain control characters other than line breaks and tabs",
        );
        None
    } else {
        Some(trimmed.to_owned())
    }
}

/// At most `max` user ids under `field`, each once, in the given order.
pub(crate) fn user_ids(
    v: &mut Violations,
    field: &str,
    ids: &[String],
    max: usize,
) -> Option<Vec<Uuid>> {
    if ids.len() > max {
        v.add(field, format!("at most {max} assignees"));
        return None;
    }
    let parsed: Option<Vec<Uuid>> = ids
        .iter()
        .enumerate()
        .map(|(i, s)| v.id(&format!("{field}[{i}]"), s))
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    let mut out: Vec<Uuid> = Vec::new();
    for id in parsed? {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Some(out)
}

/// At most `max_items` acceptance criteria under `field`, each
/// [`long_text`] of `1..=max_len` characters, in the given order.
pub(crate) fn criteria(
    v: &mut Violations,
    field: &str,
    items: &[String],
    max_items: usize,
    max_len: usize,
) -> Option<Vec<String>> {
    if items.len() > max_items {
        v.add(field, format!("at most {max_items} criteria"));
        return None;
    }
    items
        .iter()
        .enumerate()
        .map(|(i, s)| long_text(v, &format!("{field}[{i}]"), s, 1, max_len))
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// Highest explicit position of an ordered child.
pub(crate) const MAX_POSITION: i32 = 1_000_000;

/// A position: `1..=MAX_POSITION`, or (at creation, `append`) 0 for "after
/// the last", returned as `Some(None)`.
pub(crate) fn position(
    v: &mut Violations,
    field: &str,
    value: i32,
    append: bool,
) -> Option<Option<i32>> {
    match value {
        0 if append => Some(None),
        1..=MAX_POSITION => Some(Some(value)),
        _ => {
            v.add(
                field,
                if append {
                    format!("must be 1..{MAX_POSITION}, or 0 to append")
                } else {
                    format!("must be 1..{MAX_POSITION}")
                },
            );
            None
        }
    }
}

/// Whether the caller may see rows of `program_id`: a credential bound to a
/// project (an API key or agent token with `project_id`) sees only that
/// program; others see every program of their organization.
pub(crate) fn visible(caller: &Caller, program_id: Uuid) -> bool {
    caller.claims.project_id.is_none_or(|p| p == program_id)
}

/// A row the caller may see, or `not_found` (missing, another tenant's, or
/// outside the caller's project: never reveal which).
pub(crate) fn found<T>(
    row: Option<T>,
    caller: &Caller,
    program_of: impl Fn(&T) -> Uuid,
    not_found: fn() -> Error,
) -> Result<T, Error> {
    match row {
        Some(r) if visible(caller, program_of(&r)) => Ok(r),
        _ => Err(not_found()),
    }
}

/// Reads a program the caller may see, with `lock`.
pub(crate) async fn program(
    tx: &mut Tx,
    caller: &Caller,
    org_id: Uuid,
    id: Uuid,
    lock: Lock,
) -> Result<ProgramRow, Error> {
    found(
        store::get_program(tx, org_id, id, lock).await?,
        caller,
        |p| p.id,
        program_not_found,
    )
}

pub(crate) fn program_not_found() -> Error {
    Error::not_found("PROGRAM_NOT_FOUND", "program")
}

pub(crate) fn workstream_not_found() -> Error {
    Error::not_found("WORKSTREAM_NOT_FOUND", "workstream")
}

pub(crate) fn requirement_not_found() -> Error {
    Error::not_found("REQUIREMENT_NOT_FOUND", "requirement")
}

pub(crate) fn task_not_found() -> Error {
    Error::not_found("TASK_NOT_FOUND", "task")
}

pub(crate) fn subtask_not_found() -> Error {
    Error::not_found("SUBTASK_NOT_FOUND", "subtask")
}

pub(crate) fn risk_not_found() -> Error {
    Error::not_found("RISK_NOT_FOUND", "risk")
}

pub(crate) fn goal_not_found() -> Error {
    Error::not_found("GOAL_NOT_FOUND", "goal")
}

pub(crate) fn work_order_not_found() -> Error {
    Error::not_found("WORK_ORDER_NOT_FOUND", "work order")
}

pub(crate) fn planner_phase_not_found() -> Error {
    Error::not_found("PLANNER_PHASE_NOT_FOUND", "planner phase")
}

pub(crate) fn feature_not_found() -> Error {
    Error::not_found("FEATURE_NOT_FOUND", "feature")
}

pub(crate) fn sprint_not_found() -> Error {
    Error::not_found("SPRINT_NOT_FOUND", "sprint")
}

pub(crate) fn sprint_gate_not_found() -> Error {
    Error::not_found("SPRINT_GATE_NOT_FOUND", "sprint gate")
}

pub(crate) fn evaluation_not_found() -> Error {
    Error::not_found("SPRINT_GATE_EVALUATION_NOT_FOUND", "sprint gate evaluation")
}

/// `FAILED_PRECONDITION` for a reference into another program.
pub(crate) fn other_program(what: &str) -> Error {
    Error::failed_precondition(
        "DIFFERENT_PROGRAM",
        format!("the {what} belongs to another program"),
    )
}

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

use foundry_proto::foundry::delivery::v1 as pb;

use crate::domain;
use crate::store::{self, Lock};

/// The proto mapping of a domain enum stored as text: domain → proto, and
/// proto number → domain (`*_UNSPECIFIED` and unknown numbers are `Err`,
/// which the edge's `Violations::enum_value` reports by field).
macro_rules! proto_enum {
    ($name:ident => $pb:ident { $($variant:ident),+ $(,)? }) => {
        impl From<domain::$name> for pb::$pb {
            fn from(v: domain::$name) -> Self {
                match v {
                    $(domain::$name::$variant => pb::$pb::$variant),+
                }
            }
        }

        impl TryFrom<i32> for domain::$name {
            type Error = ();
            fn try_from(v: i32) -> Result<Self, ()> {
                match pb::$pb::try_from(v).map_err(|_| ())? {
                    $(pb::$pb::$variant => Ok(domain::$name::$variant),)+
                    pb::$pb::Unspecified => Err(()),
                }
            }
        }
    };
}

proto_enum!(Phase => DeliveryPhase { Discovery, Build, Test, Deploy, Complete });

proto_enum!(Priority => RequirementPriority { Critical, High, Medium, Low });

proto_enum!(RequirementStatus => RequirementStatus { Draft, Approved, InProgress, Done, Deferred });

proto_enum!(TaskStatus => TaskStatus { Backlog, Todo, InProgress, InReview, Done, Blocked });

proto_enum!(SubtaskStatus => SubtaskStatus { Todo, InProgress, Done });

proto_enum!(RiskSeverity => RiskSeverity { Low, Medium, High, Critical });

proto_enum!(RiskStatus => RiskStatus { Open, Mitigating, Accepted, Closed });

proto_enum!(GoalStatus => GoalStatus { Proposed, Active, Achieved, Abandoned });

proto_enum!(WorkOrderStatus => WorkOrderStatus { Backlog, Ready, InProgress, InReview, Done });

proto_enum!(SprintStatus => SprintStatus { Planned, Active, Completed });

proto_enum!(CapacityUnit => SprintCapacityUnit { Hours, Points });

proto_enum!(EvaluatorType => SprintGateEvaluatorType { User, Agent, ApiKey, Service });

impl From<domain::RiskLevel> for pb::RiskLevel {
    fn from(v: domain::RiskLevel) -> Self {
        pb::RiskLevel::try_from(i32::from(v.value())).unwrap_or(pb::RiskLevel::Unspecified)
    }
}

impl From<foundry_tenancy::PrincipalType> for domain::EvaluatorType {
    fn from(p: foundry_tenancy::PrincipalType) -> Self {
        use foundry_tenancy::PrincipalType as P;
        match p {
            P::User => domain::EvaluatorType::User,
            P::Agent => domain::EvaluatorType::Agent,
            P::ApiKey => domain::EvaluatorType::ApiKey,
            P::Service => domain::EvaluatorType::Service,
        }
    }
}

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
) -> Result<domain::Program, Error> {
    found(
        store::get_program(tx, org_id, id, lock).await?,
        caller,
        |p| p.id.uuid(),
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

pub(crate) fn work_order_not_found() -> Error {
    Error::not_found("WORK_ORDER_NOT_FOUND", "work order")
}

pub(crate) fn planner_phase_not_found() -> Error {
    Error::not_found("PLANNER_PHASE_NOT_FOUND", "planner phase")
}

pub(crate) fn feature_not_found() -> Error {
    Error::not_found("FEATURE_NOT_FOUND", "feature")
}

/// `FAILED_PRECONDITION` for a reference into another program.
pub(crate) fn other_program(what: &str) -> Error {
    Error::failed_precondition(
        "DIFFERENT_PROGRAM",
        format!("the {what} belongs to another program"),
    )
}

/// One page of `R` whose `parent.0` column is `parent.1`, matching every
/// set filter, newest first, read in `tx` (in which the caller has already
/// been shown the parent) and committed; and the next page's token.
pub(crate) async fn page_of<R: foundry_resource::Resource>(
    state: &crate::State,
    org_id: Uuid,
    mut tx: Tx,
    parent: (&'static str, Uuid),
    filters: &[store::Filter],
    page: &foundry_platform::page::Page,
) -> Result<(Vec<R>, String), Error> {
    let mut rows =
        store::list_newest::<R>(&mut tx, org_id, parent, filters, page.after, page.limit()).await?;
    tx.commit().await?;
    let next_page_token = state.pages.finish(page, &mut rows, |r| r.key().into());
    Ok((rows, next_page_token))
}

/// The program `id` of a call: visible to the caller (else `NOT_FOUND`),
/// read with `lock` (`FOR KEY SHARE` holds it for a new child).
pub(crate) async fn program_of(
    tx: &mut Tx,
    call: &foundry_outbox::Call,
    id: domain::ProgramId,
    lock: Lock,
) -> Result<domain::Program, Error> {
    program(tx, &call.caller, call.org_id, id.uuid(), lock).await
}

/// A list filter on a stored enum: the request field (named as its column),
/// its proto number (0: none) and the stored spelling it asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EnumFilter {
    column: &'static str,
    number: i32,
    value: Option<&'static str>,
}

/// The filter `field` of a list request (0: none; else a value of `E`).
pub(crate) fn enum_filter<E>(v: &mut Violations, field: &'static str, number: i32) -> EnumFilter
where
    E: domain::StoredEnum + TryFrom<i32>,
{
    EnumFilter {
        column: field,
        number,
        value: v.opt_enum_value::<E>(field, number).map(E::as_str),
    }
}

/// ListX of a program's `R` (risks, goals, sprints): the program id and
/// the filters as parsed (`v` holds their violations, in request order),
/// the page token bound to them, the program shown to the caller, one page.
pub(crate) async fn list_in_program<R: foundry_resource::Resource>(
    state: &crate::State,
    call: &foundry_outbox::Call,
    v: Violations,
    program_id: Option<domain::ProgramId>,
    filters: &[EnumFilter],
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<R>, String), Error> {
    let program_id = v.finish_with(|| program_id)?;
    let mut bound = format!("program={program_id}");
    for f in filters {
        bound.push_str(&format!(";{}={}", f.column, f.number));
    }
    let page = state.pages.parse(page_size, page_token, &bound)?;
    let mut tx = state.db.tenant(call.org_id).await?;
    program_of(&mut tx, call, program_id, Lock::None).await?;
    let filters: Vec<store::Filter> = filters.iter().map(|f| (f.column, f.value)).collect();
    page_of::<R>(
        state,
        call.org_id,
        tx,
        ("program_id", program_id.uuid()),
        &filters,
        &page,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        GoalStatus, Phase, Priority, RiskLevel, RiskSeverity, StoredEnum, TaskStatus,
        WorkOrderStatus,
    };

    /// Every stored enum survives text and proto round trips.
    fn round_trips<D, P>(all: &[D])
    where
        D: StoredEnum + TryFrom<i32, Error = ()> + Into<P>,
        P: Into<i32>,
    {
        for d in all {
            assert_eq!(D::parse(d.as_str()), Some(*d));
            assert_eq!(D::try_from((*d).into().into()), Ok(*d));
        }
        assert!(D::try_from(0).is_err());
        assert!(D::try_from(99).is_err());
    }

    #[test]
    fn enums_round_trip_through_text_and_proto() {
        round_trips::<Phase, pb::DeliveryPhase>(Phase::ALL);
        round_trips::<TaskStatus, pb::TaskStatus>(TaskStatus::ALL);
        round_trips::<GoalStatus, pb::GoalStatus>(GoalStatus::ALL);
        round_trips::<WorkOrderStatus, pb::WorkOrderStatus>(WorkOrderStatus::ALL);
        round_trips::<RiskSeverity, pb::RiskSeverity>(RiskSeverity::ALL);
        assert_eq!(pb::RiskLevel::from(RiskLevel::MAX), pb::RiskLevel::VeryHigh);
        assert!(
            Priority::Critical < Priority::Low,
            "declared most important first"
        );
    }
}

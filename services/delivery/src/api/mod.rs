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

use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::db::Tx;
use foundry_platform::page::Page;
use foundry_platform::validate::Violations;
use foundry_resource::Resource;
use foundry_tenancy::Caller;
use uuid::Uuid;

use foundry_proto::foundry::delivery::v1 as pb;

use crate::State;
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
    each(v, field, ids, |v, field, s| v.id(field, s)).map(once_each)
}

/// Every item of the repeated field `field` parsed by `parse` (named
/// `field[i]`), every bad one reported; `None` if any is bad.
pub(crate) fn each<T>(
    v: &mut Violations,
    field: &str,
    items: &[String],
    parse: impl Fn(&mut Violations, &str, &str) -> Option<T>,
) -> Option<Vec<T>> {
    items
        .iter()
        .enumerate()
        .map(|(i, s)| parse(v, &format!("{field}[{i}]"), s))
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// `items` each once, in their first order.
pub(crate) fn once_each<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
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
    each(v, field, items, |v, field, s| {
        long_text(v, field, s, 1, max_len)
    })
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
        foundry_resource::read::<domain::Program>(
            tx,
            org_id,
            foundry_domain::Id::from_uuid(id),
            lock,
        )
        .await?,
        caller,
        |p| p.id.uuid(),
        program_not_found,
    )
}

pub(crate) fn program_not_found() -> Error {
    Error::not_found("PROGRAM_NOT_FOUND", "program")
}

pub(crate) fn requirement_not_found() -> Error {
    Error::not_found("REQUIREMENT_NOT_FOUND", "requirement")
}

pub(crate) fn task_not_found() -> Error {
    Error::not_found("TASK_NOT_FOUND", "task")
}

/// `FAILED_PRECONDITION` for a reference into another program.
pub(crate) fn other_program(what: &str) -> Error {
    Error::failed_precondition(
        "DIFFERENT_PROGRAM",
        format!("the {what} belongs to another program"),
    )
}

/// How a list is ordered, and so paged: newest first by id, or by a
/// `(key, id)` pair (positions).
pub(crate) enum Order<T> {
    /// By id, descending: the id of a row.
    NewestFirst(fn(&T) -> Uuid),
    /// By `(key, id)`, ascending: both of a row.
    ByKey(fn(&T) -> (i64, Uuid)),
}

/// A list request's paging: `page_size`, `page_token` and its filters
/// rendered stably (a token of other filters is refused).
pub(crate) struct Paging<'a> {
    pub size: i32,
    pub token: &'a str,
    pub filters: String,
}

/// The rows a [`list_page`] reads, as a boxed future (`Box::pin(async
/// move { … })`) so that the handler stays `Send`; it borrows only the
/// transaction, the call and the page it is given.
pub(crate) type Rows<'t, T> =
    std::pin::Pin<Box<dyn Future<Output = Result<Vec<T>, Error>> + Send + 't>>;

/// One page of a list (AIP-132): the page parsed, the rows `read` returns
/// in one tenant transaction (checks of the parent included), the page
/// trimmed and the next page token (empty on the last page).
pub(crate) async fn list_page<T>(
    state: &crate::State,
    call: &foundry_outbox::Call,
    paging: Paging<'_>,
    order: Order<T>,
    read: impl for<'t> FnOnce(
        &'t mut Tx,
        &'t foundry_outbox::Call,
        &'t foundry_platform::page::Page,
    ) -> Rows<'t, T>,
) -> Result<(Vec<T>, String), Error> {
    let Paging {
        size,
        token,
        filters,
    } = paging;
    let page = match order {
        Order::NewestFirst(_) => state.pages.parse(size, token, &filters),
        Order::ByKey(_) => state.pages.parse_keyed(size, token, &filters),
    }?;
    let mut tx = state.db.tenant(call.org_id).await?;
    let mut rows = read(&mut tx, call, &page).await?;
    tx.commit().await?;
    let next = match order {
        Order::NewestFirst(id) => state.pages.finish(&page, &mut rows, id),
        Order::ByKey(key) => state.pages.finish_keyed(&page, &mut rows, key),
    };
    Ok((rows, next))
}

/// An update request's parse: the resource's id (`<name>.id`), its etag,
/// and the change `change` parses for each path the mask names (recording
/// violations), or every violation at once.
pub(crate) fn parse_changes<P: foundry_domain::FieldPath, K, C>(
    name: &str,
    (id, etag): (&str, &str),
    update_mask: Option<&prost_types::FieldMask>,
    mut change: impl FnMut(&mut Violations, P) -> Option<C>,
) -> Result<(foundry_domain::Id<K>, String, Vec<C>), Error> {
    let mut v = Violations::new();
    let id = v.id_of(&format!("{name}.id"), id);
    let changes: Vec<Option<C>> = foundry_platform::validate::mask::<P>(&mut v, update_mask)
        .into_iter()
        .map(|path| change(&mut v, path))
        .collect();
    v.finish_with(|| {
        Some((
            id?,
            etag.to_owned(),
            changes.into_iter().collect::<Option<_>>()?,
        ))
    })
}

/// A List of a program's children (AIP-132), written once: the page
/// parsed (its token is good only for the same filters), the program
/// visible to the caller, one page of rows read in a tenant transaction,
/// and the next page token. A handler parses its filters, makes a
/// `Listing` and [`Listing::run`]s it with its store query.
pub(crate) struct Listing<'a, T> {
    program_id: Uuid,
    page_size: i32,
    page_token: &'a str,
    filters: String,
    /// `None`: newest first, by id; else by `(key, id)`.
    key_of: Option<KeyOf<T>>,
}

/// The `(key, id)` a keyed list is ordered by, of a row.
pub(crate) type KeyOf<T> = fn(&T) -> (i64, Uuid);

impl<'a, T: Resource> Listing<'a, T> {
    /// A newest-first list of `program_id`'s rows; `filters` renders the
    /// request's other filters (the page token is bound to
    /// `program=<id>;<filters>`, or `program=<id>` when there are none).
    pub(crate) fn new(
        program_id: Uuid,
        page_size: i32,
        page_token: &'a str,
        filters: String,
    ) -> Self {
        Listing {
            program_id,
            page_size,
            page_token,
            filters,
            key_of: None,
        }
    }

    /// Ordered by `(key, id)` instead, `key_of` giving both of a row.
    pub(crate) fn ordered_by(self, key_of: KeyOf<T>) -> Self {
        Listing {
            key_of: Some(key_of),
            ..self
        }
    }

    /// Runs the list: `query` reads the page's rows (after its cursor, at
    /// most [`Page::limit`]); returns them as `to_proto` makes them, and the
    /// next page token (empty on the last page).
    pub(crate) async fn run<M>(
        self,
        state: &State,
        call: &Call,
        to_proto: fn(&T) -> M,
        query: impl for<'t> FnOnce(&'t mut Tx, Page) -> Rows<'t, T>,
    ) -> Result<(Vec<M>, String), Error> {
        let Listing {
            program_id,
            page_size,
            page_token,
            filters,
            key_of,
        } = self;
        let filters = match filters.as_str() {
            "" => format!("program={program_id}"),
            rest => format!("program={program_id};{rest}"),
        };
        let page = match key_of {
            None => state.pages.parse(page_size, page_token, &filters)?,
            Some(_) => state.pages.parse_keyed(page_size, page_token, &filters)?,
        };
        let mut tx = state.db.tenant(call.org_id).await?;
        program_for(&mut tx, call, program_id, Lock::None).await?;
        let mut rows = query(&mut tx, page).await?;
        tx.commit().await?;
        let next = match key_of {
            None => state.pages.finish(&page, &mut rows, |r| r.key().into()),
            Some(key_of) => state.pages.finish_keyed(&page, &mut rows, key_of),
        };
        Ok((rows.iter().map(to_proto).collect(), next))
    }
}

/// [`program`] for a call: the program `id` if the caller may see it,
/// read with `lock`.
pub(crate) async fn program_for(
    tx: &mut Tx,
    call: &Call,
    id: Uuid,
    lock: Lock,
) -> Result<domain::Program, Error> {
    program(tx, &call.caller, call.org_id, id, lock).await
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

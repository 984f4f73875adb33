//! gRPC handlers: proto ↔ domain, access, one transaction per call (the
//! mutation and its audit event commit together).

pub mod dependencies;
pub mod features;
pub mod gates;
pub mod goals;
pub mod inbox;
pub(crate) mod members;
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
use foundry_platform::rpc::Methods;
use foundry_platform::validate::Violations;
use foundry_proto::aip::{
    ChildListRequest, CreateRequest, DeleteRequest, GetRequest, ListRequest, ListResponse,
    ResourceMessage, Standard, Unary, UpdateRequest,
};
use foundry_resource::{self as resource, Resource};
use std::sync::Arc;
use uuid::Uuid;

use foundry_proto::foundry::delivery::v1 as pb;

use crate::State;
use crate::domain;
use crate::store::{self, Lock};

use foundry_platform::proto_enum;

proto_enum!(domain::Phase => DeliveryPhase { Discovery, Build, Test, Deploy, Complete });

proto_enum!(domain::Priority => RequirementPriority { Critical, High, Medium, Low });

proto_enum!(domain::RequirementStatus => RequirementStatus { Draft, Approved, InProgress, Done, Deferred });

proto_enum!(domain::TaskStatus => TaskStatus { Backlog, Todo, InProgress, InReview, Done, Blocked });

proto_enum!(domain::SubtaskStatus => SubtaskStatus { Todo, InProgress, Done });

proto_enum!(domain::RiskSeverity => RiskSeverity { Low, Medium, High, Critical });

proto_enum!(domain::RiskStatus => RiskStatus { Open, Mitigating, Accepted, Closed });

proto_enum!(domain::GoalStatus => GoalStatus { Proposed, Active, Achieved, Abandoned });

proto_enum!(domain::WorkOrderStatus => WorkOrderStatus { Backlog, Ready, InProgress, InReview, Done });

proto_enum!(domain::SprintStatus => SprintStatus { Planned, Active, Completed });

proto_enum!(domain::CapacityUnit => SprintCapacityUnit { Hours, Points });

proto_enum!(domain::EvaluatorType => SprintGateEvaluatorType { User, Agent, ApiKey, Service });

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

/// Longest title of a requirement, task, subtask, goal, risk or work order.
pub(crate) const MAX_TITLE: usize = 500;

/// A title: `1..=MAX_TITLE` characters on one line.
pub(crate) fn title(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    v.text(field, value, 1, MAX_TITLE)
}

/// Optional free text of a program-level resource (programs, workstreams,
/// sprints, gates, features, planner phases): [`long_text`] of at most
/// [`SHORT_DESCRIPTION`] characters.
pub(crate) fn short_description(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    long_text(v, field, value, 0, SHORT_DESCRIPTION)
}

/// Optional free text of a unit of work (requirements, tasks, subtasks,
/// goals, risks, work orders): [`long_text`] of at most
/// [`LONG_DESCRIPTION`] characters.
pub(crate) fn long_description(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    long_text(v, field, value, 0, LONG_DESCRIPTION)
}

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

/// `FAILED_PRECONDITION` for a reference into another program.
pub(crate) fn other_program(what: &str) -> Error {
    Error::failed_precondition(
        "DIFFERENT_PROGRAM",
        format!("the {what} belongs to another program"),
    )
}

/// The `R` of `key` a new row belongs to (its program, its sprint):
/// visible to the caller (else `R`'s `NOT_FOUND`) and held (`FOR KEY
/// SHARE`) until commit.
pub(crate) async fn hold<R: Resource>(tx: &mut Tx, call: &Call, key: R::Key) -> Result<(), Error> {
    resource::fetch::<R>(tx, call, key, Lock::KeyShare).await?;
    Ok(())
}

/// The `R` of `key` a new or changed row refers to: visible to the caller
/// (else `R`'s `NOT_FOUND`), in `program_id` (else [`other_program`],
/// naming it `what`), held (`FOR KEY SHARE`) until commit.
pub(crate) async fn in_program<R: Resource>(
    tx: &mut Tx,
    call: &Call,
    program_id: domain::ProgramId,
    key: R::Key,
    what: &str,
) -> Result<R, Error> {
    let r: R = resource::fetch(tx, call, key, Lock::KeyShare).await?;
    if r.project() != Some(program_id.uuid()) {
        return Err(other_program(what));
    }
    Ok(r)
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

/// A call to one of the service's methods, as its function takes it (see
/// [`Methods::call`]).
pub(crate) type In<Q> = foundry_outbox::In<State, Q>;

/// What a method's function answers: the response's message.
pub(crate) type Reply<M> = Result<M, Error>;

/// How a resource travels: its message, as its handlers return it, and
/// what a create's message ([`create`]) and an update's ([`update`]) parse
/// into. Violations are recorded in `v`, each named as in the request
/// (`goal.title`); a parse that meets one returns `None`.
pub(crate) trait Wire: resource::Create + resource::Update {
    /// Its message.
    type Message: ResourceMessage + Default + prost::Message;

    /// It as its message.
    fn to_proto(&self) -> Self::Message;

    /// The new resource's values in a create's `m`.
    fn parse(v: &mut Violations, m: &Self::Message) -> Option<Self::New>;

    /// The new value in an update's `m` of the field at `path`: an
    /// exhaustive `match` over the paths.
    fn change(v: &mut Violations, path: PathOf<Self>, m: &Self::Message) -> Option<Self::Change>;
}

/// The update-mask paths of `R`.
pub(crate) type PathOf<R> =
    <<R as foundry_domain::Patch>::Change as foundry_domain::FieldChange>::Path;

/// A page of `R` (AIP-132) as its list's response, with the token of the
/// next page.
pub(crate) fn page<R: Wire, P>(rows: &[R], next_page_token: String) -> Reply<P>
where
    P: ListResponse<Item = R::Message>,
{
    let items = rows.iter().map(R::to_proto).collect();
    Ok(P::of(items, next_page_token))
}

/// A List of the `R` of the program a request names (`program_id`), newest
/// first, matching the enum filters `filters` reads from it (checked with
/// the program's id, so that every violation is reported at once); its
/// page token bound to `program=<id>` and the filters: goals, risks and
/// sprints list this way.
pub(crate) async fn list_in_program<R: Wire, Q, P>(
    c: &In<Q>,
    program_id: &str,
    filters: impl FnOnce(&mut Violations) -> Vec<EnumFilter>,
) -> Reply<P>
where
    Q: ListRequest,
    P: ListResponse<Item = R::Message>,
{
    let mut v = Violations::new();
    let program_id = v.id_of("program_id", program_id);
    let filters = filters(&mut v);
    let program_id: domain::ProgramId = v.finish_with(|| program_id)?;
    let paging = Paging::under("program", program_id, c.req.page_size(), c.req.page_token());
    let parent = ("program_id", program_id);
    let order = Order::newest();
    let (rows, next_page_token) =
        list_children::<R, domain::Program, Q>(c, paging, order, parent, &filters).await?;
    page(&rows, next_page_token)
}

/// AIP-133 Create (AIP-155 idempotent): the request's resource parsed
/// ([`Wire::parse`]) with its request id, then [`resource::create`].
pub(crate) async fn create<R, Q>(c: In<Q>) -> Reply<R::Message>
where
    R: Wire,
    Q: CreateRequest<Resource = R::Message> + prost::Message + Sync,
{
    let q = &c.req;
    let empty = R::Message::default();
    let m = q.resource().unwrap_or(&empty);
    let mut v = Violations::new();
    let new = R::parse(&mut v, m);
    let request_id = v.maybe_request_id(q.request_id());
    let (new, request_id) = v.finish_with(|| Some((new?, request_id?)))?;
    let creation = resource::Creation {
        method: Q::METHOD,
        request: q,
        request_id,
        new,
    };
    resource::create(&c.state.db, &c.call, creation, R::to_proto).await
}

/// AIP-131 Get: the `R` whose id the request names.
pub(crate) async fn get<R, K, Q>(c: In<Q>) -> Reply<R::Message>
where
    R: Wire<Key = foundry_domain::Id<K>>,
    Q: GetRequest,
{
    get_one(&c, c.req.id(), R::to_proto).await
}

/// AIP-134 Update: [`parse_update`], then [`resource::update`].
pub(crate) async fn update<R, K, Q>(c: In<Q>) -> Reply<R::Message>
where
    R: Wire<Key = foundry_domain::Id<K>>,
    Q: UpdateRequest<Resource = R::Message>,
{
    let (id, etag, changes) = parse_update::<R, K, Q>(&c.req)?;
    let r: R = resource::update(&c.state.db, &c.call, id, &etag, changes).await?;
    Ok(r.to_proto())
}

/// An update request as the resource's id, its etag, and a change for each
/// path of the mask ([`Wire::change`]); every violation at once.
pub(crate) fn parse_update<R, K, Q>(q: &Q) -> Changes<R>
where
    R: Wire<Key = foundry_domain::Id<K>>,
    Q: UpdateRequest<Resource = R::Message>,
{
    let empty = R::Message::default();
    let m = q.resource().unwrap_or(&empty);
    parse_changes::<PathOf<R>, K, _>(Q::FIELD, (m.id(), m.etag()), q.update_mask(), |v, path| {
        R::change(v, path, m)
    })
}

/// What an update request parses into: the key, the etag and the changes.
pub(crate) type Changes<R> = Result<
    (
        <R as foundry_domain::Record>::Key,
        String,
        Vec<<R as foundry_domain::Patch>::Change>,
    ),
    Error,
>;

/// AIP-135 Delete: the `R` whose id the request names, at its etag.
pub(crate) async fn delete<R, K, Q>(c: In<Q>) -> Reply<()>
where
    R: resource::Delete<Key = foundry_domain::Id<K>>,
    Q: DeleteRequest,
{
    let id = Violations::require_id_of("id", c.req.id())?;
    resource::delete::<R>(&c.state.db, &c.call, id, c.req.etag()).await?;
    Ok(())
}

/// The service of the resource `R` (`foundry_proto::aip::Standard`), its
/// Create, Get, Update and Delete routed to [`create`], [`get`], [`update`]
/// and [`delete`]; its other methods are added by its module.
pub(crate) fn standard<R, K>(state: &Arc<State>) -> Methods<ServiceOf<R>, Arc<State>>
where
    R: Wire<Key = foundry_domain::Id<K>> + resource::Delete + 'static,
    R::Message: Standard,
    K: 'static,
{
    type S<R> = <R as Wire>::Message;
    Methods::new(state.clone())
        .call(create::<R, <S<R> as Standard>::Create>)
        .call(get::<R, K, <S<R> as Standard>::Get>)
        .call(update::<R, K, <S<R> as Standard>::Update>)
        .call(delete::<R, K, <S<R> as Standard>::Delete>)
}

/// The service whose standard methods serve `R`.
pub(crate) type ServiceOf<R> =
    <<<R as Wire>::Message as Standard>::Create as foundry_proto::aip::Unary>::Service;

/// AIP-131 Get of the `R` whose id is `id`, as `to_proto` makes it.
pub(crate) async fn get_one<R, K, Q, M>(c: &In<Q>, id: &str, to_proto: fn(&R) -> M) -> Reply<M>
where
    R: Resource<Key = foundry_domain::Id<K>>,
{
    let id = Violations::require_id_of("id", id)?;
    let r: R = resource::get(&c.state.db, &c.call, id).await?;
    Ok(to_proto(&r))
}

/// How a list is ordered, and so paged: newest first by id, or by a
/// `(key, id)` pair (positions).
pub(crate) enum Order<T> {
    /// By id, descending: the id of a row.
    NewestFirst(fn(&T) -> Uuid),
    /// By `(key, id)`, ascending: both of a row.
    ByKey(fn(&T) -> (i64, Uuid)),
}

impl<T> Clone for Order<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Order<T> {}

impl<T: Resource> Order<T> {
    /// Newest first, by the resource's key.
    pub(crate) fn newest() -> Self {
        Order::NewestFirst(|r| r.key().into())
    }
}

impl<T> Order<T> {
    /// Where the rows of `page` start, in this order.
    fn cursor(self, page: &Page) -> store::Cursor {
        match self {
            Order::NewestFirst(_) => store::Cursor::Before(page.after),
            Order::ByKey(_) => store::Cursor::After(page.after_key.zip(page.after)),
        }
    }
}

/// A list request's paging: `page_size`, `page_token` and its filters
/// rendered stably (a token of other filters is refused).
pub(crate) struct Paging<'a> {
    pub size: i32,
    pub token: &'a str,
    pub filters: String,
}

impl<'a> Paging<'a> {
    /// The paging of a list of `parent`'s children: its token is bound to
    /// `<name>=<parent>` (and to the filters [`Paging::and`] adds).
    pub(crate) fn under(
        name: &str,
        parent: impl std::fmt::Display,
        size: i32,
        token: &'a str,
    ) -> Self {
        Paging {
            size,
            token,
            filters: format!("{name}={parent}"),
        }
    }

    /// The token also bound to `filters` (after a `;`).
    pub(crate) fn and(mut self, filters: &str) -> Self {
        self.filters.push(';');
        self.filters.push_str(filters);
        self
    }
}

/// The rows a [`list_page`] reads, as a boxed future (`Box::pin(async
/// move { … })`) so that the handler stays `Send`; it borrows only the
/// transaction, the call and the page it is given.
pub(crate) type Rows<'t, T> =
    std::pin::Pin<Box<dyn Future<Output = Result<Vec<T>, Error>> + Send + 't>>;

/// One page of a list (AIP-132), the one way every List reads: the page
/// parsed (its token is good only for the same filters), the rows `read`
/// returns on a tenant read connection (`Db::read`: each statement one
/// round trip, no transaction; a list of a parent's children reads them
/// with the parent in one, [`visible_parent`]), the page trimmed and the
/// next page token (empty on the last page).
pub(crate) async fn list_page<T, Q>(
    c: &In<Q>,
    paging: Paging<'_>,
    order: Order<T>,
    read: impl for<'t> FnOnce(&'t mut sqlx::PgConnection, &'t Call, &'t Page) -> Rows<'t, T>,
) -> Result<(Vec<T>, String), Error> {
    let Paging {
        size,
        token,
        filters,
    } = paging;
    let (state, call) = (&c.state, &c.call);
    let page = match order {
        Order::NewestFirst(_) => state.pages.parse(size, token, &filters),
        Order::ByKey(_) => state.pages.parse_keyed(size, token, &filters),
    }?;
    let mut conn = state.db.read(call.org_id).await?;
    let mut rows = read(&mut conn, call, &page).await?;
    drop(conn);
    let next = match order {
        Order::NewestFirst(id) => state.pages.finish(&page, &mut rows, id),
        Order::ByKey(key) => state.pages.finish_keyed(&page, &mut rows, key),
    };
    Ok((rows, next))
}

/// A [`list_page`] of the `R` under a parent `P` (its key, and `R`'s
/// column naming it): its children matching every set filter, in `order`,
/// read with the parent in one statement (`store::under`), answered only
/// when the parent is visible to the caller ([`visible_parent`]). The page
/// token is also bound to the filters, `;<column>=<number>` each.
pub(crate) async fn list_children<R: Resource, P: Resource, Q>(
    c: &In<Q>,
    mut paging: Paging<'_>,
    order: Order<R>,
    (column, parent): (&'static str, P::Key),
    filters: &[EnumFilter],
) -> Result<(Vec<R>, String), Error> {
    for f in filters {
        paging = paging.and(&format!("{}={}", f.column, f.number));
    }
    let values: Vec<store::Filter> = filters.iter().map(|f| (f.column, f.value)).collect();
    list_page(c, paging, order, move |conn, call, page| {
        Box::pin(async move {
            let (cursor, limit) = (order.cursor(page), page.limit());
            let at = (column, parent);
            let found = store::list_children(conn, call.org_id, at, &values, cursor, limit).await?;
            visible_parent::<P, R>(call, found)
        })
    })
    .await
}

/// The children a list read with their parent `P` (`store::under`), when
/// the parent is there and visible to the caller: else `P`'s `NOT_FOUND`
/// ([`resource::seen`]), exactly as a check of the parent before the list
/// would answer. Every list of a parent's children reads this way, in one
/// statement.
pub(crate) fn visible_parent<P: Resource, R>(
    call: &Call,
    (parent, rows): (Option<P>, Vec<R>),
) -> Result<Vec<R>, Error> {
    resource::seen(call, parent)?;
    Ok(rows)
}

/// A List of the `R` under the parent `P` a request names in `field`
/// (`sprint_id`; its token bound to `sprint=<id>`), in `order`: the
/// parent's id parsed, then [`list_children`] with no filters.
pub(crate) async fn list_under<R: Resource, P, K, Q>(
    c: &In<Q>,
    (field, parent): (&'static str, &str),
    (size, token): (i32, &str),
    order: Order<R>,
) -> Result<(Vec<R>, String), Error>
where
    P: Resource<Key = foundry_domain::Id<K>>,
{
    let parent: P::Key = Violations::require_id_of(field, parent)?;
    let name = field.strip_suffix("_id").unwrap_or(field);
    let paging = Paging::under(name, parent, size, token);
    list_children::<R, P, Q>(c, paging, order, (field, parent), &[]).await
}

/// A resource listed under its parent by [`list`]: in what order.
pub(crate) trait Listed: Wire {
    /// The order of its list: newest first unless it has positions.
    fn order() -> Order<Self> {
        Order::newest()
    }
}

/// AIP-132 List of the `R` under the `P` the request names in its one id
/// field (`aip::ChildListRequest`): [`list_under`] in `R`'s order, as the
/// list's response.
pub(crate) async fn list<R, P, K, Q>(c: In<Q>) -> Reply<Q::Reply>
where
    R: Listed,
    P: Resource<Key = foundry_domain::Id<K>>,
    Q: ChildListRequest + Unary,
    Q::Reply: ListResponse<Item = R::Message>,
{
    let q = &c.req;
    let (parent, paging) = ((Q::PARENT, q.parent()), (q.page_size(), q.page_token()));
    let (rows, next_page_token) = list_under::<R, P, K, Q>(&c, parent, paging, R::order()).await?;
    page(&rows, next_page_token)
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

//! `TaskService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_domain::Id;
use foundry_outbox::{Call, EventBuilder};
use foundry_platform::Error;
use foundry_platform::convert::opt_timestamp;
use foundry_platform::db::{Tx, check_etag};
use foundry_platform::rpc::Served;
use foundry_platform::validate::Violations;
use foundry_proto::aip::{ListRequest, ListResponse};
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_proto::service::delivery_v1 as svc;
use foundry_resource::{self as resource, Create, Delete, Resource, Update, stamped};
use uuid::Uuid;

use crate::State;
use crate::api::{
    In, Order, Paging, PathOf, Reply, Wire, each, in_program, list_page, long_description,
    once_each, page, title, user_ids, visible_parent,
};
use crate::api::{members, standard};
use crate::domain::{
    self, NewTask, ProgramId, Sprint, Task, TaskChange, TaskMove, TaskPath, TaskStatus,
};
use crate::domain::{Program, Requirement};
use crate::store::{self, Lock};

impl Wire for Task {
    type Message = pb::Task;

    fn to_proto(&self) -> pb::Task {
        let f = &self.fields;
        pb::Task {
            program_id: f.program_id.to_string(),
            requirement_id: f.requirement_id.map(|x| x.to_string()).unwrap_or_default(),
            title: f.title.clone(),
            description: f.description.clone(),
            status: pb::TaskStatus::from(f.status) as i32,
            assignee_ids: f.assignee_ids.iter().map(Id::to_string).collect(),
            estimate_hours: f.estimate_hours,
            due_time: opt_timestamp(f.due_time),
            labels: f.labels.clone(),
            sprint_id: f.sprint_id.map(|x| x.to_string()).unwrap_or_default(),
            ..stamped(self.id, &self.stamp)
        }
    }

    fn parse(v: &mut Violations, t: &pb::Task) -> Option<NewTask> {
        let program_id = v.id_of("task.program_id", &t.program_id);
        let requirement_id = v.maybe_id("task.requirement_id", &t.requirement_id);
        let title = title(v, "task.title", &t.title);
        let description = long_description(v, "task.description", &t.description);
        let status = initial_status(
            v,
            ("task.status", t.status),
            (TaskStatus::Backlog, TaskStatus::is_initial),
            "a new task is BACKLOG or TODO",
        );
        let assignee_ids = assignees(v, &t.assignee_ids);
        let estimate_hours = estimate(v, t.estimate_hours);
        let due_time = v.opt_time("task.due_time", t.due_time.as_ref());
        let labels = labels(v, &t.labels);
        let sprint_id = v.maybe_id("task.sprint_id", &t.sprint_id);
        Some(NewTask {
            program_id: program_id?,
            requirement_id: requirement_id?,
            title: title?,
            description: description?,
            status: status?,
            assignee_ids: assignee_ids?,
            estimate_hours: estimate_hours?,
            due_time: due_time?,
            labels: labels?,
            sprint_id: sprint_id?,
        })
    }

    fn change(v: &mut Violations, path: PathOf<Self>, t: &Self::Message) -> Option<Self::Change> {
        match path {
            TaskPath::RequirementId => v
                .maybe_id("task.requirement_id", &t.requirement_id)
                .map(TaskChange::RequirementId),
            TaskPath::Title => title(v, "task.title", &t.title).map(TaskChange::Title),
            TaskPath::Description => {
                long_description(v, "task.description", &t.description).map(TaskChange::Description)
            }
            TaskPath::AssigneeIds => assignees(v, &t.assignee_ids).map(TaskChange::AssigneeIds),
            TaskPath::EstimateHours => estimate(v, t.estimate_hours).map(TaskChange::EstimateHours),
            TaskPath::DueTime => v
                .opt_time("task.due_time", t.due_time.as_ref())
                .map(TaskChange::DueTime),
            TaskPath::Labels => labels(v, &t.labels).map(TaskChange::Labels),
            TaskPath::SprintId => v
                .maybe_id("task.sprint_id", &t.sprint_id)
                .map(TaskChange::SprintId),
        }
    }
}

const MAX_ASSIGNEES: usize = 32;
const MAX_LABELS: usize = 32;
const MAX_ESTIMATE_HOURS: f64 = 10_000.0;

/// The status a new task or work order starts in, from `field` (its proto
/// number `value`): unset, `default`; else a status `is_initial` accepts,
/// or `refusal` is recorded.
///
/// Shared by tasks and work orders (goals start the same way): a candidate
/// for `api/mod.rs`.
pub(crate) fn initial_status<S: TryFrom<i32> + Copy>(
    v: &mut Violations,
    (field, value): (&str, i32),
    (default, is_initial): (S, fn(S) -> bool),
    refusal: &str,
) -> Option<S> {
    match value {
        0 => Some(default),
        s => match v.enum_value::<S>(field, s) {
            Some(s) if is_initial(s) => Some(s),
            Some(_) => {
                v.add(field, refusal);
                None
            }
            None => None,
        },
    }
}

/// The assignees' field.
const ASSIGNEES: &str = "task.assignee_ids";

fn assignees(v: &mut Violations, ids: &[String]) -> Option<Vec<domain::UserId>> {
    user_ids(v, ASSIGNEES, ids, MAX_ASSIGNEES)
        .map(|ids| ids.into_iter().map(Id::from_uuid).collect())
}

/// Labels, each once, in the given order.
fn labels(v: &mut Violations, labels: &[String]) -> Option<Vec<String>> {
    if labels.len() > MAX_LABELS {
        v.add("task.labels", format!("at most {MAX_LABELS} labels"));
        return None;
    }
    each(v, "task.labels", labels, |v, field, s| {
        v.text(field, s, 1, 64)
    })
    .map(once_each)
}

fn estimate(v: &mut Violations, hours: Option<f64>) -> Option<Option<f64>> {
    match hours {
        None => Some(None),
        Some(h) if h.is_finite() && (0.0..=MAX_ESTIMATE_HOURS).contains(&h) => Some(Some(h)),
        Some(_) => {
            v.add(
                "task.estimate_hours",
                format!("must be 0..{MAX_ESTIMATE_HOURS}"),
            );
            None
        }
    }
}

#[async_trait]
impl Create for Task {
    fn checks(new: &NewTask) -> bool {
        new.requirement_id.is_some() || new.sprint_id.is_some() || !new.assignee_ids.is_empty()
    }

    /// The requirement and sprint if any are visible, in the program (held:
    /// `Resource::WITHIN`), and held (`FOR KEY SHARE`) until commit; the
    /// assignees are members.
    async fn check_new(new: &NewTask, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        if let Some(r) = new.requirement_id {
            in_program::<Requirement>(tx, call, new.program_id, r, "requirement").await?;
        }
        if let Some(s) = new.sprint_id {
            in_program::<Sprint>(tx, call, new.program_id, s, "sprint").await?;
        }
        let assignees = members::listed(ASSIGNEES, &new.assignee_ids, &[]);
        members::members_only(tx, call, assignees).await
    }
}

#[async_trait]
impl Update for Task {
    /// A new requirement or sprint must be visible and in the task's
    /// program; a new assignee must be a member.
    async fn check(&self, before: &Task, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        if let Some(r) = self.fields.requirement_id
            && self.fields.requirement_id != before.fields.requirement_id
        {
            in_program::<Requirement>(tx, call, self.fields.program_id, r, "requirement").await?;
        }
        if let Some(s) = self.fields.sprint_id
            && self.fields.sprint_id != before.fields.sprint_id
        {
            in_program::<Sprint>(tx, call, self.fields.program_id, s, "sprint").await?;
        }
        let held = &before.fields.assignee_ids;
        let added = members::listed(ASSIGNEES, &self.fields.assignee_ids, held);
        members::members_only(tx, call, added).await
    }
}

#[async_trait]
impl Delete for Task {
    /// Its subtasks go with it.
    async fn remove(&self, tx: &mut Tx, org_id: Uuid) -> Result<Option<serde_json::Value>, Error> {
        let subtasks = store::delete_task(tx, org_id, self.id).await?;
        Ok(Some(serde_json::json!({ "subtasks": subtasks })))
    }
}

/// A List of a program's tasks or work orders (`R`), newest first: the
/// request's `program_id`, `status` (of `R`'s statuses `S`), `assignee_id`
/// and two `links` (request fields named as their columns, each empty:
/// any) checked together, the program visible to the caller, the page
/// token bound to every filter.
///
/// Shared by tasks and work orders (`work_orders.rs` calls it).
pub(crate) async fn list_assigned<R, S, Q, P>(
    c: &In<Q>,
    (program_id, status, assignee_id): (&str, i32, &str),
    links: [(&'static str, &str); 2],
) -> Reply<P>
where
    R: Wire + store::Assigned,
    S: domain::StoredEnum + TryFrom<i32>,
    Q: ListRequest,
    P: ListResponse<Item = R::Message>,
{
    let (size, token) = (c.req.page_size(), c.req.page_token());
    let mut v = Violations::new();
    let program: Option<ProgramId> = v.id_of("program_id", program_id);
    let in_status = v.opt_enum_value::<S>("status", status);
    let assignee = v.opt_id("assignee_id", assignee_id);
    let linked = links.map(|(field, value)| (field, v.opt_id(field, value)));
    let program_id = v.finish_with(|| program)?;
    let filter = store::AssignedFilter {
        program_id: program_id.uuid(),
        status: in_status.map(S::as_str),
        assignee_id: assignee,
        links: linked,
    };
    let mut paging = Paging::under("program", program_id, size, token)
        .and(&format!("status={status};assignee={assignee_id}"));
    for (field, value) in links {
        let name = field.strip_suffix("_id").unwrap_or(field);
        paging = paging.and(&format!("{name}={value}"));
    }
    let (rows, next_page_token) = list_page(c, paging, Order::<R>::newest(), |conn, call, page| {
        Box::pin(async move {
            let found =
                store::list_assigned(conn, call.org_id, filter, page.after, page.limit()).await?;
            visible_parent::<Program, R>(call, found)
        })
    })
    .await?;
    page(&rows, next_page_token)
}

/// A `Change<X>StatusRequest`'s `id` and the `status` it moves to.
pub(crate) fn parse_move<K, S: TryFrom<i32>>(id: &str, status: i32) -> Result<(Id<K>, S), Error> {
    let mut v = Violations::new();
    let id = v.id_of("id", id);
    let to = v.enum_value("status", status);
    v.finish_with(|| Some((id?, to?)))
}

/// The `R` of `id` a method moves (to another status), at `etag`: visible
/// to the caller and locked `FOR NO KEY UPDATE` in `tx`.
pub(crate) async fn lock_at<R, K>(
    tx: &mut Tx,
    call: &Call,
    id: Id<K>,
    etag: &str,
) -> Result<R, Error>
where
    R: Resource<Key = Id<K>>,
{
    let r: R = resource::fetch(tx, call, id, Lock::NoKeyUpdate).await?;
    check_etag(etag, r.version(), R::NAME)?;
    Ok(r)
}

/// The end of a method that moves `before` (read by [`lock_at`]): `after`,
/// as written, recorded as `<KIND>.<verb>` (its diff, and what `event`
/// adds) and committed, or if there is no `after` (it was there already)
/// `before`, with no event. Its message.
pub(crate) async fn moved<R: Wire>(
    tx: Tx,
    call: &Call,
    verb: &str,
    (before, after): (R, Option<R>),
    event: impl FnOnce(EventBuilder) -> EventBuilder,
) -> Reply<R::Message> {
    let Some(after) = after else {
        tx.commit().await.map_err(Error::from)?;
        return Ok(before.to_proto());
    };
    let diff = call
        .actor
        .event(&format!("{}.{verb}", R::KIND), R::KIND, after.key())
        .project(after.project())
        .diff(&before, &after);
    event(diff).commit(tx).await?;
    Ok(after.to_proto())
}

/// `TaskService`.
pub(crate) fn service(state: &Arc<State>) -> Served<svc::TaskService> {
    standard::<Task, _>(state)
        .call(list_tasks)
        .call(change_task_status)
        .complete()
}

async fn list_tasks(c: In<pb::ListTasksRequest>) -> Reply<pb::ListTasksResponse> {
    let r = &c.req;
    let links = [
        ("requirement_id", &r.requirement_id[..]),
        ("sprint_id", &r.sprint_id),
    ];
    let at = (&r.program_id[..], r.status, &r.assignee_id[..]);
    list_assigned::<Task, TaskStatus, _, _>(&c, at, links).await
}

/// The task row is locked (`FOR NO KEY UPDATE`) before its open
/// subtasks are counted; subtask writers take `FOR SHARE` on it, so no
/// subtask is added or reopened between the count and the move.
async fn change_task_status(c: In<pb::ChangeTaskStatusRequest>) -> Reply<pb::Task> {
    let In {
        state,
        call,
        req: r,
    } = &c;
    let (id, to) = parse_move::<_, TaskStatus>(&r.id, r.status)?;
    let mut tx = state.db.tenant(call.org_id).await?;
    let task: Task = lock_at(&mut tx, call, id, &r.etag).await?;
    let from = task.fields.status;
    let open = if to == TaskStatus::Done && from != TaskStatus::Done {
        store::count_open_subtasks(&mut tx, call.org_id, id).await?
    } else {
        0
    };
    let step = domain::change_task_status(from, to, open, r.force).map_err(Error::from)?;
    let after = match step {
        TaskMove::Unchanged => None,
        _ => Some(store::set_status(&mut tx, call.org_id, id, to).await?),
    };
    moved(tx, call, "change_status", (task, after), |e| match step {
        TaskMove::Forced => e.set("forced", true).set("open_subtasks", open),
        _ => e,
    })
    .await
}

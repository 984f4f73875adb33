//! What every resource must do, checked once for all of them: each resource
//! registers a [`Resource`] (ordinary async closures over real gRPC calls)
//! and its test calls [`check`]. A resource's own tests then cover only its
//! own rules.
//!
//! The checks, each in fresh organizations of one [`TestApp`]:
//! - [`foreign_org_is_not_found`]: another organization's caller gets
//!   `NOT_FOUND` `<NAME>_NOT_FOUND` on get, update and delete;
//! - [`stale_etags_are_aborted`]: update and delete with a stale etag are
//!   `ABORTED` `ETAG_MISMATCH`;
//! - [`request_ids_replay`]: a repeated `request_id` returns the first
//!   resource (one row, one event); reused with another body it is
//!   `INVALID_ARGUMENT` `REQUEST_ID_REUSED`;
//! - [`one_audit_event_per_mutation`]: create, update and delete each leave
//!   exactly one outbox event naming the resource;
//! - [`bad_masks_are_refused`]: unknown, output-only and repeated mask paths
//!   are `INVALID_ARGUMENT` on `update_mask`, naming the path;
//! - [`pages_have_no_gaps_or_repeats`]: pages of 2 over 5 resources list
//!   each exactly once.
//!
//! A resource without an update (API keys, say) registers `update: None`:
//! the checks then skip what needs one (the masks; the update's event). One
//! removed by a state change rather than deleted (a revoked key) registers
//! its removal with [`revoke`] instead of [`delete`]: its event is named by
//! its verb, and it stays readable afterwards.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;
use tonic::{Code, Status};

use crate::{Member, TestApp};

/// A boxed future, as the operations of a [`Resource`] return.
pub type BoxFut<T> = Pin<Box<dyn Future<Output = T>>>;

/// What an operation runs as: the app, the caller, and what the resource's
/// `setup` made for the caller's organization (a program, say).
pub struct Scope<C> {
    /// The suite.
    pub app: Arc<TestApp>,
    /// The caller.
    pub member: Member,
    /// What `setup` returned for the caller's organization.
    pub ctx: Arc<C>,
}

impl<C> Clone for Scope<C> {
    fn clone(&self) -> Self {
        Scope {
            app: self.app.clone(),
            member: self.member.clone(),
            ctx: self.ctx.clone(),
        }
    }
}

impl<C> Scope<C> {
    /// The caller's bearer token.
    pub fn token(&self) -> &str {
        &self.member.token
    }
}

/// A resource as its create, get, update or list answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Made {
    /// Its id.
    pub id: String,
    /// Its etag.
    pub etag: String,
}

/// `setup(app, member)`: what the resource needs in the member's org.
pub type Setup<C> = Box<dyn Fn(Arc<TestApp>, Member) -> BoxFut<C>>;
/// `create(scope, request_id, variant)`: a new resource; `variant` changes
/// the request body (same variant, same body).
pub type Create<C> = Box<dyn Fn(Scope<C>, Option<String>, u32) -> BoxFut<Result<Made, Status>>>;
/// `get(scope, id)`.
pub type Get<C> = Box<dyn Fn(Scope<C>, String) -> BoxFut<Result<Made, Status>>>;
/// `list(scope, page_size, page_token)`: one page of ids in the scope's
/// context, and the next page token.
pub type List<C> =
    Box<dyn Fn(Scope<C>, i32, String) -> BoxFut<Result<(Vec<String>, String), Status>>>;
/// `update(scope, id, etag, mask_paths)`: sets a new value (different from
/// the current one) for every updatable path it knows, sends only
/// `mask_paths` in the mask; returns the new etag.
pub type Update<C> =
    Box<dyn Fn(Scope<C>, String, String, Vec<String>) -> BoxFut<Result<String, Status>>>;
/// `delete(scope, id, etag)`.
pub type DeleteFn<C> = Box<dyn Fn(Scope<C>, String, String) -> BoxFut<Result<(), Status>>>;

/// How a resource is removed: deleted (then gone) or revoked (a state
/// change, after which it is still found).
pub struct Delete<C> {
    /// The call.
    pub call: DeleteFn<C>,
    /// Its audit verb: `delete`, `revoke`.
    pub verb: &'static str,
    /// Whether `get` still finds the resource afterwards.
    pub kept: bool,
}

/// A resource registered with the harness. `C` is what `setup` makes.
pub struct Resource<C> {
    /// For messages: `"task"`.
    pub name: &'static str,
    /// The service's outbox table: `"delivery.outbox"`.
    pub outbox: &'static str,
    /// The audit events' `resource_type`: `"delivery.task"`.
    pub audit_resource_type: &'static str,
    /// The audit actions' prefix: `"delivery.task"` for
    /// `delivery.task.create|update|delete`.
    pub audit_action_prefix: &'static str,
    /// An updatable mask path, which `update` changes and the update's
    /// audit event names in `changes` (unused without `update`).
    pub update_path: &'static str,
    /// An output-only path, which masks must refuse (unused without
    /// `update`).
    pub output_only_path: &'static str,
    /// See [`Setup`].
    pub setup: Setup<C>,
    /// See [`Create`].
    pub create: Create<C>,
    /// See [`Get`].
    pub get: Get<C>,
    /// See [`List`].
    pub list: List<C>,
    /// See [`Update`]; `None` for a resource that is never updated.
    pub update: Option<Update<C>>,
    /// See [`Delete`]; `None` for a resource that is never deleted.
    pub delete: Option<Delete<C>>,
}

/// Boxes a `setup` closure.
pub fn setup<C, F, Fut>(f: F) -> Setup<C>
where
    F: Fn(Arc<TestApp>, Member) -> Fut + 'static,
    Fut: Future<Output = C> + 'static,
{
    Box::new(move |app, m| Box::pin(f(app, m)))
}

/// Boxes a `create` closure.
pub fn create<C, F, Fut>(f: F) -> Create<C>
where
    F: Fn(Scope<C>, Option<String>, u32) -> Fut + 'static,
    Fut: Future<Output = Result<Made, Status>> + 'static,
{
    Box::new(move |s, rid, variant| Box::pin(f(s, rid, variant)))
}

/// Boxes a `get` closure.
pub fn get<C, F, Fut>(f: F) -> Get<C>
where
    F: Fn(Scope<C>, String) -> Fut + 'static,
    Fut: Future<Output = Result<Made, Status>> + 'static,
{
    Box::new(move |s, id| Box::pin(f(s, id)))
}

/// Boxes a `list` closure.
pub fn list<C, F, Fut>(f: F) -> List<C>
where
    F: Fn(Scope<C>, i32, String) -> Fut + 'static,
    Fut: Future<Output = Result<(Vec<String>, String), Status>> + 'static,
{
    Box::new(move |s, size, token| Box::pin(f(s, size, token)))
}

/// Boxes an `update` closure.
pub fn update<C, F, Fut>(f: F) -> Option<Update<C>>
where
    F: Fn(Scope<C>, String, String, Vec<String>) -> Fut + 'static,
    Fut: Future<Output = Result<String, Status>> + 'static,
{
    Some(Box::new(move |s, id, etag, paths| {
        Box::pin(f(s, id, etag, paths))
    }))
}

/// Boxes a `delete` closure: the resource is gone afterwards.
pub fn delete<C, F, Fut>(f: F) -> Option<Delete<C>>
where
    F: Fn(Scope<C>, String, String) -> Fut + 'static,
    Fut: Future<Output = Result<(), Status>> + 'static,
{
    Some(Delete {
        call: Box::new(move |s, id, etag| Box::pin(f(s, id, etag))),
        verb: "delete",
        kept: false,
    })
}

/// Boxes a removal by state change (`revoke(scope, id, etag)`), audited as
/// `verb`: the resource is still found afterwards.
pub fn revoke<C, F, Fut>(verb: &'static str, f: F) -> Option<Delete<C>>
where
    F: Fn(Scope<C>, String, String) -> Fut + 'static,
    Fut: Future<Output = Result<(), Status>> + 'static,
{
    Some(Delete {
        call: Box::new(move |s, id, etag| Box::pin(f(s, id, etag))),
        verb,
        kept: true,
    })
}

impl<C> Resource<C> {
    /// A new organization, with what `setup` makes in it.
    async fn scope(&self, app: &Arc<TestApp>, name: &str) -> Scope<C> {
        let member = app.new_org(name).await;
        let ctx = (self.setup)(app.clone(), member.clone()).await;
        Scope {
            app: app.clone(),
            member,
            ctx: Arc::new(ctx),
        }
    }

    async fn make(&self, s: &Scope<C>, request_id: Option<String>, variant: u32) -> Made {
        (self.create)(s.clone(), request_id, variant)
            .await
            .unwrap_or_else(|e| panic!("{}: create: {e:?}", self.name))
    }

    /// Updates `update_path`; the new etag. `None` without `update`.
    async fn update_ok(&self, s: &Scope<C>, id: &str, etag: &str) -> Option<String> {
        let update = self.update.as_ref()?;
        let etag = update(
            s.clone(),
            id.to_owned(),
            etag.to_owned(),
            vec![self.update_path.to_owned()],
        )
        .await
        .unwrap_or_else(|e| panic!("{}: update {}: {e:?}", self.name, self.update_path));
        Some(etag)
    }

    /// Every id `list` pages through with `page_size`, in order.
    async fn list_all(&self, s: &Scope<C>, page_size: i32) -> Vec<String> {
        let (mut ids, mut token) = (Vec::new(), String::new());
        for _ in 0..1000 {
            let (page, next) = (self.list)(s.clone(), page_size, token)
                .await
                .unwrap_or_else(|e| panic!("{}: list: {e:?}", self.name));
            assert!(
                page.len() <= usize::try_from(page_size).unwrap_or(usize::MAX),
                "{}: a page of {page_size} held {}",
                self.name,
                page.len()
            );
            ids.extend(page);
            if next.is_empty() {
                return ids;
            }
            token = next;
        }
        panic!("{}: list never ended", self.name)
    }

    /// Asserts `got` is `NOT_FOUND` with the reason `<NAME>_NOT_FOUND`
    /// (`SPRINT_GATE_NOT_FOUND` for `"sprint gate"`).
    fn expect_not_found<T: std::fmt::Debug>(&self, got: Result<T, Status>, what: &str) {
        let reason = format!("{}_NOT_FOUND", self.name.to_uppercase().replace(' ', "_"));
        expect(got, Code::NotFound, &reason, what);
    }

    fn action(&self, verb: &str) -> String {
        format!("{}.{verb}", self.audit_action_prefix)
    }
}

/// Runs every check on `resource`.
pub async fn check<C>(app: TestApp, resource: &Resource<C>) {
    let app = Arc::new(app);
    foreign_org_is_not_found(&app, resource).await;
    stale_etags_are_aborted(&app, resource).await;
    request_ids_replay(&app, resource).await;
    one_audit_event_per_mutation(&app, resource).await;
    bad_masks_are_refused(&app, resource).await;
    pages_have_no_gaps_or_repeats(&app, resource).await;
}

/// Another organization's caller gets `NOT_FOUND` on get, update and
/// delete, and the resource is left as it was.
pub async fn foreign_org_is_not_found<C>(app: &Arc<TestApp>, r: &Resource<C>) {
    let mine = r.scope(app, "conf-owner").await;
    let theirs = r.scope(app, "conf-foreign").await;
    let made = r.make(&mine, None, 0).await;
    let what = |op: &str| format!("{}: {op} from another organization", r.name);
    let got = (r.get)(theirs.clone(), made.id.clone()).await;
    r.expect_not_found(got, &what("get"));
    if let Some(update) = &r.update {
        let updated = update(
            theirs.clone(),
            made.id.clone(),
            made.etag.clone(),
            vec![r.update_path.to_owned()],
        )
        .await;
        r.expect_not_found(updated, &what("update"));
    }
    if let Some(delete) = &r.delete {
        let deleted = (delete.call)(theirs.clone(), made.id.clone(), made.etag.clone()).await;
        r.expect_not_found(deleted, &what(delete.verb));
    }
    let still = (r.get)(mine, made.id.clone())
        .await
        .unwrap_or_else(|e| panic!("{}: get by its owner: {e:?}", r.name));
    assert_eq!(still, made, "{}: changed by another organization", r.name);
}

/// Update and delete with a stale etag are `ABORTED` `ETAG_MISMATCH`, and
/// change nothing. Without `update` nothing can make an etag stale, so the
/// delete is sent one the resource never had (its own with `0` appended).
pub async fn stale_etags_are_aborted<C>(app: &Arc<TestApp>, r: &Resource<C>) {
    let s = r.scope(app, "conf-etag").await;
    let made = r.make(&s, None, 0).await;
    let (fresh, stale_etag) = match r.update_ok(&s, &made.id, &made.etag).await {
        Some(fresh) => {
            assert_ne!(fresh, made.etag, "{}: an update keeps the etag", r.name);
            (fresh, made.etag.clone())
        }
        None => (made.etag.clone(), format!("{}0", made.etag)),
    };
    if let Some(update) = &r.update {
        let stale = update(
            s.clone(),
            made.id.clone(),
            stale_etag.clone(),
            vec![r.update_path.to_owned()],
        )
        .await;
        expect(
            stale,
            Code::Aborted,
            "ETAG_MISMATCH",
            &format!("{}: update with a stale etag", r.name),
        );
    }
    if let Some(delete) = &r.delete {
        let stale = (delete.call)(s.clone(), made.id.clone(), stale_etag).await;
        expect(
            stale,
            Code::Aborted,
            "ETAG_MISMATCH",
            &format!("{}: {} with a stale etag", r.name, delete.verb),
        );
    }
    let now = (r.get)(s, made.id.clone())
        .await
        .unwrap_or_else(|e| panic!("{}: get: {e:?}", r.name));
    assert_eq!(now.etag, fresh, "{}: changed by a stale-etag call", r.name);
}

/// A create repeated with its `request_id` and body returns the first
/// resource (same id and etag), makes no second row and no second event;
/// the `request_id` with another body is `INVALID_ARGUMENT`
/// `REQUEST_ID_REUSED`.
pub async fn request_ids_replay<C>(app: &Arc<TestApp>, r: &Resource<C>) {
    let s = r.scope(app, "conf-idem").await;
    let before_rows = r.list_all(&s, 100).await.len();
    let before_events = outbox(app, r).await.len();
    let rid = uuid::Uuid::now_v7().to_string();
    let first = r.make(&s, Some(rid.clone()), 0).await;
    let again = (r.create)(s.clone(), Some(rid.clone()), 0)
        .await
        .unwrap_or_else(|e| panic!("{}: create repeated with its request_id: {e:?}", r.name));
    assert_eq!(
        again, first,
        "{}: a repeated request_id did not return the first resource",
        r.name
    );
    let ids = r.list_all(&s, 100).await;
    assert_eq!(
        ids.len(),
        before_rows + 1,
        "{}: a repeated request_id made another row: {ids:?}",
        r.name
    );
    let events = outbox(app, r).await.split_off(before_events);
    assert_eq!(
        actions(&events),
        [r.action("create")],
        "{}: events of a create and its repeat",
        r.name
    );
    let other = (r.create)(s.clone(), Some(rid), 1).await;
    expect(
        other,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
        &format!("{}: request_id reused with another body", r.name),
    );
}

/// Create, update and delete each leave exactly one new outbox event with
/// the action, resource type and id; the update's names the changed field.
pub async fn one_audit_event_per_mutation<C>(app: &Arc<TestApp>, r: &Resource<C>) {
    let s = r.scope(app, "conf-audit").await;
    let mark = outbox(app, r).await.len();
    let made = r.make(&s, None, 0).await;
    let created = one_event(app, r, mark, "create", &made.id).await;
    assert!(
        created["changes"].is_object(),
        "{}: create event without changes: {created}",
        r.name
    );
    let mut etag = made.etag.clone();
    let mark = outbox(app, r).await.len();
    if let Some(fresh) = r.update_ok(&s, &made.id, &made.etag).await {
        let updated = one_event(app, r, mark, "update", &made.id).await;
        assert!(
            updated["changes"].get(r.update_path).is_some(),
            "{}: update event does not name `{}` in changes: {updated}",
            r.name,
            r.update_path
        );
        etag = fresh;
    }
    if let Some(delete) = &r.delete {
        let mark = outbox(app, r).await.len();
        (delete.call)(s.clone(), made.id.clone(), etag)
            .await
            .unwrap_or_else(|e| panic!("{}: {}: {e:?}", r.name, delete.verb));
        one_event(app, r, mark, delete.verb, &made.id).await;
        let got = (r.get)(s, made.id).await;
        let what = format!("{}: get after {}", r.name, delete.verb);
        if delete.kept {
            got.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        } else {
            r.expect_not_found(got, &what);
        }
    }
}

/// Unknown, output-only and repeated mask paths are each
/// `INVALID_ARGUMENT`, with a violation of `update_mask` naming the path.
/// Nothing to check without `update`.
pub async fn bad_masks_are_refused<C>(app: &Arc<TestApp>, r: &Resource<C>) {
    let Some(update) = &r.update else {
        return;
    };
    let s = r.scope(app, "conf-mask").await;
    let made = r.make(&s, None, 0).await;
    let mark = outbox(app, r).await.len();
    let cases: [(&str, Vec<&str>, &str); 3] = [
        ("an unknown path", vec!["no_such_field"], "no_such_field"),
        (
            "an output-only path",
            vec![r.output_only_path],
            r.output_only_path,
        ),
        (
            "a repeated path",
            vec![r.update_path, r.update_path],
            r.update_path,
        ),
    ];
    for (case, paths, named) in cases {
        let what = format!("{}: update mask with {case} {paths:?}", r.name);
        let got = update(
            s.clone(),
            made.id.clone(),
            made.etag.clone(),
            paths.iter().map(|p| (*p).to_owned()).collect(),
        )
        .await;
        let status = expect(got, Code::InvalidArgument, "INVALID_ARGUMENT", &what);
        let violations = field_violations(&status);
        assert!(
            violations
                .iter()
                .any(|(field, why)| field == "update_mask" && why.contains(named)),
            "{what}: no violation of update_mask naming `{named}`: {violations:?}"
        );
    }
    assert_eq!(
        outbox(app, r).await.len(),
        mark,
        "{}: a refused update wrote an event",
        r.name
    );
}

/// Pages of 2 over 5 resources list every one exactly once.
pub async fn pages_have_no_gaps_or_repeats<C>(app: &Arc<TestApp>, r: &Resource<C>) {
    let s = r.scope(app, "conf-pages").await;
    let existing = r.list_all(&s, 100).await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(r.make(&s, None, i).await.id);
    }
    let listed = r.list_all(&s, 2).await;
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        listed.len(),
        "{}: pages of 2 repeat ids: {listed:?}",
        r.name
    );
    for id in &made {
        assert!(
            listed.contains(id),
            "{}: pages of 2 skip {id}: {listed:?}",
            r.name
        );
    }
    assert_eq!(
        listed.len(),
        existing.len() + made.len(),
        "{}: pages of 2 list {listed:?}; made {made:?} beside {existing:?}",
        r.name
    );
}

/// The payloads of the resource's service outbox, oldest first.
pub async fn outbox<C>(app: &TestApp, r: &Resource<C>) -> Vec<Value> {
    let mut db = app.admin_db().await;
    sqlx::query_scalar(&format!(
        "SELECT payload FROM {} WHERE kind = 'audit' ORDER BY id",
        r.outbox
    ))
    .fetch_all(&mut db)
    .await
    .expect("read the outbox")
}

fn actions(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The one event written since `mark`, checked against `verb` and `id`.
async fn one_event<C>(app: &TestApp, r: &Resource<C>, mark: usize, verb: &str, id: &str) -> Value {
    let mut events = outbox(app, r).await.split_off(mark);
    assert_eq!(
        actions(&events),
        [r.action(verb)],
        "{}: a {verb} wrote not exactly one event: {events:?}",
        r.name
    );
    let e = events.remove(0);
    assert_eq!(e["resource_id"], id, "{}: {verb} event: {e}", r.name);
    assert_eq!(
        e["resource_type"], r.audit_resource_type,
        "{}: {verb} event: {e}",
        r.name
    );
    e
}

/// Asserts `r` failed with `code` and `ErrorInfo.reason`; returns the
/// status.
pub fn expect<T: std::fmt::Debug>(
    r: Result<T, Status>,
    code: Code,
    reason: &str,
    what: &str,
) -> Status {
    let status = match r {
        Ok(v) => panic!("{what}: expected {code:?} {reason}, got Ok({v:?})"),
        Err(s) => s,
    };
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert_eq!(error_reason(&status), reason, "{what}: {status:?}");
    status
}

fn error_reason(status: &Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// The `(field, description)` pairs of a status's `BadRequest`.
pub fn field_violations(status: &Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default()
}

//! The standard methods (AIP-131 Get, 133 Create, 134 Update, 135 Delete)
//! written once. A resource describes itself with [`Resource`] (its kind
//! and table; its key, version and project are its `foundry_domain::
//! Record`) and, for each method it has, [`Create`], [`Update`] or
//! [`Delete`] (their SQL is the resource's: [`Resource::insert`],
//! [`Resource::write`]). Rows are
//! read and written by the names of the domain struct's fields ([`row`]),
//! so a plain resource's store is its declaration alone. The functions here
//! then do the whole method in one tenant transaction with its audit event
//! (sent with the `COMMIT`: `foundry_platform::commit`):
//!
//! - [`get`]: read, hidden unless visible to the caller (`NOT_FOUND`).
//! - [`create`]: idempotent by request id (replay, `REQUEST_ID_REUSED`),
//!   checks, insert, a `<kind>.create` event with every audited field.
//! - [`update`]: lock, etag, [`Patch::apply`], checks, write, a
//!   `<kind>.update` event whose changes are the diff of before and after.
//! - [`delete`]: lock, etag, remove (with whatever goes with it), a
//!   `<kind>.delete` event with every audited field as removed.
//!
//! Handlers parse the request into domain values, call one of these and
//! convert the result; a resource's own module holds only what is its own
//! (its fields, its checks, its SQL). See `crates/README.md`.

use async_trait::async_trait;
use foundry_domain::{Audited, Patch, Record, Stamp};
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{Db, Lock, Tx, check_etag, etag};
use foundry_platform::idempotency::{self, Begun};
use foundry_tenancy::Caller;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::postgres::PgRow;
use uuid::Uuid;

pub mod row;

/// Shorthand for results of the platform's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stored resource of one organization: a struct `{ id, fields, stamp }`
/// (see [`row`]) whose rows read and write by the names of its fields. Its
/// store is this declaration: its kind and table, and only what differs
/// from the defaults (a column computed on insert, a unique constraint's
/// error, what follows a write).
#[async_trait]
pub trait Resource:
    Record + Audited + DeserializeOwned + Clone + Send + Sync + Sized + 'static
{
    /// What a create parses into and [`Resource::insert`] writes.
    type New: Serialize + Send + Sync;

    /// `<service>.<resource>`: the audit events' resource type; their
    /// actions are `<KIND>.create`, `<KIND>.update`, `<KIND>.delete`.
    const KIND: &'static str;
    /// What a message calls it (`task`).
    const NAME: &'static str;
    /// Its table, keyed by `(org_id, id)`.
    const TABLE: &'static str;
    /// The columns it is read from (every one, by default).
    const COLUMNS: &'static str = "*";
    /// The reason of its `NOT_FOUND` (`TASK_NOT_FOUND`).
    const NOT_FOUND: &'static str;
    /// Columns the database computes on insert (a column taken from the
    /// parent, a position appended). None by default.
    const COMPUTED: &'static [Computed] = &[];
    /// Its table's unique constraints that a client can violate (a slug),
    /// each the `ALREADY_EXISTS` it is.
    const UNIQUE: &'static [Unique] = &[];
    /// The project a new one is made in, when it must exist (a delivery
    /// program's children): its insert finds it ([`Within`]). None by
    /// default.
    const WITHIN: Option<Within<Self::New>> = None;

    /// The domain value of a row: by default each field from the column of
    /// its name ([`row::decode`]; stored enums decode loudly).
    fn decode(row: &PgRow) -> Result<Self> {
        row::decode(row, Self::TABLE)
    }

    /// The domain value in the columns `columns` of a row that holds
    /// other columns too (a parent's beside its children's: a child list
    /// read with its parent in one statement). A resource that overrides
    /// [`Resource::decode`] overrides this as well.
    fn decode_columns(row: &PgRow, columns: std::ops::Range<usize>) -> Result<Self> {
        row::decode_columns(row, Self::TABLE, columns)
    }

    /// A failed insert or write as the error a client sees: by default a
    /// violated [`Resource::UNIQUE`] constraint is its `ALREADY_EXISTS`,
    /// every other database error its own.
    fn write_error(e: sqlx::Error) -> Error {
        match Self::UNIQUE
            .iter()
            .find(|u| foundry_platform::error::is_unique_violation(&e, u.constraint))
        {
            Some(u) => Error::already_exists(u.reason, u.field, u.message),
            None => e.into(),
        }
    }

    /// Inserts it, made by `created_by`: by default each member of `New`
    /// to the column of its name, with a new id and [`Resource::COMPUTED`]
    /// ([`row::insert`]), then [`Resource::written`].
    async fn insert(new: &Self::New, tx: &mut Tx, org_id: Uuid, created_by: Uuid) -> Result<Self> {
        row::insert::<Self>(tx, org_id, created_by, new)
            .await?
            .written(None, tx, org_id)
            .await
    }

    /// Writes its own fields (`before`: the value as read); returns the
    /// stored value (new version): by default every member of `fields` to
    /// the column of its name ([`row::write`]), then [`Resource::written`].
    async fn write(&self, before: &Self, tx: &mut Tx, org_id: Uuid) -> Result<Self> {
        row::write(tx, org_id, self)
            .await?
            .written(Some(before), tx, org_id)
            .await
    }

    /// What follows every insert (`before` none) and write of its row, in
    /// the same transaction (an index table made to match, by what changed
    /// since `before`); returns it as it is then.
    async fn written(self, before: Option<&Self>, tx: &mut Tx, org_id: Uuid) -> Result<Self> {
        let _ = (before, tx, org_id);
        Ok(self)
    }

    /// `NOT_FOUND` with the resource's own reason: "<NAME> not found".
    fn not_found() -> Error {
        Error::not_found(Self::NOT_FOUND, Self::NAME)
    }
}

/// A resource [`update`] can change (its SQL is [`Resource::write`]).
#[async_trait]
pub trait Update: Resource + Patch {
    /// Rules that need the database, on the patched value (references into
    /// other resources); `before` is the value as read.
    async fn check(&self, before: &Self, tx: &mut Tx, call: &Call) -> Result<()> {
        let _ = (before, tx, call);
        Ok(())
    }
}

/// A resource [`create`] can make (its SQL is [`Resource::insert`]).
#[async_trait]
pub trait Create: Resource {
    /// Whether [`Create::check_new`] needs the database for `new` (by
    /// default it may). When it does not, a resource [`Resource::WITHIN`] a
    /// project is made in one statement, its insert finding the project;
    /// when it does, the project is held first, by a statement of its own,
    /// so that a missing project is what the create is refused for and is
    /// locked before anything `check_new` locks.
    fn checks(new: &Self::New) -> bool {
        let _ = new;
        true
    }

    /// Rules that need the database (the parent exists, is visible, and
    /// does not vanish before commit), run once the project
    /// ([`Resource::WITHIN`]) is held.
    async fn check_new(new: &Self::New, tx: &mut Tx, call: &Call) -> Result<()> {
        let _ = (new, tx, call);
        Ok(())
    }
}

/// The project a new resource is made in (a delivery program): a resource
/// that is its own project, so a caller sees it exactly when [`Caller::sees`]
/// its id as one. A create within one is refused with its `NOT_FOUND` when
/// the caller does not see it, or it is missing (another organization's),
/// and holds it (`FOR KEY SHARE`) until commit, so it does not vanish
/// before: the insert does it ([`row::insert_row`] inserts nothing then),
/// or, when [`Create::checks`], a statement before the checks.
#[derive(Debug)]
pub struct Within<N> {
    /// The project's table (`programs`).
    pub table: &'static str,
    /// The member of the new record, and column, that holds its id
    /// (`program_id`).
    pub key: &'static str,
    /// Its id in a new record.
    pub id: fn(&N) -> Uuid,
    /// The refusal (`PROGRAM_NOT_FOUND`).
    pub not_found: fn() -> Error,
}

impl<N> Clone for Within<N> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<N> Copy for Within<N> {}

impl<N> Within<N> {
    /// Within `P`, its id in the member `key` of a new record (`id` reads
    /// it).
    pub const fn project<P: Resource>(key: &'static str, id: fn(&N) -> Uuid) -> Within<N> {
        Within {
            table: P::TABLE,
            key,
            id,
            not_found: P::not_found,
        }
    }

    /// The project of `new`, if the caller sees it.
    fn seen(&self, new: &N, call: &Call) -> Result<Uuid> {
        let id = (self.id)(new);
        match call.caller.sees(Some(id), id) {
            true => Ok(id),
            false => Err((self.not_found)()),
        }
    }

    /// Holds the project `id` (`FOR KEY SHARE`) until commit.
    async fn hold(&self, tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<()> {
        let found = sqlx::query(&format!(
            "SELECT FROM {} WHERE org_id = $1 AND id = $2 FOR KEY SHARE",
            self.table
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        found.map(drop).ok_or_else(self.not_found)
    }
}

/// A resource [`delete`] can remove.
#[async_trait]
pub trait Delete: Resource {
    /// Removes it and whatever goes with it; returns what else went (it is
    /// recorded on the event as `removed`). By default: its row alone.
    async fn remove(&self, tx: &mut Tx, org_id: Uuid) -> Result<Option<Value>> {
        remove_row::<Self>(tx, org_id, self.key()).await?;
        Ok(None)
    }
}

/// The names a [`Resource`] impl declares, from its service, its name in
/// snake case and its table: `KIND` `<service>.<name>`, `NAME` the name in
/// words (`sprint gate`), `TABLE`, and `NOT_FOUND` the name in upper case
/// with `_NOT_FOUND` (`SPRINT_GATE_NOT_FOUND`).
///
/// ```ignore
/// impl Resource for SprintGate {
///     type New = NewSprintGate;
///     foundry_resource::names!("delivery", "sprint_gate", "sprint_gates");
/// }
/// ```
#[macro_export]
macro_rules! names {
    ($service:literal, $name:literal, $table:literal) => {
        const KIND: &'static str = concat!($service, ".", $name);
        const NAME: &'static str = $crate::const_format::str_replace!($name, "_", " ");
        const TABLE: &'static str = $table;
        const NOT_FOUND: &'static str = $crate::const_format::concatcp!(
            $crate::const_format::map_ascii_case!($crate::const_format::Case::Upper, $name),
            "_NOT_FOUND"
        );
    };
}

#[doc(hidden)]
pub use const_format;

/// A unique constraint of a resource's table, and the `ALREADY_EXISTS` a
/// write that violates it is.
#[derive(Clone, Copy, Debug)]
pub struct Unique {
    /// The constraint (`features_slug_key`).
    pub constraint: &'static str,
    /// The error's reason (`FEATURE_SLUG_TAKEN`).
    pub reason: &'static str,
    /// The request field it is about (`feature.slug`).
    pub field: &'static str,
    /// What the client is told.
    pub message: &'static str,
}

/// A column whose value on insert the database computes from the new
/// record (its members as columns) rather than the record giving it.
#[derive(Clone, Copy, Debug)]
pub enum Computed {
    /// `column` is the parent's: that of the row of `parent` whose id is the
    /// record's `key` (a sprint gate's `program_id` is its sprint's).
    FromParent {
        /// The column, in both tables.
        column: &'static str,
        /// The parent's table.
        parent: &'static str,
        /// The record's member holding the parent's id.
        key: &'static str,
    },
    /// `position` is the record's or, when it has none, one after the last
    /// of its siblings (the rows whose `scope` column is the record's).
    Appended {
        /// The column its siblings share (`program_id`).
        scope: &'static str,
    },
}

impl Computed {
    /// The column and the SQL expression of its value in `table`.
    fn sql(self, table: &str) -> (&'static str, String) {
        match self {
            Computed::FromParent {
                column,
                parent,
                key,
            } => (
                column,
                format!("(SELECT {column} FROM {parent} WHERE org_id = $1 AND id = r.{key})"),
            ),
            Computed::Appended { scope } => (
                "position",
                format!(
                    "coalesce(r.position, (SELECT coalesce(max(position), 0) + 1 FROM {table} \
                     WHERE org_id = $1 AND {scope} = r.{scope}))"
                ),
            ),
        }
    }
}

/// Whether `caller` may see `r`: a credential bound to a project sees only
/// what its binding admits (that project's resources, or its one
/// resource; nothing of the organization as a whole); others see all of
/// their organization's ([`Caller::sees`]).
pub fn visible<R: Resource>(caller: &Caller, r: &R) -> bool {
    caller.sees(r.project(), r.key().into())
}

/// Reads `key` in `org_id` with `lock`, without checking visibility.
pub async fn read<R: Resource>(
    conn: &mut sqlx::PgConnection,
    org_id: Uuid,
    key: R::Key,
    lock: Lock,
) -> Result<Option<R>> {
    let row = sqlx::query(&format!(
        "SELECT {} FROM {} WHERE org_id = $1 AND id = $2{}",
        R::COLUMNS,
        R::TABLE,
        lock.sql()
    ))
    .bind(org_id)
    .bind(key.into())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(R::decode).transpose()
}

/// Reads `key` for the call with `lock` (in a transaction, or none on a
/// [`Db::read`] connection): `NOT_FOUND` when it is missing, another
/// organization's, or outside the caller's project (never which).
pub async fn fetch<R: Resource>(
    conn: &mut sqlx::PgConnection,
    call: &Call,
    key: R::Key,
    lock: Lock,
) -> Result<R> {
    seen(call, read::<R>(conn, call.org_id, key, lock).await?)
}

/// What `found` (the `R` of a key, read for the call's organization) is
/// to the call: `NOT_FOUND` when missing or outside the caller's project
/// (never which).
pub fn seen<R: Resource>(call: &Call, found: Option<R>) -> Result<R> {
    match found {
        Some(r) if visible(&call.caller, &r) => Ok(r),
        _ => Err(R::not_found()),
    }
}

/// Deletes the row of `key` in `org_id`.
pub async fn remove_row<R: Resource>(tx: &mut Tx, org_id: Uuid, key: R::Key) -> Result<()> {
    sqlx::query(&format!(
        "DELETE FROM {} WHERE org_id = $1 AND id = $2",
        R::TABLE
    ))
    .bind(org_id)
    .bind(key.into())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// AIP-131 Get.
pub async fn get<R: Resource>(db: &Db, call: &Call, key: R::Key) -> Result<R> {
    let mut conn = db.read(call.org_id).await?;
    seen(
        call,
        read::<R>(&mut conn, call.org_id, key, Lock::None).await?,
    )
}

/// A create request as [`create`] takes it: its method (the idempotency
/// scope), the request (its fingerprint), its request id and its parsed
/// value.
#[derive(Debug)]
pub struct Creation<'a, M: prost::Message, N> {
    /// The RPC (`CreateTask`).
    pub method: &'static str,
    /// The request as received.
    pub request: &'a M,
    /// Its `request_id`, if any.
    pub request_id: Option<Uuid>,
    /// What it parsed into.
    pub new: N,
}

/// AIP-133 Create, idempotent by request id (AIP-155): a repeat of the same
/// request gets the first response, a reuse with another body is
/// `REQUEST_ID_REUSED`. Returns the response `to_proto` makes, as stored
/// for repeats.
pub async fn create<R, Q, M>(
    db: &Db,
    call: &Call,
    c: Creation<'_, Q, R::New>,
    to_proto: fn(&R) -> M,
) -> Result<M>
where
    R: Create,
    Q: prost::Message + Sync,
    M: prost::Message + Default,
{
    let key = idempotency::Key::of(call.org_id, c.method, c.request_id, c.request);
    let mut tx = match idempotency::begin(db.tenant(call.org_id).await?, key).await? {
        Begun::Replay(previous) => return Ok(previous),
        Begun::New(tx) => tx,
    };
    if let Some(within) = R::WITHIN {
        let project = within.seen(&c.new, call)?;
        if R::checks(&c.new) {
            within.hold(&mut tx, call.org_id, project).await?;
        }
    }
    R::check_new(&c.new, &mut tx, call).await?;
    let r = R::insert(&c.new, &mut tx, call.org_id, call.principal_id()).await?;
    let (_, event) = call
        .actor
        .event(&format!("{}.create", R::KIND), R::KIND, r.key())
        .project(r.project())
        .created(&r)
        .last()?;
    let out = to_proto(&r);
    tx.finish(&out, vec![event]).await?;
    Ok(out)
}

/// AIP-134 Update: the resource locked (`FOR NO KEY UPDATE`), then
/// [`update_locked`].
pub async fn update<R: Update>(
    db: &Db,
    call: &Call,
    key: R::Key,
    etag: &str,
    changes: Vec<R::Change>,
) -> Result<R> {
    let mut tx = db.tenant(call.org_id).await?;
    let before = fetch::<R>(&mut tx, call, key, Lock::NoKeyUpdate).await?;
    update_locked(tx, call, before, etag, changes).await
}

/// AIP-134 Update from its lock on, for a caller that read `before` `FOR
/// NO KEY UPDATE` in `tx` (after other locks, when its lock order differs):
/// its etag checked (empty: none), the changes applied and checked, the
/// write and its event (the diff of before and after), committed.
pub async fn update_locked<R: Update>(
    mut tx: Tx,
    call: &Call,
    before: R,
    etag: &str,
    changes: Vec<R::Change>,
) -> Result<R> {
    check_etag(etag, before.version(), R::NAME)?;
    let mut after = before.clone();
    after.apply(changes).map_err(Error::from)?;
    after.check(&before, &mut tx, call).await?;
    let after = after.write(&before, &mut tx, call.org_id).await?;
    call.actor
        .event(&format!("{}.update", R::KIND), R::KIND, after.key())
        .project(after.project())
        .diff(&before, &after)
        .commit(tx)
        .await?;
    Ok(after)
}

/// AIP-135 Delete: the resource locked, its etag checked (empty: none),
/// removed with whatever goes with it, and its event, in one transaction.
/// Returns the removed value.
pub async fn delete<R: Delete>(db: &Db, call: &Call, key: R::Key, etag: &str) -> Result<R> {
    let mut tx = db.tenant(call.org_id).await?;
    let r = fetch::<R>(&mut tx, call, key, Lock::Update).await?;
    check_etag(etag, r.version(), R::NAME)?;
    let also = r.remove(&mut tx, call.org_id).await?;
    let mut event = call
        .actor
        .event(&format!("{}.delete", R::KIND), R::KIND, key)
        .project(r.project())
        .removed(&r);
    if let Some(also) = also {
        event = event.set("removed", also);
    }
    event.commit(tx).await?;
    Ok(r)
}

/// A resource message with its id and [`Stamp`] set and every other field
/// at its default: the base a resource's `to_proto` fills in
/// (`pb::Goal { title, .., ..stamped(self.id, &self.stamp) }`).
pub fn stamped<M: foundry_proto::aip::Stamped>(id: impl std::fmt::Display, s: &Stamp) -> M {
    let w = WireStamp::from(s);
    M::stamped(
        id.to_string(),
        w.created_by,
        w.create_time,
        w.update_time,
        w.etag,
    )
}

/// The wire half of a [`Stamp`]: the output-only fields every resource
/// message has.
#[derive(Clone, Debug, PartialEq)]
pub struct WireStamp {
    /// `created_by`.
    pub created_by: String,
    /// `create_time`.
    pub create_time: Option<prost_types::Timestamp>,
    /// `update_time`.
    pub update_time: Option<prost_types::Timestamp>,
    /// `etag`.
    pub etag: String,
}

impl From<&Stamp> for WireStamp {
    fn from(s: &Stamp) -> WireStamp {
        WireStamp {
            created_by: s.created_by.to_string(),
            create_time: Some(timestamp(s.created_at)),
            update_time: Some(timestamp(s.updated_at)),
            etag: etag(s.version),
        }
    }
}

#[cfg(test)]
mod names_tests {
    /// What a `Resource` impl gets from [`names!`](crate::names).
    struct SprintGate;

    impl SprintGate {
        crate::names!("delivery", "sprint_gate", "sprint_gates");
    }

    #[test]
    fn names_derive_from_the_service_the_snake_case_name_and_the_table() {
        assert_eq!(SprintGate::KIND, "delivery.sprint_gate");
        assert_eq!(SprintGate::NAME, "sprint gate");
        assert_eq!(SprintGate::TABLE, "sprint_gates");
        assert_eq!(SprintGate::NOT_FOUND, "SPRINT_GATE_NOT_FOUND");
    }
}

//! PostgreSQL: one schema and one database role per service, embedded
//! forward-only migrations, and transactions that carry the tenant.
//!
//! Row-level security is the second wall behind every `WHERE org_id = $1`:
//! each service's pool connects and then `SET ROLE foundry_<schema>`, a
//! role that is neither superuser nor BYPASSRLS (superusers skip RLS even
//! when it is forced), and every tenant transaction sets `app.org_id`. The
//! policies in the migrations admit only rows of that org, so a query that
//! forgets its filter still sees one tenant.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool, Postgres};
use uuid::Uuid;

use crate::error::Error;
pub use crate::reads::ReadPath;

/// A transaction on a service's pool.
pub type Tx = sqlx::Transaction<'static, Postgres>;

/// A service's database: its pool (connected as its role, on its schema).
#[derive(Clone, Debug)]
pub struct Db {
    pool: std::sync::Arc<PgPool>,
    schema: &'static str,
    /// The connections of tenant reads ([`Db::read`]).
    reads: std::sync::Arc<crate::reads::Reads>,
}

/// How long a connection must have been idle to be pinged before a
/// transaction takes it.
const PING_IDLE: Duration = Duration::from_secs(1);

/// The database role a service's pool acts as.
pub fn app_role(schema: &str) -> String {
    format!("foundry_{schema}")
}

impl Db {
    /// Applies the service's migrations to its schema, then opens a pool
    /// whose connections act as the service's role.
    pub async fn open(
        url: &str,
        schema: &'static str,
        migrator: &Migrator,
        max_connections: u32,
    ) -> anyhow::Result<Db> {
        migrate(url, schema, migrator).await?;
        Self::connect(url, schema, max_connections).await
    }

    /// Opens the pool without migrating.
    pub async fn connect(
        url: &str,
        schema: &'static str,
        max_connections: u32,
    ) -> anyhow::Result<Db> {
        let options = PgConnectOptions::from_str(url)
            .context("DATABASE_URL is not a PostgreSQL URL")?
            .application_name(&format!("foundry-{schema}"));
        let setup = format!(
            "SET search_path TO {schema}; SET ROLE {role}",
            role = app_role(schema)
        );
        let reads = crate::reads::Reads::new(options.clone(), setup.clone(), max_connections);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(Duration::from_secs(300))
            // The pool pings a connection idle for a while before handing it
            // out, so one that died while idle (a PostgreSQL restart, which
            // takes longer than that) is replaced instead of failing a call.
            // A connection in use a moment ago is handed out as it is: its
            // ping was a round trip of every transaction (a fifth of
            // CreateTask's), now that reads have connections of their own.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _| {
                let setup = setup.clone();
                Box::pin(async move {
                    conn.execute(setup.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to PostgreSQL for schema {schema}"))?;
        let db = Db {
            pool: std::sync::Arc::new(pool),
            schema,
            reads: std::sync::Arc::new(reads),
        };
        db.check_role().await?;
        observe_pool(&db, max_connections);
        Ok(db)
    }

    /// Refuses a pool whose role would step around row-level security: the
    /// role its connections act as must be the service's own
    /// ([`app_role`]), neither superuser nor `BYPASSRLS` (both skip every
    /// policy, forced or not), and own none of the schema's tables (an
    /// owner may turn their policies off).
    async fn check_role(&self) -> anyhow::Result<()> {
        let (schema, expected) = (self.schema, app_role(self.schema));
        let (role, superuser, bypass, owned): (String, bool, bool, Vec<String>) = sqlx::query_as(
            "SELECT current_user::text, r.rolsuper, r.rolbypassrls, \
                    coalesce(array_agg(t.tablename::text ORDER BY t.tablename) \
                             FILTER (WHERE t.tablename IS NOT NULL), '{}') \
             FROM pg_roles r \
             LEFT JOIN pg_tables t ON t.schemaname = $1 AND t.tableowner = r.rolname \
             WHERE r.rolname = current_user GROUP BY r.rolsuper, r.rolbypassrls",
        )
        .bind(schema)
        .fetch_one(&*self.pool)
        .await
        .with_context(|| format!("checking the database role of schema {schema}"))?;
        let refuse = |why: String| {
            anyhow::anyhow!(
                "refusing to start: the {schema} service's connections act as database role \
                 {role}, which {why}; row-level security would not hold. Connect as a login role \
                 that is a member of {expected} and owns the schema's tables, while {expected} \
                 stays NOSUPERUSER NOBYPASSRLS and owns nothing (deploy/k8s/README.md)"
            )
        };
        if role != expected {
            return Err(refuse(format!("is not {expected}")));
        }
        if superuser {
            return Err(refuse("is a superuser".into()));
        }
        if bypass {
            return Err(refuse("has BYPASSRLS".into()));
        }
        if !owned.is_empty() {
            return Err(refuse(format!("owns its tables {}", owned.join(", "))));
        }
        Ok(())
    }

    /// The pool, for queries outside a transaction.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The service's schema.
    pub fn schema(&self) -> &'static str {
        self.schema
    }

    /// A transaction acting for one organization: row-level security admits
    /// only that organization's rows. One round trip (`BEGIN` and the setting
    /// travel as one simple query).
    pub async fn tenant(&self, org_id: Uuid) -> Result<Tx, Error> {
        // `org_id` is a Uuid, so its text form cannot inject anything.
        let begin = format!("BEGIN; SET LOCAL app.org_id = '{org_id}'");
        Ok(self.pool.begin_with(begin).await?)
    }

    /// A connection for one organization's reads, each a single statement
    /// outside any transaction: row-level security admits only that
    /// organization's rows, and a read costs one round trip when a
    /// connection set to the organization is idle (`crate::reads`). For a
    /// call that reads several statements that must agree, or locks, use
    /// [`Db::tenant`].
    pub async fn read(&self, org_id: Uuid) -> Result<crate::reads::Read, Error> {
        match self.reads.path() {
            ReadPath::Session => self.reads.checkout(org_id).await,
            ReadPath::Transaction => Ok(crate::reads::Read::in_transaction(
                self.tenant(org_id).await?,
                org_id,
            )),
        }
    }

    /// How [`Db::read`] reaches the database from now on, for every clone
    /// of this `Db` ([`ReadPath`]; reads under way finish on their path).
    pub fn set_read_path(&self, path: ReadPath) {
        self.reads.set_path(path);
    }

    /// A transaction acting for one user across organizations (their
    /// memberships, sessions): row-level security admits rows of that user.
    pub async fn user(&self, user_id: Uuid) -> Result<Tx, Error> {
        let begin = format!("BEGIN; SET LOCAL app.user_id = '{user_id}'");
        Ok(self.pool.begin_with(begin).await?)
    }

    /// A transaction that row-level security lets see every tenant: only for
    /// work that cannot know the tenant before reading (resolving a
    /// credential by its hash, the outbox relay). Call sites are few and
    /// greppable by this name.
    pub async fn system(&self) -> Result<Tx, Error> {
        Ok(self
            .pool
            .begin_with("BEGIN; SET LOCAL app.system = 'on'")
            .await?)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.reads.close();
        self.pool.close().await;
    }
}

/// What a usage gauge reads of one set of connections: the most, the
/// open ones and the idle ones; `None` once they are gone or closed.
type Usage = Box<dyn Fn() -> Option<(u64, u64, u64)> + Send>;

/// The connection sets the usage gauges read, by name: each reads through
/// a weak reference, so that a gauge never keeps a pool (and its
/// connections) open after its last [`Db`] is dropped.
type Observed = Vec<(String, Usage)>;

static OBSERVED: std::sync::Mutex<Observed> = std::sync::Mutex::new(Vec::new());

/// The pools' usage as gauges, read at each collection (no cost between):
/// `db.client.connection.count` by `pool.name` and `state` (`idle`,
/// `used`), and `db.client.connection.max` by `pool.name`. A service has
/// two: its transaction pool, named by its schema (`delivery`), and its
/// tenant read connections (`delivery.reads`, [`Db::read`]). Pools of one
/// name in one process (tests) are summed. The gauges are registered once
/// per process and read the pools alive at the time.
fn observe_pool(db: &Db, max_connections: u32) {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    let pool = std::sync::Arc::downgrade(&db.pool);
    let reads = std::sync::Arc::downgrade(&db.reads);
    let max = u64::from(max_connections);
    let mut observed = OBSERVED.lock().unwrap_or_else(|e| e.into_inner());
    observed.push((
        db.schema.to_owned(),
        Box::new(move || {
            let pool = pool.upgrade().filter(|p| !p.is_closed())?;
            Some((max, u64::from(pool.size()), pool.num_idle() as u64))
        }),
    ));
    observed.push((
        format!("{}.reads", db.schema),
        Box::new(move || {
            let reads = reads.upgrade().filter(|r| !r.is_closed())?;
            Some(reads.usage())
        }),
    ));
    drop(observed);
    REGISTERED.call_once(|| {
        let meter = opentelemetry::global::meter("foundry-db");
        meter
            .u64_observable_gauge("db.client.connection.count")
            .with_description("Connections of a service's pool, by state")
            .with_callback(|o| {
                for (name, (_, size, idle)) in pool_usage() {
                    for (state, n) in [("idle", idle), ("used", size.saturating_sub(idle))] {
                        o.observe(
                            n,
                            &[
                                opentelemetry::KeyValue::new("pool.name", name.clone()),
                                opentelemetry::KeyValue::new("state", state),
                            ],
                        );
                    }
                }
            })
            .build();
        meter
            .u64_observable_gauge("db.client.connection.max")
            .with_description("The most connections a service's pool opens")
            .with_callback(|o| {
                for (name, (max, _, _)) in pool_usage() {
                    o.observe(max, &[opentelemetry::KeyValue::new("pool.name", name)]);
                }
            })
            .build();
    });
}

/// Per pool name: the most connections, the open ones and the idle ones,
/// of the pools still open (the dropped ones leave the list).
fn pool_usage() -> std::collections::BTreeMap<String, (u64, u64, u64)> {
    let mut observed = OBSERVED.lock().unwrap_or_else(|e| e.into_inner());
    let mut usage = std::collections::BTreeMap::new();
    observed.retain(|(name, read)| {
        let Some((max, open, idle)) = read() else {
            return false;
        };
        let e: &mut (u64, u64, u64) = usage.entry(name.clone()).or_default();
        e.0 += max;
        e.1 += open;
        e.2 += idle;
        true
    });
    usage
}

/// A listener on the notification `channel` of `db` (the outbox's and the
/// job queue's wake-ups), or `None` with a warning naming `who` when it
/// cannot listen: the caller then polls.
pub async fn listen(db: &Db, channel: &str, who: &str) -> Option<sqlx::postgres::PgListener> {
    let mut l = match sqlx::postgres::PgListener::connect_with(db.pool()).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "{who}: no listener connection; polling");
            return None;
        }
    };
    match l.listen(channel).await {
        Ok(()) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "{who}: LISTEN {channel} failed; polling");
            None
        }
    }
}

/// Waits for a notification on `listener` for at most `poll` (or just
/// `poll`, without one).
pub async fn notified_or(listener: Option<&mut sqlx::postgres::PgListener>, poll: Duration) {
    match listener {
        Some(l) => {
            let _ = tokio::time::timeout(poll, l.recv()).await;
        }
        None => tokio::time::sleep(poll).await,
    }
}

/// Deletes the rows of `table` whose time `column` lies more than `keep`
/// in the past (by the database's clock; `keep` zero: every row whose
/// time has come), 5,000 at a time, each batch its own system-scoped
/// transaction; returns how many went. What every sweep of expiring rows
/// (request ids, spent credentials) runs.
pub async fn sweep(db: &Db, table: &str, column: &str, keep: Duration) -> Result<u64, Error> {
    const BATCH: u64 = 5000;
    let secs = keep.as_secs_f64();
    let sql = format!(
        "DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} \
         WHERE {column} < now() - make_interval(secs => $1) LIMIT {BATCH})"
    );
    let mut total = 0;
    loop {
        let mut tx = db.system().await?;
        let n = sqlx::query(&sql)
            .bind(secs)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

/// Creates the service's schema and role if missing and applies its
/// migrations (forward only; sqlx records them in `<schema>._sqlx_migrations`
/// under an advisory lock, so replicas starting together migrate once).
pub async fn migrate(url: &str, schema: &'static str, migrator: &Migrator) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url)
        .await
        .with_context(|| format!("connecting to PostgreSQL to migrate schema {schema}"))?;
    let role = app_role(schema);
    // Concurrent starts of two replicas may both try to create the role;
    // the loser's duplicate_object is harmless.
    let prepare = format!(
        r#"
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS;
          END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$;
        CREATE SCHEMA IF NOT EXISTS {schema};
        GRANT USAGE ON SCHEMA {schema} TO {role};
        SET search_path TO {schema};
        "#
    );
    conn.execute(prepare.as_str())
        .await
        .with_context(|| format!("preparing schema {schema} and role {role} (the database user needs CREATEROLE, or create the role beforehand)"))?;
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut conn)
            .await?;
    let member: bool = sqlx::query_scalar("SELECT pg_has_role(current_user, $1, 'MEMBER')")
        .bind(&role)
        .fetch_one(&mut conn)
        .await?;
    if !superuser && !member {
        // A non-superuser owner must be a member of the role to SET ROLE
        // (granted here when it made the role; else the operator grants it).
        conn.execute(format!("GRANT {role} TO current_user").as_str())
            .await
            .with_context(|| format!("granting {role} to the connecting user (GRANT {role} TO <login role> as its admin)"))?;
    }
    let outbox = format!(
        "BEGIN; SELECT pg_advisory_xact_lock(hashtext('foundry_outbox_{schema}')); \
         SET LOCAL search_path TO {schema}; SET LOCAL client_min_messages = warning; {OUTBOX_DDL} \
         GRANT SELECT, INSERT, UPDATE, DELETE ON outbox, outbox_seq, outbox_cursors, outbox_parked, inbox TO {role}; {JOBS_DDL} \
         GRANT SELECT, INSERT, UPDATE, DELETE ON jobs, job_schedules TO {role}; COMMIT;"
    );
    conn.execute(outbox.as_str())
        .await
        .with_context(|| format!("creating the outbox of schema {schema}"))?;
    migrator
        .run(&mut conn)
        .await
        .with_context(|| format!("applying migrations to schema {schema}"))?;
    conn.close().await.ok();
    Ok(())
}

/// Every service schema's outbox (see the `foundry-outbox` crate): audit
/// events written in the mutation's transaction, read and deleted by the
/// relay under system scope only. A statement trigger notifies
/// `outbox_<schema>` so the relay wakes on commit instead of polling.
/// Idempotent; applied by [`migrate`] before the service's own migrations.
pub const OUTBOX_DDL: &str = r#"
CREATE TABLE IF NOT EXISTS outbox (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Events the audit service refused as invalid (a producer bug): set aside
-- with the reason so they stop blocking the rest, and kept for repair.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS parked_at timestamptz;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS parked_reason text;
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS producer ON outbox;
DROP POLICY IF EXISTS relay ON outbox;
CREATE POLICY producer ON outbox FOR INSERT WITH CHECK (
    org_id = NULLIF(current_setting('app.org_id', true), '')::uuid
    OR coalesce(current_setting('app.system', true), '') = 'on'
    OR NULLIF(current_setting('app.user_id', true), '') IS NOT NULL);
CREATE POLICY relay ON outbox USING (coalesce(current_setting('app.system', true), '') = 'on');
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
-- Typed envelopes: an audit event, a domain event or a usage record, each
-- of a type (an audit event's action) at a schema version.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'audit';
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS type text;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS version integer NOT NULL DEFAULT 1;
-- Commit order per organization: each event takes the next number of its
-- organization's counter as it is inserted, and the counter's row stays
-- locked until the transaction ends, so an organization's events are
-- numbered in the order their transactions commit (whatever the order of
-- their ids, minted before), and no number is ever seen before a smaller
-- one of the same organization.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS seq bigint;
CREATE TABLE IF NOT EXISTS outbox_seq (
    org_id uuid PRIMARY KEY,
    seq    bigint NOT NULL
);
ALTER TABLE outbox_seq ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_seq FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS producer ON outbox_seq;
CREATE POLICY producer ON outbox_seq USING (
    org_id = NULLIF(current_setting('app.org_id', true), '')::uuid
    OR coalesce(current_setting('app.system', true), '') = 'on'
    OR NULLIF(current_setting('app.user_id', true), '') IS NOT NULL);
WITH numbered AS (
    SELECT id, row_number() OVER (PARTITION BY org_id ORDER BY id) AS n FROM outbox WHERE seq IS NULL)
UPDATE outbox o SET seq = numbered.n
    + coalesce((SELECT s.seq FROM outbox_seq s WHERE s.org_id = o.org_id), 0)
FROM numbered WHERE o.id = numbered.id;
INSERT INTO outbox_seq (org_id, seq) SELECT org_id, max(seq) FROM outbox GROUP BY org_id
    ON CONFLICT (org_id) DO UPDATE SET seq = GREATEST(outbox_seq.seq, EXCLUDED.seq);
-- (Its own schema's counter, whatever the inserting session's search path.)
CREATE OR REPLACE FUNCTION outbox_sequence() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO outbox_seq AS s (org_id, seq) VALUES (NEW.org_id, 1)
        ON CONFLICT (org_id) DO UPDATE SET seq = s.seq + 1
        RETURNING s.seq INTO NEW.seq;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS outbox_sequence ON outbox;
CREATE TRIGGER outbox_sequence BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_sequence();
ALTER TABLE outbox ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS outbox_org_seq_idx ON outbox (org_id, seq);
DROP INDEX IF EXISTS outbox_live_idx;
DROP INDEX IF EXISTS outbox_org_live_idx;
-- The W3C traceparent of the call that wrote the event, so that the span
-- delivering it links to the mutation's trace.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS traceparent text;
-- Each subscriber's place in each organization's events: an event leaves
-- the outbox once every subscriber of the schema is past it.
CREATE TABLE IF NOT EXISTS outbox_cursors (
    subscriber text NOT NULL,
    org_id     uuid NOT NULL,
    seq        bigint NOT NULL,
    PRIMARY KEY (subscriber, org_id)
);
ALTER TABLE outbox_cursors ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_cursors FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS relay ON outbox_cursors;
CREATE POLICY relay ON outbox_cursors
    USING (coalesce(current_setting('app.system', true), '') = 'on');
-- Events a subscriber refused as invalid (a producer bug): kept, with the
-- reason, for repair; the subscriber's cursor moves past them.
CREATE TABLE IF NOT EXISTS outbox_parked (
    subscriber text NOT NULL,
    event_id   uuid NOT NULL,
    org_id     uuid NOT NULL,
    reason     text NOT NULL,
    parked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscriber, event_id)
);
CREATE INDEX IF NOT EXISTS outbox_parked_event_idx ON outbox_parked (event_id);
ALTER TABLE outbox_parked ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_parked FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS relay ON outbox_parked;
CREATE POLICY relay ON outbox_parked
    USING (coalesce(current_setting('app.system', true), '') = 'on');
-- A subscriber's record of the events it has taken in (by id), so that a
-- redelivery changes nothing.
CREATE TABLE IF NOT EXISTS inbox (
    subscriber  text NOT NULL,
    event_id    uuid NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscriber, event_id)
);
ALTER TABLE inbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE inbox FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS receiver ON inbox;
CREATE POLICY receiver ON inbox
    USING (coalesce(current_setting('app.system', true), '') = 'on');
"#;

/// Every service schema's job queue (see the `foundry-jobs` crate), applied
/// by [`migrate`] with the outbox. A job belongs to an organization (the nil
/// id: the service's own work, such as sweeps); a tenant's transaction may
/// enqueue and read its organization's jobs, only system scope (the
/// workers) claims, finishes or cancels them. Times are written from the
/// queue's clock, never `now()`, so tests drive them.
pub const JOBS_DDL: &str = r#"
CREATE TABLE IF NOT EXISTS jobs (
    id               uuid PRIMARY KEY,
    org_id           uuid NOT NULL,
    kind             text NOT NULL,
    args             jsonb NOT NULL,
    state            text NOT NULL,
    run_at           timestamptz NOT NULL,
    attempt          integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    unique_key       text,
    -- Served as a long-running operation (AIP-151) to its organization.
    operation        boolean NOT NULL DEFAULT false,
    lease            bigint NOT NULL DEFAULT 0,
    lease_until      timestamptz,
    worker           text,
    cancel_requested boolean NOT NULL DEFAULT false,
    errors           jsonb NOT NULL DEFAULT '[]',
    progress         jsonb,
    result           jsonb,
    created_at       timestamptz NOT NULL,
    attempted_at     timestamptz,
    finished_at      timestamptz,
    CONSTRAINT jobs_state CHECK (state IN ('available', 'scheduled', 'retryable', 'running',
        'completed', 'cancelled', 'dead', 'discarded')),
    CONSTRAINT jobs_attempts CHECK (max_attempts >= 1 AND attempt >= 0)
);
-- One pending job per organization, kind and unique key.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique_key ON jobs (org_id, kind, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'retryable', 'running');
-- The claim's walk of the organizations with ready jobs, and each one's oldest.
CREATE INDEX IF NOT EXISTS jobs_available ON jobs (org_id, run_at, id) WHERE state = 'available';
-- Jobs whose time has not come (run-at jobs, retries in backoff).
CREATE INDEX IF NOT EXISTS jobs_waiting ON jobs (run_at) WHERE state IN ('scheduled', 'retryable');
-- Running jobs (they alone hold a lease: lease_until is set by a claim and
-- cleared by every ending): per-organization counts, and lease expiry.
-- Keyed on lease_until, not on state = 'running', so that no index but the
-- primary key serves a statement that finishes jobs by id: with statistics
-- taken when no job ran (a queue's usual state), the planner took such an
-- index for one row and joined every running job against the batch.
DROP INDEX IF EXISTS jobs_running;
DROP INDEX IF EXISTS jobs_running_org;
DROP INDEX IF EXISTS jobs_leases;
CREATE INDEX IF NOT EXISTS jobs_leased_org ON jobs (org_id) WHERE lease_until IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_lease_until ON jobs (lease_until) WHERE lease_until IS NOT NULL;
-- (No index on finished_at: every completion would pay for it; the sweep
-- walks the primary key, ids being minted in time order.)
DROP INDEX IF EXISTS jobs_finished;
CREATE INDEX IF NOT EXISTS jobs_operations ON jobs (org_id, id) WHERE operation;
-- A concurrency key: at most concurrency_limit jobs of the organization with
-- that key run at once (both set, or neither); running ones counted here.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS concurrency_key text;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS concurrency_limit integer;
CREATE INDEX IF NOT EXISTS jobs_leased_key ON jobs (org_id, concurrency_key)
    WHERE lease_until IS NOT NULL AND concurrency_key IS NOT NULL;
ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS producer ON jobs;
DROP POLICY IF EXISTS reader ON jobs;
DROP POLICY IF EXISTS worker ON jobs;
CREATE POLICY producer ON jobs FOR INSERT WITH CHECK (
    org_id = NULLIF(current_setting('app.org_id', true), '')::uuid
    OR coalesce(current_setting('app.system', true), '') = 'on');
CREATE POLICY reader ON jobs FOR SELECT USING (
    org_id = NULLIF(current_setting('app.org_id', true), '')::uuid
    OR coalesce(current_setting('app.system', true), '') = 'on');
CREATE POLICY worker ON jobs USING (coalesce(current_setting('app.system', true), '') = 'on');
-- A statement's new jobs notify the workers once per organization with
-- jobs available now (a worker claims at once for an organization with
-- nothing running), or once without a payload when they are many or none
-- is available yet (the claim loop's round robin and promotions see to
-- them).
CREATE OR REPLACE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    orgs uuid[];
BEGIN
    SELECT array_agg(org_id) INTO orgs FROM (
        SELECT DISTINCT org_id FROM inserted WHERE state = 'available' LIMIT 9) o;
    IF orgs IS NULL OR cardinality(orgs) > 8 THEN
        PERFORM pg_notify('jobs_' || TG_TABLE_SCHEMA, '');
    ELSE
        PERFORM pg_notify('jobs_' || TG_TABLE_SCHEMA, org::text) FROM unnest(orgs) org;
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS jobs_notify ON jobs;
CREATE TRIGGER jobs_notify AFTER INSERT ON jobs REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify();
-- Cron schedules: each enqueues a job of its kind at its times.
CREATE TABLE IF NOT EXISTS job_schedules (
    name        text PRIMARY KEY,
    cron        text NOT NULL,
    time_zone   text NOT NULL,
    kind        text NOT NULL,
    args        jsonb NOT NULL,
    missed      text NOT NULL CHECK (missed IN ('skip', 'once', 'all')),
    next_run_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
ALTER TABLE job_schedules ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_schedules FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS scheduler ON job_schedules;
CREATE POLICY scheduler ON job_schedules
    USING (coalesce(current_setting('app.system', true), '') = 'on');
"#;

/// Row lock taken by a read (PostgreSQL's four row lock modes).
///
/// The order that keeps the rules of a service (delivery's, say) race free: writers of a row take
/// `NoKeyUpdate` (as their `UPDATE` would); deleters take `Update`; a create
/// takes `KeyShare` on its parent (the parent cannot vanish before commit,
/// yet concurrent edits of the parent do not wait); whoever must see a
/// stable set of a row's children takes `NoKeyUpdate` on the row, and
/// children writers that could break the rule take `Share` on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// A plain read.
    None,
    /// `FOR KEY SHARE`.
    KeyShare,
    /// `FOR SHARE`.
    Share,
    /// `FOR NO KEY UPDATE`.
    NoKeyUpdate,
    /// `FOR UPDATE`.
    Update,
}

impl Lock {
    /// The clause that takes it, to append to a `SELECT`.
    pub fn sql(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::KeyShare => " FOR KEY SHARE",
            Lock::Share => " FOR SHARE",
            Lock::NoKeyUpdate => " FOR NO KEY UPDATE",
            Lock::Update => " FOR UPDATE",
        }
    }
}

/// The etag of a row version (AIP-154).
pub fn etag(version: i64) -> String {
    version.to_string()
}

/// Checks a caller's etag (empty: no check) against the current version.
pub fn check_etag(given: &str, version: i64, what: &str) -> Result<(), Error> {
    if given.is_empty() || given == etag(version) {
        Ok(())
    } else {
        Err(Error::stale_etag(what))
    }
}

//! Tenant reads in one round trip ([`crate::db::Db::read`]).
//!
//! A tenant transaction costs four round trips for one `SELECT`: the
//! pool's ping, `BEGIN` with `SET LOCAL app.org_id`, the statement, and
//! `COMMIT`. A read of one statement needs no transaction (the statement is
//! its own), so reads run on connections of their own, each carrying its
//! organization as a *session* setting of `app.org_id`, which row-level
//! security reads as it reads the transaction's. A read takes an idle
//! connection already set to its organization when there is one, and the
//! statement is then its only round trip; otherwise the setting goes first,
//! on the connection idle longest ago (one round trip more).
//!
//! Why a read can never run under another organization's setting:
//! - these connections run only `set_config('app.org_id', …, false)` and
//!   the statements of a [`Read`]; nothing else of the service (user or
//!   system scope, writes) ever runs on them;
//! - a connection's organization is recorded only once its `set_config`
//!   has returned; a checkout abandoned before (a cancelled call) drops the
//!   connection with it, so no connection's setting is ever unknown;
//! - a statement does not change the setting (stores never call
//!   `set_config`; a statement that fails or is cancelled ran in its own
//!   implicit transaction, and the driver reads what a cancelled one left
//!   before the next statement goes);
//! - a transaction begun on a read and dropped unfinished is rolled back
//!   before the connection's next statement (the driver queues the
//!   `ROLLBACK`), and one still open when the read ends closes the
//!   connection. A read runs single statements: never `BEGIN`, `SET` or
//!   `set_config` by hand on one (as no store sets `app.org_id` in a
//!   tenant transaction).
//!
//! A connection idle for [`CHECK_AFTER`] or more is pinged before it
//! serves (one round trip, as the transaction pool does every time), so a
//! restarted database costs no failed read; [`IDLE_TIMEOUT`] closes
//! connections idle longer.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::error::Error;

/// How long an idle connection may go before it is pinged before use.
pub const CHECK_AFTER: Duration = Duration::from_secs(1);

/// How long a connection may stay idle before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a read waits for a connection before `UNAVAILABLE`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The read connections of one service's database.
#[derive(Debug)]
pub(crate) struct Reads {
    options: PgConnectOptions,
    /// Run on each new connection (search path and role).
    setup: String,
    idle: std::sync::Mutex<Vec<Idle>>,
    slots: std::sync::Arc<Semaphore>,
}

#[derive(Debug)]
struct Idle {
    conn: PgConnection,
    org: Uuid,
    since: Instant,
}

impl Reads {
    /// At most `max` connections, opened as they are needed.
    pub(crate) fn new(options: PgConnectOptions, setup: String, max: u32) -> Reads {
        Reads {
            options,
            setup,
            idle: std::sync::Mutex::default(),
            slots: std::sync::Arc::new(Semaphore::new(max.max(1) as usize)),
        }
    }

    /// A connection whose `app.org_id` is `org`.
    pub(crate) async fn checkout(self: &std::sync::Arc<Self>, org: Uuid) -> Result<Read, Error> {
        let slot = tokio::time::timeout(ACQUIRE_TIMEOUT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let found = self.take_idle(org);
        let (mut conn, set) = match found {
            Some(idle) if idle.since.elapsed() < CHECK_AFTER => (idle.conn, Some(idle.org)),
            Some(mut idle) => match idle.conn.ping().await {
                Ok(()) => (idle.conn, Some(idle.org)),
                Err(_) => (self.connect().await?, None),
            },
            None => (self.connect().await?, None),
        };
        if set != Some(org) {
            // `org` is a Uuid: its text form cannot inject anything.
            sqlx::query("SELECT set_config('app.org_id', $1, false)")
                .bind(org.to_string())
                .execute(&mut conn)
                .await?;
        }
        Ok(Read {
            conn: Some(conn),
            org,
            reads: self.clone(),
            _slot: slot,
        })
    }

    /// The idle connection set to `org` used last, or else the one idle
    /// longest (its setting changes); connections idle past
    /// [`IDLE_TIMEOUT`] are closed on the way.
    fn take_idle(&self, org: Uuid) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|i| i.since.elapsed() < IDLE_TIMEOUT);
        if let Some(at) = idle.iter().rposition(|i| i.org == org) {
            return Some(idle.remove(at));
        }
        (!idle.is_empty()).then(|| idle.remove(0))
    }

    async fn connect(&self) -> Result<PgConnection, Error> {
        let mut conn = PgConnection::connect_with(&self.options).await?;
        conn.execute(self.setup.as_str()).await?;
        Ok(conn)
    }

    /// Closes the idle connections (those in use close as they come back).
    pub(crate) fn close(&self) {
        self.slots.close();
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A connection for reads of one organization: row-level security admits
/// only its rows. Run single statements on it (`&mut *read` is an
/// executor), outside any transaction; it goes back when dropped.
#[derive(Debug)]
pub struct Read {
    conn: Option<PgConnection>,
    org: Uuid,
    reads: std::sync::Arc<Reads>,
    _slot: OwnedSemaphorePermit,
}

impl Read {
    /// The organization it reads for.
    pub fn org(&self) -> Uuid {
        self.org
    }
}

impl std::ops::Deref for Read {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("a read holds its connection until dropped")
    }
}

impl std::ops::DerefMut for Read {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("a read holds its connection until dropped")
    }
}

impl Drop for Read {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if conn.is_in_transaction() || self.reads.slots.is_closed() {
            return;
        }
        self.reads
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Idle {
                conn,
                org: self.org,
                since: Instant::now(),
            });
    }
}

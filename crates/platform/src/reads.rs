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
//!
//! [`ReadPath::Transaction`] turns all of this off: each read is then a
//! tenant transaction of the service's pool (`BEGIN; SET LOCAL`, the
//! statements, `COMMIT`), as every read was before. It is for a database
//! reached through a pooler that hands a client's statements to whichever
//! server connection is free (PgBouncer's transaction or statement mode),
//! where a session setting would not stay with the connection it was set on,
//! and it is the baseline `foundry-bench` measures the session path against.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::db::Tx;
use crate::error::Error;

/// How tenant reads reach the database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadPath {
    /// Connections of their own whose session carries the organization: a
    /// read of one statement is one round trip.
    #[default]
    Session,
    /// A tenant transaction of the pool per read: three round trips more,
    /// but safe behind a transaction-mode pooler.
    Transaction,
}

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
    max: u32,
    /// [`ReadPath::Transaction`] is on.
    in_transactions: AtomicBool,
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
            max: max.max(1),
            in_transactions: AtomicBool::new(false),
        }
    }

    /// The path reads take from now on (reads under way finish on theirs).
    pub(crate) fn set_path(&self, path: ReadPath) {
        self.in_transactions
            .store(path == ReadPath::Transaction, Ordering::Relaxed);
        if path == ReadPath::Transaction {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// The path reads take.
    pub(crate) fn path(&self) -> ReadPath {
        if self.in_transactions.load(Ordering::Relaxed) {
            ReadPath::Transaction
        } else {
            ReadPath::Session
        }
    }

    /// The most connections, those open (in use or idle) and the idle ones.
    pub(crate) fn usage(&self) -> (u64, u64, u64) {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
        let used = u64::from(self.max).saturating_sub(self.slots.available_permits() as u64);
        (u64::from(self.max), used + idle, idle)
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
            conn: Some(Conn::Session {
                conn,
                reads: self.clone(),
                _slot: slot,
            }),
            org,
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

    /// Whether [`Reads::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.slots.is_closed()
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
    conn: Option<Conn>,
    org: Uuid,
}

#[derive(Debug)]
enum Conn {
    /// A read connection whose session is set to the organization.
    Session {
        conn: PgConnection,
        reads: std::sync::Arc<Reads>,
        _slot: OwnedSemaphorePermit,
    },
    /// A tenant transaction ([`ReadPath::Transaction`]), committed when the
    /// read is dropped.
    Transaction(Tx),
}

impl Read {
    /// A read in `tx`, a tenant transaction for `org`.
    pub(crate) fn in_transaction(tx: Tx, org: Uuid) -> Read {
        Read {
            conn: Some(Conn::Transaction(tx)),
            org,
        }
    }

    /// The organization it reads for.
    pub fn org(&self) -> Uuid {
        self.org
    }
}

impl std::ops::Deref for Read {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self.conn.as_ref() {
            Some(Conn::Session { conn, .. }) => conn,
            Some(Conn::Transaction(tx)) => tx,
            None => unreachable!("a read holds its connection until dropped"),
        }
    }
}

impl std::ops::DerefMut for Read {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self.conn.as_mut() {
            Some(Conn::Session { conn, .. }) => conn,
            Some(Conn::Transaction(tx)) => tx,
            None => unreachable!("a read holds its connection until dropped"),
        }
    }
}

impl Drop for Read {
    fn drop(&mut self) {
        match self.conn.take() {
            Some(Conn::Session { conn, reads, _slot }) => {
                if conn.is_in_transaction() || reads.is_closed() {
                    return;
                }
                reads
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Idle {
                        conn,
                        org: self.org,
                        since: Instant::now(),
                    });
            }
            // Committed off the caller's path, as a dropped transaction's
            // rollback is; without a runtime, the drop rolls it back.
            Some(Conn::Transaction(tx)) => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let _ = tx.commit().await;
                    });
                }
            }
            None => {}
        }
    }
}

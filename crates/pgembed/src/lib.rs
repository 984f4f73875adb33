//! A private PostgreSQL cluster run from the machine's own PostgreSQL binaries.
//!
//! `foundry serve` uses it when no `DATABASE_URL` is set (a persistent data directory reused
//! across starts); the test kit uses it for one throwaway cluster per test process.
//!
//! The server always runs under a small shell watchdog that fast-stops it once the process
//! that started it is gone, so neither a `static` that is never dropped nor a `kill -9` leaves
//! a postgres behind.

mod access;
mod bins;
mod privilege;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use access::PASSWORD_FILE;
pub use bins::{BIN_DIR_ENV, find_bin_dir, find_bin_dir_with};
use privilege::RunAs;
pub use privilege::{RELOCATED_BASE, reachable_dir};

/// The superuser role `initdb` creates; connect as this user.
pub const SUPERUSER: &str = "foundry";

/// Name of the server log inside the data directory.
pub const LOG_FILE: &str = "postgres.log";

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
const PORT_ATTEMPTS: usize = 3;
const LOG_TAIL_LINES: usize = 20;

/// Watchdog that owns the server process.
///
/// It runs the server in the background and, in a subshell, polls the watched pid once a
/// second. When that pid is gone (or a zombie nobody reaped yet) it sends SIGINT (fast
/// shutdown) to the postmaster, whose pid it reads from `postmaster.pid` because under
/// `runuser` the background job is the `runuser` wrapper, and `runuser` turns signals into
/// SIGTERM followed two seconds later by SIGKILL. It keeps signalling until the server exits
/// because the pid file may not exist yet if the watched process died during startup.
/// The shell itself waits for the server, so its exit status is the server's.
///
/// An ephemeral cluster's data directory is removed once the server has exited because
/// its owner is gone: test processes keep their cluster in a `static` that is never
/// dropped, and without this every test run would leave a cluster on disk.
///
/// Arguments: `$1` watched pid, `$2` data directory, `$3` `1` if ephemeral, the rest is the
/// server command line.
const WATCHDOG: &str = r#"
parent=$1
datadir=$2
ephemeral=$3
shift 3
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/status" ]; then
    while read -r key value rest; do
      if [ "$key" = "State:" ]; then
        [ "$value" != Z ]
        return
      fi
    done < "/proc/$1/status"
  fi
  return 0
}
"$@" &
server=$!
(
  while alive "$parent"; do sleep 1; done
  while kill -0 "$server" 2>/dev/null; do
    pid=
    read -r pid 2>/dev/null < "$datadir/postmaster.pid"
    kill -INT "${pid:-$server}" 2>/dev/null
    sleep 1
  done
) </dev/null >/dev/null 2>&1 &
watcher=$!
wait "$server"
status=$?
kill "$watcher" 2>/dev/null
if [ "$ephemeral" = 1 ] && ! alive "$parent"; then
  rm -rf "$datadir"
fi
exit "$status"
"#;

/// Everything that can go wrong running the embedded cluster. Messages say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// No directory with both `initdb` and `postgres` was found.
    #[error(
        "no PostgreSQL server binaries found (looked in {looked_in}); install them: \
         apt-get install postgresql (Debian/Ubuntu), dnf install postgresql-server (Fedora), \
         brew install postgresql (macOS), or set FOUNDRY_PG_BIN_DIR"
    )]
    NoBinaries {
        /// Where the search looked, for the message.
        looked_in: String,
    },
    /// A filesystem or process operation failed; the first field says which.
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
    /// `initdb` failed.
    #[error("initdb failed; its output:\n{output}")]
    InitDb {
        /// Combined stdout and stderr of `initdb`.
        output: String,
    },
    /// Setting the superuser's password (single-user backend) failed.
    #[error("setting the superuser's password failed; the backend's output:\n{output}")]
    Secure {
        /// Combined stdout and stderr of `postgres --single`, the password elided.
        output: String,
    },
    /// The server exited or did not accept connections in time.
    #[error(
        "PostgreSQL did not start; last lines of {LOG_FILE} in the data directory:\n{log_tail}"
    )]
    Start {
        /// The last lines the server logged during this attempt.
        log_tail: String,
    },
    /// A live server from an earlier run holds the data directory.
    #[error(
        "a PostgreSQL server (pid {pid}) from an earlier run is still using this data \
         directory; stop it (kill -INT {pid}) or use another data directory"
    )]
    AlreadyRunning {
        /// The postmaster's pid, from `postmaster.pid`.
        pid: u32,
    },
    /// The data directory has files but no cluster, so initdb would refuse it.
    #[error(
        "{} is not empty but holds no PostgreSQL cluster (no PG_VERSION); empty it or choose \
         another data directory",
        data_dir.display()
    )]
    NotACluster {
        /// The offending directory.
        data_dir: PathBuf,
    },
    /// We are root and cannot run PostgreSQL as the unprivileged user.
    #[error("running as root, so PostgreSQL must run as user {user:?}, but {problem}")]
    PrivilegeDrop {
        /// The unprivileged user we tried to use.
        user: String,
        /// What stood in the way and how to fix it.
        problem: String,
    },
    /// The server did not exit after fast, immediate and kill signals.
    #[error("PostgreSQL (pid {pid}) did not shut down: {detail}")]
    Stop {
        /// The postmaster's pid.
        pid: u32,
        /// What happened.
        detail: String,
    },
}

/// How to run the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Data directory; created and initdb'ed if empty/missing, reused if it holds a cluster.
    pub data_dir: PathBuf,
    /// TCP port on 127.0.0.1; 0 = pick a free one.
    pub port: u16,
    /// Throwaway cluster for tests: fsync=off, synchronous_commit=off, full_page_writes=off,
    /// little WAL; its data directory is removed when the owning process dies.
    pub ephemeral: bool,
    /// max_connections (default 200).
    pub max_connections: u32,
    /// More server settings (`name=value`), after the ones above.
    pub settings: Vec<String>,
}

impl PgOptions {
    /// A durable cluster in `data_dir` on a free port.
    pub fn persistent(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            port: 0,
            ephemeral: false,
            max_connections: 200,
            settings: Vec::new(),
        }
    }

    /// A throwaway cluster in `data_dir` on a free port, trading durability for speed.
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            ephemeral: true,
            ..Self::persistent(data_dir)
        }
    }
}

/// A running cluster. Stop it with [`EmbeddedPg::stop`]; dropping it stops it too, and if
/// neither happens the watchdog stops it once this process exits.
pub struct EmbeddedPg {
    port: u16,
    data_dir: PathBuf,
    postmaster_pid: u32,
    /// The superuser's password (also in [`PASSWORD_FILE`] in the data directory).
    password: String,
    /// The watchdog shell; `None` once stopped.
    watchdog: Option<Child>,
}

impl std::fmt::Debug for EmbeddedPg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPg")
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field("postmaster_pid", &self.postmaster_pid)
            .finish_non_exhaustive()
    }
}

impl EmbeddedPg {
    /// Finds binaries, initdb if needed (superuser name "foundry", encoding UTF8, locale C),
    /// makes the superuser's password the only way in (see [`PASSWORD_FILE`]; a data directory
    /// of an earlier version, which trusted 127.0.0.1, is secured here), starts postgres
    /// listening on 127.0.0.1:port only, with unix sockets disabled, waits until it accepts
    /// connections (up to ~30 s), and returns.
    ///
    /// A stale `postmaster.pid` from a crashed run is removed; a server of an earlier run that
    /// is still alive on this data directory is an [`PgError::AlreadyRunning`] error.
    pub async fn start(opts: PgOptions) -> Result<EmbeddedPg, PgError> {
        Self::start_watching(opts, std::process::id()).await
    }

    /// [`EmbeddedPg::start`], but the watchdog stops the server when `watched_pid` (rather
    /// than this process) goes away. Exists so tests can exercise the watchdog.
    #[doc(hidden)]
    pub async fn start_watching(opts: PgOptions, watched_pid: u32) -> Result<EmbeddedPg, PgError> {
        blocking(move || start_blocking(&opts, watched_pid)).await
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://foundry:{password}@127.0.0.1:{port}/{database}`: the superuser, with its
    /// password. Treat it as a secret.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// The file (mode 0600, in the data directory) that holds the superuser's password.
    pub fn password_file(&self) -> PathBuf {
        self.data_dir.join(PASSWORD_FILE)
    }

    /// The (absolute) data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The postmaster's pid.
    pub fn pid(&self) -> u32 {
        self.postmaster_pid
    }

    /// Fast shutdown (SIGINT to the postmaster); waits for it to exit, escalating to
    /// immediate shutdown and then SIGKILL if it hangs.
    pub async fn stop(mut self) -> Result<(), PgError> {
        blocking(move || self.shutdown()).await
    }

    fn shutdown(&mut self) -> Result<(), PgError> {
        let Some(mut watchdog) = self.watchdog.take() else {
            return Ok(());
        };
        stop_server(&mut watchdog, self.postmaster_pid)
    }
}

impl Drop for EmbeddedPg {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "stopping embedded PostgreSQL on drop failed");
        }
    }
}

/// Runs blocking work off the async threads; process handling here is all `std`, so `Drop`
/// can share it.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PgError> + Send + 'static,
) -> Result<T, PgError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(PgError::Io(
            "embedded PostgreSQL task".to_owned(),
            io::Error::other(e),
        )),
    }
}

fn start_blocking(opts: &PgOptions, watched_pid: u32) -> Result<EmbeddedPg, PgError> {
    let bin_dir = find_bin_dir()?;
    let run_as = RunAs::detect()?;

    fs::create_dir_all(&opts.data_dir)
        .map_err(|e| io_err(format!("creating {}", opts.data_dir.display()), e))?;
    // The server runs with cwd "/", and postmaster.pid records this path.
    let data_dir = fs::canonicalize(&opts.data_dir)
        .map_err(|e| io_err(format!("resolving {}", opts.data_dir.display()), e))?;

    clear_stale_lock(&data_dir)?;

    if let Some(run_as) = &run_as {
        run_as.take_ownership(&data_dir)?;
        run_as.check_access(&data_dir)?;
    }

    let fresh = !data_dir.join("PG_VERSION").exists();
    if fresh {
        init_cluster(&bin_dir, &data_dir, run_as.as_ref(), opts.ephemeral)?;
    }
    let password = access::secure(&bin_dir, &data_dir, run_as.as_ref(), fresh)?;

    let log_path = data_dir.join(LOG_FILE);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| io_err(format!("opening {}", log_path.display()), e))?;
    if let Some(run_as) = &run_as {
        // So that a later non-root start of the same directory can still append to it.
        std::os::unix::fs::chown(&log_path, Some(run_as.uid), Some(run_as.gid))
            .map_err(|e| io_err(format!("chown {}", log_path.display()), e))?;
    }

    let attempts = if opts.port == 0 { PORT_ATTEMPTS } else { 1 };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = if opts.port == 0 {
            free_port()?
        } else {
            opts.port
        };
        let log_start = log
            .metadata()
            .map_err(|e| io_err(format!("reading {}", log_path.display()), e))?
            .len();

        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg("foundry-pg-watchdog")
            .arg(watched_pid.to_string())
            .arg(&data_dir)
            .arg(if opts.ephemeral { "1" } else { "0" });
        cmd.args(run_as.as_ref().map(RunAs::prefix).unwrap_or_default());
        cmd.arg(bin_dir.join("postgres"))
            .arg("-D")
            .arg(&data_dir)
            .args(server_settings(opts, port));
        cmd.stdin(Stdio::null())
            .stdout(clone_log(&log, &log_path)?)
            .stderr(clone_log(&log, &log_path)?)
            .current_dir("/")
            // English messages, so that a port clash is recognisable in the log.
            .env("LC_ALL", "C")
            // Keep a terminal's Ctrl-C away from the server: the owner decides when to stop
            // it, e.g. after draining requests.
            .process_group(0);
        let mut watchdog = cmd
            .spawn()
            .map_err(|e| io_err("spawning the postgres watchdog (/bin/sh)".to_owned(), e))?;

        match wait_ready(&mut watchdog, &data_dir, &bin_dir, port) {
            Ok(postmaster_pid) => {
                tracing::info!(
                    port,
                    pid = postmaster_pid,
                    data_dir = %data_dir.display(),
                    "embedded PostgreSQL is ready"
                );
                return Ok(EmbeddedPg {
                    port,
                    data_dir,
                    postmaster_pid,
                    password,
                    watchdog: Some(watchdog),
                });
            }
            Err(why) => {
                if watchdog.try_wait().ok().flatten().is_none() {
                    let pid = read_pid_file(&data_dir).map(|f| f.pid);
                    match pid {
                        Some(pid) => {
                            let _ = stop_server(&mut watchdog, pid);
                        }
                        None => {
                            let _ = watchdog.kill();
                            let _ = watchdog.wait();
                        }
                    }
                }
                let tail = log_tail(&log_path, log_start);
                if attempt < attempts && port_clash(&tail) {
                    tracing::debug!(port, "port taken before postgres could bind it; retrying");
                    continue;
                }
                return Err(PgError::Start {
                    log_tail: format!("{tail}\n({why})"),
                });
            }
        }
    }
}

fn io_err(what: String, e: io::Error) -> PgError {
    PgError::Io(what, e)
}

fn clone_log(log: &File, path: &Path) -> Result<File, PgError> {
    log.try_clone()
        .map_err(|e| io_err(format!("duplicating {}", path.display()), e))
}

fn server_settings(opts: &PgOptions, port: u16) -> Vec<String> {
    let mut settings = vec![
        "listen_addresses=127.0.0.1".to_owned(),
        format!("port={port}"),
        // TCP on loopback is the one way in (pg_hba.conf has a rule for it alone), and the
        // Debian default socket directory is not writable by us anyway.
        "unix_socket_directories=".to_owned(),
        "logging_collector=off".to_owned(),
        format!("max_connections={}", opts.max_connections),
    ];
    if opts.ephemeral {
        settings.extend(
            [
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
                // Little WAL kept: tests clone many databases, each a checkpoint.
                "wal_level=minimal",
                "max_wal_senders=0",
                "max_wal_size=64MB",
                "min_wal_size=32MB",
            ]
            .map(str::to_owned),
        );
    }
    settings.extend(opts.settings.iter().cloned());
    // Settings for a diagnosis, e.g. `FOUNDRY_PG_SETTINGS=shared_preload_libraries=pg_stat_statements`
    // to see which statements a benchmark's cluster spends its time on.
    if let Ok(extra) = std::env::var(EXTRA_SETTINGS) {
        settings.extend(extra.split_whitespace().map(str::to_owned));
    }
    settings
        .into_iter()
        .flat_map(|s| ["-c".to_owned(), s])
        .collect()
}

/// Environment variable of extra server settings (`name=value`, separated by
/// white space) for every cluster started; for diagnosis, not for tests.
pub const EXTRA_SETTINGS: &str = "FOUNDRY_PG_SETTINGS";

fn init_cluster(
    bin_dir: &Path,
    data_dir: &Path,
    run_as: Option<&RunAs>,
    ephemeral: bool,
) -> Result<(), PgError> {
    let non_empty = fs::read_dir(data_dir)
        .map_err(|e| io_err(format!("listing {}", data_dir.display()), e))?
        .next()
        .is_some();
    if non_empty {
        return Err(PgError::NotACluster {
            data_dir: data_dir.to_path_buf(),
        });
    }

    let initdb = bin_dir.join("initdb");
    let mut cmd = privilege::command(run_as, &initdb);
    cmd.arg("-D").arg(data_dir).args([
        &format!("--username={SUPERUSER}"),
        // Nothing gets in until `access::secure` has set the password and written pg_hba.conf.
        "--auth=reject",
        "--encoding=UTF8",
        "--locale=C",
    ]);
    if ephemeral {
        cmd.arg("--no-sync");
    }
    tracing::info!(data_dir = %data_dir.display(), "initialising embedded PostgreSQL cluster");
    let out = cmd
        .current_dir("/")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io_err(format!("running {}", initdb.display()), e))?;
    if !out.status.success() {
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        return Err(PgError::InitDb { output });
    }
    Ok(())
}

/// `postmaster.pid` fields we use.
struct PidFile {
    pid: u32,
    port: Option<u16>,
    ready: bool,
}

fn read_pid_file(data_dir: &Path) -> Option<PidFile> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    Some(PidFile {
        pid: lines.first()?.trim().parse().ok()?,
        port: lines.get(3).and_then(|l| l.trim().parse().ok()),
        // Line 8 is the postmaster status, "ready" once it accepts connections.
        ready: lines.get(7).is_some_and(|l| l.trim() == "ready"),
    })
}

fn clear_stale_lock(data_dir: &Path) -> Result<(), PgError> {
    let path = data_dir.join("postmaster.pid");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(format!("reading {}", path.display()), e)),
    };
    let pid: Option<u32> = text.lines().next().and_then(|l| l.trim().parse().ok());
    if let Some(pid) = pid
        && pid != 0
        && postmaster_alive(pid, data_dir)
    {
        return Err(PgError::AlreadyRunning { pid });
    }
    // Postgres would remove it itself only if the pid is free; after a reboot it may belong
    // to an unrelated process, which makes postgres refuse to start.
    match fs::remove_file(&path) {
        Ok(()) => {
            tracing::warn!(pid, path = %path.display(), "removed stale postmaster.pid");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("removing stale {}", path.display()), e)),
    }
}

/// Whether `pid` is a live postmaster serving `data_dir`.
fn postmaster_alive(pid: u32, data_dir: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if Path::new("/proc/self").exists() {
        if !proc_dir.exists() {
            return false;
        }
        let status = fs::read_to_string(proc_dir.join("status")).unwrap_or_default();
        let zombie = status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        if zombie {
            return false;
        }
        // The postmaster chdirs into its data directory, which tells it apart from an
        // unrelated process (or another cluster) that inherited the pid.
        if let Ok(cwd) = fs::read_link(proc_dir.join("cwd")) {
            return cwd == data_dir;
        }
        let comm = fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
        return matches!(comm.trim(), "postgres" | "postmaster");
    }
    Command::new("ps")
        .args(["-p", &pid.to_string(), "-o", "comm="])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| {
            let comm = String::from_utf8_lossy(&out.stdout);
            out.status.success() && (comm.contains("postgres") || comm.contains("postmaster"))
        })
}

fn free_port() -> Result<u16, PgError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| io_err("binding 127.0.0.1:0 to find a free port".to_owned(), e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| io_err("reading the free port".to_owned(), e))
}

/// Waits until our own postmaster accepts connections; returns its pid.
fn wait_ready(
    watchdog: &mut Child,
    data_dir: &Path,
    bin_dir: &Path,
    port: u16,
) -> Result<u32, String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let pg_isready = bin_dir.join("pg_isready");
    let have_pg_isready = bins::is_executable(&pg_isready);
    loop {
        match watchdog.try_wait() {
            Ok(Some(status)) => return Err(describe_exit(status)),
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for postgres: {e}")),
        }
        // The pid file's port check guards against another server that grabbed the port
        // answering in place of ours.
        if let Some(pid_file) = read_pid_file(data_dir)
            && pid_file.ready
            && pid_file.port == Some(port)
            && TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            && (!have_pg_isready || pg_isready_ok(&pg_isready, port))
        {
            return Ok(pid_file.pid);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not accepting connections after {}s",
                READY_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(POLL);
    }
}

fn pg_isready_ok(pg_isready: &Path, port: u16) -> bool {
    Command::new(pg_isready)
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", SUPERUSER, "-d", "postgres", "-t", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn describe_exit(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("postgres exited with status {code}"),
        None => format!("postgres was terminated ({status})"),
    }
}

fn port_clash(log_tail: &str) -> bool {
    log_tail.contains("Address already in use") || log_tail.contains("could not bind IPv4")
}

/// The last lines the server wrote to its log since `from`.
fn log_tail(path: &Path, from: u64) -> String {
    const MAX_BYTES: u64 = 64 * 1024;
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(from.max(len.saturating_sub(MAX_BYTES))))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
            if tail.trim().is_empty() {
                "(the server logged nothing)".to_owned()
            } else {
                tail
            }
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// Sends `signal` to `pid` with the shell's `kill` (no unsafe `libc::kill` here).
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("/bin/sh")
        .args(["-c", r#"kill -s "$1" "$2" 2>/dev/null"#, "sh", signal])
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .status();
}

/// Stops the postmaster and reaps the watchdog, escalating fast → immediate → SIGKILL.
fn stop_server(watchdog: &mut Child, pid: u32) -> Result<(), PgError> {
    // A watchdog that already exited means the server is gone and `pid` may be reused.
    if watchdog.try_wait().ok().flatten().is_some() {
        return Ok(());
    }
    let steps = [
        ("INT", Duration::from_secs(60)),
        ("QUIT", Duration::from_secs(10)),
        ("KILL", Duration::from_secs(5)),
    ];
    for (sig, grace) in steps {
        signal(pid, sig);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            match watchdog.try_wait() {
                Ok(Some(_)) => {
                    if sig != "INT" {
                        tracing::warn!(
                            pid,
                            signal = sig,
                            "embedded PostgreSQL needed SIG{sig} to stop"
                        );
                    }
                    return Ok(());
                }
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => return Err(io_err("waiting for postgres to exit".to_owned(), e)),
            }
        }
    }
    let _ = watchdog.kill();
    let _ = watchdog.wait();
    Err(PgError::Stop {
        pid,
        detail: "still running after SIGINT, SIGQUIT and SIGKILL".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_options_turn_durability_off() {
        let settings = server_settings(&PgOptions::ephemeral("/x"), 5432).join(" ");
        assert!(settings.contains("-c fsync=off"));
        assert!(settings.contains("-c unix_socket_directories="));
        assert!(settings.contains("-c max_connections=200"));
        let durable = server_settings(&PgOptions::persistent("/x"), 5432).join(" ");
        assert!(!durable.contains("fsync"));
    }

    #[test]
    fn a_port_clash_is_recognised_in_the_log() {
        assert!(port_clash(
            "LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use"
        ));
        assert!(!port_clash("FATAL:  data directory has wrong ownership"));
    }
}

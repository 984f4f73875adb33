//! Running the server as an unprivileged user when we are root.
//!
//! PostgreSQL refuses to run as root, and containers and CI usually run us as root, so in that
//! case every server-side binary is started through `runuser -u USER --`.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::PgError;

/// Where a root-started persistent cluster lives when the unprivileged user
/// cannot reach the directory it was meant for (see [`reachable_dir`]).
pub const RELOCATED_BASE: &str = "/var/lib/foundry/pg";

/// Where a persistent cluster meant for `preferred` can live: `preferred`
/// itself, unless we are root and a directory above it is closed to the
/// unprivileged user PostgreSQL runs as (a clone in a `0700` home such as
/// `/root`). Then it is [`RELOCATED_BASE`]`/<preferred's absolute path,
/// each `/` a `-`>` (`/root/foundry/.foundry/pg` →
/// `/var/lib/foundry/pg/root-foundry-.foundry-pg`): the same place on
/// every start from the same directory, which that user can reach.
pub fn reachable_dir(preferred: &Path) -> Result<PathBuf, PgError> {
    let Some(run_as) = RunAs::detect()? else {
        return Ok(preferred.to_owned());
    };
    let absolute = std::path::absolute(preferred)
        .map_err(|e| PgError::Io(format!("resolving {}", preferred.display()), e))?;
    let closed = absolute
        .ancestors()
        .skip(1)
        .filter(|dir| dir.exists())
        .any(|dir| !run_as.can_traverse(dir));
    if !closed {
        return Ok(preferred.to_owned());
    }
    let base = Path::new(RELOCATED_BASE);
    fs::create_dir_all(base).map_err(|e| PgError::Io(format!("creating {}", base.display()), e))?;
    let name = absolute
        .to_string_lossy()
        .trim_start_matches('/')
        .replace('/', "-");
    Ok(base.join(name))
}

/// The unprivileged user that `initdb` and `postgres` run as.
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    runuser: PathBuf,
}

impl RunAs {
    /// `None` when we are not root and can run PostgreSQL directly.
    pub fn detect() -> Result<Option<RunAs>, PgError> {
        if effective_uid() != Some(0) {
            return Ok(None);
        }
        let name = ["postgres", "nobody"]
            .into_iter()
            .find(|name| id_of(name, "-u").is_some())
            .ok_or_else(|| PgError::PrivilegeDrop {
                user: "postgres".to_owned(),
                problem: "neither the `postgres` nor the `nobody` user exists; create one \
                          (useradd --system postgres) or run as a non-root user"
                    .to_owned(),
            })?;
        let uid = id_of(name, "-u");
        let gid = id_of(name, "-g");
        let (Some(uid), Some(gid)) = (uid, gid) else {
            return Err(PgError::PrivilegeDrop {
                user: name.to_owned(),
                problem: format!("`id {name}` did not report its uid and gid"),
            });
        };
        let runuser = find_runuser().ok_or_else(|| PgError::PrivilegeDrop {
            user: name.to_owned(),
            problem: "`runuser` was not found; install util-linux (apt-get install util-linux) \
                      or run as a non-root user"
                .to_owned(),
        })?;
        Ok(Some(RunAs {
            name: name.to_owned(),
            uid,
            gid,
            runuser,
        }))
    }

    /// The argv prefix that makes the rest of the command run as this user.
    pub fn prefix(&self) -> Vec<std::ffi::OsString> {
        vec![
            self.runuser.clone().into_os_string(),
            "-u".into(),
            self.name.clone().into(),
            "--".into(),
        ]
    }

    /// A command that runs `program` as this user.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(&self.runuser);
        cmd.args(["-u", &self.name, "--"]).arg(program);
        cmd
    }

    /// Gives `path` (recursively, if its top is not already ours) to this user.
    pub fn take_ownership(&self, path: &Path) -> Result<(), PgError> {
        let meta = fs::symlink_metadata(path)
            .map_err(|e| PgError::Io(format!("reading {}", path.display()), e))?;
        if meta.uid() == self.uid && meta.gid() == self.gid {
            // A cluster we initialised earlier is already ours throughout; walking a large
            // persistent data directory on every start would only cost time.
            return Ok(());
        }
        chown_tree(path, self.uid, self.gid)
            .map_err(|e| PgError::Io(format!("chown -R {} {}", self.name, path.display()), e))
    }

    /// Fails with an actionable message when this user cannot reach and write `data_dir`.
    pub fn check_access(&self, data_dir: &Path) -> Result<(), PgError> {
        let ok = Command::new(&self.runuser)
            .args(["-u", &self.name, "--", "/bin/sh", "-c"])
            .arg(r#"test -d "$1" && test -w "$1" && test -x "$1""#)
            .arg("sh")
            .arg(data_dir)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
        let blocker = data_dir
            .ancestors()
            .skip(1)
            .find(|dir| !self.can_traverse(dir));
        let problem = match blocker {
            Some(dir) => format!(
                "it cannot reach {}: {} is not executable for other users; \
                 run `chmod o+x {}` or choose a data directory elsewhere",
                data_dir.display(),
                dir.display(),
                dir.display()
            ),
            None => format!(
                "it cannot write {}; check the permissions along that path",
                data_dir.display()
            ),
        };
        Err(PgError::PrivilegeDrop {
            user: self.name.clone(),
            problem,
        })
    }

    fn can_traverse(&self, dir: &Path) -> bool {
        let Ok(meta) = fs::metadata(dir) else {
            return false;
        };
        let mode = meta.mode();
        if meta.uid() == self.uid {
            mode & 0o100 != 0
        } else if meta.gid() == self.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// A command that runs `program` as `run_as`, or as ourselves when that is `None`.
pub(crate) fn command(run_as: Option<&RunAs>, program: &Path) -> Command {
    run_as.map_or_else(|| Command::new(program), |run_as| run_as.command(program))
}

/// The effective uid, without `libc::geteuid` (unsafe code is forbidden here).
pub(crate) fn effective_uid() -> Option<u32> {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        // "Uid:\treal\teffective\tsaved\tfs"
        if let Some(rest) = status.lines().find_map(|l| l.strip_prefix("Uid:")) {
            return rest.split_whitespace().nth(1)?.parse().ok();
        }
    }
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

fn id_of(user: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id")
        .args([flag, user])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

fn find_runuser() -> Option<PathBuf> {
    let fixed = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from);
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    fixed
        .into_iter()
        .chain(from_path)
        .map(|dir| dir.join("runuser"))
        .find(|p| crate::bins::is_executable(p))
}

//! Who may connect: whoever can read the superuser's password, and no one else.
//!
//! The server listens on 127.0.0.1 only and `pg_hba.conf` asks every connection for the
//! superuser's password (SCRAM-SHA-256); nothing is trusted. The password is generated once
//! per cluster and kept in [`PASSWORD_FILE`] (mode 0600) inside the data directory, which
//! PostgreSQL itself keeps at 0700: only the cluster's owner (and root) can read it.
//!
//! A data directory of an earlier version (whose `pg_hba.conf` trusted 127.0.0.1) is secured on
//! its next start, before the server listens: a password is generated and set through a
//! single-user backend (which opens no socket), then `pg_hba.conf` is rewritten.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;

use rand::RngCore;

use crate::privilege::{self, RunAs};
use crate::{PgError, SUPERUSER, io_err};

/// Name of the file in the data directory that holds the superuser's password.
pub const PASSWORD_FILE: &str = "superuser.password";

/// The whole `pg_hba.conf` of an embedded cluster.
const HBA: &str = "\
# Written by foundry-pgembed. The server listens on 127.0.0.1 only, and every connection
# proves the superuser's password (SCRAM-SHA-256), kept in superuser.password (mode 0600)
# in this directory. Nothing is trusted; any other change here is undone on the next start.
host all all 127.0.0.1/32 scram-sha-256
";

/// Random bytes in a password (hex-encoded: safe in a URL and in SQL quotes).
const PASSWORD_BYTES: usize = 32;

/// Makes the cluster in `data_dir` reachable only with the superuser's password; returns it.
///
/// Runs before the server starts. Does nothing but read the password when the cluster is
/// already secured; otherwise generates the password if there is none, sets it, and rewrites
/// `pg_hba.conf`. `fresh` says the cluster was just initialised (only for the log).
pub(crate) fn secure(
    bin_dir: &Path,
    data_dir: &Path,
    run_as: Option<&RunAs>,
    fresh: bool,
) -> Result<String, PgError> {
    let password_path = data_dir.join(PASSWORD_FILE);
    let hba_path = data_dir.join("pg_hba.conf");
    let stored = read_password(&password_path)?;
    let hba_is_ours = fs::read_to_string(&hba_path).is_ok_and(|text| text == HBA);
    if let Some(password) = stored.clone()
        && hba_is_ours
    {
        return Ok(password);
    }

    let password = match stored {
        Some(password) => password,
        None => {
            let password = generate();
            write_private(&password_path, &password, run_as)?;
            password
        }
    };
    set_password(bin_dir, data_dir, run_as, &password)?;
    write_private(&hba_path, HBA, run_as)?;
    if !fresh {
        tracing::warn!(
            data_dir = %data_dir.display(),
            "secured an embedded PostgreSQL cluster: pg_hba.conf no longer trusts anyone; \
             the superuser's password is in {PASSWORD_FILE} (mode 0600) in the data directory"
        );
    }
    Ok(password)
}

fn generate() -> String {
    let mut bytes = [0u8; PASSWORD_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The stored password, if there is a well-formed one; its mode is narrowed to 0600.
fn read_password(path: &Path) -> Result<Option<String>, PgError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(format!("reading {}", path.display()), e)),
    };
    let password = text.trim();
    let well_formed =
        password.len() == 2 * PASSWORD_BYTES && password.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        tracing::warn!(path = %path.display(), "malformed password file; generating another");
        return Ok(None);
    }
    let mode = fs::metadata(path)
        .map_err(|e| io_err(format!("reading {}", path.display()), e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "narrowing to 0600");
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err(format!("chmod 0600 {}", path.display()), e))?;
    }
    Ok(Some(password.to_owned()))
}

/// Replaces `path` with `text`, mode 0600, owned by the server's user (atomic rename).
fn write_private(path: &Path, text: &str, run_as: Option<&RunAs>) -> Result<(), PgError> {
    let tmp = path.with_extension("tmp");
    let write = || -> io::Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        if let Some(run_as) = run_as {
            std::os::unix::fs::fchown(&file, Some(run_as.uid), Some(run_as.gid))?;
        }
        fs::rename(&tmp, path)
    };
    write().map_err(|e| io_err(format!("writing {}", path.display()), e))
}

/// Sets the superuser's password through a single-user backend, which listens on nothing.
fn set_password(
    bin_dir: &Path,
    data_dir: &Path,
    run_as: Option<&RunAs>,
    password: &str,
) -> Result<(), PgError> {
    let postgres = bin_dir.join("postgres");
    let mut cmd = privilege::command(run_as, &postgres);
    cmd.arg("--single")
        .arg("-D")
        .arg(data_dir)
        .arg("postgres")
        .current_dir("/")
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut run = || -> io::Result<std::process::Output> {
        let mut child = cmd.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            // One line, one statement; the password is hex, so it needs no escaping.
            writeln!(
                stdin,
                "SET password_encryption = 'scram-sha-256'; \
                 ALTER ROLE {SUPERUSER} PASSWORD '{password}';"
            )?;
        }
        child.wait_with_output()
    };
    let out = run().map_err(|e| io_err(format!("running {} --single", postgres.display()), e))?;
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    // A failed statement still exits 0; its message (and the statement) is in the output.
    if out.status.success() && !output.contains("ERROR:") && !output.contains("FATAL:") {
        return Ok(());
    }
    Err(PgError::Secure {
        output: output.replace(password, "…"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_hba_trusts_no_one() {
        let rules: Vec<&str> = HBA
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        assert_eq!(rules, ["host all all 127.0.0.1/32 scram-sha-256"]);
    }

    #[test]
    fn a_generated_password_is_long_hex() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}

//! Locating the PostgreSQL server binaries installed on this machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::PgError;

/// Environment variable that names the directory holding `initdb` and `postgres`.
pub const BIN_DIR_ENV: &str = "FOUNDRY_PG_BIN_DIR";

/// Finds the directory holding the PostgreSQL server binaries (`initdb`, `postgres`).
///
/// `FOUNDRY_PG_BIN_DIR` wins when set (and must then be right); otherwise see
/// [`find_bin_dir_with`] for the search order.
pub fn find_bin_dir() -> Result<PathBuf, PgError> {
    let from_env = std::env::var_os(BIN_DIR_ENV).filter(|v| !v.is_empty());
    find_bin_dir_with(from_env.as_deref().map(Path::new))
}

/// Like [`find_bin_dir`], with the `FOUNDRY_PG_BIN_DIR` value passed in rather than read from
/// the environment.
///
/// Search order without an override: the highest version under `/usr/lib/postgresql/*/bin`
/// (Debian/Ubuntu keep the server there, out of `PATH`), then `pg_config --bindir`, then `PATH`.
/// A directory only counts if it holds both `initdb` and `postgres`.
pub fn find_bin_dir_with(override_dir: Option<&Path>) -> Result<PathBuf, PgError> {
    if let Some(dir) = override_dir {
        // An explicit setting that is wrong should fail loudly rather than silently pick
        // some other installation.
        if has_server_binaries(dir) {
            return Ok(dir.to_path_buf());
        }
        return Err(PgError::NoBinaries {
            looked_in: format!("{} (from {BIN_DIR_ENV})", dir.display()),
        });
    }

    let mut looked_in = Vec::new();

    looked_in.push("/usr/lib/postgresql/*/bin".to_owned());
    if let Some(dir) = debian_bin_dirs(Path::new("/usr/lib/postgresql"))
        .into_iter()
        .find(|dir| has_server_binaries(dir))
    {
        return Ok(dir);
    }

    // On Debian this prints /usr/bin, which only has client wrappers, hence the check.
    if let Some(dir) = pg_config_bindir() {
        if has_server_binaries(&dir) {
            return Ok(dir);
        }
        looked_in.push(format!("{} (pg_config --bindir)", dir.display()));
    }

    looked_in.push("PATH".to_owned());
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|dir| has_server_binaries(dir))
    {
        return Ok(dir);
    }

    Err(PgError::NoBinaries {
        looked_in: looked_in.join(", "),
    })
}

/// `root/<version>/bin` directories, highest version first.
fn debian_bin_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let version: Option<Vec<u32>> = name
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect();
            Some((version?, entry.path().join("bin")))
        })
        .collect();
    // Numeric, not lexical, so that 9.6 sorts below 15.
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| PathBuf::from(text))
}

fn has_server_binaries(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically_highest_first() {
        let root = tempfile::tempdir().expect("tempdir");
        for v in ["9.6", "15", "16", "notaversion"] {
            std::fs::create_dir_all(root.path().join(v).join("bin")).expect("mkdir");
        }
        let dirs = debian_bin_dirs(root.path());
        let names: Vec<_> = dirs
            .iter()
            .map(|d| {
                d.parent()
                    .and_then(Path::file_name)
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(names, ["16", "15", "9.6"]);
    }
}

//! Where the key-encryption keys come from: a file, the environment, or a
//! file the all-in-one binary generates beside its data.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::{Kek, Keyring, KeyringError, LocalKek};

/// The name of the file the all-in-one binary generates in its data
/// directory when no key-encryption key is configured.
pub const GENERATED_FILE: &str = "key-encryption-key";

/// The key-encryption key flags of a binary that keeps private keys.
#[derive(Clone, Default, clap::Args)]
pub struct KekArgs {
    /// File with the key-encryption keys that seal the private signing keys
    /// in the database: base64 of 32 random bytes each (`openssl rand
    /// -base64 32`), one a line, `#` comments. The first seals; the others
    /// only open, so that a rotation (a new key first, the old after it)
    /// reseals everything on the next start. Keep it outside the database.
    #[arg(long, global = true, env = "FOUNDRY_KEY_ENCRYPTION_KEY_FILE")]
    pub key_encryption_key_file: Option<PathBuf>,

    /// The same keys given directly (comma-separated, the first sealing).
    /// Prefer the variable or the file: a flag shows in the process list.
    #[arg(
        long,
        global = true,
        env = "FOUNDRY_KEY_ENCRYPTION_KEY",
        hide_env_values = true,
        conflicts_with = "key_encryption_key_file"
    )]
    pub key_encryption_key: Option<String>,
}

impl std::fmt::Debug for KekArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KekArgs")
            .field("key_encryption_key_file", &self.key_encryption_key_file)
            .field(
                "key_encryption_key",
                &self.key_encryption_key.as_ref().map(|_| "…"),
            )
            .finish()
    }
}

impl KekArgs {
    /// The configured keyring, if a file or the keys are given.
    pub fn configured(&self) -> Result<Option<Keyring>, KeyringError> {
        if let Some(keys) = &self.key_encryption_key {
            return parse(keys).map(Some);
        }
        match &self.key_encryption_key_file {
            Some(path) => load_file(path).map(Some),
            None => Ok(None),
        }
    }

    /// The configured keyring; a binary that keeps private keys and has no
    /// data directory of its own must be given one.
    pub fn required(&self, binary: &str) -> anyhow::Result<Keyring> {
        self.configured()?.ok_or_else(|| {
            anyhow::anyhow!(
                "{binary} seals its private signing key with a key-encryption key: set \
                 --key-encryption-key-file (FOUNDRY_KEY_ENCRYPTION_KEY_FILE) or \
                 FOUNDRY_KEY_ENCRYPTION_KEY (base64 of 32 random bytes: openssl rand -base64 32)"
            )
        })
    }

    /// The configured keyring, else the one in `generated` (created, mode
    /// 0600, on the first start: see [`load_or_generate`]).
    pub fn or_generated(&self, generated: &Path) -> Result<Keyring, KeyringError> {
        match self.configured()? {
            Some(keyring) => Ok(keyring),
            None => load_or_generate(generated),
        }
    }
}

/// Parses keys: base64 of 32 bytes each, separated by line breaks, commas or
/// blanks, `#` to the end of a line a comment; the first seals.
pub fn parse(text: &str) -> Result<Keyring, KeyringError> {
    let mut keys = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(|line| line.split([',', ' ', '\t']))
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(|key| LocalKek::from_base64(key).map(|k| Arc::new(k) as Arc<dyn Kek>))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let current = keys.next().ok_or_else(|| {
        KeyringError::Config("no key-encryption key given (base64 of 32 bytes)".to_owned())
    })?;
    Keyring::new(current, keys)
}

/// Reads a key file (see [`parse`]); warns when others may read it.
pub fn load_file(path: &Path) -> Result<Keyring, KeyringError> {
    let text = Zeroizing::new(
        fs::read_to_string(path).map_err(|e| io_err(format!("reading {}", path.display()), e))?,
    );
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the key-encryption key file is readable by other users; chmod 600 it"
        );
    }
    parse(&text).map_err(|e| KeyringError::Config(format!("{}: {e}", path.display())))
}

/// Reads the key file at `path`, or creates it (mode 0600, one new key) if
/// there is none, saying so in the log.
pub fn load_or_generate(path: &Path) -> Result<Keyring, KeyringError> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let mut file = match created {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return load_file(path),
        Err(e) => return Err(io_err(format!("creating {}", path.display()), e)),
    };
    let kek = LocalKek::generate();
    let text = Zeroizing::new(format!(
        "# Foundry key-encryption key, generated on first start: it seals the private signing\n\
         # keys in the database. Keep it (and back it up) apart from the database; without it\n\
         # they cannot be used. To rotate, put a new key on the first line and keep this one.\n\
         {}\n",
        &*kek.to_base64()
    ));
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err(format!("writing {}", path.display()), e))?;
    tracing::warn!(
        path = %path.display(),
        kek = kek.id(),
        "no key-encryption key configured: generated one (mode 0600); the private signing keys \
         are sealed with it. Keep it apart from the database, or set --key-encryption-key-file"
    );
    Keyring::new(Arc::new(kek), [])
}

fn io_err(what: String, e: io::Error) -> KeyringError {
    KeyringError::Io(what, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_key_seals_and_the_others_open() {
        let (a, b) = (LocalKek::generate(), LocalKek::generate());
        let text = format!(
            "# comment\n{}\n{}  # old\n",
            &*a.to_base64(),
            &*b.to_base64()
        );
        let ring = parse(&text).expect("parse");
        assert_eq!(ring.current_id(), a.id());
        let comma = parse(&format!("{},{}", &*b.to_base64(), &*a.to_base64())).expect("parse");
        assert_eq!(comma.current_id(), b.id());
        assert!(parse("# nothing\n").is_err());
        assert!(parse("bm90IDMyIGJ5dGVz").is_err());
    }

    #[test]
    fn a_generated_file_is_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(GENERATED_FILE);
        let first = load_or_generate(&path).expect("generate");
        let mode = fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_generate(&path).expect("read");
        assert_eq!(first.current_id(), again.current_id());
        let configured = KekArgs {
            key_encryption_key: Some(LocalKek::generate().to_base64().to_string()),
            ..KekArgs::default()
        };
        assert_ne!(
            configured
                .or_generated(&path)
                .expect("configured")
                .current_id(),
            first.current_id(),
            "a configured key wins over the file"
        );
        assert!(KekArgs::default().required("foundry-identity").is_err());
    }
}

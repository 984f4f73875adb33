//! Secrets at rest, sealed with a key-encryption key (KEK) that the database
//! does not hold, so that whoever reads the rows (a backup, a replica, a
//! superuser) gets nothing usable.
//!
//! - A [`Kek`] seals and opens bytes with associated data. [`LocalKek`] is a
//!   256-bit key held by the process (XChaCha20-Poly1305, a random 192-bit
//!   nonce per seal); a KMS-held key implements the same trait (its `seal`
//!   and `open` are the KMS's encrypt and decrypt, the associated data its
//!   encryption context), so the private keys never need to leave it.
//! - A [`Keyring`] is the KEK that seals now plus the older ones that still
//!   open. What it seals is an envelope that names its KEK (`FKR1`, the id's
//!   length, the id, then the KEK's ciphertext), and the associated data
//!   binds it to that KEK id, its purpose (`identity.signing_key`) and its
//!   resource (the key id): a sealed value copied to another row, or opened
//!   for another purpose, does not open.
//! - Rotation: configure the new KEK first and keep the old ones after it;
//!   [`Keyring::reseal`] (on every start, see [`store::reseal_column`])
//!   rewraps what an older KEK sealed, and seals plaintext left by an earlier
//!   version. Once nothing is sealed by an old KEK it can be dropped.
//! - Configuration ([`KekArgs`]): a file of keys (`--key-encryption-key-file`,
//!   `FOUNDRY_KEY_ENCRYPTION_KEY_FILE`) or the keys themselves
//!   (`FOUNDRY_KEY_ENCRYPTION_KEY`); the all-in-one binary generates a file
//!   beside its data when neither is set.

mod config;
mod local;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
pub use zeroize::Zeroizing;

pub use config::{GENERATED_FILE, KekArgs, load_file, load_or_generate, parse};
pub use local::LocalKek;

/// Why a secret could not be sealed or opened, or the keys not configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The envelope names a KEK this keyring does not have.
    #[error(
        "sealed by key-encryption key {0:?}, which is not configured (configure it after the \
         current one until everything is resealed)"
    )]
    UnknownKek(String),
    /// The bytes are not an envelope this crate made.
    #[error("not a sealed secret")]
    NotSealed,
    /// Authentication failed: another key of the same id, a tampered
    /// envelope, or one bound to another purpose or resource.
    #[error("the sealed secret does not open with key-encryption key {0:?}")]
    Unopenable(String),
    /// The key-encryption keys are misconfigured.
    #[error("{0}")]
    Config(String),
    /// Reading or writing a key file failed; the first field says which.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// A key-encryption key: what seals and opens secrets. See the crate doc.
#[async_trait]
pub trait Kek: Send + Sync + std::fmt::Debug + 'static {
    /// Its id, written into every envelope it seals (1 to 255 bytes).
    fn id(&self) -> &str;

    /// Encrypts and authenticates `plaintext` together with `aad`.
    async fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyringError>;

    /// Opens what [`Kek::seal`] made with the same `aad`; anything else is
    /// [`KeyringError::Unopenable`].
    async fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyringError>;
}

/// What a sealed secret is bound to: its purpose (`identity.signing_key`)
/// and the resource it belongs to (the signing key's id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding<'a> {
    /// What kind of secret it is.
    pub purpose: &'a str,
    /// Which one.
    pub resource: &'a str,
}

const MAGIC: &[u8; 4] = b"FKR1";
const AAD_DOMAIN: &str = "foundry-keyring/v1";

/// The key-encryption keys of a service: the one that seals, and every one
/// that may still open.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: Arc<dyn Kek>,
    by_id: Arc<HashMap<String, Arc<dyn Kek>>>,
}

impl Keyring {
    /// `current` seals; it and `older` open.
    pub fn new(
        current: Arc<dyn Kek>,
        older: impl IntoIterator<Item = Arc<dyn Kek>>,
    ) -> Result<Keyring, KeyringError> {
        let mut by_id = HashMap::new();
        for kek in std::iter::once(current.clone()).chain(older) {
            let id = kek.id().to_owned();
            if id.is_empty() || id.len() > usize::from(u8::MAX) {
                return Err(KeyringError::Config(format!(
                    "key-encryption key id {id:?} must be 1 to 255 bytes"
                )));
            }
            if by_id.insert(id.clone(), kek).is_some() {
                return Err(KeyringError::Config(format!(
                    "key-encryption key {id} is configured twice"
                )));
            }
        }
        Ok(Keyring {
            current,
            by_id: Arc::new(by_id),
        })
    }

    /// A keyring of one new random local key (tests, benchmarks: what it
    /// seals is lost with it).
    pub fn generate() -> Keyring {
        let kek: Arc<dyn Kek> = Arc::new(LocalKek::generate());
        let by_id = HashMap::from([(kek.id().to_owned(), kek.clone())]);
        Keyring {
            current: kek,
            by_id: Arc::new(by_id),
        }
    }

    /// The id of the KEK that seals.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// Seals `plaintext` with the current KEK, bound to `binding`.
    pub async fn seal(
        &self,
        binding: Binding<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        let id = self.current.id();
        let body = self.current.seal(&aad(id, binding), plaintext).await?;
        let mut envelope = Vec::with_capacity(MAGIC.len() + 1 + id.len() + body.len());
        envelope.extend_from_slice(MAGIC);
        // `new` checked that every id fits in a byte.
        envelope.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        envelope.extend_from_slice(id.as_bytes());
        envelope.extend_from_slice(&body);
        Ok(envelope)
    }

    /// Opens an envelope sealed under `binding` by any KEK of this keyring.
    pub async fn open(
        &self,
        binding: Binding<'_>,
        envelope: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
        let (id, body) = split(envelope).ok_or(KeyringError::NotSealed)?;
        let kek = self
            .by_id
            .get(id)
            .ok_or_else(|| KeyringError::UnknownKek(id.to_owned()))?;
        kek.open(&aad(id, binding), body).await
    }

    /// Opens a sealed secret of exactly `N` bytes (a private key's seed).
    pub async fn open_array<const N: usize>(
        &self,
        binding: Binding<'_>,
        envelope: &[u8],
    ) -> Result<Zeroizing<[u8; N]>, KeyringError> {
        let bytes = self.open(binding, envelope).await?;
        let mut out = Zeroizing::new([0u8; N]);
        if bytes.len() != N {
            return Err(KeyringError::Unopenable(format!(
                "{}: {} bytes where {N} were sealed",
                Self::sealed_by(envelope).unwrap_or_default(),
                bytes.len()
            )));
        }
        out.copy_from_slice(&bytes);
        Ok(out)
    }

    /// The id of the KEK that sealed `stored`; `None` if it is no envelope.
    pub fn sealed_by(stored: &[u8]) -> Option<&str> {
        split(stored).map(|(id, _)| id)
    }

    /// What `stored` should become: `None` if the current KEK sealed it;
    /// otherwise sealed by the current KEK, from the plaintext an earlier
    /// version stored (anything that is no envelope) or from what an older
    /// KEK sealed (a rewrap).
    pub async fn reseal(
        &self,
        binding: Binding<'_>,
        stored: &[u8],
    ) -> Result<Option<Vec<u8>>, KeyringError> {
        match Self::sealed_by(stored) {
            Some(id) if id == self.current_id() => Ok(None),
            Some(_) => {
                let plaintext = self.open(binding, stored).await?;
                Ok(Some(self.seal(binding, &plaintext).await?))
            }
            None => Ok(Some(self.seal(binding, stored).await?)),
        }
    }
}

/// The envelope's KEK id and body.
fn split(envelope: &[u8]) -> Option<(&str, &[u8])> {
    let rest = envelope.strip_prefix(MAGIC)?;
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    if len == 0 || rest.len() < len {
        return None;
    }
    let (id, body) = rest.split_at(len);
    Some((std::str::from_utf8(id).ok()?, body))
}

/// The associated data: every part length-prefixed, so no two bindings
/// encode alike.
fn aad(kek_id: &str, binding: Binding<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [AAD_DOMAIN, kek_id, binding.purpose, binding.resource] {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Binding<'static> = Binding {
        purpose: "test.secret",
        resource: "k1",
    };

    #[tokio::test]
    async fn what_is_sealed_opens_only_with_its_key_and_binding() {
        let ring = Keyring::generate();
        let sealed = ring.seal(KEY, b"the secret").await.expect("seal");
        assert!(!sealed.windows(10).any(|w| w == b"the secret"));
        assert_eq!(Keyring::sealed_by(&sealed), Some(ring.current_id()));
        assert_eq!(
            &**ring.open(KEY, &sealed).await.expect("open"),
            b"the secret"
        );

        let elsewhere = Binding {
            resource: "k2",
            ..KEY
        };
        assert!(matches!(
            ring.open(elsewhere, &sealed).await,
            Err(KeyringError::Unopenable(_))
        ));
        let other_purpose = Binding {
            purpose: "other",
            ..KEY
        };
        assert!(ring.open(other_purpose, &sealed).await.is_err());
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(ring.open(KEY, &tampered).await.is_err());
        assert!(matches!(
            Keyring::generate().open(KEY, &sealed).await,
            Err(KeyringError::UnknownKek(_))
        ));
        assert!(matches!(
            ring.open(KEY, b"plain").await,
            Err(KeyringError::NotSealed)
        ));
    }

    #[tokio::test]
    async fn two_seals_of_one_secret_differ() {
        let ring = Keyring::generate();
        let a = ring.seal(KEY, b"x").await.expect("seal");
        let b = ring.seal(KEY, b"x").await.expect("seal");
        assert_ne!(a, b, "a fresh nonce each time");
    }

    #[tokio::test]
    async fn reseal_seals_plaintext_and_rewraps_what_an_older_key_sealed() {
        let old = Arc::new(LocalKek::generate());
        let new = Arc::new(LocalKek::generate());
        let before = Keyring::new(old.clone(), []).expect("ring");
        let after = Keyring::new(new.clone(), [old.clone() as Arc<dyn Kek>]).expect("ring");

        let plain = after.reseal(KEY, b"plain").await.expect("reseal");
        let plain = plain.expect("plaintext is sealed");
        assert_eq!(Keyring::sealed_by(&plain), Some(new.id()));
        assert_eq!(after.reseal(KEY, &plain).await.expect("again"), None);

        let by_old = before.seal(KEY, b"s").await.expect("seal");
        let rewrapped = after.reseal(KEY, &by_old).await.expect("rewrap");
        let rewrapped = rewrapped.expect("rewrapped");
        assert_eq!(Keyring::sealed_by(&rewrapped), Some(new.id()));
        assert_eq!(&**after.open(KEY, &rewrapped).await.expect("open"), b"s");
        let only_new = Keyring::new(new, []).expect("ring");
        assert_eq!(&**only_new.open(KEY, &rewrapped).await.expect("open"), b"s");
    }

    #[test]
    fn a_key_configured_twice_is_refused() {
        let k = Arc::new(LocalKek::generate());
        assert!(Keyring::new(k.clone(), [k as Arc<dyn Kek>]).is_err());
    }
}

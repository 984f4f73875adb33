//! The audit service's own Ed25519 key, which signs checkpoints. It is not
//! identity's token key: a checkpoint must stand even against someone who
//! can mint tokens, and customers pin this key alone.
//!
//! The first start creates the key (replicas starting together create one:
//! an advisory lock serializes them) and stores it in `audit.signing_keys`;
//! every checkpoint names the key that signed it, so verification looks
//! keys up by id and a rotation (a newer row) needs no other change.
//!
//! The private key is stored sealed ([`foundry_keyring`], purpose
//! [`SIGNING_KEY_PURPOSE`], bound to the `kid`), so whoever reads the
//! database cannot sign a rewritten chain; loading reseals a key an earlier
//! version stored in plaintext or an older key-encryption key sealed.

use ed25519_dalek::{SigningKey, VerifyingKey};
use foundry_keyring::{Binding, Keyring};
use foundry_platform::db::Db;
use uuid::Uuid;

use crate::domain::checkpoints::Checkpoint;
use crate::store::checkpoints::{self as store, KeyRow};

/// The key that signs new checkpoints.
pub struct Signer {
    kid: String,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// What the audit service's private signing keys are sealed for.
pub const SIGNING_KEY_PURPOSE: &str = "audit.signing_key";

fn binding(kid: &str) -> Binding<'_> {
    Binding {
        purpose: SIGNING_KEY_PURPOSE,
        resource: kid,
    }
}

impl Signer {
    /// The newest stored key, created first if there is none. Every stored
    /// key is sealed with the current key-encryption key first.
    pub async fn load_or_create(db: &Db, keyring: &Keyring) -> anyhow::Result<Signer> {
        foundry_keyring::store::reseal_column(
            db.pool(),
            keyring,
            SIGNING_KEY_PURPOSE,
            "signing_keys",
            "kid",
            "private_key",
        )
        .await?;
        if let Some(row) = store::newest_key(db.pool()).await? {
            return Self::from_row(row, keyring).await;
        }
        let mut tx = db.pool().begin().await?;
        store::lock_key_creation(&mut tx).await?;
        let row = match store::newest_key(&mut *tx).await? {
            Some(row) => row,
            None => {
                let key = SigningKey::from_bytes(&rand::random());
                let kid = Uuid::now_v7().simple().to_string();
                let sealed = keyring.seal(binding(&kid), &key.to_bytes()).await?;
                store::insert_key(&mut *tx, &kid, &sealed, &key.verifying_key().to_bytes()).await?;
                tracing::info!(kid, "created the audit checkpoint signing key");
                KeyRow {
                    kid,
                    private_key: sealed,
                    public_key: key.verifying_key().to_bytes().to_vec(),
                    created_at: chrono::Utc::now(),
                }
            }
        };
        tx.commit().await?;
        Self::from_row(row, keyring).await
    }

    async fn from_row(row: KeyRow, keyring: &Keyring) -> anyhow::Result<Signer> {
        let seed = keyring
            .open_array::<32>(binding(&row.kid), &row.private_key)
            .await
            .map_err(|e| anyhow::anyhow!("audit signing key {}: {e}", row.kid))?;
        let key = SigningKey::from_bytes(&seed);
        if key.verifying_key().as_bytes().as_slice() != row.public_key.as_slice() {
            anyhow::bail!(
                "audit signing key {} does not match its public key",
                row.kid
            );
        }
        Ok(Signer { kid: row.kid, key })
    }

    /// The key id checkpoints name.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs a checkpoint (whose `key_id` must be this key's).
    pub fn sign(&self, c: &Checkpoint) -> Vec<u8> {
        c.sign(&self.key)
    }
}

/// A stored public key, if it is a valid Ed25519 point.
pub fn verifying_key(bytes: &[u8]) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = bytes.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

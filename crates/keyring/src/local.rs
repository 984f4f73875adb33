//! A key-encryption key held by this process.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{Kek, KeyringError};

const NONCE_LEN: usize = 24;

/// A 256-bit key; seals with XChaCha20-Poly1305 under a random 192-bit
/// nonce (random nonces of that size never repeat in practice). Its id is a
/// fingerprint of the key (`local-` and 16 hex digits of a SHA-256 of it),
/// so the id of a configured key cannot be wrong.
pub struct LocalKek {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl LocalKek {
    /// The key with these bytes.
    pub fn from_bytes(key: [u8; 32]) -> LocalKek {
        let key = Zeroizing::new(key);
        let digest = Sha256::new()
            .chain_update(b"foundry-keyring local kek id\0")
            .chain_update(*key)
            .finalize();
        LocalKek {
            id: format!("local-{}", &hex::encode(digest)[..16]),
            key,
        }
    }

    /// A new random key.
    pub fn generate() -> LocalKek {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *key);
        Self::from_bytes(*key)
    }

    /// Parses the base64 (standard alphabet) of 32 bytes.
    pub fn from_base64(text: &str) -> Result<LocalKek, KeyringError> {
        let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
            KeyringError::Config("a key-encryption key is not valid base64".to_owned())
        })?);
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            KeyringError::Config(format!(
                "a key-encryption key must be 32 bytes (base64 of 32 random bytes, \
                 e.g. `openssl rand -base64 32`), not {}",
                bytes.len()
            ))
        })?;
        Ok(Self::from_bytes(key))
    }

    /// The key in base64, as [`LocalKek::from_base64`] reads it.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(*self.key))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(&*self.key))
    }
}

#[async_trait]
impl Kek for LocalKek {
    fn id(&self) -> &str {
        &self.id
    }

    async fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyringError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| KeyringError::Unopenable(self.id.clone()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    async fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
        if sealed.len() < NONCE_LEN {
            return Err(KeyringError::Unopenable(self.id.clone()));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| KeyringError::Unopenable(self.id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_a_fingerprint_of_the_key() {
        let k = LocalKek::generate();
        let again = LocalKek::from_base64(&k.to_base64()).expect("parse");
        assert_eq!(k.id(), again.id());
        assert!(k.id().starts_with("local-") && k.id().len() == 22);
        assert_ne!(k.id(), LocalKek::generate().id());
    }

    #[test]
    fn a_short_or_garbled_key_is_refused() {
        assert!(LocalKek::from_base64("c2hvcnQ=").is_err());
        assert!(LocalKek::from_base64("not base64!").is_err());
    }
}

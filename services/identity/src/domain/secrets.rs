//! Credentials: minted secrets, their formats and hashes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Kinds of long-lived secrets, by their prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// Session refresh token.
    Refresh,
    /// API key.
    ApiKey,
    /// Agent token.
    Agent,
    /// Service account key.
    Service,
    /// Invitation token.
    Invitation,
}

impl SecretKind {
    fn tag(self) -> &'static str {
        match self {
            SecretKind::Refresh => "rt",
            SecretKind::ApiKey => "key",
            SecretKind::Agent => "agt",
            SecretKind::Service => "svc",
            SecretKind::Invitation => "inv",
        }
    }
}

/// A freshly minted secret: shown once, stored as its hash.
#[derive(Debug)]
pub struct Secret {
    /// The clear text, `fnd_<kind>_<random><checksum>`.
    pub value: String,
    /// SHA-256 of the clear text, what is stored.
    pub hash: Vec<u8>,
    /// The first characters, for recognition in lists.
    pub prefix: String,
}

const RANDOM_BYTES: usize = 24; // 192 bits
const CHECKSUM_CHARS: usize = 6;

/// Mints a secret: 192 random bits and a 6-character checksum, so a typo or
/// a truncated paste is refused without a database look-up.
pub fn mint_secret(kind: SecretKind) -> Secret {
    let random: [u8; RANDOM_BYTES] = rand::random();
    let body = format!("fnd_{}_{}", kind.tag(), URL_SAFE_NO_PAD.encode(random));
    let value = format!("{body}{}", checksum(&body));
    Secret {
        hash: hash_secret(&value),
        prefix: value[..body.len().min(16)].to_owned(),
        value,
    }
}

fn checksum(body: &str) -> String {
    let d = Sha256::digest(body.as_bytes());
    URL_SAFE_NO_PAD.encode(&d[..6])[..CHECKSUM_CHARS].to_owned()
}

/// SHA-256 of a secret. The secrets carry 192 random bits, so a fast hash
/// is enough (no password stretching needed).
pub fn hash_secret(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// Checks a presented secret's shape and checksum; returns its hash.
pub fn parse_secret(kind: SecretKind, value: &str) -> Option<Vec<u8>> {
    let head = format!("fnd_{}_", kind.tag());
    let rest = value.strip_prefix(&head)?;
    let random_len = URL_SAFE_NO_PAD.encode([0u8; RANDOM_BYTES]).len();
    if rest.len() != random_len + CHECKSUM_CHARS || !rest.is_ascii() {
        return None;
    }
    let (body, sum) = value.split_at(head.len() + random_len);
    if checksum(body) != sum {
        return None;
    }
    Some(hash_secret(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_secret_parses_and_a_typo_does_not() {
        let s = mint_secret(SecretKind::ApiKey);
        assert!(s.value.starts_with("fnd_key_"));
        assert_eq!(
            parse_secret(SecretKind::ApiKey, &s.value),
            Some(s.hash.clone())
        );
        assert_eq!(parse_secret(SecretKind::Agent, &s.value), None);
        let mut typo = s.value.clone().into_bytes();
        typo[10] = if typo[10] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            parse_secret(SecretKind::ApiKey, &String::from_utf8(typo).expect("ascii")),
            None
        );
        assert_eq!(
            parse_secret(SecretKind::ApiKey, &s.value[..s.value.len() - 1]),
            None
        );
        assert!(!s.prefix.is_empty() && s.value.starts_with(&s.prefix));
    }
}

//! Checkpoints: signed statements of a chain's head, like CloudTrail's
//! digests. A hash chain alone can be recomputed by anyone who can write
//! the database, and removing the newest events leaves a shorter chain that
//! still verifies; a checkpoint kept outside Foundry, signed with a key the
//! database does not need to hold, pins the head so that both are found.
//! No I/O.
//!
//! # Canonical form
//!
//! The signature is Ed25519 over the UTF-8 bytes of a compact JSON object
//! (no white space) with keys sorted (so Python's `json.dumps(obj,
//! sort_keys=True, separators=(",", ":"))` rebuilds it):
//!
//! | key | value |
//! | --- | --- |
//! | `create_time`, `first_occur_time`, `last_occur_time` | RFC 3339 UTC with six fraction digits, `""` if none |
//! | `event_count`, `sequence` | integers |
//! | `head_hash` | lowercase hex |
//! | `id`, `org_id` | lowercase hyphenated UUIDs |
//! | `key_id` | the signing key's id |
//! | `reason` | `on_demand`, `periodic` or `retention` |
//! | `type` | `foundry.audit.checkpoint.v1` |
//!
//! Every value is ASCII, so no JSON encoder escapes anything differently.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use uuid::Uuid;

use super::canonical::{format_time, write_str};

/// The `type` of the canonical form: a signature over it cannot be taken
/// for a signature over anything else the key might sign.
pub const CHECKPOINT_TYPE: &str = "foundry.audit.checkpoint.v1";

foundry_domain::stored_enum! {
    /// Why a checkpoint was written.
    Reason {
        /// `CreateAuditCheckpoint`.
        OnDemand = "on_demand",
        /// The periodic checkpointer, after the chain grew.
        Periodic = "periodic",
        /// Just before retention removed a prefix.
        Retention = "retention",
    }
}

/// What a checkpoint states (and its signature covers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// UUID v7.
    pub id: Uuid,
    /// The organization (its chain).
    pub org_id: Uuid,
    /// Why it was written.
    pub reason: Reason,
    /// The head's position (0: empty chain).
    pub sequence: i64,
    /// The head event's hash ([`super::GENESIS`] for an empty chain).
    pub head_hash: Vec<u8>,
    /// Events from the start of the retained chain to the head.
    pub event_count: i64,
    /// When the first of them occurred.
    pub first_occurred_at: Option<DateTime<Utc>>,
    /// When the head event occurred.
    pub last_occurred_at: Option<DateTime<Utc>>,
    /// When it was signed (microseconds, as stored).
    pub created_at: DateTime<Utc>,
    /// The signing key.
    pub key_id: String,
}

/// A stored checkpoint: what it states, its signature and the signing
/// key's public half.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What the signature covers.
    pub checkpoint: Checkpoint,
    /// The Ed25519 signature of its canonical form.
    pub signature: Vec<u8>,
    /// The signing key's public half.
    pub public_key: Vec<u8>,
}

impl Checkpoint {
    /// The canonical form (see the module documentation).
    pub fn canonical(&self) -> String {
        let time = |t: Option<DateTime<Utc>>| t.map(format_time).unwrap_or_default();
        let mut out = String::with_capacity(512);
        let mut first = true;
        let mut key = |out: &mut String, k: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            write_str(out, k);
            out.push(':');
        };
        out.push('{');
        // Keys in sorted order (asserted by a test).
        key(&mut out, "create_time");
        write_str(&mut out, &format_time(self.created_at));
        key(&mut out, "event_count");
        out.push_str(&self.event_count.to_string());
        key(&mut out, "first_occur_time");
        write_str(&mut out, &time(self.first_occurred_at));
        key(&mut out, "head_hash");
        write_str(&mut out, &hex::encode(&self.head_hash));
        key(&mut out, "id");
        write_str(&mut out, &self.id.to_string());
        key(&mut out, "key_id");
        write_str(&mut out, &self.key_id);
        key(&mut out, "last_occur_time");
        write_str(&mut out, &time(self.last_occurred_at));
        key(&mut out, "org_id");
        write_str(&mut out, &self.org_id.to_string());
        key(&mut out, "reason");
        write_str(&mut out, self.reason.as_str());
        key(&mut out, "sequence");
        out.push_str(&self.sequence.to_string());
        key(&mut out, "type");
        write_str(&mut out, CHECKPOINT_TYPE);
        out.push('}');
        out
    }

    /// Signs the canonical form.
    pub fn sign(&self, key: &SigningKey) -> Vec<u8> {
        key.sign(self.canonical().as_bytes()).to_bytes().to_vec()
    }

    /// Whether `signature` is the key's signature of this checkpoint (strict
    /// RFC 8032 verification: no malleable or small-order forms).
    pub fn verify(&self, key: &VerifyingKey, signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        key.verify_strict(self.canonical().as_bytes(), &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use foundry_domain::StoredEnum;
    use serde_json::Value;

    fn checkpoint() -> Checkpoint {
        let t = |s| Utc.timestamp_opt(s, 123_456_000).single().expect("time");
        Checkpoint {
            id: Uuid::parse_str("0190b6a0-0000-7000-8000-000000000009").expect("uuid"),
            org_id: Uuid::parse_str("0190b6a0-0000-7000-8000-000000000001").expect("uuid"),
            reason: Reason::Periodic,
            sequence: 42,
            head_hash: vec![0xab; 32],
            event_count: 40,
            first_occurred_at: Some(t(1_767_323_045)),
            last_occurred_at: Some(t(1_767_323_046)),
            created_at: t(1_767_323_047),
            key_id: "k1".into(),
        }
    }

    #[test]
    fn the_canonical_form_is_pinned_and_is_sorted_compact_json() {
        let c = checkpoint();
        let expected = format!(
            concat!(
                r#"{{"create_time":"2026-01-02T03:04:07.123456Z","event_count":40,"#,
                r#""first_occur_time":"2026-01-02T03:04:05.123456Z","head_hash":"{}","#,
                r#""id":"0190b6a0-0000-7000-8000-000000000009","key_id":"k1","#,
                r#""last_occur_time":"2026-01-02T03:04:06.123456Z","#,
                r#""org_id":"0190b6a0-0000-7000-8000-000000000001","reason":"periodic","#,
                r#""sequence":42,"type":"foundry.audit.checkpoint.v1"}}"#
            ),
            "ab".repeat(32)
        );
        assert_eq!(c.canonical(), expected);
        // What a customer's JSON library writes from the same fields.
        let parsed: Value = serde_json::from_str(&c.canonical()).expect("json");
        assert_eq!(serde_json::to_string(&parsed).expect("json"), c.canonical());
        let empty = Checkpoint {
            first_occurred_at: None,
            last_occurred_at: None,
            ..checkpoint()
        };
        assert!(
            empty
                .canonical()
                .contains(r#""first_occur_time":"","head_hash""#)
        );
    }

    #[test]
    fn a_signature_verifies_only_the_checkpoint_it_signed_with_its_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let c = checkpoint();
        let sig = c.sign(&key);
        assert_eq!(sig.len(), 64);
        assert!(c.verify(&key.verifying_key(), &sig));
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(!c.verify(&other.verifying_key(), &sig));
        assert!(!c.verify(&key.verifying_key(), &sig[..63]));
        type Edit = Box<dyn Fn(&mut Checkpoint)>;
        let edits: Vec<Edit> = vec![
            Box::new(|c| c.id = Uuid::nil()),
            Box::new(|c| c.org_id = Uuid::nil()),
            Box::new(|c| c.reason = Reason::OnDemand),
            Box::new(|c| c.sequence += 1),
            Box::new(|c| c.head_hash[0] ^= 1),
            Box::new(|c| c.event_count -= 1),
            Box::new(|c| c.first_occurred_at = None),
            Box::new(|c| c.last_occurred_at = Some(c.created_at)),
            Box::new(|c| c.created_at += chrono::Duration::microseconds(1)),
            Box::new(|c| c.key_id = "k2".into()),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut e = checkpoint();
            edit(&mut e);
            assert!(
                !e.verify(&key.verifying_key(), &sig),
                "edit {i} still verifies"
            );
        }
    }

    #[test]
    fn reasons_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(*r));
        }
        assert_eq!(Reason::parse("weekly"), None);
    }
}

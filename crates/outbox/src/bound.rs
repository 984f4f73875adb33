//! Every event the services build fits what audit ingests. A field's old
//! and new values count characters where they are checked, but the event
//! carries bytes: a 20,000-emoji description is 80,000 of them, more than
//! audit's 64 KiB for an event's `changes`, and an event audit refuses is
//! parked while its change is committed. So values are bounded here, where
//! the event is built: a long value becomes its SHA-256, its length in bytes
//! and a bounded prefix (enough to recognize it, and to check it against
//! the resource), and an event whose changes are still too large keeps only
//! the digests of its largest values.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Largest value (an old or a new one) kept whole, as compact JSON.
pub const MAX_VALUE_BYTES: usize = 2 * 1024;
/// Bytes of a long value kept as its prefix.
pub const PREFIX_BYTES: usize = 512;
/// Largest `changes`, as compact JSON: below audit's 64 KiB
/// (`MAX_CHANGES_BYTES` of its domain), with room to spare.
pub const MAX_CHANGES_BYTES: usize = 60 * 1024;

/// The text a value is measured and digested as: a string's own text,
/// anything else's compact JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `{"truncated": true, "bytes": n, "sha256": "…"[, "prefix": "…"]}`.
fn digest(v: &Value, prefix: bool) -> Value {
    let t = text(v);
    let sha: String = Sha256::digest(t.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut d = json!({ "truncated": true, "bytes": t.len(), "sha256": sha });
    if prefix {
        let mut end = PREFIX_BYTES.min(t.len());
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        d["prefix"] = Value::String(t[..end].to_owned());
    }
    d
}

/// `v` as an event records it: whole when short, else its digest.
pub fn value(v: Value) -> Value {
    if size(&v) <= MAX_VALUE_BYTES {
        v
    } else {
        digest(&v, true)
    }
}

fn size(v: &Value) -> usize {
    v.to_string().len()
}

pub use foundry_domain::WITHHELD;
/// Characters of the receiver's reason a withheld event keeps.
const REASON_CHARS: usize = 500;

/// What stands for `changes` the audit service refused: one entry,
/// [`WITHHELD`], with the receiver's reason and the refused changes'
/// length and SHA-256 (the producer keeps them whole, parked in its
/// outbox).
pub fn withheld(changes: &Map<String, Value>, reason: &str) -> Map<String, Value> {
    let mut w = digest(&Value::Object(changes.clone()), false);
    w["reason"] = Value::String(reason.chars().take(REASON_CHARS).collect());
    let mut out = Map::new();
    out.insert(WITHHELD.into(), w);
    out
}

/// Makes `changes` (`field → {old, new}`) fit [`MAX_CHANGES_BYTES`]: the
/// largest values lose their prefix (digest only) until it does; if even
/// that is too much (thousands of fields), the whole set becomes one
/// digest under `_changes`.
pub fn changes(changes: &mut Map<String, Value>) {
    let total = |c: &Map<String, Value>| serde_json::to_vec(c).map_or(usize::MAX, |b| b.len());
    while total(changes) > MAX_CHANGES_BYTES {
        let largest = changes
            .iter()
            .flat_map(|(f, c)| ["old", "new"].map(|side| (f.clone(), side, c.get(side))))
            .filter_map(|(f, side, v)| v.map(|v| (f, side, size(v))))
            .filter(|(_, _, n)| *n > 200)
            .max_by_key(|(_, _, n)| *n);
        match largest {
            Some((field, side, _)) => {
                if let Some(v) = changes.get_mut(&field).and_then(|c| c.get_mut(side)) {
                    let d = digest(v, false);
                    *v = d;
                }
            }
            None => {
                let all = Value::Object(std::mem::take(changes));
                changes.insert("_changes".into(), digest(&all, false));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_value_is_kept_whole() {
        assert_eq!(value(json!("title")), json!("title"));
        assert_eq!(value(json!([1, 2, 3])), json!([1, 2, 3]));
    }

    #[test]
    fn a_long_value_is_its_digest_length_and_a_prefix_cut_on_a_char() {
        let emoji = "🦀".repeat(20_000);
        let v = value(json!(emoji));
        assert_eq!(v["truncated"], json!(true));
        assert_eq!(v["bytes"], json!(80_000));
        let sha: String = Sha256::digest(emoji.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(v["sha256"], json!(sha));
        let prefix = v["prefix"].as_str().unwrap_or_default();
        assert_eq!(prefix, "🦀".repeat(PREFIX_BYTES / 4));
    }

    #[test]
    fn withheld_changes_keep_the_reason_length_and_digest() {
        let mut c = Map::new();
        c.insert("title".into(), json!({ "old": "a", "new": "b" }));
        let w = withheld(&c, &"r".repeat(900));
        assert_eq!(w.len(), 1);
        let entry = &w[WITHHELD];
        assert_eq!(entry["reason"].as_str().map(str::len), Some(REASON_CHARS));
        let original = Value::Object(c).to_string();
        assert_eq!(entry["bytes"], json!(original.len()));
        assert_eq!(entry["sha256"].as_str().map(str::len), Some(64));
    }

    #[test]
    fn changes_too_large_together_keep_digests_of_the_largest() {
        let mut c = Map::new();
        for i in 0..60 {
            let long = "x".repeat(MAX_VALUE_BYTES - 10);
            c.insert(format!("f{i}"), json!({ "old": null, "new": long }));
        }
        changes(&mut c);
        let size = Value::Object(c.clone()).to_string().len();
        assert!(size <= MAX_CHANGES_BYTES, "{size}");
        assert_eq!(c.len(), 60, "every field is still named");
        assert!(c.values().any(|v| v["new"]["sha256"].is_string()));
    }
}

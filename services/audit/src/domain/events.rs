//! Audit events: what an event looks like, its canonical form and hash,
//! the rules of its names, and time ranges as id ranges. No I/O.
//!
//! # Canonical form
//!
//! An event's hash is SHA-256 of its canonical form: a JSON object, written
//! without white space, whose keys are every stored field but `recorded_at`
//! and `hash`, sorted by their UTF-8 bytes at every depth:
//!
//! | key | value |
//! | --- | --- |
//! | `action`, `client_ip`, `request_id`, `resource_id`, `resource_type`, `service`, `trace_id`, `user_agent` | the string |
//! | `actor_type` | `user`, `api_key`, `agent`, `service` or `system` |
//! | `actor_id`, `project_id` | the UUID (lowercase, hyphenated), `""` if none |
//! | `changes` | the JSON object (numbers as below) |
//! | `id`, `org_id` | the UUID |
//! | `occurred_at` | RFC 3339 UTC with exactly six fraction digits: `2026-01-02T03:04:05.123456Z` |
//! | `on_behalf_of_id`, `on_behalf_of_type` | as `actor_id` and `actor_type`; both absent (not empty) when the actor acted for no one, so events from before they existed keep their hashes |
//! | `prev_hash` | the previous event's hash, lowercase hex (64 zeros for the first) |
//! | `sequence` | the position, an integer |
//!
//! Strings escape `"`, `\` and the control characters U+0000..U+001F (as
//! `\u00xx`, lowercase hex) and nothing else. Every number in `changes` is
//! a double (it came from a `google.protobuf.Struct`) written as its
//! shortest round-trip decimal without exponent (`5`, `0.1`,
//! `100000000000000000000`), `-0` as `0`; so the form survives
//! PostgreSQL's `jsonb`, which keeps numbers as decimals and reorders keys.
//! The form is written here by hand rather than
//! by a JSON library so that no library setting (key order, float format)
//! can change a hash.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Error;
use super::canonical::{format_time, write_json, write_str};

/// The largest batch `AppendAuditEvents` takes.
pub const MAX_BATCH: usize = 1000;
/// How far clocks may disagree: no event occurs further in the future than
/// this when it arrives, and none of a service is older than an earlier
/// event of the same service in the chain by more than this (a service's
/// events are appended in the order its transactions made them; commits
/// reorder them by at most a transaction's length).
pub const MAX_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Longest `action` and `resource_type`.
pub const MAX_NAME: usize = 128;
/// Longest `service`.
pub const MAX_SERVICE: usize = 64;
/// Longest `resource_id`.
pub const MAX_RESOURCE_ID: usize = 256;
/// Longest `request_id` and `trace_id`.
pub const MAX_REQUEST_ID: usize = 128;
/// Longest `client_ip` (producers record an address:
/// `foundry_tenancy::ClientIp`).
pub const MAX_CLIENT_IP: usize = 512;
/// Longest `user_agent`.
pub const MAX_USER_AGENT: usize = 1024;
/// Largest `changes`, as compact JSON.
pub const MAX_CHANGES_BYTES: usize = 64 * 1024;

foundry_domain::stored_enum! {
    /// Who made a change.
    ActorType {
        /// A signed-in user.
        User = "user",
        /// An API key.
        ApiKey = "api_key",
        /// An agent token.
        Agent = "agent",
        /// A service account.
        Service = "service",
        /// The system itself.
        System = "system",
    }
}

/// An event as chained: every stored field but `recorded_at` and `hash`.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The organization (its chain).
    pub org_id: Uuid,
    /// Position in the chain, from 1.
    pub sequence: i64,
    /// UUID v7 minted when the change was made.
    pub id: Uuid,
    /// When the change was made (microsecond precision).
    pub occurred_at: DateTime<Utc>,
    /// The producing service.
    pub service: String,
    /// [`ActorType::as_str`] (a string, so a tampered value still hashes).
    pub actor_type: String,
    /// The actor.
    pub actor_id: Option<Uuid>,
    /// Whom the actor acted for ([`ActorType::as_str`]), if anyone.
    pub on_behalf_of_type: Option<String>,
    /// Their id.
    pub on_behalf_of_id: Option<Uuid>,
    /// `<service>.<resource>.<verb>`.
    pub action: String,
    /// `<service>.<resource>`.
    pub resource_type: String,
    /// The resource.
    pub resource_id: String,
    /// The project, if any.
    pub project_id: Option<Uuid>,
    /// Field-level changes (a JSON object).
    pub changes: Value,
    /// The call's request id.
    pub request_id: String,
    /// The call's W3C trace id.
    pub trace_id: String,
    /// The client's address.
    pub client_ip: String,
    /// The client's user agent.
    pub user_agent: String,
    /// The hash of the event before it in the chain.
    pub prev_hash: Vec<u8>,
}

impl Event {
    /// The canonical form (see the module documentation).
    pub fn canonical(&self) -> String {
        let opt = |u: Option<Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
        // Keys in sorted order (asserted by a test); whom the actor acted
        // for only when it acted for someone.
        let on_behalf_of = match (&self.on_behalf_of_type, self.on_behalf_of_id) {
            (Some(t), Some(id)) => vec![
                ("on_behalf_of_id", Field::Owned(id.to_string())),
                ("on_behalf_of_type", Field::Str(t)),
            ],
            _ => vec![],
        };
        let before: [(&str, Field<'_>); 7] = [
            ("action", Field::Str(&self.action)),
            ("actor_id", Field::Owned(opt(self.actor_id))),
            ("actor_type", Field::Str(&self.actor_type)),
            ("changes", Field::Json(&self.changes)),
            ("client_ip", Field::Str(&self.client_ip)),
            ("id", Field::Owned(self.id.to_string())),
            ("occurred_at", Field::Owned(format_time(self.occurred_at))),
        ];
        let after: [(&str, Field<'_>); 10] = [
            ("org_id", Field::Owned(self.org_id.to_string())),
            ("prev_hash", Field::Owned(hex::encode(&self.prev_hash))),
            ("project_id", Field::Owned(opt(self.project_id))),
            ("request_id", Field::Str(&self.request_id)),
            ("resource_id", Field::Str(&self.resource_id)),
            ("resource_type", Field::Str(&self.resource_type)),
            ("sequence", Field::Int(self.sequence)),
            ("service", Field::Str(&self.service)),
            ("trace_id", Field::Str(&self.trace_id)),
            ("user_agent", Field::Str(&self.user_agent)),
        ];
        let fields = before.into_iter().chain(on_behalf_of).chain(after);
        let mut out = String::with_capacity(512);
        out.push('{');
        for (i, (key, value)) in fields.enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(&mut out, key);
            out.push(':');
            match value {
                Field::Str(s) => write_str(&mut out, s),
                Field::Owned(s) => write_str(&mut out, &s),
                Field::Int(n) => out.push_str(&n.to_string()),
                Field::Json(v) => write_json(&mut out, v),
            }
        }
        out.push('}');
        out
    }

    /// SHA-256 of the canonical form.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.canonical().as_bytes()).into()
    }
}

enum Field<'a> {
    Str(&'a str),
    Owned(String),
    Int(i64),
    Json(&'a Value),
}

/// Whether `s` is `<segment>(.<segment>)+` (`min_segments` ≥ 1), each
/// segment `[a-z][a-z0-9_]*`.
fn dotted(s: &str, min_segments: usize) -> bool {
    let mut n = 0;
    for seg in s.split('.') {
        n += 1;
        let mut chars = seg.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) {
            return false;
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return false;
        }
    }
    n >= min_segments
}

/// An action: `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`, at most 128 bytes.
pub fn is_action(s: &str) -> bool {
    s.len() <= MAX_NAME && dotted(s, 2)
}

/// A resource type: `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`, at most 128
/// bytes.
pub fn is_resource_type(s: &str) -> bool {
    s.len() <= MAX_NAME && dotted(s, 1)
}

/// A service name: `^[a-z][a-z0-9_]*$`, at most 64 bytes.
pub fn is_service(s: &str) -> bool {
    s.len() <= MAX_SERVICE && dotted(s, 1) && !s.contains('.')
}

/// Whether a JSON value holds a NUL character (in a key or string), which
/// PostgreSQL's `jsonb` cannot store.
pub fn json_has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(json_has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

/// `value` if it can be stored as `field`: no NUL character (see
/// [`json_has_nul`]) and at most `max` bytes as compact JSON.
pub fn storable_json(field: String, value: Value, max: usize) -> Result<Value, Error> {
    if json_has_nul(&value) {
        Err(Error::invalid(field, "must not contain NUL characters"))
    } else if value.to_string().len() > max {
        Err(Error::invalid(
            field,
            format!("must be at most {max} bytes as JSON"),
        ))
    } else {
        Ok(value)
    }
}

/// The time in a UUID v7 (its millisecond), if it is one.
pub fn v7_time(id: Uuid) -> Option<DateTime<Utc>> {
    if id.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
}

/// The smallest UUID of a millisecond in v7 order: every v7 id minted in
/// that millisecond or later is `>=` it, every earlier one `<` it. Times
/// before 1970 give the nil UUID; times past the 48-bit clock the largest.
pub fn v7_floor(unix_ms: i64) -> Uuid {
    let ms = unix_ms.clamp(0, (1 << 48) - 1) as u64;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    Uuid::from_bytes(bytes)
}

/// The id bounds of a time range: `id >= lower` for "at or after `start`",
/// `id < upper` for "before `end`", at the ids' millisecond precision: a
/// partial millisecond at either end is included, and the exact bound is
/// then checked on the event's time (which lies in its id's millisecond).
pub fn id_bounds(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> (Option<Uuid>, Option<Uuid>) {
    let lower = start.map(|t| v7_floor(t.timestamp_millis()));
    let upper = end.map(|t| {
        let ms = t.timestamp_millis();
        let partial = t.timestamp_subsec_nanos() % 1_000_000 != 0;
        v7_floor(if partial { ms.saturating_add(1) } else { ms })
    });
    (lower, upper)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;
    use foundry_domain::StoredEnum;
    use serde_json::json;

    use crate::domain::GENESIS;

    pub(crate) fn event() -> Event {
        Event {
            org_id: Uuid::parse_str("0190b6a0-0000-7000-8000-000000000001").expect("uuid"),
            sequence: 1,
            id: Uuid::parse_str("0190b6a0-0000-7000-8000-000000000002").expect("uuid"),
            occurred_at: Utc
                .timestamp_opt(1_767_323_045, 123_456_000)
                .single()
                .expect("time"),
            service: "identity".into(),
            actor_type: "user".into(),
            actor_id: Some(Uuid::parse_str("0190b6a0-0000-7000-8000-000000000003").expect("uuid")),
            on_behalf_of_type: None,
            on_behalf_of_id: None,
            action: "identity.membership.update".into(),
            resource_type: "identity.membership".into(),
            resource_id: "m-1".into(),
            project_id: None,
            changes: json!({"role": {"old": "viewer", "new": "admin"}, "n": 1.5}),
            request_id: "r".into(),
            trace_id: "t".into(),
            client_ip: "127.0.0.1".into(),
            user_agent: "grpc-go/1.0".into(),
            prev_hash: GENESIS.to_vec(),
        }
    }

    #[test]
    fn the_canonical_form_is_pinned() {
        let e = event();
        assert_eq!(
            e.canonical(),
            concat!(
                r#"{"action":"identity.membership.update","#,
                r#""actor_id":"0190b6a0-0000-7000-8000-000000000003","actor_type":"user","#,
                r#""changes":{"n":1.5,"role":{"new":"admin","old":"viewer"}},"#,
                r#""client_ip":"127.0.0.1","id":"0190b6a0-0000-7000-8000-000000000002","#,
                r#""occurred_at":"2026-01-02T03:04:05.123456Z","#,
                r#""org_id":"0190b6a0-0000-7000-8000-000000000001","#,
                r#""prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","#,
                r#""project_id":"","request_id":"r","resource_id":"m-1","#,
                r#""resource_type":"identity.membership","sequence":1,"service":"identity","#,
                r#""trace_id":"t","user_agent":"grpc-go/1.0"}"#
            )
        );
        // The canonical form is valid JSON with sorted keys.
        let parsed: Value = serde_json::from_str(&e.canonical()).expect("json");
        let keys: Vec<&String> = parsed.as_object().expect("object").keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), 17);
    }

    #[test]
    fn whom_the_actor_acted_for_is_in_the_form_only_when_set() {
        let mut e = event();
        let plain = e.hash();
        e.on_behalf_of_type = Some("user".into());
        e.on_behalf_of_id =
            Some(Uuid::parse_str("0190b6a0-0000-7000-8000-000000000004").expect("uuid"));
        let canonical = e.canonical();
        assert!(
            canonical.contains(concat!(
                r#""occurred_at":"2026-01-02T03:04:05.123456Z","#,
                r#""on_behalf_of_id":"0190b6a0-0000-7000-8000-000000000004","#,
                r#""on_behalf_of_type":"user","org_id":"#
            )),
            "{canonical}"
        );
        assert_ne!(e.hash(), plain);
    }

    #[test]
    fn the_hash_does_not_depend_on_key_order() {
        let a = event();
        let mut b = event();
        b.changes =
            serde_json::from_str(r#"{"role": {"new": "admin", "old": "viewer"}, "n": 1.5}"#)
                .expect("json");
        let mut c = event();
        c.changes =
            serde_json::from_str(r#"{"n": 1.50, "role": {"old": "viewer", "new": "admin"}}"#)
                .expect("json");
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.hash(), c.hash());
    }

    #[test]
    fn the_hash_changes_with_every_field() {
        let base = event().hash();
        type Edit = Box<dyn Fn(&mut Event)>;
        let edits: Vec<Edit> = vec![
            Box::new(|e| e.org_id = Uuid::nil()),
            Box::new(|e| e.sequence = 2),
            Box::new(|e| e.id = Uuid::nil()),
            Box::new(|e| e.occurred_at += chrono::Duration::microseconds(1)),
            Box::new(|e| e.service = "delivery".into()),
            Box::new(|e| e.actor_type = "service".into()),
            Box::new(|e| e.actor_id = None),
            Box::new(|e| e.action = "identity.membership.delete".into()),
            Box::new(|e| e.resource_type = "identity.member".into()),
            Box::new(|e| e.resource_id = "m-2".into()),
            Box::new(|e| e.project_id = Some(Uuid::nil())),
            Box::new(|e| e.changes = json!({})),
            Box::new(|e| e.changes["n"] = json!(1.25)),
            Box::new(|e| e.request_id = "r2".into()),
            Box::new(|e| e.trace_id = "t2".into()),
            Box::new(|e| e.client_ip = "10.0.0.1".into()),
            Box::new(|e| e.user_agent = "curl".into()),
            Box::new(|e| e.prev_hash = vec![1; 32]),
        ];
        let mut seen = std::collections::HashSet::new();
        for (i, edit) in edits.iter().enumerate() {
            let mut e = event();
            edit(&mut e);
            let h = e.hash();
            assert_ne!(h, base, "edit {i} did not change the hash");
            assert!(seen.insert(h), "edit {i} collided");
        }
    }

    #[test]
    fn numbers_hash_as_doubles_whatever_their_json_spelling() {
        // jsonb hands numbers back as decimals: 5.0 may come back as 5, a
        // large double as a long integer, -0 as 0.
        let spellings = [
            ("5.0", "5"),
            ("1e20", "100000000000000000000"),
            ("12345678901234567890", "1.2345678901234567e19"),
            ("-0.0", "0"),
            ("0.30000000000000004", "3.0000000000000004e-1"),
        ];
        for (a, b) in spellings {
            let (mut x, mut y) = (event(), event());
            x.changes = serde_json::from_str(&format!(r#"{{"v":{a}}}"#)).expect("a");
            y.changes = serde_json::from_str(&format!(r#"{{"v":{b}}}"#)).expect("b");
            assert_eq!(x.canonical(), y.canonical(), "{a} vs {b}");
        }
    }

    #[test]
    fn strings_escape_quotes_backslashes_and_control_characters_only() {
        let mut e = event();
        e.resource_id = "a\"b\\c\nd\u{1}é€".into();
        assert!(
            e.canonical()
                .contains(r#""resource_id":"a\"b\\c\u000ad\u0001é€""#)
        );
    }

    #[test]
    fn names_follow_their_patterns() {
        assert!(is_action("identity.membership.update"));
        assert!(is_action("a.b"));
        assert!(!is_action("identity"));
        assert!(!is_action("Identity.member"));
        assert!(!is_action("identity..member"));
        assert!(!is_action("identity.member."));
        assert!(!is_action("identity.1member"));
        assert!(!is_action(&format!("a.{}", "b".repeat(127))));
        assert!(is_resource_type("identity.membership"));
        assert!(is_resource_type("organization"));
        assert!(!is_resource_type(""));
        assert!(is_service("identity"));
        assert!(!is_service("identity.x"));
        assert_eq!(ActorType::parse("api_key"), Some(ActorType::ApiKey));
        assert_eq!(ActorType::parse("robot"), None);
    }

    #[test]
    fn time_ranges_are_id_ranges() {
        let t = Utc
            .timestamp_opt(1_767_323_045, 123_000_000)
            .single()
            .expect("time");
        let id_at = |t: DateTime<Utc>| {
            Uuid::new_v7(uuid::Timestamp::from_unix(
                uuid::NoContext,
                t.timestamp() as u64,
                t.timestamp_subsec_nanos(),
            ))
        };
        let (lower, upper) = id_bounds(Some(t), Some(t + chrono::Duration::milliseconds(1)));
        let (lower, upper) = (lower.expect("lower"), upper.expect("upper"));
        assert!(id_at(t) >= lower && id_at(t) < upper);
        assert!(id_at(t - chrono::Duration::milliseconds(1)) < lower);
        assert!(id_at(t + chrono::Duration::milliseconds(1)) >= upper);
        // A partial millisecond at the end is included.
        let (_, upper) = id_bounds(None, Some(t + chrono::Duration::microseconds(1)));
        assert!(id_at(t) < upper.expect("upper"));
        assert_eq!(v7_time(id_at(t)), Some(t));
        assert_eq!(
            v7_time(Uuid::parse_str("6ba7b810-9dad-41d1-80b4-00c04fd430c8").expect("v4")),
            None
        );
        assert_eq!(v7_floor(-5), Uuid::nil());
    }

    #[test]
    fn nul_characters_are_found_in_keys_and_strings() {
        assert!(json_has_nul(&json!({"a": ["x\u{0}"]})));
        assert!(json_has_nul(&json!({"a\u{0}": 1})));
        assert!(!json_has_nul(&json!({"a": ["x\n"]})));
        let e = storable_json("c".into(), json!({"a": "x\u{0}"}), 100).expect_err("nul");
        assert_eq!(e.field.as_deref(), Some("c"));
        assert!(storable_json("c".into(), json!({"a": "xx"}), 8).is_err());
        assert!(storable_json("c".into(), json!({"a": "x"}), 9).is_ok());
    }
}

//! Audit rules: what an event looks like, its canonical form and hash, the
//! chain that links events, and how a chain is verified. No I/O.
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

pub mod activity;
pub mod checkpoint;
pub mod records;
pub mod settings;

use chrono::{DateTime, SecondsFormat, Utc};
use foundry_proto::foundry::audit::v1 as pb;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `prev_hash` of the first event of a chain.
pub const GENESIS: [u8; 32] = [0; 32];

/// The largest batch `AppendAuditEvents` takes.
pub const MAX_BATCH: usize = 1000;

/// Longest `action` and `resource_type`.
pub const MAX_NAME: usize = 128;
/// Longest `service`.
pub const MAX_SERVICE: usize = 64;
/// Longest `resource_id`.
pub const MAX_RESOURCE_ID: usize = 256;
/// Longest `request_id` and `trace_id`.
pub const MAX_REQUEST_ID: usize = 128;
/// Longest `client_ip` (producers take the first `x-forwarded-for` hop,
/// a header they cut at 512 characters).
pub const MAX_CLIENT_IP: usize = 512;
/// Longest `user_agent`.
pub const MAX_USER_AGENT: usize = 1024;
/// Largest `changes`, as compact JSON.
pub const MAX_CHANGES_BYTES: usize = 64 * 1024;

/// Who made a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorType {
    /// A signed-in user.
    User,
    /// An API key.
    ApiKey,
    /// An agent token.
    Agent,
    /// A service account.
    Service,
    /// The system itself.
    System,
}

impl ActorType {
    /// Database (and canonical form) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::User => "user",
            ActorType::ApiKey => "api_key",
            ActorType::Agent => "agent",
            ActorType::Service => "service",
            ActorType::System => "system",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<ActorType> {
        Some(match s {
            "user" => ActorType::User,
            "api_key" => ActorType::ApiKey,
            "agent" => ActorType::Agent,
            "service" => ActorType::Service,
            "system" => ActorType::System,
            _ => return None,
        })
    }
}

impl From<ActorType> for pb::ActorType {
    fn from(a: ActorType) -> Self {
        match a {
            ActorType::User => pb::ActorType::User,
            ActorType::ApiKey => pb::ActorType::ApiKey,
            ActorType::Agent => pb::ActorType::Agent,
            ActorType::Service => pb::ActorType::Service,
            ActorType::System => pb::ActorType::System,
        }
    }
}

impl TryFrom<i32> for ActorType {
    type Error = ();
    fn try_from(v: i32) -> Result<Self, ()> {
        match pb::ActorType::try_from(v).map_err(|_| ())? {
            pb::ActorType::User => Ok(ActorType::User),
            pb::ActorType::ApiKey => Ok(ActorType::ApiKey),
            pb::ActorType::Agent => Ok(ActorType::Agent),
            pb::ActorType::Service => Ok(ActorType::Service),
            pb::ActorType::System => Ok(ActorType::System),
            pb::ActorType::Unspecified => Err(()),
        }
    }
}

/// An event as chained: every stored field but `recorded_at` and `hash`.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
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
        // Keys in sorted order (asserted by a test).
        let fields: [(&str, Field<'_>); 17] = [
            ("action", Field::Str(&self.action)),
            ("actor_id", Field::Owned(opt(self.actor_id))),
            ("actor_type", Field::Str(&self.actor_type)),
            ("changes", Field::Json(&self.changes)),
            ("client_ip", Field::Str(&self.client_ip)),
            ("id", Field::Owned(self.id.to_string())),
            ("occurred_at", Field::Owned(format_time(self.occurred_at))),
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
        let mut out = String::with_capacity(512);
        out.push('{');
        for (i, (key, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(&mut out, key);
            out.push(':');
            match value {
                Field::Str(s) => write_str(&mut out, s),
                Field::Owned(s) => write_str(&mut out, s),
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

/// RFC 3339, UTC, exactly microseconds.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_json(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&format_number(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => write_str(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_json(out, &m[k.as_str()]);
            }
            out.push('}');
        }
    }
}

/// Shortest round-trip decimal, no exponent; `-0` and non-finite values
/// (which JSON cannot carry anyway) as `0`.
fn format_number(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        "0".to_owned()
    } else {
        format!("{x}")
    }
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

/// What verification found wrong first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// An event's content does not match its hash.
    HashMismatch,
    /// An event's `prev_hash` is not the previous event's hash.
    BrokenLink,
    /// Positions are missing.
    MissingEvents,
    /// The kept head differs from the last event.
    HeadMismatch,
    /// The chain does not extend a checkpoint: the event at its position
    /// has another hash, or is gone.
    CheckpointMismatch,
    /// A checkpoint's signature does not verify.
    CheckpointSignatureInvalid,
}

impl From<Problem> for pb::ChainProblem {
    fn from(p: Problem) -> Self {
        match p {
            Problem::HashMismatch => pb::ChainProblem::HashMismatch,
            Problem::BrokenLink => pb::ChainProblem::BrokenLink,
            Problem::MissingEvents => pb::ChainProblem::MissingEvents,
            Problem::HeadMismatch => pb::ChainProblem::HeadMismatch,
            Problem::CheckpointMismatch => pb::ChainProblem::CheckpointMismatch,
            Problem::CheckpointSignatureInvalid => pb::ChainProblem::CheckpointSignatureInvalid,
        }
    }
}

/// A verification failure: what, where, and a sentence for humans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The problem.
    pub problem: Problem,
    /// The position of the first event that failed (or the first missing).
    pub sequence: i64,
    /// That event's id, if it exists.
    pub event_id: Option<Uuid>,
    /// For humans.
    pub detail: String,
}

/// Verifies a chain fed event by event in sequence order, in constant
/// memory: each event must be at the next position, match its own hash and
/// link to the previous event's hash.
#[derive(Clone, Debug)]
pub struct ChainWalk {
    next_sequence: i64,
    prev_hash: Vec<u8>,
    checked: i64,
    last_id: Option<Uuid>,
}

impl ChainWalk {
    /// A walk starting at position `start`, whose predecessor's hash is
    /// `prev_hash` ([`GENESIS`] when `start` is 1).
    pub fn new(start: i64, prev_hash: Vec<u8>) -> Self {
        Self {
            next_sequence: start,
            prev_hash,
            checked: 0,
            last_id: None,
        }
    }

    /// Checks the next event (events come in sequence order) with its
    /// stored hash.
    pub fn check(&mut self, event: &Event, stored_hash: &[u8]) -> Result<(), Finding> {
        if event.sequence != self.next_sequence {
            let (first, last) = (self.next_sequence, event.sequence - 1);
            return Err(Finding {
                problem: Problem::MissingEvents,
                sequence: first,
                event_id: None,
                detail: if first == last {
                    format!("event {first} is missing")
                } else {
                    format!("events {first} to {last} are missing")
                },
            });
        }
        if event.hash()[..] != *stored_hash {
            return Err(Finding {
                problem: Problem::HashMismatch,
                sequence: event.sequence,
                event_id: Some(event.id),
                detail: format!(
                    "event {} does not match its hash: it was changed after it was appended",
                    event.sequence
                ),
            });
        }
        if event.prev_hash != self.prev_hash {
            return Err(Finding {
                problem: Problem::BrokenLink,
                sequence: event.sequence,
                event_id: Some(event.id),
                detail: format!(
                    "event {} does not link to the event before it: events were removed, reordered or rewritten",
                    event.sequence
                ),
            });
        }
        self.next_sequence += 1;
        self.prev_hash = stored_hash.to_vec();
        self.checked += 1;
        self.last_id = Some(event.id);
        Ok(())
    }

    /// After the last event of a range ending at `end`: positions up to
    /// `end` that never came are missing.
    pub fn finish_range(&self, end: i64) -> Result<(), Finding> {
        if self.next_sequence <= end {
            let first = self.next_sequence;
            return Err(Finding {
                problem: Problem::MissingEvents,
                sequence: first,
                event_id: None,
                detail: if first == end {
                    format!("event {first} is missing")
                } else {
                    format!("events {first} to {end} are missing")
                },
            });
        }
        Ok(())
    }

    /// After walking to the end of the log: the last event must be the
    /// head the service keeps. `beyond` is the id of an event found after
    /// the head's position, if any.
    pub fn finish_head(
        &self,
        head_sequence: i64,
        head_hash: &[u8],
        beyond: Option<Uuid>,
    ) -> Result<(), Finding> {
        let last = self.next_sequence - 1;
        if last < head_sequence {
            return Err(Finding {
                problem: Problem::HeadMismatch,
                sequence: last + 1,
                event_id: None,
                detail: format!(
                    "the chain's head is event {head_sequence} but the log ends at event {last}: the newest events were removed"
                ),
            });
        }
        if last > head_sequence {
            return Err(Finding {
                problem: Problem::HeadMismatch,
                sequence: head_sequence + 1,
                event_id: beyond,
                detail: format!(
                    "the log goes on to event {last} past the chain's head at event {head_sequence}: events were added outside the service"
                ),
            });
        }
        if self.prev_hash != head_hash {
            return Err(Finding {
                problem: Problem::HeadMismatch,
                sequence: last,
                event_id: self.last_id,
                detail: format!("event {last} is not the chain's head: the chain was rewritten"),
            });
        }
        Ok(())
    }

    /// Events verified so far.
    pub fn checked(&self) -> i64 {
        self.checked
    }

    /// The hash of the last verified event (or of the predecessor of the
    /// range, if none verified yet).
    pub fn last_hash(&self) -> &[u8] {
        &self.prev_hash
    }

    /// The position the next event must have.
    pub fn next_sequence(&self) -> i64 {
        self.next_sequence
    }
}

/// Checks an event that verified in its chain against a checkpoint of its
/// position (`sequence`, `expected` hash): another hash means the chain
/// was rewritten since the checkpoint was signed.
pub fn check_anchor(
    event: &Event,
    stored_hash: &[u8],
    sequence: i64,
    expected: &[u8],
) -> Result<(), Finding> {
    if event.sequence == sequence && stored_hash != expected {
        return Err(Finding {
            problem: Problem::CheckpointMismatch,
            sequence,
            event_id: Some(event.id),
            detail: format!(
                "event {sequence} does not have the hash the checkpoint signed: the chain was rewritten since"
            ),
        });
    }
    Ok(())
}

/// After a walk to the head that verified: a checkpoint of a position past
/// the last event means events it covered were removed.
pub fn check_anchor_reached(last_sequence: i64, sequence: i64) -> Result<(), Finding> {
    if sequence > last_sequence {
        return Err(Finding {
            problem: Problem::CheckpointMismatch,
            sequence: last_sequence + 1,
            event_id: None,
            detail: format!(
                "the checkpoint covers events up to {sequence} but the log ends at event {last_sequence}: the newest events were removed"
            ),
        });
    }
    Ok(())
}

/// Links new events onto a chain whose head is `(head_sequence,
/// head_hash)`: assigns positions and previous hashes in order and returns
/// each event's hash, and the new head.
pub fn link(
    events: &mut [Event],
    head_sequence: i64,
    head_hash: &[u8],
) -> (Vec<[u8; 32]>, i64, Vec<u8>) {
    let mut sequence = head_sequence;
    let mut prev = head_hash.to_vec();
    let mut hashes = Vec::with_capacity(events.len());
    for e in events.iter_mut() {
        sequence += 1;
        e.sequence = sequence;
        e.prev_hash = prev;
        let h = e.hash();
        prev = h.to_vec();
        hashes.push(h);
    }
    (hashes, sequence, prev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn event() -> Event {
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

    fn chain(n: usize) -> (Vec<Event>, Vec<[u8; 32]>) {
        let mut events: Vec<Event> = (0..n)
            .map(|i| Event {
                id: Uuid::now_v7(),
                resource_id: format!("r{i}"),
                ..event()
            })
            .collect();
        let (hashes, head, _) = link(&mut events, 0, &GENESIS);
        assert_eq!(head, n as i64);
        (events, hashes)
    }

    fn walk(events: &[Event], hashes: &[[u8; 32]]) -> Result<ChainWalk, Finding> {
        let mut w = ChainWalk::new(1, GENESIS.to_vec());
        for (e, h) in events.iter().zip(hashes) {
            w.check(e, h)?;
        }
        Ok(w)
    }

    #[test]
    fn a_linked_chain_verifies_to_its_head() {
        let (events, hashes) = chain(5);
        assert_eq!(events[0].prev_hash, GENESIS.to_vec());
        assert_eq!(events[3].prev_hash, hashes[2].to_vec());
        let w = walk(&events, &hashes).expect("valid");
        assert_eq!(w.checked(), 5);
        w.finish_range(5).expect("complete");
        w.finish_head(5, &hashes[4], None).expect("head");
        assert_eq!(w.last_hash(), hashes[4]);
    }

    #[test]
    fn an_edited_event_is_a_hash_mismatch() {
        let (mut events, hashes) = chain(4);
        events[2].action = "identity.membership.delete".into();
        let f = walk(&events, &hashes).expect_err("edited");
        assert_eq!((f.problem, f.sequence), (Problem::HashMismatch, 3));
        assert_eq!(f.event_id, Some(events[2].id));
    }

    #[test]
    fn a_rehashed_edit_breaks_the_next_link() {
        let (mut events, mut hashes) = chain(4);
        events[1].action = "identity.membership.delete".into();
        hashes[1] = events[1].hash();
        let f = walk(&events, &hashes).expect_err("rewritten");
        assert_eq!((f.problem, f.sequence), (Problem::BrokenLink, 3));
    }

    #[test]
    fn a_removed_event_is_missing() {
        let (mut events, mut hashes) = chain(5);
        events.remove(2);
        hashes.remove(2);
        let f = walk(&events, &hashes).expect_err("gap");
        assert_eq!((f.problem, f.sequence), (Problem::MissingEvents, 3));
        assert_eq!(f.event_id, None);
    }

    #[test]
    fn removed_newest_events_are_a_head_mismatch() {
        let (events, hashes) = chain(5);
        let w = walk(&events[..3], &hashes[..3]).expect("prefix verifies");
        let f = w.finish_head(5, &hashes[4], None).expect_err("head");
        assert_eq!((f.problem, f.sequence), (Problem::HeadMismatch, 4));
        // In a range that ends before the head, they are missing.
        let f = w.finish_range(5).expect_err("missing tail");
        assert_eq!((f.problem, f.sequence), (Problem::MissingEvents, 4));
        // Events past the head, or another head hash, are mismatches too.
        let w = walk(&events, &hashes).expect("valid");
        let f = w
            .finish_head(4, &hashes[3], Some(events[4].id))
            .expect_err("past");
        assert_eq!(
            (f.problem, f.sequence, f.event_id),
            (Problem::HeadMismatch, 5, Some(events[4].id))
        );
        let f = w.finish_head(5, &GENESIS, None).expect_err("hash");
        assert_eq!((f.problem, f.sequence), (Problem::HeadMismatch, 5));
    }

    #[test]
    fn a_range_starts_from_its_predecessor_hash() {
        let (events, hashes) = chain(5);
        let mut w = ChainWalk::new(3, hashes[1].to_vec());
        for (e, h) in events[2..4].iter().zip(&hashes[2..4]) {
            w.check(e, h).expect("valid");
        }
        w.finish_range(4).expect("complete");
        let mut wrong = ChainWalk::new(3, hashes[0].to_vec());
        let f = wrong.check(&events[2], &hashes[2]).expect_err("link");
        assert_eq!(f.problem, Problem::BrokenLink);
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
        assert_eq!(ActorType::try_from(0), Err(()));
        assert_eq!(ActorType::try_from(5), Ok(ActorType::System));
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
    }
}

//! The hand-written JSON of the canonical forms (events and checkpoints):
//! see [`super::events`] for the rules. Written here rather than by a JSON
//! library so that no library setting (key order, float format) can change
//! a hash or a signature.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// RFC 3339, UTC, exactly microseconds.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn write_str(out: &mut String, s: &str) {
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

pub fn write_json(out: &mut String, v: &Value) {
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

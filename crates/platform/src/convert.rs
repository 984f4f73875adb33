//! Conversions between proto well-known types and Rust/database types.

use chrono::{DateTime, TimeZone, Utc};
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Timestamp, Value};

/// A database time as a proto timestamp.
pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// An optional database time as an optional proto timestamp.
pub fn opt_timestamp(t: Option<DateTime<Utc>>) -> Option<Timestamp> {
    t.map(timestamp)
}

/// A proto timestamp as a database time; `None` if out of range.
pub fn from_timestamp(t: &Timestamp) -> Option<DateTime<Utc>> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    Utc.timestamp_opt(t.seconds, t.nanos as u32).single()
}

/// A `google.protobuf.Struct` as JSON.
pub fn struct_to_json(s: &Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(v: &Value) -> serde_json::Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_to_json).collect())
        }
    }
}

/// JSON (an object) as a `google.protobuf.Struct`; other JSON is empty.
pub fn json_to_struct(v: &serde_json::Value) -> Struct {
    match v {
        serde_json::Value::Object(m) => Struct {
            fields: m
                .iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect(),
        },
        _ => Struct::default(),
    }
}

fn json_to_value(v: &serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(_) => Kind::StructValue(json_to_struct(v)),
    };
    Value { kind: Some(kind) }
}

/// Maps a domain enum to its proto enum, variant by variant (so a variant
/// added on either side does not compile until mapped), and parses a proto
/// number into it: `*_UNSPECIFIED` and unknown numbers are `Err`, which
/// `Violations::enum_value` reports by field. Expects the proto package
/// imported as `pb` where it is invoked:
/// `proto_enum!(domain::TaskStatus => TaskStatus { Backlog, Todo, … });`
#[macro_export]
macro_rules! proto_enum {
    ($name:path => $pb:ident { $($variant:ident),+ $(,)? }) => {
        impl From<$name> for pb::$pb {
            fn from(v: $name) -> Self {
                use $name as D;
                match v {
                    $(D::$variant => pb::$pb::$variant),+
                }
            }
        }

        impl TryFrom<i32> for $name {
            type Error = ();
            fn try_from(v: i32) -> Result<Self, ()> {
                use $name as D;
                match pb::$pb::try_from(v).map_err(|_| ())? {
                    $(pb::$pb::$variant => Ok(D::$variant),)+
                    pb::$pb::Unspecified => Err(()),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_round_trip_through_json() {
        let j = serde_json::json!({"a": 1.5, "b": [true, null, "x"], "c": {"d": "e"}});
        assert_eq!(struct_to_json(&json_to_struct(&j)), j);
    }
}

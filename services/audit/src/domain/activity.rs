//! The activity feed: audit events that name a project, as a feed shows
//! them. No I/O.

use serde_json::Value;

/// One field's change, as an event recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    /// The field.
    pub field: String,
    /// Its value before, if the event recorded one (JSON `null` included).
    pub old: Option<Value>,
    /// Its value after, if the event recorded one.
    pub new: Option<Value>,
}

/// The field changes of an event's `changes`, by field name. Producers
/// write `{field: {"old": …, "new": …}}`; a value of another shape is taken
/// as the field's new value, so nothing recorded is hidden from the feed.
pub fn field_changes(changes: &Value) -> Vec<FieldChange> {
    let Value::Object(fields) = changes else {
        return Vec::new();
    };
    let mut out: Vec<FieldChange> = fields
        .iter()
        .map(|(field, value)| match value {
            Value::Object(m) if !m.is_empty() && m.keys().all(|k| k == "old" || k == "new") => {
                FieldChange {
                    field: field.clone(),
                    old: m.get("old").cloned(),
                    new: m.get("new").cloned(),
                }
            }
            other => FieldChange {
                field: field.clone(),
                old: None,
                new: Some(other.clone()),
            },
        })
        .collect();
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_become_old_and_new_per_field_in_field_order() {
        let c = field_changes(&json!({
            "title": {"old": "a", "new": "b"},
            "assignee": {"old": null, "new": "u1"},
            "retiring": ["k1"],
            "deleted": {"old": true},
            "meta": {"old": 1, "other": 2},
        }));
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["assignee", "deleted", "meta", "retiring", "title"]);
        assert_eq!(c[0].old, Some(Value::Null));
        assert_eq!(c[0].new, Some(json!("u1")));
        assert_eq!(
            (c[1].old.clone(), c[1].new.clone()),
            (Some(json!(true)), None)
        );
        assert_eq!(c[2].old, None);
        assert_eq!(c[2].new, Some(json!({"old": 1, "other": 2})));
        assert_eq!(c[3].new, Some(json!(["k1"])));
        assert_eq!(c[4].old, Some(json!("a")));
        assert!(field_changes(&json!({})).is_empty());
        assert!(field_changes(&json!([1])).is_empty());
    }
}

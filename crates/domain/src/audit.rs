//! Audit changes computed from values, not listed by hand.
//!
//! A resource says once, in [`Audited::audit_fields`], which of its fields
//! an audit event shows and under which (proto) names. An update's changes
//! are then [`diff`] of the value before and after the patch, so a field
//! cannot be written without its change being recorded. Implementations
//! destructure `self` without `..`, so adding a field to the struct does
//! not compile until it is listed (or explicitly left out with `_`).

use serde::Serialize;
use serde_json::Value;

/// The audited fields of a value, by name, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFields(Vec<(&'static str, Value)>);

impl AuditFields {
    /// No fields yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name` with `value` (serialized to JSON; an unserializable value
    /// is recorded as null).
    pub fn field(mut self, name: &'static str, value: impl Serialize) -> Self {
        self.0
            .push((name, serde_json::to_value(value).unwrap_or(Value::Null)));
        self
    }

    /// The fields.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.0.iter().map(|(n, v)| (*n, v))
    }

    /// The value of `name`, if listed.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// A value whose changes are audited.
pub trait Audited {
    /// Every audited field with its current value.
    fn audit_fields(&self) -> AuditFields;
}

/// One field's change.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The field's name.
    pub field: &'static str,
    /// Before (null when created).
    pub old: Value,
    /// After (null when deleted).
    pub new: Value,
}

/// The fields whose values differ between `before` and `after`, in
/// `after`'s order.
pub fn diff<T: Audited + ?Sized>(before: &T, after: &T) -> Vec<Change> {
    let old = before.audit_fields();
    after
        .audit_fields()
        .0
        .into_iter()
        .filter_map(|(field, new)| {
            let old = old.get(field).cloned().unwrap_or(Value::Null);
            (old != new).then_some(Change { field, old, new })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Task {
        title: String,
        labels: Vec<String>,
        version: i64,
    }

    impl Audited for Task {
        fn audit_fields(&self) -> AuditFields {
            let Task {
                title,
                labels,
                version: _,
            } = self;
            AuditFields::new()
                .field("title", title)
                .field("labels", labels)
        }
    }

    #[test]
    fn only_changed_fields_are_changes() {
        let a = Task {
            title: "a".into(),
            labels: vec!["x".into()],
            version: 1,
        };
        let b = Task {
            title: "b".into(),
            labels: vec!["x".into()],
            version: 2,
        };
        let changes = diff(&a, &b);
        assert_eq!(
            changes,
            vec![Change {
                field: "title",
                old: Value::from("a"),
                new: Value::from("b"),
            }]
        );
        assert!(diff(&a, &a).is_empty());
        assert_ne!(a.version, b.version, "left out of the audit on purpose");
    }
}

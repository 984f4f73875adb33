//! Audit changes computed from values, not listed by hand.
//!
//! A resource is a struct `{ id, fields, stamp }`: its own fields (what a
//! create parses into) in `fields`, its id and [`crate::Stamp`] beside
//! them. [`Audited::audit_fields`] is by default every field of `fields`
//! under its serialized name (the proto name), in declaration order, taken
//! from the value's `Serialize`: a field added to the struct is audited
//! without anyone listing it; one that must not be (a secret) is
//! `#[serde(skip_serializing)]` or the resource writes `audit_fields`
//! itself. An update's changes are then [`diff`] of the value before and
//! after the patch, so a field cannot be written without its change being
//! recorded.

use serde::Serialize;
use serde::ser::{self, Impossible, SerializeStruct};
use serde_json::Value;

/// The key of the only change of an event whose changes the audit service
/// refused: the producer parked the event and sent this stand-in, with the
/// reason and the refused changes' length and SHA-256 (field names never
/// start with `_`).
pub const WITHHELD: &str = "_withheld";

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
pub trait Audited: Serialize {
    /// Every audited field with its current value: by default the fields of
    /// its `fields` member, or its own fields but `id` and `stamp` (see the
    /// module documentation).
    fn audit_fields(&self) -> AuditFields {
        let mut out = AuditFields::new();
        if let Err(e) = self.serialize(Collect(&mut out.0)) {
            // Only a value that is not a struct gets here: a programming
            // error the resource's own tests show.
            out.0.push(("unauditable", Value::String(e.to_string())));
        }
        out
    }
}

/// Collects a struct's fields as [`AuditFields`], descending into the
/// member named `fields` and leaving out `id` and `stamp`.
struct Collect<'a>(&'a mut Vec<(&'static str, Value)>);

fn not_a_struct() -> serde_json::Error {
    ser::Error::custom("an audited value is a struct")
}

impl SerializeStruct for Collect<'_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        match key {
            "fields" => value.serialize(Collect(self.0)),
            "id" | "stamp" => Ok(()),
            _ => {
                self.0.push((key, serde_json::to_value(value)?));
                Ok(())
            }
        }
    }

    fn end(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl<'a> ser::Serializer for Collect<'a> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Impossible<(), Self::Error>;
    type SerializeTuple = Impossible<(), Self::Error>;
    type SerializeTupleStruct = Impossible<(), Self::Error>;
    type SerializeTupleVariant = Impossible<(), Self::Error>;
    type SerializeMap = Impossible<(), Self::Error>;
    type SerializeStruct = Collect<'a>;
    type SerializeStructVariant = Impossible<(), Self::Error>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Collect<'a>, Self::Error> {
        Ok(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        value.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Self::Error> {
        value.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_i8(self, _: i8) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_i16(self, _: i16) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_i32(self, _: i32) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_i64(self, _: i64) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_u8(self, _: u8) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_u16(self, _: u16) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_u32(self, _: u32) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_u64(self, _: u64) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_f32(self, _: f32) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_f64(self, _: f64) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_char(self, _: char) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_str(self, _: &str) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_none(self) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_unit(self) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        Err(not_a_struct())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        Err(not_a_struct())
    }
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

    #[derive(Serialize)]
    struct Task {
        id: u32,
        fields: NewTask,
        #[serde(skip)]
        version: i64,
    }

    #[derive(Serialize)]
    struct NewTask {
        title: String,
        labels: Vec<String>,
    }

    impl Audited for Task {}

    #[test]
    fn only_changed_fields_are_changes() {
        let new = |title: &str| NewTask {
            title: title.into(),
            labels: vec!["x".into()],
        };
        let a = Task {
            id: 1,
            fields: new("a"),
            version: 1,
        };
        let b = Task {
            id: 1,
            fields: new("b"),
            version: 2,
        };
        assert_eq!(
            a.audit_fields().iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["title", "labels"],
            "every field of `fields`, in order; not the id"
        );
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

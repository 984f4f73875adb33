//! Rows as domain values, and domain values as rows, through serde: a
//! resource's columns are named once, by its domain struct's fields.
//!
//! Reading: [`decode`] deserializes a `PgRow` into any `Deserialize` struct.
//! Each field is read from the column of its name (decoded from PostgreSQL's
//! binary format by its type); a field that names no column is a struct
//! read from the same row, so `Task { id, fields: NewTask { title, .. },
//! stamp: Stamp { version, .. } }` reads a flat `tasks` row. A value no
//! field type matches (an unknown stored enum text, a NULL in a non-`Option`
//! field) is an error naming the table and column, never a default.
//!
//! Writing: [`insert_row`] and [`write_row`] take the resource's own fields
//! as a JSON object (their `Serialize`) and let PostgreSQL convert each
//! member to its column's type with `jsonb_populate_record`: one bind, the
//! column list taken from the object's keys.

use std::fmt;
use std::ops::Range;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use foundry_platform::Error;
use foundry_platform::db::Tx;
use serde::de::value::SeqDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{Column, Row, TypeInfo, ValueRef};
use uuid::Uuid;

use crate::{Resource, Result};

/// Why a row did not decode: the column (when known) and the cause.
#[derive(Debug)]
pub struct RowError(String);

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RowError {}

impl de::Error for RowError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        RowError(msg.to_string())
    }
}

impl RowError {
    fn at(self, table: &str, column: &str) -> RowError {
        RowError(format!("{table}.{column}: {}", self.0))
    }
}

/// The row as a `T`; an error names the table and column (logged, the
/// caller sees `INTERNAL`).
pub fn decode<T: DeserializeOwned>(row: &PgRow, table: &'static str) -> Result<T> {
    decode_in(row, table, None)
}

/// The columns `columns` of the row as a `T`, each field read from the
/// column of its name among them only: for a statement that returns two
/// tables' rows side by side (a parent's and its children's, whose column
/// names repeat). An error is as [`decode`]'s.
pub fn decode_columns<T: DeserializeOwned>(
    row: &PgRow,
    table: &'static str,
    columns: Range<usize>,
) -> Result<T> {
    decode_in(row, table, Some((columns.start, columns.end)))
}

fn decode_in<T: DeserializeOwned>(
    row: &PgRow,
    table: &'static str,
    columns: Option<(usize, usize)>,
) -> Result<T> {
    T::deserialize(RowDe {
        row,
        table,
        columns,
        field: None,
    })
    .map_err(|e| {
        tracing::error!(table, error = %e, "a stored row does not decode");
        Error::internal(e)
    })
}

/// A row as a struct; `field` is the struct field being read, when it named
/// no column (an error names it).
#[derive(Clone, Copy)]
struct RowDe<'r> {
    row: &'r PgRow,
    table: &'static str,
    /// The columns read, `start..end` (`None`: every column).
    columns: Option<(usize, usize)>,
    field: Option<&'static str>,
}

impl RowDe<'_> {
    /// The index of the column `name` among those read.
    fn column(&self, name: &str) -> Option<usize> {
        match self.columns {
            None => self.row.try_column(name).ok().map(Column::ordinal),
            Some((start, end)) => self.row.columns()[start..end]
                .iter()
                .position(|c| c.name() == name)
                .map(|i| start + i),
        }
    }
}

impl<'de> de::Deserializer<'de> for RowDe<'_> {
    type Error = RowError;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, RowError> {
        visitor.visit_map(Fields {
            from: self,
            fields,
            next: 0,
        })
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, RowError> {
        Err(match self.field {
            Some(f) => RowError(format!("{}: no column {f}", self.table)),
            None => RowError(format!("{}: a row reads into a struct", self.table)),
        })
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// A struct's fields, each from its column or (naming none) from the row.
struct Fields<'r> {
    from: RowDe<'r>,
    fields: &'static [&'static str],
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = RowError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, RowError> {
        match self.fields.get(self.next) {
            Some(name) => seed.deserialize(name.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, RowError> {
        let name = self.fields[self.next];
        self.next += 1;
        match self.from.column(name) {
            Some(index) => seed
                .deserialize(ColumnDe {
                    row: self.from.row,
                    index,
                })
                .map_err(|e| e.at(self.from.table, name)),
            None => seed.deserialize(RowDe {
                field: Some(name),
                ..self.from
            }),
        }
    }
}

/// One column's value.
struct ColumnDe<'r> {
    row: &'r PgRow,
    index: usize,
}

impl<'r> ColumnDe<'r> {
    fn get<T>(&self) -> Result<T, RowError>
    where
        T: for<'q> sqlx::Decode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        self.row
            .try_get(self.index)
            .map_err(|e| RowError(e.to_string()))
    }

    /// Its type's name (the result column's, borrowed from the row), or
    /// `None` when it is NULL.
    fn type_name(&self) -> Result<Option<&'r str>, RowError> {
        let raw = self
            .row
            .try_get_raw(self.index)
            .map_err(|e| RowError(e.to_string()))?;
        if raw.is_null() {
            return Ok(None);
        }
        let row: &'r PgRow = self.row;
        Ok(Some(row.columns()[self.index].type_info().name()))
    }
}

fn seq<'de, T, V>(items: Vec<T>, visitor: V) -> Result<V::Value, RowError>
where
    T: IntoDeserializer<'de, RowError>,
    V: Visitor<'de>,
{
    visitor.visit_seq(SeqDeserializer::new(items.into_iter()))
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl<'de> de::Deserializer<'de> for ColumnDe<'_> {
    type Error = RowError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        let Some(ty) = self.type_name()? else {
            return visitor.visit_none();
        };
        match ty {
            "BOOL" => visitor.visit_bool(self.get()?),
            "INT2" => visitor.visit_i16(self.get()?),
            "INT4" => visitor.visit_i32(self.get()?),
            "INT8" => visitor.visit_i64(self.get()?),
            "FLOAT4" => visitor.visit_f32(self.get()?),
            "FLOAT8" => visitor.visit_f64(self.get()?),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" => visitor.visit_string(self.get()?),
            "UUID" => visitor.visit_string(self.get::<Uuid>()?.to_string()),
            "TIMESTAMPTZ" => visitor.visit_string(time(self.get()?)),
            "DATE" => visitor.visit_string(self.get::<NaiveDate>()?.to_string()),
            "JSON" | "JSONB" => self
                .get::<Value>()?
                .deserialize_any(visitor)
                .map_err(|e| RowError(e.to_string())),
            "BYTEA" => visitor.visit_byte_buf(self.get()?),
            "TEXT[]" | "VARCHAR[]" => seq(self.get::<Vec<String>>()?, visitor),
            "UUID[]" => seq(
                self.get::<Vec<Uuid>>()?
                    .iter()
                    .map(Uuid::to_string)
                    .collect(),
                visitor,
            ),
            "INT4[]" => seq(self.get::<Vec<i32>>()?, visitor),
            "INT8[]" => seq(self.get::<Vec<i64>>()?, visitor),
            "TIMESTAMPTZ[]" => seq(
                self.get::<Vec<DateTime<Utc>>>()?
                    .into_iter()
                    .map(time)
                    .collect(),
                visitor,
            ),
            other => Err(RowError(format!("a {other} column is not read yet"))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        match self.type_name()? {
            None => visitor.visit_none(),
            Some(_) => visitor.visit_some(self),
        }
    }

    /// A UUID as its 16 bytes (what `Uuid` asks a binary format for).
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        match self.type_name()? {
            Some("UUID") => visitor.visit_bytes(self.get::<Uuid>()?.as_bytes()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        self.deserialize_bytes(visitor)
    }

    /// A `bytea` as a sequence of bytes (what a `Vec<u8>` asks for).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RowError> {
        match self.type_name()? {
            Some("BYTEA") => seq(self.get::<Vec<u8>>()?, visitor),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, RowError> {
        visitor.visit_newtype_struct(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        unit unit_struct tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

/// The resource's own fields as a JSON object: the `fields` member of its
/// serialized value (see `foundry_domain::Audited`).
pub fn fields_of<R: Resource>(r: &R) -> Result<Value> {
    match serde_json::to_value(r).map_err(Error::internal)? {
        Value::Object(mut o) => match o.remove("fields") {
            Some(fields @ Value::Object(_)) => Ok(fields),
            _ => Err(Error::internal(RowError(format!(
                "{}: a resource's own fields are its `fields` member",
                R::TABLE
            )))),
        },
        _ => Err(Error::internal(RowError(format!(
            "{}: a resource serializes as a struct",
            R::TABLE
        )))),
    }
}

/// Inserts `new` as a row of `R` ([`insert_row`] of its JSON, with
/// [`Resource::COMPUTED`]): what [`Resource::insert`] does unless
/// a resource says otherwise, and what one that does more (an index table)
/// starts with.
pub async fn insert<R: Resource>(
    tx: &mut Tx,
    org_id: Uuid,
    created_by: Uuid,
    new: &R::New,
) -> Result<R> {
    let fields = serde_json::to_value(new).map_err(Error::internal)?;
    insert_row(tx, org_id, created_by, &fields, R::COMPUTED).await
}

/// Writes `r`'s own fields to its row ([`write_row`] of [`fields_of`]):
/// what [`Resource::write`] does unless a resource says otherwise.
pub async fn write<R: Resource>(tx: &mut Tx, org_id: Uuid, r: &R) -> Result<R> {
    let fields = fields_of(r)?;
    write_row(tx, org_id, r.key(), &fields).await
}

/// The members of an object, each the name of a column.
fn members(fields: &Value) -> Result<Vec<&str>> {
    match fields {
        Value::Object(o) => Ok(o.keys().map(String::as_str).collect()),
        _ => Err(Error::internal(RowError(
            "a row is written from a JSON object".into(),
        ))),
    }
}

/// Inserts a row of `R` with a new id, made by `created_by`, from `fields`
/// (a JSON object whose members name their columns) and `computed`
/// (columns the database computes from that record); returns it as read.
/// Within a project ([`Resource::WITHIN`]), it holds the project (`FOR KEY
/// SHARE`) and inserts nothing when it is missing: the project's
/// `NOT_FOUND`.
pub async fn insert_row<R: Resource>(
    tx: &mut Tx,
    org_id: Uuid,
    created_by: Uuid,
    fields: &Value,
    computed: &[crate::Computed],
) -> Result<R> {
    let computed: Vec<(&str, String)> = computed.iter().map(|c| c.sql(R::TABLE)).collect();
    let mut cols = Vec::new();
    let mut values = Vec::new();
    for m in members(fields)? {
        if !computed.iter().any(|(c, _)| *c == m) {
            cols.push(m);
            values.push(format!("r.{m}"));
        }
    }
    for (c, expr) in computed {
        cols.push(c);
        values.push(expr);
    }
    let within = R::WITHIN.map_or(String::new(), |w| {
        format!(
            " WHERE EXISTS (SELECT FROM {} p WHERE p.org_id = $1 AND p.id = r.{} FOR KEY SHARE)",
            w.table, w.key
        )
    });
    let row = sqlx::query(&format!(
        "INSERT INTO {t} (org_id, id, created_by, {cols}) \
         SELECT $1, $2, $3, {values} FROM jsonb_populate_record(NULL::{t}, $4) r{within} \
         RETURNING {c}",
        t = R::TABLE,
        cols = cols.join(", "),
        values = values.join(", "),
        c = R::COLUMNS,
    ))
    .bind(org_id)
    .bind(Uuid::now_v7())
    .bind(created_by)
    .bind(fields)
    .fetch_optional(&mut **tx)
    .await
    .map_err(R::write_error)?;
    match (row, R::WITHIN) {
        (Some(row), _) => R::decode(&row),
        (None, Some(w)) => Err((w.not_found)()),
        (None, None) => Err(Error::internal(RowError(format!(
            "{}: an insert returned no row",
            R::TABLE
        )))),
    }
}

/// Writes `fields` (a JSON object whose members name their columns) to the
/// row of `key`, with a new version; returns it as read.
pub async fn write_row<R: Resource>(
    tx: &mut Tx,
    org_id: Uuid,
    key: R::Key,
    fields: &Value,
) -> Result<R> {
    let cols = members(fields)?.join(", ");
    let row = sqlx::query(&format!(
        "UPDATE {t} SET ({cols}) = (SELECT {cols} FROM jsonb_populate_record(NULL::{t}, $3)), \
         version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {c}",
        t = R::TABLE,
        c = R::COLUMNS,
    ))
    .bind(org_id)
    .bind(key.into())
    .bind(fields)
    .fetch_one(&mut **tx)
    .await
    .map_err(R::write_error)?;
    R::decode(&row)
}

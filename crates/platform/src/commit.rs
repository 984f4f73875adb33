//! A transaction's last writes sent with its `COMMIT`, in one round trip.
//!
//! sqlx sends each statement that binds values on its own (one round trip
//! each) and `COMMIT` on its own. The writes that end a mutation (its audit
//! event, an idempotent create's stored response) need nothing back, so
//! [`with`] sends them with the `COMMIT` as one simple query,
//! `<statements>; COMMIT; BEGIN`: a [`Statement`] is SQL whose values are
//! written into it as literals ([`Literal`]), never interpolated text. If
//! one of them fails, nothing after it runs and the transaction rolls back,
//! as with the statements before.
//!
//! The trailing `BEGIN` keeps the connection where sqlx takes it to be (in
//! the transaction it began): [`with`] then drops the transaction, and
//! sqlx rolls the empty one back with the connection's next round trip
//! (the pool's ping as it takes the connection back), not this call's.

use std::fmt::Write;

use sqlx::Executor;
use uuid::Uuid;

use crate::db::Tx;
use crate::error::Error;

/// A statement to send with a `COMMIT`: SQL with parameters `$1`, `$2`, …,
/// each replaced by the literal of the value bound to it.
#[derive(Clone, Debug)]
pub struct Statement {
    sql: &'static str,
    values: Vec<Result<String, String>>,
}

impl Statement {
    /// `sql`, a constant whose only `$` are its parameters.
    pub fn new(sql: &'static str) -> Statement {
        Statement {
            sql,
            values: Vec::new(),
        }
    }

    /// Binds the next parameter to `value`.
    pub fn bind(mut self, value: impl Literal) -> Statement {
        self.values.push(value.literal());
        self
    }

    /// The SQL with every parameter replaced by its literal.
    pub fn sql(&self) -> Result<String, Error> {
        let mut out = String::with_capacity(self.sql.len() + 64);
        let mut rest = self.sql;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let digits = rest[at + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - at - 1);
            let n: usize = rest[at + 1..at + 1 + digits]
                .parse()
                .map_err(|_| unbound(self.sql, "a `$` that is not a parameter"))?;
            let value = self
                .values
                .get(n.wrapping_sub(1))
                .ok_or_else(|| unbound(self.sql, &format!("${n} is not bound")))?;
            out.push_str(value.as_ref().map_err(|why| unbound(self.sql, why))?);
            rest = &rest[at + 1 + digits..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn unbound(sql: &str, why: &str) -> Error {
    Error::internal(anyhow::anyhow!("statement {sql:?}: {why}"))
}

/// A value written into SQL as a literal of its type.
pub trait Literal {
    /// The literal, or why the value has none.
    fn literal(&self) -> Result<String, String>;
}

/// `s` as a string constant: `E'…'`, its backslashes and quotes escaped
/// (read the same whatever `standard_conforming_strings` is). A NUL, which
/// no PostgreSQL text holds, has none.
pub fn text(s: &str) -> Result<String, String> {
    if s.contains('\0') {
        return Err("a text holds NUL".into());
    }
    let mut out = String::with_capacity(s.len() + 3);
    out.push_str("E'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

impl Literal for &str {
    fn literal(&self) -> Result<String, String> {
        text(self)
    }
}

impl Literal for String {
    fn literal(&self) -> Result<String, String> {
        text(self)
    }
}

impl Literal for Uuid {
    fn literal(&self) -> Result<String, String> {
        Ok(format!("'{self}'::uuid"))
    }
}

impl Literal for i32 {
    fn literal(&self) -> Result<String, String> {
        Ok(self.to_string())
    }
}

impl Literal for i64 {
    fn literal(&self) -> Result<String, String> {
        Ok(self.to_string())
    }
}

/// A `bytea`, from its hex digits.
impl Literal for &[u8] {
    fn literal(&self) -> Result<String, String> {
        let mut hex = String::with_capacity(self.len() * 2 + 24);
        hex.push_str("decode('");
        for b in *self {
            let _ = write!(hex, "{b:02x}");
        }
        hex.push_str("', 'hex')");
        Ok(hex)
    }
}

impl Literal for Vec<u8> {
    fn literal(&self) -> Result<String, String> {
        self.as_slice().literal()
    }
}

/// A `jsonb`.
impl Literal for serde_json::Value {
    fn literal(&self) -> Result<String, String> {
        Ok(format!("{}::jsonb", text(&self.to_string())?))
    }
}

impl<T: Literal> Literal for Option<T> {
    fn literal(&self) -> Result<String, String> {
        match self {
            Some(v) => v.literal(),
            None => Ok("NULL".into()),
        }
    }
}

/// Runs `last` and commits `tx`, in one round trip (a plain commit when
/// there is nothing to run). An error is the first statement's that failed
/// (the transaction is then rolled back) or the commit's.
pub async fn with(mut tx: Tx, last: Vec<Statement>) -> Result<(), Error> {
    if last.is_empty() {
        tx.commit().await?;
        return Ok(());
    }
    let mut sql = String::new();
    for s in &last {
        sql.push_str(&s.sql()?);
        sql.push_str(";\n");
    }
    sql.push_str("COMMIT; BEGIN");
    (&mut *tx).execute(sqlx::raw_sql(&sql)).await?;
    // Rolls back the empty transaction the `BEGIN` opened, with the
    // connection's next round trip.
    drop(tx);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_literals_of_their_values() {
        let s = Statement::new("INSERT INTO t (a, b, c, d, e) VALUES ($1, $2, $3, $4, $10)")
            .bind(Uuid::nil())
            .bind("it's a \\ test")
            .bind(Some(7_i32))
            .bind(None::<String>)
            .bind(serde_json::json!({"k": "v's"}))
            .bind(1_i64)
            .bind(2_i64)
            .bind(3_i64)
            .bind(4_i64)
            .bind(&b"\x00\xff"[..]);
        assert_eq!(
            s.sql().expect("sql"),
            "INSERT INTO t (a, b, c, d, e) VALUES \
             ('00000000-0000-0000-0000-000000000000'::uuid, E'it''s a \\\\ test', 7, NULL, \
             decode('00ff', 'hex'))"
        );
        let json = Statement::new("SELECT $1").bind(serde_json::json!({"k": "v's"}));
        assert_eq!(json.sql().expect("sql"), r#"SELECT E'{"k":"v''s"}'::jsonb"#);
    }

    #[test]
    fn a_text_with_nul_or_a_parameter_left_unbound_is_refused() {
        assert!(Statement::new("SELECT $1").bind("a\0b").sql().is_err());
        assert!(Statement::new("SELECT $1, $2").bind(1_i32).sql().is_err());
        assert!(Statement::new("SELECT $0").bind(1_i32).sql().is_err());
        assert!(Statement::new("SELECT $x").sql().is_err());
    }
}

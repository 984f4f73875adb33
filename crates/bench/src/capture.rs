//! The database ceiling's statements, taken from the server: one call of a
//! scenario is made with `log_statement = 'all'`, and the statements the
//! handler sent (with their parameters, from the cluster's CSV log) become
//! the pgbench script. The script is therefore the handler's own SQL, as
//! the store sends it today, never a copy that drifts from it, and its
//! length is the call's count of statements.
//!
//! In the script, a parameter is a pgbench variable holding the value the
//! call sent (`-D`), except:
//! - a value the scenario maps to an expression (a random seeded task, so
//!   that pgbench reads the rows the callers read);
//! - any other id the call made (a uuid the scenario does not name as
//!   kept): a fresh UUIDv7 per transaction from [`V7_FUNCTION`], the same
//!   kind of id, and so the same B-tree pattern, as the service makes.
//!
//! Statements sent as one simple query (`BEGIN; SET LOCAL …`) are sent in
//! one pgbench pipeline, so that they cost one round trip there too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};

/// A fresh UUIDv7 (the Unix milliseconds in its first 48 bits, version 7,
/// RFC 9562 variant), as the service's `Uuid::now_v7()` makes them; in
/// `public`, callable by every role.
pub const V7_FUNCTION: &str = "CREATE OR REPLACE FUNCTION public.foundry_bench_v7() RETURNS uuid \
    LANGUAGE sql VOLATILE AS $$ SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) \
    placing substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) \
    FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid $$";

/// The server settings that make the cluster write the CSV log this reads.
pub fn server_settings() -> Vec<String> {
    [
        "logging_collector=on",
        "log_destination=stderr,csvlog",
        "log_directory=log",
        "log_filename=postgresql.log",
        "log_file_mode=0644",
        "log_rotation_size=0",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// One statement the handler sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// Its text (`$n` for parameters).
    pub sql: String,
    /// Its parameters' values as the log prints them (`None`: NULL).
    pub params: Vec<Option<String>>,
}

/// Where a cluster's CSV log is and how to turn statement logging on.
#[derive(Clone, Debug)]
pub struct Capture {
    /// A superuser URL.
    url: String,
    /// The CSV log.
    file: PathBuf,
}

/// What a scenario's call is recognised by and what its script varies.
#[derive(Clone, Debug, Default)]
pub struct Shape {
    /// The `application_name` of the service's connections.
    pub application: String,
    /// A value in the call's first statement (its text or parameters).
    pub needle: String,
    /// Uuids that stay as sent (the organization, the caller, a parent);
    /// any other uuid parameter is made fresh.
    pub keep: Vec<String>,
    /// Parameter values replaced by an SQL expression.
    pub vary: HashMap<String, String>,
    /// pgbench lines before the statements (`\set i random(…)`).
    pub prelude: String,
}

impl Capture {
    /// The log of the cluster in `data_dir`, started with
    /// [`server_settings`].
    pub fn new(url: &str, data_dir: &Path) -> Capture {
        Capture {
            url: url.to_owned(),
            file: data_dir.join("log").join("postgresql.csv"),
        }
    }

    /// Runs `call` with every statement logged; returns the statements of
    /// `shape`'s call: the first statement of its service's connections
    /// naming the needle, and with it the rest of its transaction (or,
    /// outside one, the statements of the same session that follow it and
    /// name the needle too).
    pub async fn around<F, T>(&self, shape: &Shape, call: F) -> anyhow::Result<(T, Vec<Statement>)>
    where
        F: Future<Output = anyhow::Result<T>>,
    {
        let from = std::fs::metadata(&self.file).map_or(0, |m| m.len());
        let mut su = PgConnection::connect(&self.url).await?;
        su.execute(V7_FUNCTION).await?;
        let (a, b): (uuid::Uuid, uuid::Uuid) =
            sqlx::query_as("SELECT public.foundry_bench_v7(), public.foundry_bench_v7()")
                .fetch_one(&mut su)
                .await?;
        anyhow::ensure!(
            a.get_version_num() == 7 && a != b && a.get_timestamp().is_some(),
            "foundry_bench_v7() made {a} and {b}, not fresh UUIDv7s"
        );
        su.execute("ALTER SYSTEM SET log_statement = 'all'").await?;
        su.execute("SELECT pg_reload_conf()").await?;
        // Backends read the new setting before their next command.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let out = call.await;
        su.execute("ALTER SYSTEM RESET log_statement").await?;
        su.execute("SELECT pg_reload_conf()").await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let out = out?;
        let bytes = std::fs::read(&self.file)?;
        let text = String::from_utf8_lossy(bytes.get(from as usize..).unwrap_or_default());
        Ok((out, statements(&records(&text), shape)?))
    }
}

/// The fields of a CSV log record this reads.
#[derive(Debug)]
struct Record {
    session: String,
    message: String,
    detail: String,
    application: String,
}

/// Parses CSV log text (quoted fields, `""` inside, newlines allowed).
fn records(text: &str) -> Vec<Record> {
    let mut out = vec![];
    let (mut fields, mut field, mut quoted) = (vec![], String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            ('\n', false) => {
                fields.push(std::mem::take(&mut field));
                let f = std::mem::take(&mut fields);
                let at = |i: usize| f.get(i).cloned().unwrap_or_default();
                out.push(Record {
                    session: at(5),
                    message: at(13),
                    detail: at(14),
                    application: at(22),
                });
            }
            (c, _) => field.push(c),
        }
    }
    out
}

/// The SQL of a logged statement: `statement: …` (a simple query) or
/// `execute <name>: …` (a prepared one).
fn sql_of(message: &str) -> Option<&str> {
    if let Some(sql) = message.strip_prefix("statement: ") {
        return Some(sql);
    }
    let rest = message.strip_prefix("execute ")?;
    rest.split_once(": ").map(|(_, sql)| sql)
}

/// `parameters: $1 = '…', $2 = NULL` → the values.
fn params(detail: &str) -> Vec<Option<String>> {
    let Some(mut rest) = detail.strip_prefix("parameters: ") else {
        return vec![];
    };
    let mut out = vec![];
    while let Some((_, after)) = rest.split_once(" = ") {
        if let Some(after) = after.strip_prefix("NULL") {
            out.push(None);
            rest = after;
        } else if let Some(body) = after.strip_prefix('\'') {
            let (value, after) = quoted(body);
            out.push(Some(value.replace("''", "'")));
            rest = after;
        } else {
            break;
        }
        rest = rest.strip_prefix(", ").unwrap_or(rest);
    }
    out
}

/// A quoted SQL string's body, from just after its opening quote: the
/// text up to its closing quote (doubled quotes as they are) and what
/// follows that quote.
fn quoted(body: &str) -> (&str, &str) {
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().map(|p| p.1) == Some('\'') {
                chars.next();
                continue;
            }
            return (&body[..i], &body[i + 1..]);
        }
    }
    (body, "")
}

fn names(r: &Record, needle: &str) -> bool {
    r.message.contains(needle) || r.detail.contains(needle)
}

fn statements(records: &[Record], shape: &Shape) -> anyhow::Result<Vec<Statement>> {
    let logged: Vec<&Record> = records
        .iter()
        .filter(|r| r.application == shape.application && sql_of(&r.message).is_some())
        .collect();
    let first = logged
        .iter()
        .position(|r| names(r, &shape.needle))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no statement of {} named {} while statements were logged",
                shape.application,
                shape.needle
            )
        })?;
    let session: Vec<&Record> = logged
        .iter()
        .copied()
        .filter(|r| r.session == logged[first].session)
        .collect();
    let at = session
        .iter()
        .position(|r| std::ptr::eq(*r, logged[first]))
        .unwrap_or_default();
    let word = |r: &Record, w: &str| {
        sql_of(&r.message).is_some_and(|s| s.trim_start().to_ascii_uppercase().starts_with(w))
    };
    // The transaction it is in: back to its BEGIN unless an end comes first.
    let begin = if word(session[at], "BEGIN") {
        Some(at)
    } else {
        session[..at]
            .iter()
            .rposition(|r| word(r, "BEGIN") || word(r, "COMMIT") || word(r, "ROLLBACK"))
            .filter(|&i| word(session[i], "BEGIN"))
    };
    let chosen: Vec<&Record> = match begin {
        Some(b) => {
            // The end: a statement that commits or rolls back, alone or
            // as a part of a simple query (writes sent with their COMMIT).
            let ends = |r: &&Record| {
                split(sql_of(&r.message).unwrap_or_default())
                    .iter()
                    .any(|p| {
                        let p = p.to_ascii_uppercase();
                        p.starts_with("COMMIT") || p.starts_with("ROLLBACK")
                    })
            };
            let end = session[b + 1..]
                .iter()
                .position(ends)
                .map(|e| e + 1)
                .map_or(session.len(), |e| b + e + 1);
            session[b..end].to_vec()
        }
        None => session[at..]
            .iter()
            .copied()
            .take_while(|r| names(r, &shape.needle))
            .collect(),
    };
    Ok(chosen
        .into_iter()
        .map(|r| Statement {
            sql: sql_of(&r.message).unwrap_or_default().to_owned(),
            params: params(&r.detail),
        })
        .collect())
}

/// Splits a simple query into its statements (at `;` outside quotes).
fn split(sql: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (vec![], String::new(), false);
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A statement of literals made fit for pgbench: each id the call made
/// (`'<uuid>'::uuid` not kept) fresh, and each `:` inside an `E'…'`
/// string written `\x3a` (the same string; pgbench would read `:name` as
/// a variable).
fn literal(sql: &str, shape: &Shape) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('\'') {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let (value, after) = quoted(&from[1..]);
        let escaped = out.ends_with('E');
        if let Some(tail) = after.strip_prefix("::uuid")
            && uuid::Uuid::try_parse(value).is_ok()
            && !shape.keep.iter().any(|k| k == value)
        {
            out.push_str("public.foundry_bench_v7()");
            rest = tail;
            continue;
        }
        out.push('\'');
        if escaped {
            out.push_str(&value.replace(':', "\\x3a"));
        } else {
            out.push_str(value);
        }
        out.push('\'');
        rest = after;
    }
    out.push_str(rest);
    out
}

/// A pgbench script of `statements` and the variables it takes (`-D`).
pub fn script(statements: &[Statement], shape: &Shape) -> (String, Vec<(String, String)>) {
    let mut out = shape.prelude.clone();
    let mut vars = vec![];
    for (k, s) in statements.iter().enumerate() {
        let parts = split(&s.sql);
        if s.params.is_empty() && parts.len() > 1 {
            out.push_str("\\startpipeline\n");
            for p in parts {
                out.push_str(&format!("{};\n", literal(&p, shape)));
                // What follows a COMMIT in the same query (the `BEGIN` of
                // `foundry_platform::commit`, rolled back after the call
                // answered) is not the call's.
                if p.to_ascii_uppercase().starts_with("COMMIT") {
                    break;
                }
            }
            out.push_str("\\endpipeline\n");
            continue;
        }
        let mut sql = s.sql.trim().trim_end_matches(';').to_owned();
        // `$12` before `$1`.
        for (n, value) in s.params.iter().enumerate().rev() {
            let with = match value {
                None => "NULL".to_owned(),
                Some(v) if shape.vary.contains_key(v) => format!("({})", shape.vary[v]),
                Some(v) if uuid::Uuid::try_parse(v).is_ok() && !shape.keep.contains(v) => {
                    "public.foundry_bench_v7()".to_owned()
                }
                Some(v) => {
                    let name = format!("s{k}p{}", n + 1);
                    vars.push((name.clone(), v.clone()));
                    format!(":{name}")
                }
            };
            sql = sql.replace(&format!("${}", n + 1), &with);
        }
        out.push_str(&format!("{sql};\n"));
    }
    (out, vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_read_with_quotes_and_nulls() {
        assert_eq!(
            params("parameters: $1 = 'a''b', $2 = NULL, $3 = '{\"k\": 1}'"),
            vec![Some("a'b".into()), None, Some("{\"k\": 1}".into())]
        );
        assert!(params("").is_empty());
    }

    #[test]
    fn a_transaction_is_taken_whole_and_becomes_a_script() {
        let org = "0195f000-0000-7000-8000-000000000001";
        let fresh = "0195f000-0000-7000-8000-0000000000ff";
        let log = format!(
            "t,u,d,1,c,s1,1,,t,v,0,LOG,00000,\"statement: BEGIN; SET LOCAL app.org_id = '{org}'\",,,,,,,,,foundry-delivery,b,,0\n\
             t,u,d,2,c,s2,1,,t,v,0,LOG,00000,\"execute q: SELECT 1\",,,,,,,,,foundry-delivery,b,,0\n\
             t,u,d,1,c,s1,2,,t,v,0,LOG,00000,\"execute q: INSERT INTO x VALUES ($1, $2, $10)\",\"parameters: $1 = '{org}', $2 = '{fresh}', $3 = '3', $4 = '4', $5 = '5', $6 = '6', $7 = '7', $8 = '8', $9 = '9', $10 = 'ten'\",,,,,,,,foundry-delivery,b,,0\n\
             t,u,d,1,c,s1,3,,t,v,0,LOG,00000,\"statement: COMMIT\",,,,,,,,,foundry-delivery,b,,0\n"
        );
        let shape = Shape {
            application: "foundry-delivery".into(),
            needle: org.into(),
            keep: vec![org.into()],
            ..Shape::default()
        };
        let got = statements(&records(&log), &shape).expect("the call's statements");
        assert_eq!(got.len(), 3, "{got:?}");
        let (script, vars) = script(&got, &shape);
        assert_eq!(
            script,
            format!(
                "\\startpipeline\nBEGIN;\nSET LOCAL app.org_id = '{org}';\n\\endpipeline\n\
                 INSERT INTO x VALUES (:s1p1, public.foundry_bench_v7(), :s1p10);\nCOMMIT;\n"
            )
        );
        assert!(vars.contains(&("s1p1".into(), org.into())));
        assert!(vars.contains(&("s1p10".into(), "ten".into())));
    }

    #[test]
    fn writes_sent_with_their_commit_get_fresh_ids_and_no_pgbench_variables() {
        let org = "0195f000-0000-7000-8000-000000000001";
        let fresh = "0195f000-0000-7000-8000-0000000000ff";
        let shape = Shape {
            keep: vec![org.into()],
            ..Shape::default()
        };
        let got = script(
            &[Statement {
                sql: format!(
                    "INSERT INTO outbox VALUES ('{fresh}'::uuid, '{org}'::uuid, E'{{\"at\":\"18:06\",\"q\":\"it''s\"}}'); COMMIT; BEGIN"
                ),
                params: vec![],
            }],
            &shape,
        )
        .0;
        assert_eq!(
            got,
            format!(
                "\\startpipeline\nINSERT INTO outbox VALUES (public.foundry_bench_v7(), '{org}'::uuid, \
                 E'{{\"at\"\\x3a\"18\\x3a06\",\"q\"\\x3a\"it''s\"}}');\nCOMMIT;\n\\endpipeline\n"
            )
        );
    }
}

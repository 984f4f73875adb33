//! Cron schedules: each enqueues a job of its kind (for [`crate::SYSTEM`])
//! at the times of its cron expression, read as wall-clock times in its
//! time zone.
//!
//! Daylight saving time, stated:
//! - a wall-clock time the clock skips (spring forward: 02:30 in
//!   Europe/Berlin on the last Sunday of March) runs once, at the instant
//!   that time would have been had the clock not moved (03:30 CEST);
//! - a wall-clock time the clock passes twice (fall back: 02:30 on the last
//!   Sunday of October) runs once, at its first occurrence (02:30 CEST).
//!
//! A schedule may instead run every fixed interval ([`When::Every`]): the
//! maintenance loops (sweeps, audit checkpoints) run that way.
//!
//! Runs whose time passed while no worker ran ("missed": more than
//! [`MISSED_AFTER`] late) follow the schedule's [`Missed`] policy. A run is
//! a job whose `run_at` is its scheduled time. Under [`Missed::All`] each
//! run has its own unique key (`schedule:<name>:<time>`); otherwise the key
//! is `schedule:<name>`, so a run still pending or running absorbs the next
//! (runs of one schedule never overlap). Either way two workers never
//! enqueue one run twice.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use foundry_platform::clock::Clock;
use foundry_platform::db::{Db, Tx};

use crate::{NewJob, SYSTEM};

/// How late a run may be and still count as on time.
pub const MISSED_AFTER: TimeDelta = TimeDelta::seconds(60);

/// At most this many missed runs are enqueued at once ([`Missed::All`]).
pub const MAX_CATCH_UP: usize = 1000;

/// What happens to runs missed while no worker ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    /// Dropped: only the next run on time happens.
    Skip,
    /// One run stands for all of them (the latest).
    Once,
    /// Each runs (up to [`MAX_CATCH_UP`]).
    All,
}

impl Missed {
    fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::Once => "once",
            Missed::All => "all",
        }
    }

    fn parse(s: &str) -> Missed {
        match s {
            "once" => Missed::Once,
            "all" => Missed::All,
            _ => Missed::Skip,
        }
    }
}

/// When a schedule runs.
#[derive(Clone, Debug, PartialEq)]
pub enum When {
    /// At the times of a cron expression (five fields: minute hour day
    /// month weekday; or six, seconds first), read in a time zone.
    Cron(String, Tz),
    /// Every interval, from when it was created.
    Every(std::time::Duration),
}

impl When {
    /// Its stored form: the cron expression and zone, or `@every <ms>ms` in
    /// UTC.
    fn stored(&self) -> (String, &'static str) {
        match self {
            When::Cron(expr, tz) => (expr.clone(), tz.name()),
            When::Every(d) => (format!("@every {}ms", d.as_millis()), "UTC"),
        }
    }

    fn from_stored(cron: &str, time_zone: &str) -> Option<When> {
        if let Some(ms) = cron
            .strip_prefix("@every ")
            .and_then(|r| r.strip_suffix("ms"))
        {
            return Some(When::Every(std::time::Duration::from_millis(
                ms.parse().ok()?,
            )));
        }
        Some(When::Cron(cron.to_string(), time_zone.parse().ok()?))
    }

    /// Its first run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, BadCron> {
        match self {
            When::Cron(expr, tz) => Ok(next_after(&parse_cron(expr)?, *tz, after)),
            When::Every(d) if d.is_zero() => Err(BadCron {
                expr: "@every 0ms".into(),
                reason: "the interval must be positive".into(),
            }),
            When::Every(d) => Ok(Some(after + crate::queue::delta(*d))),
        }
    }
}

/// A schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Its name (unique in the schema).
    pub name: String,
    /// When it runs.
    pub when: When,
    /// The kind of job it enqueues.
    pub kind: String,
    /// The job's arguments.
    pub args: serde_json::Value,
    /// What happens to missed runs.
    pub missed: Missed,
}

impl Schedule {
    /// A schedule enqueueing `kind` with no arguments every `interval`,
    /// missed runs skipped.
    pub fn every(name: &str, interval: std::time::Duration, kind: &str) -> Schedule {
        Schedule {
            name: name.to_string(),
            when: When::Every(interval),
            kind: kind.to_string(),
            args: serde_json::json!({}),
            missed: Missed::Skip,
        }
    }
}

/// A cron expression that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("cron expression {expr:?}: {reason}")]
pub struct BadCron {
    expr: String,
    reason: String,
}

/// Parses a five- or six-field cron expression.
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, BadCron> {
    let fields = expr.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {expr}")
    } else {
        expr.to_string()
    };
    cron::Schedule::from_str(&full).map_err(|e| BadCron {
        expr: expr.to_string(),
        reason: e.to_string(),
    })
}

/// The first run of `cron` in `tz` strictly after `after` (see the module
/// for daylight saving time).
pub fn next_after(cron: &cron::Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = after.with_timezone(&tz).naive_local();
    // Wall-clock candidates, enumerated on a clock without transitions.
    for wall in cron.after(&Utc.from_utc_datetime(&local)).take(10_000) {
        let wall = wall.naive_utc();
        let at = match tz.from_local_datetime(&wall) {
            chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
            // Passed twice: its first occurrence only.
            chrono::LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            // Skipped: where it would have been with the offset before.
            chrono::LocalResult::None => skipped(tz, wall)?,
        };
        if at > after {
            return Some(at);
        }
    }
    None
}

/// The instant of the skipped wall time `wall`, at the offset in force
/// just before the gap.
fn skipped(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    let before = tz
        .from_local_datetime(&(wall - TimeDelta::hours(3)))
        .earliest()?;
    let offset = before.offset().fix().local_minus_utc();
    Some((wall - TimeDelta::seconds(i64::from(offset))).and_utc())
}

/// Creates or redefines `s`. A schedule whose times are unchanged keeps
/// its next run (so runs missed while the service was down are seen as
/// missed); a new or changed one runs next after now.
pub async fn upsert(db: &Db, clock: &dyn Clock, s: &Schedule) -> anyhow::Result<()> {
    let mut tx = db.system().await?;
    upsert_in(&mut tx, clock, s).await?;
    tx.commit().await?;
    Ok(())
}

async fn upsert_in(tx: &mut Tx, clock: &dyn Clock, s: &Schedule) -> anyhow::Result<()> {
    let now = clock.now();
    let next = s
        .when
        .next_after(now)?
        .ok_or_else(|| anyhow::anyhow!("schedule {} never runs", s.name))?;
    let (cron, time_zone) = s.when.stored();
    sqlx::query(
        "INSERT INTO job_schedules (name, cron, time_zone, kind, args, missed, next_run_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, args = EXCLUDED.args, \
           missed = EXCLUDED.missed, updated_at = EXCLUDED.updated_at, \
           next_run_at = CASE WHEN job_schedules.cron = EXCLUDED.cron \
                               AND job_schedules.time_zone = EXCLUDED.time_zone \
                              THEN job_schedules.next_run_at ELSE EXCLUDED.next_run_at END, \
           cron = EXCLUDED.cron, time_zone = EXCLUDED.time_zone",
    )
    .bind(&s.name)
    .bind(cron)
    .bind(time_zone)
    .bind(&s.kind)
    .bind(&s.args)
    .bind(s.missed.as_str())
    .bind(next)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Makes `schedules` the schema's whole set, in one transaction: each
/// upserted, every other schedule removed (one a configuration no longer
/// asks for stops).
pub async fn sync(db: &Db, clock: &dyn Clock, schedules: &[Schedule]) -> anyhow::Result<()> {
    let mut tx = db.system().await?;
    for s in schedules {
        upsert_in(&mut tx, clock, s).await?;
    }
    let names: Vec<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
    sqlx::query("DELETE FROM job_schedules WHERE NOT (name = ANY($1))")
        .bind(&names)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Due {
    name: String,
    cron: String,
    time_zone: String,
    kind: String,
    args: serde_json::Value,
    missed: String,
    next_run_at: DateTime<Utc>,
}

/// Enqueues the runs of every schedule whose time has come, by its missed
/// policy, and moves each to its next run after now. Returns how many jobs
/// it added (a run absorbed by a pending one of its schedule is not).
pub async fn fire_due(db: &Db, clock: &dyn Clock) -> anyhow::Result<usize> {
    let now = clock.now();
    let mut tx = db.system().await?;
    let due: Vec<Due> = sqlx::query_as(
        "SELECT name, cron, time_zone, kind, args, missed, next_run_at FROM job_schedules \
         WHERE next_run_at <= $1 ORDER BY name FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let mut jobs = Vec::new();
    for d in &due {
        let Some(when) = When::from_stored(&d.cron, &d.time_zone) else {
            tracing::error!(schedule = %d.name, "jobs: a stored schedule no longer parses; left as is");
            continue;
        };
        let next = |t| when.next_after(t).ok().flatten();
        let mut runs = vec![d.next_run_at];
        while let Some(t) = runs.last().and_then(|t| next(*t)) {
            if t > now || runs.len() >= MAX_CATCH_UP {
                break;
            }
            runs.push(t);
        }
        let missed = Missed::parse(&d.missed);
        let runs: Vec<DateTime<Utc>> = match missed {
            Missed::All => runs,
            Missed::Once => runs.last().copied().into_iter().collect(),
            Missed::Skip => runs
                .into_iter()
                .filter(|t| now - *t <= MISSED_AFTER)
                .collect(),
        };
        for t in runs {
            let key = if missed == Missed::All {
                format!("schedule:{}:{}", d.name, t.to_rfc3339())
            } else {
                format!("schedule:{}", d.name)
            };
            jobs.push(
                NewJob::new(d.kind.clone(), SYSTEM, d.args.clone())
                    .at(t)
                    .unique(key),
            );
        }
        sqlx::query("UPDATE job_schedules SET next_run_at = $2 WHERE name = $1")
            .bind(&d.name)
            .bind(next(now).unwrap_or(DateTime::<Utc>::MAX_UTC))
            .execute(&mut *tx)
            .await?;
    }
    let added = crate::enqueue_many(&mut tx, clock, jobs).await?;
    tx.commit().await?;
    Ok(added.iter().filter(|e| !e.duplicate).count())
}

#[cfg(test)]
mod tests {
    use chrono_tz::Europe::Berlin;

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a time")
            .with_timezone(&Utc)
    }

    fn runs(expr: &str, tz: Tz, from: &str, n: usize) -> Vec<String> {
        let cron = parse_cron(expr).expect("cron");
        let mut t = utc(from);
        (0..n)
            .map(|_| {
                t = next_after(&cron, tz, t).expect("a next run");
                t.with_timezone(&tz).to_rfc3339()
            })
            .collect()
    }

    #[test]
    fn a_skipped_wall_time_runs_once_as_if_the_clock_had_not_moved() {
        // 2026-03-29: Berlin goes from 02:00 CET to 03:00 CEST.
        assert_eq!(
            runs("30 2 * * *", Berlin, "2026-03-27T12:00:00Z", 3),
            [
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:30:00+02:00",
                "2026-03-30T02:30:00+02:00",
            ]
        );
    }

    #[test]
    fn a_wall_time_passed_twice_runs_once_at_its_first_occurrence() {
        // 2026-10-25: Berlin goes from 03:00 CEST back to 02:00 CET.
        assert_eq!(
            runs("30 2 * * *", Berlin, "2026-10-23T12:00:00Z", 3),
            [
                "2026-10-24T02:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00",
            ]
        );
    }

    #[test]
    fn daily_runs_keep_their_wall_time_across_both_changes() {
        let spring = runs("0 9 * * *", Berlin, "2026-03-28T00:00:00Z", 2);
        assert_eq!(
            spring,
            ["2026-03-28T09:00:00+01:00", "2026-03-29T09:00:00+02:00"]
        );
        let autumn = runs("0 9 * * *", Berlin, "2026-10-24T00:00:00Z", 2);
        assert_eq!(
            autumn,
            ["2026-10-24T09:00:00+02:00", "2026-10-25T09:00:00+01:00"]
        );
    }

    #[test]
    fn five_and_six_field_expressions_parse_and_nonsense_does_not() {
        assert!(parse_cron("*/5 * * * *").is_ok());
        assert!(parse_cron("0 */5 * * * *").is_ok());
        let e = parse_cron("every tuesday").expect_err("nonsense");
        assert!(e.to_string().contains("every tuesday"), "{e}");
    }
}

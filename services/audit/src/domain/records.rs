//! Execution audit records: immutable snapshots of agent executions, with
//! the names embedded as they were. No I/O.

use chrono::{DateTime, Utc};
use foundry_proto::foundry::audit::v1 as pb;
use serde_json::Value;
use uuid::Uuid;

/// Longest task title.
pub const MAX_TASK_TITLE: usize = 500;
/// Longest skill name, model and user display name.
pub const MAX_NAME: usize = 200;
/// Longest skill version.
pub const MAX_SKILL_VERSION: usize = 64;
/// Largest environment, as compact JSON.
pub const MAX_ENVIRONMENT_BYTES: usize = 64 * 1024;

/// How an execution ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It completed its task.
    Succeeded,
    /// It failed.
    Failed,
    /// Someone stopped it.
    Cancelled,
    /// It ran out of time.
    TimedOut,
}

impl Outcome {
    /// Database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::TimedOut => "timed_out",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "succeeded" => Outcome::Succeeded,
            "failed" => Outcome::Failed,
            "cancelled" => Outcome::Cancelled,
            "timed_out" => Outcome::TimedOut,
            _ => return None,
        })
    }
}

impl From<Outcome> for pb::ExecutionOutcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Succeeded => pb::ExecutionOutcome::Succeeded,
            Outcome::Failed => pb::ExecutionOutcome::Failed,
            Outcome::Cancelled => pb::ExecutionOutcome::Cancelled,
            Outcome::TimedOut => pb::ExecutionOutcome::TimedOut,
        }
    }
}

impl TryFrom<i32> for Outcome {
    type Error = ();
    fn try_from(v: i32) -> Result<Self, ()> {
        match pb::ExecutionOutcome::try_from(v).map_err(|_| ())? {
            pb::ExecutionOutcome::Succeeded => Ok(Outcome::Succeeded),
            pb::ExecutionOutcome::Failed => Ok(Outcome::Failed),
            pb::ExecutionOutcome::Cancelled => Ok(Outcome::Cancelled),
            pb::ExecutionOutcome::TimedOut => Ok(Outcome::TimedOut),
            pb::ExecutionOutcome::Unspecified => Err(()),
        }
    }
}

/// A snapshot of one agent execution.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionRecord {
    /// UUID v7 minted by the producer (the idempotency key).
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// The agent execution, if the producer has one.
    pub execution_id: Option<Uuid>,
    /// The program.
    pub program_id: Uuid,
    /// The task.
    pub task_id: Uuid,
    /// The task's title at the time.
    pub task_title: String,
    /// The skill's name at the time.
    pub skill_name: String,
    /// The skill version.
    pub skill_version: String,
    /// The user it ran for.
    pub user_id: Option<Uuid>,
    /// That user's display name at the time.
    pub user_display_name: String,
    /// Environment and configuration (a JSON object).
    pub environment: Value,
    /// The model.
    pub model: String,
    /// How it ended.
    pub outcome: Outcome,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// How long it ran, in microseconds.
    pub duration_us: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip() {
        for o in [
            Outcome::Succeeded,
            Outcome::Failed,
            Outcome::Cancelled,
            Outcome::TimedOut,
        ] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(
                Outcome::try_from(pb::ExecutionOutcome::from(o) as i32),
                Ok(o)
            );
        }
        assert_eq!(Outcome::try_from(0), Err(()));
        assert_eq!(Outcome::try_from(99), Err(()));
    }
}

//! Execution audit records: immutable snapshots of agent executions, with
//! the names embedded as they were. No I/O.

use chrono::{DateTime, Utc};
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

foundry_domain::stored_enum! {
    /// How an execution ended.
    Outcome {
        /// It completed its task.
        Succeeded = "succeeded",
        /// It failed.
        Failed = "failed",
        /// Someone stopped it.
        Cancelled = "cancelled",
        /// It ran out of time.
        TimedOut = "timed_out",
    }
}

/// A snapshot of one agent execution.
/// Read from its row by the names of its fields.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
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

/// A stored record: the snapshot and when it was stored.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct StoredRecord {
    /// The snapshot, as sent.
    pub record: ExecutionRecord,
    /// When it was stored.
    pub recorded_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use foundry_domain::StoredEnum;

    #[test]
    fn outcomes_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(*o));
        }
        assert_eq!(Outcome::parse("crashed"), None);
    }
}

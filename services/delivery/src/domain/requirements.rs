//! Requirements: priority and status.

use super::*;

stored_enum! {
    /// How much a requirement matters (declared most important first, so
    /// the derived order is planning order).
    Priority {
        /// Blocks the delivery.
        Critical = "critical",
        /// Must have.
        High = "high",
        /// Should have.
        Medium = "medium",
        /// Nice to have.
        Low = "low",
    }
}

stored_enum! {
    /// Where a requirement stands.
    RequirementStatus {
        /// Being written.
        Draft = "draft",
        /// Agreed.
        Approved = "approved",
        /// Being built.
        InProgress = "in_progress",
        /// Delivered.
        Done = "done",
        /// Postponed.
        Deferred = "deferred",
    }
}

//! The outbox's typed envelopes: what a service records beside its change,
//! for the audit service and for the services that react to its events.
//!
//! - An **audit event** (`kind = audit`, its type the action): who changed
//!   what, for the organization's audit log (`crate::EventBuilder`).
//! - A **domain event** (`kind = domain`): a fact other services react to,
//!   named `<service>.<resource>.<verb>` with a schema version
//!   (`delivery.requirement.deleted` v1), about one subject, with its data.
//! - A **usage record** (`kind = usage`): a quantity of a meter an
//!   organization used, for billing.
//!
//! Each is written in the transaction that makes the change, so it exists
//! if and only if the change committed, and takes its place in its
//! organization's commit order (`seq`).

use chrono::{DateTime, SubsecRound, Utc};
use foundry_platform::Error;
use foundry_platform::commit::Statement;
use foundry_platform::db::Tx;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An audit event.
pub const AUDIT: &str = "audit";
/// A domain event.
pub const DOMAIN: &str = "domain";
/// A usage record.
pub const USAGE: &str = "usage";

/// A fact other services react to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainEvent {
    /// UUID v7, minted when it was made.
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// `<service>.<resource>.<verb>`.
    pub r#type: String,
    /// The version of the type's schema.
    pub version: i32,
    /// What it is about: `<service>.<resource>`.
    pub subject_type: String,
    /// Its id.
    pub subject_id: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The type's data.
    pub data: serde_json::Value,
}

impl DomainEvent {
    /// A `type` (at `version`) event about `subject_type` `subject_id` of
    /// `org_id`, with `data`.
    pub fn new(
        org_id: Uuid,
        (r#type, version): (&str, i32),
        (subject_type, subject_id): (&str, String),
        data: serde_json::Value,
    ) -> DomainEvent {
        DomainEvent {
            id: Uuid::now_v7(),
            org_id,
            r#type: r#type.to_string(),
            version,
            subject_type: subject_type.to_string(),
            subject_id,
            occurred_at: Utc::now().trunc_subsecs(6),
            data,
        }
    }

    /// Writes it into the outbox in `tx`.
    pub async fn record(self, tx: &mut Tx) -> Result<DomainEvent, Error> {
        let payload = serde_json::to_value(&self).map_err(Error::internal)?;
        insert(
            tx,
            (self.id, self.org_id),
            (DOMAIN, &self.r#type, self.version),
            payload,
        )
        .await?;
        Ok(self)
    }
}

/// A quantity of a meter an organization used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// UUID v7: the receiver counts each record once by it.
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// The meter (`delivery.agent_minutes`).
    pub meter: String,
    /// How much.
    pub quantity: i64,
    /// What used it, if one thing did.
    pub subject: Option<String>,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

impl UsageRecord {
    /// `quantity` of `meter` used by `org_id`.
    pub fn new(org_id: Uuid, meter: &str, quantity: i64) -> UsageRecord {
        UsageRecord {
            id: Uuid::now_v7(),
            org_id,
            meter: meter.to_string(),
            quantity,
            subject: None,
            occurred_at: Utc::now().trunc_subsecs(6),
        }
    }

    /// Writes it into the outbox in `tx` (type: its meter, version 1).
    pub async fn record(self, tx: &mut Tx) -> Result<UsageRecord, Error> {
        let payload = serde_json::to_value(&self).map_err(Error::internal)?;
        insert(tx, (self.id, self.org_id), (USAGE, &self.meter, 1), payload).await?;
        Ok(self)
    }
}

/// The insert of one envelope (its `seq` is set as it is inserted).
const INSERT: &str = "INSERT INTO outbox (id, org_id, payload, kind, type, version, traceparent) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Inserts one envelope, with the current call's trace context.
pub(crate) async fn insert(
    tx: &mut Tx,
    (id, org_id): (Uuid, Uuid),
    (kind, r#type, version): (&str, &str, i32),
    payload: serde_json::Value,
) -> Result<(), Error> {
    sqlx::query(INSERT)
        .bind(id)
        .bind(org_id)
        .bind(payload)
        .bind(kind)
        .bind(r#type)
        .bind(version)
        .bind(foundry_platform::telemetry::current_traceparent())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// [`insert`] as a statement sent with the transaction's `COMMIT`
/// ([`foundry_platform::commit`]).
pub(crate) fn insert_last(
    (id, org_id): (Uuid, Uuid),
    (kind, r#type, version): (&'static str, &str, i32),
    payload: &serde_json::Value,
) -> Statement {
    Statement::new(INSERT)
        .bind(id)
        .bind(org_id)
        .bind(payload.clone())
        .bind(kind)
        .bind(r#type.to_owned())
        .bind(version)
        .bind(foundry_platform::telemetry::current_traceparent())
}

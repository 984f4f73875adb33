//! Audit events and how a mutation records one: in its own transaction, so
//! the change and its event commit or roll back together.

use chrono::{DateTime, SubsecRound, Utc};
use foundry_domain::Audited;
use foundry_platform::Error;
use foundry_platform::commit::Statement;
use foundry_platform::convert::{json_to_struct, timestamp};
use foundry_platform::db::Tx;
use foundry_platform::trace::RequestId;
use foundry_proto::foundry::audit::v1 as pb;
use foundry_tenancy::{Caller, PrincipalType, caller_opt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The organization of events that belong to no organization (a user's
/// own profile, sessions and sign-ins): the platform's own chain.
pub const PLATFORM_ORG: Uuid = Uuid::nil();

/// Who made a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    /// A signed-in user.
    User,
    /// An API key.
    ApiKey,
    /// An agent token.
    Agent,
    /// A service account.
    Service,
    /// No caller (bootstrap, sign-in, schedulers).
    System,
}

impl From<PrincipalType> for ActorType {
    fn from(p: PrincipalType) -> Self {
        match p {
            PrincipalType::User => ActorType::User,
            PrincipalType::ApiKey => ActorType::ApiKey,
            PrincipalType::Agent => ActorType::Agent,
            PrincipalType::Service => ActorType::Service,
        }
    }
}

impl From<ActorType> for pb::ActorType {
    fn from(a: ActorType) -> Self {
        match a {
            ActorType::User => pb::ActorType::User,
            ActorType::ApiKey => pb::ActorType::ApiKey,
            ActorType::Agent => pb::ActorType::Agent,
            ActorType::Service => pb::ActorType::Service,
            ActorType::System => pb::ActorType::System,
        }
    }
}

/// Whom an actor acted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnBehalfOf {
    /// Their type.
    pub actor_type: ActorType,
    /// Their id.
    pub id: Uuid,
}

/// One recorded mutation, as the producing service writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// UUID v7 minted when the change was made.
    pub id: Uuid,
    /// The organization (or [`PLATFORM_ORG`]).
    pub org_id: Uuid,
    /// When (microsecond precision, as stored).
    pub occurred_at: DateTime<Utc>,
    /// The producing service (`identity`, …).
    pub service: String,
    /// Who.
    pub actor_type: ActorType,
    /// The actor's id.
    pub actor_id: Option<Uuid>,
    /// Whom the actor acted for, if anyone (set once, from the call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<OnBehalfOf>,
    /// `<service>.<resource>.<verb>`.
    pub action: String,
    /// `<service>.<resource>`.
    pub resource_type: String,
    /// The resource id.
    pub resource_id: String,
    /// The project, if any.
    pub project_id: Option<Uuid>,
    /// `{field: {"old": …, "new": …}}`.
    pub changes: Map<String, Value>,
    /// The call's request id.
    pub request_id: String,
    /// The call's W3C trace id.
    pub trace_id: String,
    /// The client's address.
    pub client_ip: String,
    /// The client's user agent.
    pub user_agent: String,
}

impl AuditEvent {
    /// The wire form sent to the audit service.
    pub fn to_proto(&self) -> pb::AuditEvent {
        pb::AuditEvent {
            id: self.id.to_string(),
            org_id: self.org_id.to_string(),
            sequence: 0,
            occur_time: Some(timestamp(self.occurred_at)),
            record_time: None,
            actor_type: pb::ActorType::from(self.actor_type) as i32,
            actor_id: self.actor_id.map(|a| a.to_string()).unwrap_or_default(),
            on_behalf_of_type: self
                .on_behalf_of
                .map_or(pb::ActorType::Unspecified, |o| o.actor_type.into())
                as i32,
            on_behalf_of_id: self
                .on_behalf_of
                .map(|o| o.id.to_string())
                .unwrap_or_default(),
            action: self.action.clone(),
            resource_type: self.resource_type.clone(),
            resource_id: self.resource_id.clone(),
            project_id: self.project_id.map(|p| p.to_string()).unwrap_or_default(),
            changes: Some(json_to_struct(&Value::Object(self.changes.clone()))),
            request_id: self.request_id.clone(),
            trace_id: self.trace_id.clone(),
            client_ip: self.client_ip.clone(),
            user_agent: self.user_agent.clone(),
            service: self.service.clone(),
            previous_hash: String::new(),
            hash: String::new(),
        }
    }
}

/// Who is acting and from where: captured once per call, then used for
/// every event the call records.
#[derive(Clone, Debug)]
pub struct Actor {
    service: &'static str,
    actor_type: ActorType,
    actor_id: Option<Uuid>,
    on_behalf_of: Option<OnBehalfOf>,
    org_id: Option<Uuid>,
    request_id: String,
    trace_id: String,
    client_ip: String,
    user_agent: String,
}

fn header(meta: &tonic::metadata::MetadataMap, name: &str) -> String {
    meta.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(512)
        .collect()
}

/// The trace id of a W3C `traceparent` (`00-<trace>-<span>-<flags>`).
fn trace_id_of(traceparent: &str) -> String {
    traceparent
        .split('-')
        .nth(1)
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_default()
        .to_owned()
}

impl Actor {
    /// The caller of `req` (or the system, for public methods such as
    /// sign-in), with the request's id, trace, address and user agent.
    pub fn of<T>(service: &'static str, req: &tonic::Request<T>) -> Actor {
        let caller: Option<Caller> = caller_opt(req);
        let meta = req.metadata();
        // The tenancy layer's reading of the peer and X-Forwarded-For.
        let client_ip = req
            .extensions()
            .get::<foundry_tenancy::ClientIp>()
            .map(|c| c.0)
            .or_else(|| req.remote_addr().map(|a| a.ip()))
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0)
            .or(caller.as_ref().map(|c| c.request_id))
            .map(|r| r.to_string())
            .unwrap_or_default();
        Actor {
            service,
            actor_type: caller
                .as_ref()
                .map_or(ActorType::System, |c| c.principal_type().into()),
            actor_id: caller.as_ref().map(|c| c.principal_id()),
            on_behalf_of: caller
                .as_ref()
                .and_then(|c| c.claims.obo)
                .map(|o| OnBehalfOf {
                    actor_type: o.ptype.into(),
                    id: o.id,
                }),
            org_id: caller.as_ref().and_then(|c| c.claims.org_id),
            request_id,
            trace_id: trace_id_of(&header(meta, "traceparent")),
            client_ip,
            user_agent: header(meta, "user-agent"),
        }
    }

    /// The client's address.
    pub fn client_ip(&self) -> &str {
        &self.client_ip
    }

    /// The client's user agent.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// The system acting in `service` (bootstrap, schedulers).
    pub fn system(service: &'static str) -> Actor {
        Actor {
            service,
            actor_type: ActorType::System,
            actor_id: None,
            on_behalf_of: None,
            org_id: None,
            request_id: String::new(),
            trace_id: String::new(),
            client_ip: String::new(),
            user_agent: String::new(),
        }
    }

    /// Speaks for another principal from here on (a sign-in: the system
    /// call that authenticated the user acts for the user).
    pub fn as_principal(mut self, actor_type: ActorType, id: Uuid) -> Actor {
        self.actor_type = actor_type;
        self.actor_id = Some(id);
        self
    }

    /// Starts an event about `resource_type`/`resource_id` in the caller's
    /// organization (set another with [`EventBuilder::org`]).
    pub fn event(
        &self,
        action: &str,
        resource_type: &str,
        resource_id: impl ToString,
    ) -> EventBuilder {
        // A monotonic v7 id (ordered even within a millisecond), and the
        // time it carries as the occurred time (same millisecond).
        let id = Uuid::now_v7();
        let occurred_at = id
            .get_timestamp()
            .map(|t| t.to_unix())
            .and_then(|(s, n)| DateTime::from_timestamp(s as i64, n))
            .unwrap_or_else(Utc::now)
            .trunc_subsecs(6);
        EventBuilder(AuditEvent {
            id,
            org_id: self.org_id.unwrap_or(PLATFORM_ORG),
            occurred_at,
            service: self.service.to_owned(),
            actor_type: self.actor_type,
            actor_id: self.actor_id,
            on_behalf_of: self.on_behalf_of,
            action: action.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id: resource_id.to_string(),
            project_id: None,
            changes: Map::new(),
            request_id: self.request_id.clone(),
            trace_id: self.trace_id.clone(),
            client_ip: self.client_ip.clone(),
            user_agent: self.user_agent.clone(),
        })
    }
}

/// An event being built; [`EventBuilder::record`] writes it.
#[derive(Clone, Debug)]
#[must_use = "an event is only written by record()"]
pub struct EventBuilder(AuditEvent);

impl EventBuilder {
    /// The organization the event belongs to.
    pub fn org(mut self, org_id: Uuid) -> Self {
        self.0.org_id = org_id;
        self
    }

    /// The project the resource belongs to.
    pub fn project(mut self, project_id: Option<Uuid>) -> Self {
        self.0.project_id = project_id;
        self
    }

    /// Records a field change; equal values are not a change. A long value
    /// is recorded as its digest, length and prefix ([`crate::bound`]).
    pub fn change(mut self, field: &str, old: impl Serialize, new: impl Serialize) -> Self {
        let (old, new) = (to_value(old), to_value(new));
        if old != new {
            let mut c = Map::new();
            c.insert("old".into(), crate::bound::value(old));
            c.insert("new".into(), crate::bound::value(new));
            self.0.changes.insert(field.to_owned(), Value::Object(c));
        }
        self
    }

    /// Records a field set at creation (old is null).
    pub fn set(self, field: &str, value: impl Serialize) -> Self {
        self.change(field, Value::Null, value)
    }

    /// Records every audited field that differs between `before` and
    /// `after`: an update's changes, derived rather than listed.
    pub fn diff<T: Audited + ?Sized>(mut self, before: &T, after: &T) -> Self {
        for c in foundry_domain::diff(before, after) {
            self = self.change(c.field, c.old, c.new);
        }
        self
    }

    /// Records every audited field of a new value (old is null; nulls and
    /// empty values are left out, as nothing changed).
    pub fn created<T: Audited + ?Sized>(mut self, value: &T) -> Self {
        for (field, v) in value.audit_fields().iter() {
            self = self.change(field, Value::Null, v);
        }
        self
    }

    /// Records every audited field of a removed value (new is null).
    pub fn removed<T: Audited + ?Sized>(mut self, value: &T) -> Self {
        for (field, v) in value.audit_fields().iter() {
            self = self.change(field, v, Value::Null);
        }
        self
    }

    /// Whether any field changed.
    pub fn has_changes(&self) -> bool {
        !self.0.changes.is_empty()
    }

    /// The event (for tests and callers that batch), its changes fitted to
    /// what audit ingests ([`crate::bound::changes`]).
    pub fn build(mut self) -> AuditEvent {
        crate::bound::changes(&mut self.0.changes);
        self.0
    }

    /// Writes the event into the outbox of the transaction's schema. The
    /// caller commits: the event exists exactly when the change does.
    pub async fn record(self, tx: &mut Tx) -> Result<AuditEvent, Error> {
        let event = self.build();
        record(tx, &event).await?;
        Ok(event)
    }

    /// Writes the event and commits `tx`, in one round trip (the event's
    /// insert travels with the `COMMIT`: [`foundry_platform::commit`]).
    pub async fn commit(self, tx: Tx) -> Result<AuditEvent, Error> {
        let (event, insert) = self.last()?;
        foundry_platform::commit::with(tx, vec![insert]).await?;
        Ok(event)
    }

    /// The event, and the statement that writes it, for a commit that sends
    /// more with it ([`foundry_platform::commit::with`]; an idempotent
    /// create's, which stores its response).
    pub fn last(self) -> Result<(AuditEvent, Statement), Error> {
        let event = self.build();
        let payload = serde_json::to_value(&event).map_err(Error::internal)?;
        let kind = (crate::envelope::AUDIT, event.action.as_str(), 1);
        let insert = crate::envelope::insert_last((event.id, event.org_id), kind, &payload);
        Ok((event, insert))
    }
}

fn to_value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Writes `event` into the outbox in `tx`.
pub async fn record(tx: &mut Tx, event: &AuditEvent) -> Result<(), Error> {
    let payload = serde_json::to_value(event).map_err(Error::internal)?;
    let kind = (crate::envelope::AUDIT, event.action.as_str(), 1);
    crate::envelope::insert(tx, (event.id, event.org_id), kind, payload).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_skip_equal_values_and_keep_old_and_new() {
        let e = Actor::system("identity")
            .event(
                "identity.organization.update",
                "identity.organization",
                Uuid::nil(),
            )
            .change("name", "a", "b")
            .change("slug", "same", "same")
            .set("settings", serde_json::json!({"k": 1}))
            .build();
        assert_eq!(e.changes.len(), 2);
        assert_eq!(
            e.changes["name"],
            serde_json::json!({"old": "a", "new": "b"})
        );
        assert_eq!(e.changes["settings"]["old"], Value::Null);
        assert_eq!(e.actor_type, ActorType::System);
        assert_eq!(e.org_id, PLATFORM_ORG);
    }

    #[test]
    fn ids_carry_the_event_time_and_times_are_microseconds() {
        let e = Actor::system("x").event("x.y.z", "x.y", 1).build();
        assert_eq!(e.occurred_at.timestamp_subsec_nanos() % 1000, 0);
        let (secs, nanos) =
            e.id.get_timestamp()
                .map(|t| t.to_unix())
                .unwrap_or_default();
        assert_eq!(secs as i64, e.occurred_at.timestamp());
        assert_eq!(nanos / 1_000_000, e.occurred_at.timestamp_subsec_millis());
        assert_eq!(e.id.get_version_num(), 7);
    }

    #[test]
    fn trace_ids_come_from_traceparent() {
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(trace_id_of("garbage"), "");
    }
}

//! `InboxService` (internal): the domain events delivery subscribes to
//! (`foundry_outbox::subscriptions`), delivered by their producers' relays.
//! Today identity's membership events, which keep delivery's membership
//! replica (`store::members`): the user references of tasks, work orders,
//! goals and risks are checked against it ([`super::members`]).

use std::sync::Arc;

use chrono::SubsecRound;
use foundry_outbox::inbox;
use foundry_outbox::membership::{self, Membership};
use foundry_outbox::subscriptions::subscription;
use foundry_platform::Error;
use foundry_platform::convert::{from_timestamp, struct_to_json};
use foundry_platform::rpc::{Methods, Served};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_proto::foundry::events::v1::DomainEvent;
use foundry_proto::service::delivery_v1 as svc;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::SERVICE;
use crate::store::{self, MemberEvent};

/// Events per call, at most (a relay's batch is smaller).
pub const MAX_BATCH: usize = 1000;

/// `InboxService`.
pub(crate) fn service(state: &Arc<State>) -> Served<svc::InboxService> {
    Methods::new(state.clone())
        .unary(receive_domain_events)
        .complete()
}

/// Parses event `i` of a batch from `producer`, whose types `takes` says
/// delivery subscribes to; problems as `domain_events[i].<field>`.
fn parse(v: &mut Violations, i: usize, e: &DomainEvent, takes: &[&str]) -> Option<MemberEvent> {
    let f = |name: &str| format!("domain_events[{i}].{name}");
    let id = v.id(&f("id"), &e.id);
    let org_id = v.id(&f("org_id"), &e.org_id);
    let seq = match e.sequence {
        n if n > 0 => Some(n),
        _ => {
            v.add(
                f("sequence"),
                "must be the event's place in its organization's commit order (1 or more)",
            );
            None
        }
    };
    let change_time = match e.occur_time.as_ref().and_then(from_timestamp) {
        Some(t) => Some(t.trunc_subsecs(6)),
        None => {
            v.add(f("occur_time"), "must be a valid time");
            None
        }
    };
    let membership = if !takes.contains(&e.r#type.as_str()) {
        v.add(
            f("type"),
            format!("{} is not an event delivery takes", e.r#type),
        );
        None
    } else {
        let data = e.data.as_ref().map(struct_to_json).unwrap_or_default();
        match Membership::of(&e.r#type, e.version, &data) {
            Ok(m) => Some(m),
            Err(why) => {
                v.add(f("data"), why);
                None
            }
        }
    };
    Some(MemberEvent {
        id: id?,
        org_id: org_id?,
        seq: seq?,
        change_time: change_time?,
        membership: membership?,
    })
}

/// `ReceiveDomainEvents`: the batch in one system transaction, each event
/// once (the inbox, by id), each applied only if newer than what the
/// replica holds (by sequence).
async fn receive_domain_events(
    state: Arc<State>,
    req: Request<pb::ReceiveDomainEventsRequest>,
) -> Result<Response<pb::ReceiveDomainEventsResponse>, Status> {
    // The service the caller's account runs as: the producer.
    let producer = foundry_tenancy::caller(&req)?.claims.svc.clone();
    let batch = req.into_inner().domain_events;
    let Some(subscribed) = producer.as_deref().and_then(|p| subscription(p, SERVICE)) else {
        return Err(Error::permission_denied(
            "NOT_SUBSCRIBED",
            format!(
                "delivery takes no events from {}",
                producer
                    .as_deref()
                    .unwrap_or("a service account that runs as no service")
            ),
        )
        .into());
    };
    if batch.len() > MAX_BATCH {
        return Err(Error::invalid_field(
            "domain_events",
            format!("must hold at most {MAX_BATCH} events"),
        )
        .into());
    }
    // Only membership events are subscribed to (`subscriptions.rs`).
    let takes: Vec<&str> = subscribed
        .types
        .iter()
        .copied()
        .filter(|t| membership::TYPES.contains(t))
        .collect();
    let mut v = Violations::new();
    let events: Vec<MemberEvent> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, e)| parse(&mut v, i, e, &takes))
        .collect();
    v.finish()?;
    let mut tx = state.db.system().await?;
    let mut received = 0;
    for e in &events {
        if inbox::first_time(&mut tx, SERVICE, e.id).await? {
            store::apply_member_event(&mut tx, e).await?;
            received += 1;
        }
    }
    tx.commit().await.map_err(Error::from)?;
    Ok(Response::new(pb::ReceiveDomainEventsResponse {
        received,
        duplicates: events.len() as i32 - received,
    }))
}

//! The chain that links an organization's events, and how a chain is
//! verified. No I/O.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::events::{Event, MAX_CLOCK_SKEW};

/// The `prev_hash` of the first event of a chain.
pub const GENESIS: [u8; 32] = [0; 32];

/// What verification found wrong first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// An event's content does not match its hash.
    HashMismatch,
    /// An event's `prev_hash` is not the previous event's hash.
    BrokenLink,
    /// Positions are missing.
    MissingEvents,
    /// The kept head differs from the last event.
    HeadMismatch,
    /// The chain does not extend a checkpoint: the event at its position
    /// has another hash, or is gone.
    CheckpointMismatch,
    /// A checkpoint's signature does not verify.
    CheckpointSignatureInvalid,
    /// An event occurred before an earlier event of its service, by more
    /// than the clock skew: backdated.
    TimeOrder,
}
/// A verification failure: what, where, and a sentence for humans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The problem.
    pub problem: Problem,
    /// The position of the first event that failed (or the first missing).
    pub sequence: i64,
    /// That event's id, if it exists.
    pub event_id: Option<Uuid>,
    /// For humans.
    pub detail: String,
}

/// Verifies a chain fed event by event in sequence order, in constant
/// memory: each event must be at the next position, match its own hash and
/// link to the previous event's hash.
#[derive(Clone, Debug)]
pub struct ChainWalk {
    next_sequence: i64,
    prev_hash: Vec<u8>,
    checked: i64,
    withheld: i64,
    last_id: Option<Uuid>,
    /// Each service's latest occurrence so far.
    latest: std::collections::HashMap<String, DateTime<Utc>>,
}

impl ChainWalk {
    /// A walk starting at position `start`, whose predecessor's hash is
    /// `prev_hash` ([`GENESIS`] when `start` is 1).
    pub fn new(start: i64, prev_hash: Vec<u8>) -> Self {
        Self {
            next_sequence: start,
            prev_hash,
            checked: 0,
            withheld: 0,
            last_id: None,
            latest: std::collections::HashMap::new(),
        }
    }

    /// Checks the next event (events come in sequence order) with its
    /// stored hash.
    pub fn check(&mut self, event: &Event, stored_hash: &[u8]) -> Result<(), Finding> {
        if event.sequence != self.next_sequence {
            let (first, last) = (self.next_sequence, event.sequence - 1);
            return Err(Finding {
                problem: Problem::MissingEvents,
                sequence: first,
                event_id: None,
                detail: if first == last {
                    format!("event {first} is missing")
                } else {
                    format!("events {first} to {last} are missing")
                },
            });
        }
        if event.hash()[..] != *stored_hash {
            return Err(Finding {
                problem: Problem::HashMismatch,
                sequence: event.sequence,
                event_id: Some(event.id),
                detail: format!(
                    "event {} does not match its hash: it was changed after it was appended",
                    event.sequence
                ),
            });
        }
        if event.prev_hash != self.prev_hash {
            return Err(Finding {
                problem: Problem::BrokenLink,
                sequence: event.sequence,
                event_id: Some(event.id),
                detail: format!(
                    "event {} does not link to the event before it: events were removed, reordered or rewritten",
                    event.sequence
                ),
            });
        }
        if let Some(latest) = self.latest.get(&event.service)
            && event.occurred_at + MAX_CLOCK_SKEW < *latest
        {
            return Err(Finding {
                problem: Problem::TimeOrder,
                sequence: event.sequence,
                event_id: Some(event.id),
                detail: format!(
                    "event {} of {} occurred at {}, before an earlier event of {} at {}: it was backdated",
                    event.sequence, event.service, event.occurred_at, event.service, latest
                ),
            });
        }
        let latest = self
            .latest
            .entry(event.service.clone())
            .or_insert(event.occurred_at);
        *latest = (*latest).max(event.occurred_at);
        self.next_sequence += 1;
        self.prev_hash = stored_hash.to_vec();
        self.checked += 1;
        if event.changes.get(foundry_domain::WITHHELD).is_some() {
            self.withheld += 1;
        }
        self.last_id = Some(event.id);
        Ok(())
    }

    /// After the last event of a range ending at `end`: positions up to
    /// `end` that never came are missing.
    pub fn finish_range(&self, end: i64) -> Result<(), Finding> {
        if self.next_sequence <= end {
            let first = self.next_sequence;
            return Err(Finding {
                problem: Problem::MissingEvents,
                sequence: first,
                event_id: None,
                detail: if first == end {
                    format!("event {first} is missing")
                } else {
                    format!("events {first} to {end} are missing")
                },
            });
        }
        Ok(())
    }

    /// After walking to the end of the log: the last event must be the
    /// head the service keeps. `beyond` is the id of an event found after
    /// the head's position, if any.
    pub fn finish_head(
        &self,
        head_sequence: i64,
        head_hash: &[u8],
        beyond: Option<Uuid>,
    ) -> Result<(), Finding> {
        let last = self.next_sequence - 1;
        if last < head_sequence {
            return Err(Finding {
                problem: Problem::HeadMismatch,
                sequence: last + 1,
                event_id: None,
                detail: format!(
                    "the chain's head is event {head_sequence} but the log ends at event {last}: the newest events were removed"
                ),
            });
        }
        if last > head_sequence {
            return Err(Finding {
                problem: Problem::HeadMismatch,
                sequence: head_sequence + 1,
                event_id: beyond,
                detail: format!(
                    "the log goes on to event {last} past the chain's head at event {head_sequence}: events were added outside the service"
                ),
            });
        }
        if self.prev_hash != head_hash {
            return Err(Finding {
                problem: Problem::HeadMismatch,
                sequence: last,
                event_id: self.last_id,
                detail: format!("event {last} is not the chain's head: the chain was rewritten"),
            });
        }
        Ok(())
    }

    /// Events verified so far.
    pub fn checked(&self) -> i64 {
        self.checked
    }

    /// Events verified so far whose changes were withheld (the producer
    /// parked them, refused).
    pub fn withheld(&self) -> i64 {
        self.withheld
    }

    /// The hash of the last verified event (or of the predecessor of the
    /// range, if none verified yet).
    pub fn last_hash(&self) -> &[u8] {
        &self.prev_hash
    }

    /// The position the next event must have.
    pub fn next_sequence(&self) -> i64 {
        self.next_sequence
    }
}

/// Checks an event that verified in its chain against a checkpoint of its
/// position (`sequence`, `expected` hash): another hash means the chain
/// was rewritten since the checkpoint was signed.
pub fn check_anchor(
    event: &Event,
    stored_hash: &[u8],
    sequence: i64,
    expected: &[u8],
) -> Result<(), Finding> {
    if event.sequence == sequence && stored_hash != expected {
        return Err(Finding {
            problem: Problem::CheckpointMismatch,
            sequence,
            event_id: Some(event.id),
            detail: format!(
                "event {sequence} does not have the hash the checkpoint signed: the chain was rewritten since"
            ),
        });
    }
    Ok(())
}

/// After a walk to the head that verified: a checkpoint of a position past
/// the last event means events it covered were removed.
pub fn check_anchor_reached(last_sequence: i64, sequence: i64) -> Result<(), Finding> {
    if sequence > last_sequence {
        return Err(Finding {
            problem: Problem::CheckpointMismatch,
            sequence: last_sequence + 1,
            event_id: None,
            detail: format!(
                "the checkpoint covers events up to {sequence} but the log ends at event {last_sequence}: the newest events were removed"
            ),
        });
    }
    Ok(())
}

/// Links new events onto a chain whose head is `(head_sequence,
/// head_hash)`: assigns positions and previous hashes in order and returns
/// each event's hash, and the new head.
pub fn link(
    events: &mut [Event],
    head_sequence: i64,
    head_hash: &[u8],
) -> (Vec<[u8; 32]>, i64, Vec<u8>) {
    let mut sequence = head_sequence;
    let mut prev = head_hash.to_vec();
    let mut hashes = Vec::with_capacity(events.len());
    for e in events.iter_mut() {
        sequence += 1;
        e.sequence = sequence;
        e.prev_hash = prev;
        let h = e.hash();
        prev = h.to_vec();
        hashes.push(h);
    }
    (hashes, sequence, prev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::tests::event;

    fn chain(n: usize) -> (Vec<Event>, Vec<[u8; 32]>) {
        let mut events: Vec<Event> = (0..n)
            .map(|i| Event {
                id: Uuid::now_v7(),
                resource_id: format!("r{i}"),
                ..event()
            })
            .collect();
        let (hashes, head, _) = link(&mut events, 0, &GENESIS);
        assert_eq!(head, n as i64);
        (events, hashes)
    }

    fn walk(events: &[Event], hashes: &[[u8; 32]]) -> Result<ChainWalk, Finding> {
        let mut w = ChainWalk::new(1, GENESIS.to_vec());
        for (e, h) in events.iter().zip(hashes) {
            w.check(e, h)?;
        }
        Ok(w)
    }

    #[test]
    fn a_linked_chain_verifies_to_its_head() {
        let (events, hashes) = chain(5);
        assert_eq!(events[0].prev_hash, GENESIS.to_vec());
        assert_eq!(events[3].prev_hash, hashes[2].to_vec());
        let w = walk(&events, &hashes).expect("valid");
        assert_eq!(w.checked(), 5);
        w.finish_range(5).expect("complete");
        w.finish_head(5, &hashes[4], None).expect("head");
        assert_eq!(w.last_hash(), hashes[4]);
    }

    #[test]
    fn an_edited_event_is_a_hash_mismatch() {
        let (mut events, hashes) = chain(4);
        events[2].action = "identity.membership.delete".into();
        let f = walk(&events, &hashes).expect_err("edited");
        assert_eq!((f.problem, f.sequence), (Problem::HashMismatch, 3));
        assert_eq!(f.event_id, Some(events[2].id));
    }

    #[test]
    fn a_rehashed_edit_breaks_the_next_link() {
        let (mut events, mut hashes) = chain(4);
        events[1].action = "identity.membership.delete".into();
        hashes[1] = events[1].hash();
        let f = walk(&events, &hashes).expect_err("rewritten");
        assert_eq!((f.problem, f.sequence), (Problem::BrokenLink, 3));
    }

    #[test]
    fn a_removed_event_is_missing() {
        let (mut events, mut hashes) = chain(5);
        events.remove(2);
        hashes.remove(2);
        let f = walk(&events, &hashes).expect_err("gap");
        assert_eq!((f.problem, f.sequence), (Problem::MissingEvents, 3));
        assert_eq!(f.event_id, None);
    }

    #[test]
    fn removed_newest_events_are_a_head_mismatch() {
        let (events, hashes) = chain(5);
        let w = walk(&events[..3], &hashes[..3]).expect("prefix verifies");
        let f = w.finish_head(5, &hashes[4], None).expect_err("head");
        assert_eq!((f.problem, f.sequence), (Problem::HeadMismatch, 4));
        // In a range that ends before the head, they are missing.
        let f = w.finish_range(5).expect_err("missing tail");
        assert_eq!((f.problem, f.sequence), (Problem::MissingEvents, 4));
        // Events past the head, or another head hash, are mismatches too.
        let w = walk(&events, &hashes).expect("valid");
        let f = w
            .finish_head(4, &hashes[3], Some(events[4].id))
            .expect_err("past");
        assert_eq!(
            (f.problem, f.sequence, f.event_id),
            (Problem::HeadMismatch, 5, Some(events[4].id))
        );
        let f = w.finish_head(5, &GENESIS, None).expect_err("hash");
        assert_eq!((f.problem, f.sequence), (Problem::HeadMismatch, 5));
    }

    #[test]
    fn a_range_starts_from_its_predecessor_hash() {
        let (events, hashes) = chain(5);
        let mut w = ChainWalk::new(3, hashes[1].to_vec());
        for (e, h) in events[2..4].iter().zip(&hashes[2..4]) {
            w.check(e, h).expect("valid");
        }
        w.finish_range(4).expect("complete");
        let mut wrong = ChainWalk::new(3, hashes[0].to_vec());
        let f = wrong.check(&events[2], &hashes[2]).expect_err("link");
        assert_eq!(f.problem, Problem::BrokenLink);
    }
}

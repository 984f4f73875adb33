//! Bounds how often something keyed may happen: at most once per window
//! for each key, counting what was held back (a refused credential's
//! security event: one per credential per minute, however often it is
//! presented). In memory, per process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

/// See the module doc.
#[derive(Debug)]
pub struct Throttle {
    window: Duration,
    max_keys: usize,
    seen: Mutex<HashMap<Uuid, Slot>>,
}

#[derive(Debug)]
struct Slot {
    since: Instant,
    held: u64,
}

impl Throttle {
    /// At most once per `window` for each key, keeping at most `max_keys`
    /// keys in their window (beyond that, new keys are held back too, so
    /// the bound holds however many keys there are).
    pub fn new(window: Duration, max_keys: usize) -> Self {
        Throttle {
            window,
            max_keys,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(n)` lets this one happen, `n` of its key's having been held
    /// back since the last one that did; `None` holds it back.
    pub fn admit(&self, key: Uuid) -> Option<u64> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = seen.get_mut(&key) {
            if now.duration_since(slot.since) < self.window {
                slot.held += 1;
                return None;
            }
            let held = slot.held;
            *slot = Slot {
                since: now,
                held: 0,
            };
            return Some(held);
        }
        if seen.len() >= self.max_keys {
            seen.retain(|_, s| now.duration_since(s.since) < self.window);
            if seen.len() >= self.max_keys {
                return None;
            }
        }
        seen.insert(
            key,
            Slot {
                since: now,
                held: 0,
            },
        );
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_key_happens_once_a_window_and_then_says_how_often_it_was_held_back() {
        let t = Throttle::new(Duration::from_secs(60), 2);
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(t.admit(a), Some(0));
        assert_eq!(t.admit(a), None);
        assert_eq!(t.admit(a), None);
        assert_eq!(t.admit(b), Some(0), "keys are apart");
        // Full of keys in their window: a new key is held back too.
        assert_eq!(t.admit(c), None);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(t.admit(a), Some(2), "two held back");
        assert_eq!(t.admit(a), None);
        assert_eq!(t.admit(c), Some(0), "b's window passed: room again");
    }
}

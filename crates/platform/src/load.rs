//! The load limits every server runs with, so that overload is refused
//! quickly instead of queued without bound:
//!
//! - a deadline per call: the caller's `grpc-timeout` when it sets one,
//!   never more than the server's own ([`Limits::deadline`]); a call past
//!   it ends with `DEADLINE_EXCEEDED` and its transaction rolls back;
//! - a bound on the calls a server runs at once ([`Limits::concurrent`]):
//!   the next one is refused at once with `RESOURCE_EXHAUSTED`;
//! - bounds per organization and per principal (a user, a service account,
//!   an API key), so that one tenant, or one runaway key, cannot take a
//!   server's whole capacity.
//!
//! Every refusal carries `google.rpc.RetryInfo` ([`Limits::retry_after`]).
//! The tenancy layer applies them ([`Load`]); health and reflection are
//! never refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::error::Error;

/// The limits, from the server's flags ([`crate::config::ServerArgs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest a call may take; a shorter `grpc-timeout` wins.
    pub deadline: Duration,
    /// Calls the server runs at once.
    pub concurrent: usize,
    /// Calls one organization runs at once on this server.
    pub per_org: usize,
    /// Calls one principal runs at once on this server.
    pub per_principal: usize,
    /// The delay a refusal asks the caller to wait before trying again.
    pub retry_after: Duration,
}

impl Default for Limits {
    /// The defaults the README states: 30 s, 256 calls, 64 per
    /// organization, 32 per principal, retry after 1 s.
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(30),
            concurrent: 256,
            per_org: 64,
            per_principal: 32,
            retry_after: Duration::from_secs(1),
        }
    }
}

/// How much sooner than a caller's `grpc-timeout` the server answers.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(25);

/// A server's counters of calls in flight against its [`Limits`].
#[derive(Debug)]
pub struct Load {
    limits: Limits,
    server: Arc<Semaphore>,
    orgs: Keyed,
    principals: Keyed,
}

/// Held while a call runs: its place in the server's bound.
#[derive(Debug)]
pub struct ServerPermit {
    _permit: OwnedSemaphorePermit,
}

/// Held while a call runs: its places in its organization's and its
/// principal's bounds.
#[derive(Debug)]
pub struct CallerPermit {
    _org: Option<KeyedPermit>,
    _principal: KeyedPermit,
}

impl Load {
    /// Counters for `limits` (each bound at least 1).
    pub fn new(limits: Limits) -> Load {
        Load {
            server: Arc::new(Semaphore::new(limits.concurrent.max(1))),
            orgs: Keyed::default(),
            principals: Keyed::default(),
            limits,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A place among the server's calls, or `RESOURCE_EXHAUSTED`
    /// (`SERVER_BUSY`) when they are all taken.
    pub fn enter(&self) -> Result<ServerPermit, Error> {
        self.server
            .clone()
            .try_acquire_owned()
            .map(|p| ServerPermit { _permit: p })
            .map_err(|_| {
                self.refusal(
                    "SERVER_BUSY",
                    format!(
                        "the server is running its limit of {} calls; retry later",
                        self.limits.concurrent
                    ),
                )
            })
    }

    /// Places among `org`'s and `principal`'s calls, or
    /// `RESOURCE_EXHAUSTED` (`ORGANIZATION_BUSY`, `PRINCIPAL_BUSY`).
    pub fn enter_as(&self, org: Option<Uuid>, principal: Uuid) -> Result<CallerPermit, Error> {
        let org = match org {
            Some(org) => Some(self.orgs.enter(org, self.limits.per_org).ok_or_else(|| {
                self.refusal(
                    "ORGANIZATION_BUSY",
                    format!(
                        "the organization is running its limit of {} calls on this server; retry later",
                        self.limits.per_org
                    ),
                )
            })?),
            None => None,
        };
        let principal = self
            .principals
            .enter(principal, self.limits.per_principal)
            .ok_or_else(|| {
                self.refusal(
                    "PRINCIPAL_BUSY",
                    format!(
                        "this credential's principal is running its limit of {} calls on this server; retry later",
                        self.limits.per_principal
                    ),
                )
            })?;
        Ok(CallerPermit {
            _org: org,
            _principal: principal,
        })
    }

    /// The call's deadline: the caller's `grpc-timeout` if it is shorter
    /// than the server's (an unreadable one is ignored, as gRPC servers do),
    /// less [`ANSWER_MARGIN`] so that the caller gets this server's answer
    /// rather than running out of time itself (or tonic's own timer, which
    /// answers `CANCELLED`, firing first).
    pub fn deadline(&self, headers: &http::HeaderMap) -> Duration {
        match grpc_timeout(headers) {
            Some(d) if d < self.limits.deadline => d.saturating_sub(ANSWER_MARGIN),
            _ => self.limits.deadline,
        }
    }

    /// The error of a call past its `deadline`.
    pub fn expired(deadline: Duration) -> Error {
        Error::deadline_exceeded(
            "DEADLINE_EXCEEDED",
            format!(
                "the call did not finish within its deadline of {} ms; what it changed was rolled back",
                deadline.as_millis()
            ),
        )
    }

    fn refusal(&self, reason: &'static str, message: String) -> Error {
        Error::resource_exhausted(reason, message).with_retry_after(self.limits.retry_after)
    }
}

/// When the call must be done, in its request's extensions (set by the
/// tenancy layer): a handler that waits on purpose (`WaitOperation`)
/// answers before it.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(pub tokio::time::Instant);

impl Deadline {
    /// The time left to the call `extensions` belong to, if it has a
    /// deadline.
    pub fn remaining(extensions: &http::Extensions) -> Option<Duration> {
        extensions
            .get::<Deadline>()
            .map(|d| d.0.saturating_duration_since(tokio::time::Instant::now()))
    }
}

/// Calls in flight per key; a key leaves the map when its last call ends,
/// so the map holds only keys with calls running.
#[derive(Debug, Default)]
struct Keyed(Arc<Mutex<HashMap<Uuid, usize>>>);

#[derive(Debug)]
struct KeyedPermit {
    map: Arc<Mutex<HashMap<Uuid, usize>>>,
    key: Uuid,
}

impl Keyed {
    fn enter(&self, key: Uuid, limit: usize) -> Option<KeyedPermit> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key).or_default();
        if *n >= limit.max(1) {
            return None;
        }
        *n += 1;
        Some(KeyedPermit {
            map: self.0.clone(),
            key,
        })
    }
}

impl Drop for KeyedPermit {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// The `grpc-timeout` header: up to 8 digits and a unit (`H`, `M`, `S`,
/// `m`, `u`, `n`).
pub fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-timeout", v.parse().expect("a header value"));
        h
    }

    #[test]
    fn grpc_timeout_reads_every_unit_and_refuses_the_malformed() {
        assert_eq!(
            grpc_timeout(&headers("2H")),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(grpc_timeout(&headers("3M")), Some(Duration::from_secs(180)));
        assert_eq!(grpc_timeout(&headers("5S")), Some(Duration::from_secs(5)));
        assert_eq!(
            grpc_timeout(&headers("250m")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(grpc_timeout(&headers("7u")), Some(Duration::from_micros(7)));
        assert_eq!(grpc_timeout(&headers("9n")), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "12", "1x", "-1S", "123456789S", "1.5S"] {
            assert_eq!(grpc_timeout(&headers(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn the_deadline_is_the_shorter_of_the_callers_and_the_servers() {
        let load = Load::new(Limits {
            deadline: Duration::from_secs(2),
            ..Limits::default()
        });
        assert_eq!(
            load.deadline(&http::HeaderMap::new()),
            Duration::from_secs(2)
        );
        assert_eq!(load.deadline(&headers("100m")), Duration::from_millis(75));
        assert_eq!(load.deadline(&headers("1H")), Duration::from_secs(2));
    }

    #[test]
    fn each_bound_refuses_one_past_it_and_frees_its_place_when_a_call_ends() {
        let load = Load::new(Limits {
            concurrent: 2,
            per_org: 2,
            per_principal: 1,
            ..Limits::default()
        });
        let (a, b) = (Some(Uuid::now_v7()), Some(Uuid::now_v7()));
        let (p, q, r) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());

        let s1 = load.enter().expect("admitted");
        let _s2 = load.enter().expect("admitted");
        let e = load.enter().expect_err("refused");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert_eq!(e.reason(), "SERVER_BUSY");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
        drop(s1);
        load.enter().expect("a place freed");

        let c1 = load.enter_as(a, p).expect("admitted");
        assert_eq!(
            load.enter_as(a, p).expect_err("refused").reason(),
            "PRINCIPAL_BUSY"
        );
        let c2 = load.enter_as(a, q).expect("admitted");
        assert_eq!(
            load.enter_as(a, r).expect_err("refused").reason(),
            "ORGANIZATION_BUSY"
        );
        load.enter_as(b, r)
            .expect("another organization is not held back");
        drop(c1);
        load.enter_as(a, r)
            .expect("a place of the organization freed");
        drop(c2);
        assert!(
            load.orgs.0.lock().expect("lock").is_empty(),
            "no key is kept once its calls end"
        );
        assert!(load.principals.0.lock().expect("lock").is_empty());
    }
}

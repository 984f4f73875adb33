//! The load generator: closed loop (fixed concurrency) or open loop (fixed
//! rate, latency measured from each call's scheduled start, so a slow
//! server shows as queueing instead of hiding it), warm-up, HDR histogram.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// How to drive a scenario.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `n` callers, each calling again as soon as its call returns.
    Closed(usize),
    /// Calls started at a fixed rate per second, whatever the latency.
    Open(f64),
}

/// One scenario's figures (latencies in microseconds).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub name: String,
    /// Calls measured (after warm-up).
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Calls per second over the measured window.
    pub throughput: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest.
    pub max_us: u64,
}

/// A latency histogram in microseconds (1 µs .. 60 s, 3 digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant, valid histogram bounds")
}

/// Summarises a histogram (and logs the summary: the bench's progress).
pub fn summarise(name: &str, h: &Histogram<u64>, errors: u64, window: Duration) -> Summary {
    let s = Summary {
        name: name.to_owned(),
        calls: h.len(),
        errors,
        throughput: h.len() as f64 / window.as_secs_f64().max(1e-9),
        p50_us: h.value_at_quantile(0.50),
        p90_us: h.value_at_quantile(0.90),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    };
    tracing::info!(
        scenario = name,
        calls = s.calls,
        errors = s.errors,
        throughput = s.throughput,
        p50_us = s.p50_us,
        "measured"
    );
    s
}

/// Runs `call` under `mode` for `warmup` (discarded) then `duration`.
/// `call(i)` gets a running index so scenarios can vary their input.
pub async fn run<F, Fut>(
    name: &str,
    mode: Mode,
    warmup: Duration,
    duration: Duration,
    call: F,
) -> Summary
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let call = Arc::new(call);
    let hist = Arc::new(Mutex::new(histogram()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let record = {
        let (hist, errors) = (hist.clone(), errors.clone());
        move |scheduled: Instant, ok: bool| {
            if scheduled < measure_from {
                return;
            }
            if !ok {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            let us = scheduled.elapsed().as_micros().max(1) as u64;
            if let Ok(mut h) = hist.lock() {
                let _ = h.record(us);
            }
        }
    };
    match mode {
        Mode::Closed(n) => {
            let mut tasks = vec![];
            for _ in 0..n.max(1) {
                let (call, counter, record) = (call.clone(), counter.clone(), record.clone());
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < end {
                        let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let t = Instant::now();
                        let ok = call(i).await.is_ok();
                        record(t, ok);
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
        Mode::Open(rate) => {
            let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let mut tasks = vec![];
            let mut next = start;
            let mut i = 0u64;
            while next < end {
                tokio::time::sleep_until(next.into()).await;
                let (call, record) = (call.clone(), record.clone());
                let scheduled = next;
                tasks.push(tokio::spawn(async move {
                    let ok = call(i).await.is_ok();
                    record(scheduled, ok);
                }));
                i += 1;
                next += interval;
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    }
    let h = hist
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    summarise(
        name,
        &h,
        errors.load(std::sync::atomic::Ordering::Relaxed),
        duration,
    )
}

//! Metrics: one OpenTelemetry meter provider per process
//! ([`crate::telemetry::init`] installs it), read two ways: pushed over
//! OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and collected on each
//! scrape of `GET /metrics` in the Prometheus text format when
//! `--metrics-addr` is set ([`serve`]).
//!
//! The text exposition is ours, over the SDK's `ManualReader`: the official
//! `opentelemetry-prometheus` is discontinued (its last release for 0.31
//! says so) and would bring the `prometheus` and `protobuf` crates for a
//! format of a few lines.
//!
//! No metric of Foundry carries an organization's or a resource's id as a
//! label: series must stay few whatever the number of tenants.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

use crate::server::{Background, StopSignal};

/// The reader behind `GET /metrics`: collects the process's metrics when
/// asked (cumulative, as Prometheus wants them).
#[derive(Clone, Debug)]
pub struct ScrapeReader(Arc<ManualReader>);

impl ScrapeReader {
    fn new() -> ScrapeReader {
        ScrapeReader(Arc::new(ManualReader::builder().build()))
    }

    /// Every metric now, in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        let mut rm = ResourceMetrics::default();
        if let Err(e) = self.0.collect(&mut rm) {
            tracing::warn!(error = %e, "collecting metrics for a scrape failed");
        }
        render(&rm)
    }
}

// === impl ScrapeReader ===

impl MetricReader for ScrapeReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, _kind: InstrumentKind) -> Temporality {
        Temporality::Cumulative
    }
}

/// The process's scrape reader, once a meter provider is installed.
static SCRAPE: OnceLock<ScrapeReader> = OnceLock::new();

/// The scrape reader to install in the process's meter provider (the first
/// call makes it).
pub(crate) fn scrape_reader() -> ScrapeReader {
    SCRAPE.get_or_init(ScrapeReader::new).clone()
}

/// Serves `GET /metrics` on `addr` (when given) until the background's
/// stop: bound here, so a taken port stops the start with its address.
pub async fn serve(addr: Option<SocketAddr>, background: &mut Background) -> anyhow::Result<()> {
    let Some(addr) = addr else { return Ok(()) };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "metrics at GET /metrics");
    let app = axum::Router::new().route("/metrics", axum::routing::get(scrape));
    background.spawn(move |stop: StopSignal| async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the metrics endpoint failed");
        }
    });
    Ok(())
}

async fn scrape() -> impl axum::response::IntoResponse {
    let body = SCRAPE.get().map(ScrapeReader::render).unwrap_or_default();
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// The Prometheus text format of `rm`: names with `.` as `_`, the unit as
/// a suffix (`s` → `_seconds`), `_total` on monotonic sums, histograms as
/// `_bucket{le}`, `_sum` and `_count`.
pub fn render(rm: &ResourceMetrics) -> String {
    let mut out = String::new();
    for scope in rm.scope_metrics() {
        for metric in scope.metrics() {
            let name = metric_name(metric.name(), metric.unit());
            match metric.data() {
                AggregatedMetrics::F64(d) => family(&mut out, &name, metric.description(), d),
                AggregatedMetrics::U64(d) => family(&mut out, &name, metric.description(), d),
                AggregatedMetrics::I64(d) => family(&mut out, &name, metric.description(), d),
            }
        }
    }
    out
}

fn family<T: Copy + Into<Number>>(out: &mut String, name: &str, help: &str, data: &MetricData<T>) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    match data {
        MetricData::Gauge(g) => {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for p in g.data_points() {
                sample(out, name, p.attributes(), None, p.value().into());
            }
        }
        MetricData::Sum(s) => {
            let (name, kind) = if s.is_monotonic() {
                (format!("{name}_total"), "counter")
            } else {
                (name.to_owned(), "gauge")
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for p in s.data_points() {
                sample(out, &name, p.attributes(), None, p.value().into());
            }
        }
        MetricData::Histogram(h) => {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for p in h.data_points() {
                let mut cumulative = 0;
                let bounds = p.bounds().map(Some).chain([None]);
                for (le, n) in bounds.zip(p.bucket_counts()) {
                    cumulative += n;
                    let le = le.map_or("+Inf".to_owned(), |b| b.to_string());
                    let bucket = format!("{name}_bucket");
                    sample(
                        out,
                        &bucket,
                        p.attributes(),
                        Some(&le),
                        Number::U(cumulative),
                    );
                }
                sample(
                    out,
                    &format!("{name}_sum"),
                    p.attributes(),
                    None,
                    p.sum().into(),
                );
                sample(
                    out,
                    &format!("{name}_count"),
                    p.attributes(),
                    None,
                    Number::U(p.count()),
                );
            }
        }
        // Not configured anywhere; left out rather than misread.
        MetricData::ExponentialHistogram(_) => {}
    }
}

/// A sample's value, whatever the instrument's number type.
#[derive(Clone, Copy)]
enum Number {
    F(f64),
    U(u64),
    I(i64),
}

impl From<f64> for Number {
    fn from(v: f64) -> Self {
        Number::F(v)
    }
}
impl From<u64> for Number {
    fn from(v: u64) -> Self {
        Number::U(v)
    }
}
impl From<i64> for Number {
    fn from(v: i64) -> Self {
        Number::I(v)
    }
}

fn sample<'a>(
    out: &mut String,
    name: &str,
    attributes: impl Iterator<Item = &'a KeyValue>,
    le: Option<&str>,
    value: Number,
) {
    let mut labels: Vec<String> = attributes
        .map(|kv| {
            format!(
                "{}=\"{}\"",
                sanitize(kv.key.as_str()),
                escape(&label_value(&kv.value))
            )
        })
        .collect();
    labels.sort();
    if let Some(le) = le {
        labels.push(format!("le=\"{le}\""));
    }
    let value = match value {
        Number::F(v) if v.is_nan() => "NaN".to_owned(),
        Number::F(v) if v.is_infinite() => if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned(),
        Number::F(v) => v.to_string(),
        Number::U(v) => v.to_string(),
        Number::I(v) => v.to_string(),
    };
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
    }
}

fn label_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.as_str().to_owned(),
        other => other.to_string(),
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric or label name Prometheus accepts: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn metric_name(name: &str, unit: &str) -> String {
    let suffix = match unit {
        "s" => "_seconds",
        "ms" => "_milliseconds",
        "By" => "_bytes",
        _ => "",
    };
    let name = sanitize(name);
    if suffix.is_empty() || name.ends_with(suffix) {
        name
    } else {
        format!("{name}{suffix}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    #[test]
    fn the_text_format_has_histograms_counters_and_gauges_with_escaped_labels() {
        let reader = super::ScrapeReader::new();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .build();
        let meter = provider.meter("test");
        let h = meter
            .f64_histogram("rpc.server.duration")
            .with_unit("s")
            .with_boundaries(vec![0.1, 1.0])
            .build();
        h.record(0.05, &[KeyValue::new("rpc.method", "Get")]);
        h.record(0.5, &[KeyValue::new("rpc.method", "Get")]);
        h.record(5.0, &[KeyValue::new("rpc.method", "Get")]);
        meter
            .u64_counter("foundry.outbox.parked")
            .build()
            .add(2, &[KeyValue::new("schema", "a\"b")]);
        meter
            .i64_gauge("foundry.jobs.depth")
            .build()
            .record(-1, &[]);
        let text = reader.render();
        for line in [
            "# TYPE rpc_server_duration_seconds histogram",
            "rpc_server_duration_seconds_bucket{rpc_method=\"Get\",le=\"0.1\"} 1",
            "rpc_server_duration_seconds_bucket{rpc_method=\"Get\",le=\"1\"} 2",
            "rpc_server_duration_seconds_bucket{rpc_method=\"Get\",le=\"+Inf\"} 3",
            "rpc_server_duration_seconds_sum{rpc_method=\"Get\"} 5.55",
            "rpc_server_duration_seconds_count{rpc_method=\"Get\"} 3",
            "# TYPE foundry_outbox_parked_total counter",
            "foundry_outbox_parked_total{schema=\"a\\\"b\"} 2",
            "# TYPE foundry_jobs_depth gauge",
            "foundry_jobs_depth -1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}

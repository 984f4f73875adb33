//! Logs, traces and metrics. `tracing` everywhere; text or JSON lines on
//! stderr; spans (and metrics) exported over OTLP/gRPC when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, with W3C `traceparent` propagation
//! in and out; metrics also scraped from `GET /metrics`
//! ([`crate::metrics`]).

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Flushes exported spans and metrics when dropped (at shutdown).
#[must_use = "dropping the guard flushes and stops trace and metric export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("trace export shutdown: {e}");
        }
        if let Some(meters) = self.meters.take()
            && let Err(e) = meters.shutdown()
        {
            eprintln!("metric export shutdown: {e}");
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` filters the log lines
/// (default `info`); exported spans are those of level `info` and above
/// whatever it says, so quiet logs do not silence traces. Safe to call
/// more than once (later calls only return a guard).
pub fn init(service_name: &str, format: LogFormat) -> TelemetryGuard {
    init_with_default(service_name, format, "info")
}

/// [`init`] with another filter when `RUST_LOG` is unset.
pub fn init_with_default(
    service_name: &str,
    format: LogFormat,
    default_filter: &str,
) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));

    let otlp = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .is_some_and(|v| !v.is_empty());
    let provider = otlp
        .then(|| match otlp_provider(service_name) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("OTLP trace export disabled: {e:#}");
                None
            }
        })
        .flatten();
    let meters = meter_provider(service_name, otlp);
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service_name.to_owned()))
            .with_filter(LevelFilter::INFO)
    });

    let registry = tracing_subscriber::registry().with(otel);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init(),
    };
    // Already initialized (tests, or two services in one process): keep it.
    drop(result);
    TelemetryGuard { provider, meters }
}

/// Installs the process's meter provider (once; `None` after): read by
/// `GET /metrics` and, with `otlp`, exported over OTLP every
/// `OTEL_METRIC_EXPORT_INTERVAL` milliseconds (default a minute).
fn meter_provider(service_name: &str, otlp: bool) -> Option<SdkMeterProvider> {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    let mut made = None;
    INSTALLED.call_once(|| {
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(service_name.to_owned())
            .build();
        let mut builder = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(crate::metrics::scrape_reader());
        if otlp {
            match opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .build()
            {
                Ok(exporter) => builder = builder.with_periodic_exporter(exporter),
                Err(e) => eprintln!("OTLP metric export disabled: {e:#}"),
            }
        }
        let provider = builder.build();
        opentelemetry::global::set_meter_provider(provider.clone());
        made = Some(provider);
    });
    made
}

fn otlp_provider(service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(provider)
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes the incoming `traceparent` the parent of `span`.
pub fn set_parent_from(span: &tracing::Span, headers: &http::HeaderMap) {
    let cx =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    // Without an OTel layer there is nothing to attach to; that is fine.
    let _ = span.set_parent(cx);
}

/// Writes the current span's context as `traceparent` onto outgoing headers.
pub fn inject_current(headers: &mut http::HeaderMap) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(headers))
    });
}

/// [`inject_current`] onto an outgoing gRPC request's metadata.
pub fn inject_current_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    let mut headers = http::HeaderMap::new();
    inject_current(&mut headers);
    for (name, value) in &headers {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_bytes()),
        ) {
            metadata.insert(key, value);
        }
    }
}

/// The current span's context as a W3C `traceparent`, if it is in a trace
/// (what work done later on its behalf links to: an outbox event).
pub fn current_traceparent() -> Option<String> {
    let mut headers = http::HeaderMap::new();
    inject_current(&mut headers);
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The span context a `traceparent` names (a valid one only).
pub fn span_context_of(traceparent: &str) -> Option<SpanContext> {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        http::HeaderValue::from_str(traceparent).ok()?,
    );
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
    let span = cx.span().span_context().clone();
    span.is_valid().then_some(span)
}

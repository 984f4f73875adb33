//! RED metrics of every call a server answers: `rpc.server.duration`, a
//! histogram in seconds by `rpc.service`, `rpc.method` and
//! `rpc.grpc.status_code` (its count is the rate, its codes the errors, its
//! buckets the latency), measured from the request to the response's
//! last frame.
//!
//! The code is the response's `grpc-status`: in its headers for a
//! trailers-only response (every error of a unary call), else in its
//! trailers, read as the body ends; a body dropped before it ends is
//! `CANCELLED`. Labels are bounded: a path that is not a method of a
//! Foundry, health or reflection service counts as `other`, so no id a
//! client puts in a path becomes a series.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use pin_project_lite::pin_project;
use prost::Message as _;
use tower::{Layer, Service};

/// The histogram's bucket bounds, in seconds (OpenTelemetry's for server
/// durations).
const BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// gRPC's `CANCELLED` and `UNKNOWN`.
const CANCELLED: i64 = 1;
const UNKNOWN: i64 = 2;

fn histogram() -> &'static Histogram<f64> {
    static DURATION: OnceLock<Histogram<f64>> = OnceLock::new();
    DURATION.get_or_init(|| {
        opentelemetry::global::meter("foundry-rpc")
            .f64_histogram("rpc.server.duration")
            .with_unit("s")
            .with_description("Calls answered, by service, method and gRPC status code")
            .with_boundaries(BOUNDS.to_vec())
            .build()
    })
}

/// Every `/package.Service/Method` path served: the Foundry protos',
/// health's and reflection's.
fn known_paths() -> &'static HashSet<String> {
    static PATHS: OnceLock<HashSet<String>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let sets = [
            foundry_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut paths = HashSet::new();
        for set in sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
                continue;
            };
            for file in set.file {
                let package = file.package();
                for service in &file.service {
                    for method in &service.method {
                        paths.insert(format!("/{package}.{}/{}", service.name(), method.name()));
                    }
                }
            }
        }
        paths
    })
}

/// The service and method labels of `path`.
fn labels_of(path: &str) -> [KeyValue; 2] {
    let split = known_paths()
        .contains(path)
        .then(|| path.trim_start_matches('/').split_once('/'))
        .flatten();
    let (service, method) = split.unwrap_or(("other", "other"));
    [
        KeyValue::new("rpc.service", service.to_owned()),
        KeyValue::new("rpc.method", method.to_owned()),
    ]
}

fn grpc_status(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// One call being measured; recorded once.
struct Measure {
    started: Instant,
    labels: [KeyValue; 2],
}

impl Measure {
    fn record(self, code: i64) {
        let [service, method] = self.labels;
        histogram().record(
            self.started.elapsed().as_secs_f64(),
            &[service, method, KeyValue::new("rpc.grpc.status_code", code)],
        );
    }
}

/// Layer constructor.
#[derive(Clone, Debug, Default)]
pub struct RpcMetricsLayer;

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

/// See the module doc.
#[derive(Clone, Debug)]
pub struct RpcMetrics<S> {
    inner: S,
}

// === impl RpcMetrics ===

impl<S, B, RB> Service<Request<B>> for RpcMetrics<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<MeasuredBody<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let measure = Measure {
            started: Instant::now(),
            labels: labels_of(req.uri().path()),
        };
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match inner.call(req).await {
                Ok(resp) => {
                    // Trailers-only (an error): the code is here already.
                    let measure = match grpc_status(resp.headers()) {
                        Some(code) => {
                            measure.record(code);
                            None
                        }
                        None => Some(measure),
                    };
                    Ok(resp.map(|inner| MeasuredBody { inner, measure }))
                }
                Err(e) => {
                    measure.record(UNKNOWN);
                    Err(e)
                }
            }
        })
    }
}

pin_project! {
    /// A response body that records its call when its trailers come (or
    /// it ends, or is dropped).
    pub struct MeasuredBody<B> {
        #[pin]
        inner: B,
        measure: Option<Measure>,
    }

    impl<B> PinnedDrop for MeasuredBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(m) = this.project().measure.take() {
                m.record(CANCELLED);
            }
        }
    }
}

// === impl MeasuredBody ===

impl<B: Body> Body for MeasuredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(ready) = &polled {
            let code = match ready {
                Some(Ok(frame)) => frame
                    .trailers_ref()
                    .map(|t| grpc_status(t).unwrap_or(UNKNOWN)),
                Some(Err(_)) | None => Some(UNKNOWN),
            };
            if let Some(code) = code
                && let Some(m) = this.measure.take()
            {
                m.record(code);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_served_methods_are_labels() {
        let [s, m] = super::labels_of("/foundry.delivery.v1.TaskService/GetTask");
        assert_eq!(s.value.as_str(), "foundry.delivery.v1.TaskService");
        assert_eq!(m.value.as_str(), "GetTask");
        let [s, m] = super::labels_of("/grpc.health.v1.Health/Check");
        assert_eq!(s.value.as_str(), "grpc.health.v1.Health");
        assert_eq!(m.value.as_str(), "Check");
        for path in [
            "/foundry.delivery.v1.TaskService/0192f0e1-7b7c-7000-8000-000000000000",
            "/anything/else",
            "/",
        ] {
            let [s, m] = super::labels_of(path);
            assert_eq!(s.value.as_str(), "other", "{path}");
            assert_eq!(m.value.as_str(), "other", "{path}");
        }
    }
}

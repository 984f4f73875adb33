//! The outermost layer of every server: one span per call (method, request
//! id, the caller's organization, parent from `traceparent`), the request id in extensions and echoed
//! in `x-request-id`, and one structured log line per finished call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;
use uuid::Uuid;

/// The id of one call, from `x-request-id` or freshly made; in request
/// extensions for handlers and audit events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestId(pub Uuid);

/// Header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Layer constructor.
#[derive(Clone, Debug, Default)]
pub struct RequestTraceLayer;

impl<S> Layer<S> for RequestTraceLayer {
    type Service = RequestTrace<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestTrace { inner }
    }
}

/// See the module doc.
#[derive(Clone, Debug)]
pub struct RequestTrace<S> {
    inner: S,
}

// === impl RequestTrace ===

impl<S, B, RB> Service<Request<B>> for RequestTrace<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let request_id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::try_parse(v).ok())
            .unwrap_or_else(Uuid::now_v7);
        req.extensions_mut().insert(RequestId(request_id));
        let method = req.uri().path().to_owned();
        let span = tracing::info_span!(
            "rpc",
            otel.kind = "server",
            rpc.method = %method,
            request_id = %request_id,
            // The caller's organization, once the tenancy layer knows it.
            org_id = tracing::field::Empty,
        );
        crate::telemetry::set_parent_from(&span, req.headers());

        // Take the service that was driven to readiness (tower's clone dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let started = Instant::now();
        Box::pin(
            async move {
                let result = inner.call(req).await;
                let elapsed_us = started.elapsed().as_micros() as u64;
                match &result {
                    Ok(resp) => {
                        // Errors are trailers-only responses, so their code is
                        // in the headers; a success carries it in trailers.
                        let code = resp
                            .headers()
                            .get("grpc-status")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("0")
                            .to_owned();
                        tracing::info!(grpc.code = %code, elapsed_us, "rpc finished");
                    }
                    Err(e) => tracing::warn!(error = %e, elapsed_us, "rpc failed"),
                }
                result.map(|mut resp| {
                    if let Ok(v) = HeaderValue::from_str(&request_id.to_string()) {
                        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
                    }
                    resp
                })
            }
            .instrument(span),
        )
    }
}

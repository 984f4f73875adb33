//! The Envoy gateway's configuration (`deploy/envoy/envoy.yaml`), rendered
//! for one deployment: the end-to-end tests and the bench run it as is.

/// `deploy/envoy/envoy.yaml`, with its placeholders.
pub const ENVOY_TEMPLATE: &str = include_str!("../../../deploy/envoy/envoy.yaml");

/// The template with its placeholders filled: the HTTP port, the
/// descriptor set's path and the upstream `host:port`.
pub fn render_envoy(http_port: u16, descriptor: &std::path::Path, upstream: &str) -> String {
    let (host, port) = upstream.rsplit_once(':').unwrap_or((upstream, "50051"));
    ENVOY_TEMPLATE
        .replace("__HTTP_PORT__", &http_port.to_string())
        .replace("__DESCRIPTOR__", &descriptor.display().to_string())
        .replace("__UPSTREAM_HOST__", host)
        .replace("__UPSTREAM_PORT__", port)
}

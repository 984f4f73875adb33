//! Serving routes behind the platform layers: request trace outermost, then
//! tenancy; graceful shutdown (in-flight calls drain) when `shutdown`
//! resolves. Build the routes on [`foundry_platform::server::platform_routes`]
//! so health and reflection are always there.

use std::future::Future;
use std::sync::Arc;

use foundry_platform::trace::RequestTraceLayer;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tower::ServiceBuilder;

use crate::layer::{Tenancy, TenancyLayer};

/// Serves `routes` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    tenancy: Arc<Tenancy>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let layers = ServiceBuilder::new()
        .layer(RequestTraceLayer)
        .layer(TenancyLayer::new(tenancy))
        .into_inner();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .layer(layers)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

//! Serving routes behind the platform layers: RED metrics outermost (so a
//! call refused by any layer is counted), request trace, then tenancy; graceful shutdown (in-flight calls drain) when `shutdown`
//! resolves. Build the routes on [`foundry_platform::server::platform_routes`]
//! so health and reflection are always there.

use std::future::Future;
use std::sync::Arc;

use foundry_platform::rpc_metrics::RpcMetricsLayer;
use foundry_platform::trace::RequestTraceLayer;
use tokio::net::TcpListener;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::Server;
use tower::ServiceBuilder;

use crate::layer::{Tenancy, TenancyLayer};

/// Serves `routes` on `listener` until `shutdown` resolves; the verifier
/// keeps its keys fresh meanwhile ([`crate::Verifier::keep_fresh`]).
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    tenancy: Arc<Tenancy>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let verifier = tenancy.verifier.clone();
    let layers = ServiceBuilder::new()
        .layer(RpcMetricsLayer)
        .layer(RequestTraceLayer)
        .layer(TenancyLayer::new(tenancy))
        .into_inner();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    // In-flight calls drain after the signal, but a client that never
    // closes its connection must not hold the process forever.
    let (signalled, drain_started) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight calls");
        let _ = signalled.send(());
    };
    let (stop_refresh, refresh_stopped) = tokio::sync::oneshot::channel::<()>();
    let refresher = tokio::spawn(async move {
        verifier
            .keep_fresh(async {
                let _ = refresh_stopped.await;
            })
            .await;
    });
    let server = Server::builder()
        .layer(layers)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown);
    tokio::pin!(server);
    let served = tokio::select! {
        r = &mut server => r.map_err(anyhow::Error::from),
        () = async {
            if drain_started.await.is_ok() {
                tokio::time::sleep(DRAIN_DEADLINE).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(?DRAIN_DEADLINE, "drain deadline passed; closing the remaining connections");
            Ok(())
        }
    };
    let _ = stop_refresh.send(());
    let _ = refresher.await;
    served
}

/// How long in-flight calls may take to finish after a shutdown signal.
pub const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves a set of services: platform routes (health, reflection) plus
/// what `add` registers, every name in `names` reported `SERVING` on
/// health, until `shutdown` resolves. Used by the all-in-one binary and by
/// every per-service binary alike.
pub async fn serve_services(
    listener: TcpListener,
    add: impl FnOnce(&mut RoutesBuilder),
    names: &[&str],
    tenancy: Arc<Tenancy>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (mut routes, health) = foundry_platform::server::platform_routes()?;
    add(&mut routes);
    for name in names {
        health
            .set_service_status(*name, tonic_health::ServingStatus::Serving)
            .await;
    }
    serve(listener, routes.routes(), tenancy, shutdown).await
}

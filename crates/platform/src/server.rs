//! What every server has: gRPC health, server reflection v1 and v1alpha
//! (grpcurl 1.8 speaks v1alpha), and shutdown on SIGTERM or ctrl-c.

use tonic::service::RoutesBuilder;
use tonic_health::server::HealthReporter;

/// Routes with health and reflection (over every Foundry proto) added, and
/// the reporter that marks services serving.
pub fn platform_routes() -> anyhow::Result<(RoutesBuilder, HealthReporter)> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(foundry_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(foundry_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let mut routes = RoutesBuilder::default();
    routes
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha);
    Ok((routes, reporter))
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
    }
}

/// A boxed stop signal handed to a background task or a server.
pub type StopSignal = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Background tasks of a server process (outbox relays, checkpointers)
/// that must stop, and flush, while the server they talk to still serves.
#[derive(Default)]
pub struct Background {
    tasks: Vec<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Background {
    /// Starts `task`, which returns once its stop signal resolves.
    pub fn spawn<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(StopSignal) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(task(Box::pin(async {
            let _ = stopped.await;
        })));
        self.tasks.push((stop, handle));
    }

    /// Stops every task and waits for each to finish.
    pub async fn stop(self) {
        for (stop, handle) in self.tasks {
            let _ = stop.send(());
            if let Err(e) = handle.await {
                tracing::error!(error = %e, "a background task failed");
            }
        }
    }

    /// Runs `server` until `shutdown`; then stops these tasks first (so a
    /// relay can still deliver) and the server after. If the server ends by
    /// itself, its result is returned and the tasks are stopped.
    pub async fn serve<S>(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
        server: impl FnOnce(StopSignal) -> S,
    ) -> anyhow::Result<()>
    where
        S: std::future::Future<Output = anyhow::Result<()>>,
    {
        let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = server(Box::pin(async {
            let _ = server_stopped.await;
        }));
        tokio::pin!(server, shutdown);
        tokio::select! {
            r = &mut server => {
                self.stop().await;
                return r;
            }
            () = &mut shutdown => {}
        }
        self.stop().await;
        let _ = stop_server.send(());
        server.await
    }
}

/// Runs `tick` every `interval` until `stop` resolves: the one loop behind
/// every maintenance task of a server (request-id sweeps, audit
/// checkpoints). A failed tick is logged with the task's name and retried
/// at the next interval; a tick in progress finishes before the loop stops.
pub async fn every<F, Fut>(
    name: &'static str,
    interval: std::time::Duration,
    stop: StopSignal,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut stop = stop;
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = timer.tick() => {
                if let Err(e) = tick().await {
                    tracing::warn!(task = name, error = %format!("{e:#}"), "maintenance tick failed; retrying next interval");
                }
            }
        }
    }
}

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

/// Runs `tick` every `interval` (the first one interval after the start)
/// until `stop` resolves: the one loop behind every maintenance task of a
/// server (request-id sweeps, audit checkpoints and retention). A failed
/// tick is logged with the task's name and retried at the next interval; a
/// tick in progress finishes before the loop stops.
pub async fn every<F, Fut>(
    name: &'static str,
    interval: std::time::Duration,
    stop: impl std::future::Future<Output = ()> + Send,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    tokio::pin!(stop);
    let start = tokio::time::Instant::now() + interval;
    let mut timer = tokio::time::interval_at(start, interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = timer.tick() => {
                if let Err(e) = tick().await {
                    tracing::warn!(task = name, error = %format!("{e:#}"), "maintenance tick failed; retrying next interval");
                }
            }
        }
    }
    tracing::debug!(task = name, "maintenance loop stopped");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn every_ticks_after_each_interval_survives_failures_and_stops() {
        let ticks = Arc::new(AtomicU32::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let counted = ticks.clone();
        let task = tokio::spawn(super::every(
            "test",
            Duration::from_secs(10),
            async {
                let _ = stopped.await;
            },
            move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    anyhow::ensure!(n != 1, "the second tick fails");
                    Ok(())
                }
            },
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            0,
            "nothing before one interval"
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            3,
            "a failed tick does not stop the loop"
        );
        stop.send(()).expect("stop");
        task.await.expect("stopped");
    }
}

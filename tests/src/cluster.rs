//! A Weir deployment inside a test: coordinators and workers as tasks against a private
//! redis-server, each stoppable on its own (to simulate crashes and restarts).

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use weir::redis::{RedisConfig, WeirClient};
use weir_coordinator::service::{Coordinator, CoordinatorConfig};
use weir_worker::{Worker, WorkerConfig};

/// A running service (coordinator or worker) that can be stopped gracefully or aborted
/// (the in-process stand-in for SIGKILL: its task is dropped mid-flight).
pub struct Service {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// Its id.
    pub id: String,
}

impl Service {
    /// Asks it to stop and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Kills it at once, wherever it is (no graceful release of leases or entries).
    pub fn kill(self) {
        self.task.abort();
    }
}

/// Settings for test services: short leases and timeouts so failover is quick.
pub fn redis_config(url: &str, namespace: &str) -> RedisConfig {
    RedisConfig::new(url, namespace)
}

/// Starts a coordinator with a 1 s lease.
pub async fn start_coordinator(url: &str, namespace: &str) -> anyhow::Result<Service> {
    let mut config = CoordinatorConfig::new(redis_config(url, namespace));
    config.lease = Duration::from_secs(1);
    start_coordinator_with(config).await
}

/// Starts a coordinator with the given settings.
pub async fn start_coordinator_with(config: CoordinatorConfig) -> anyhow::Result<Service> {
    let coordinator = Coordinator::connect(config).await?;
    let id = coordinator.id().to_string();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(coordinator.run(rx));
    Ok(Service { stop, task, id })
}

/// Starts a worker with the built-in handlers and a 2 s visibility timeout.
pub async fn start_worker(url: &str, namespace: &str) -> anyhow::Result<Service> {
    let mut config = WorkerConfig::new(redis_config(url, namespace));
    config.visibility_timeout = Duration::from_secs(2);
    config.grace = Duration::from_secs(2);
    start_worker_with(config, weir_worker::builtin_handlers()).await
}

/// Starts a worker with the given settings and handlers.
pub async fn start_worker_with(
    config: WorkerConfig,
    handlers: weir::Handlers,
) -> anyhow::Result<Service> {
    let worker = Worker::connect(config, handlers).await?;
    let id = worker.id().to_string();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(worker.run(rx));
    Ok(Service { stop, task, id })
}

/// A client.
pub async fn client(url: &str, namespace: &str) -> anyhow::Result<WeirClient> {
    Ok(WeirClient::connect(&redis_config(url, namespace)).await?)
}

/// Sends the services' logs to the test output, filtered by `RUST_LOG` (default `warn`).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

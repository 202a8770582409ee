//! A Weir deployment inside a test: coordinators and workers against a private
//! redis-server, each on its own tokio runtime and thread, so each can be stopped
//! gracefully or killed at once (its runtime dropped: every task of it, handlers included,
//! stops at its next await, and its connections close, as with SIGKILL).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use weir::process::{Shutdown, ShutdownListener};
use weir::redis::{RedisConfig, WeirClient};
use weir_coordinator::service::{Coordinator, CoordinatorConfig, Counters};
use weir_worker::runtime::WorkerCounters;
use weir_worker::{Worker, WorkerConfig};

/// A running service (coordinator or worker) on its own runtime.
pub struct Service {
    stop: Shutdown,
    done: Option<oneshot::Receiver<()>>,
    kill: Option<oneshot::Sender<()>>,
    /// Its id.
    pub id: String,
}

impl Service {
    /// Asks it to stop gracefully and waits until it has.
    pub async fn stop(mut self) {
        self.stop.trigger();
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }

    /// Kills it at once, wherever it is: no lease is released, no entry acknowledged.
    pub fn kill(mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

/// Runs `make(stop)`'s future on a fresh two-thread runtime in its own thread.
fn spawn_service<F, Fut>(id: String, make: F) -> Service
where
    F: FnOnce(ShutdownListener) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stop = Shutdown::new();
    let stop_rx = stop.listener();
    let (done_tx, done) = oneshot::channel();
    let (kill, kill_rx) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            tokio::select! {
                _ = make(stop_rx) => {}
                _ = kill_rx => {}
            }
        });
        // Dropping the runtime ends every task still on it, mid-flight.
        rt.shutdown_background();
        let _ = done_tx.send(());
    });
    Service {
        stop,
        done: Some(done),
        kill: Some(kill),
        id,
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
    Ok(start_coordinator_counted(config).await?.0)
}

/// Starts a coordinator with the given settings; also returns its live counters (stale
/// results dropped, dead letters, ...), which stay readable after it is killed.
pub async fn start_coordinator_counted(
    config: CoordinatorConfig,
) -> anyhow::Result<(Service, Arc<Counters>)> {
    let id = config.id.clone();
    let (ready_tx, ready) = oneshot::channel();
    let service = spawn_service(id, move |stop| async move {
        match Coordinator::connect(config).await {
            Ok(c) => {
                let _ = ready_tx.send(Ok(c.counters()));
                c.run(stop).await;
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        }
    });
    let counters = ready.await??;
    Ok((service, counters))
}

/// Starts a worker with the built-in handlers and a 2 s visibility timeout.
pub async fn start_worker(url: &str, namespace: &str) -> anyhow::Result<Service> {
    let mut config = WorkerConfig::new(redis_config(url, namespace));
    config.visibility_timeout = Duration::from_secs(2);
    config.grace = Duration::from_secs(2);
    Ok(start_builtin_worker(config).await?.0)
}

/// Starts a worker with the given settings and handlers.
pub async fn start_worker_with(
    config: WorkerConfig,
    handlers: weir::Handlers,
) -> anyhow::Result<Service> {
    Ok(start_worker_counted(config, handlers).await?.0)
}

/// Starts a worker with the given settings and handlers; also returns its live counters.
pub async fn start_worker_counted(
    config: WorkerConfig,
    handlers: weir::Handlers,
) -> anyhow::Result<(Service, Arc<WorkerCounters>)> {
    let id = config.id.clone();
    let (ready_tx, ready) = oneshot::channel();
    let service = spawn_service(id, move |stop| async move {
        match Worker::connect(config, handlers).await {
            Ok(w) => {
                let _ = ready_tx.send(Ok(w.counters()));
                w.run(stop).await;
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        }
    });
    let counters = ready.await??;
    Ok((service, counters))
}

/// Starts a worker with the given settings and the built-in handlers (the setup of most
/// worker and fault tests); also returns its live counters.
pub async fn start_builtin_worker(
    config: WorkerConfig,
) -> anyhow::Result<(Service, Arc<WorkerCounters>)> {
    start_worker_counted(config, weir_worker::builtin_handlers()).await
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

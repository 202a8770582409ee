//! A coordinator and two workers run in this process for a Redis benchmark, stopped
//! together: what every Redis phase sets up before it measures.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use weir::redis::RedisConfig;
use weir::{Handlers, Step};
use weir_worker::{Worker, WorkerConfig};

use crate::service::{Coordinator, CoordinatorConfig};

/// Workers a benchmark runs beside its coordinator.
const WORKERS: usize = 2;

/// The running coordinator and workers of one benchmark phase.
pub(super) struct Engines {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Engines {
    /// Starts the coordinator `coordinator` and two workers on `config`, each of
    /// concurrency `concurrency` and with the handlers `handlers` makes.
    pub(super) async fn start(
        coordinator: CoordinatorConfig,
        config: &RedisConfig,
        concurrency: usize,
        handlers: impl Fn() -> Handlers,
    ) -> anyhow::Result<Engines> {
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(
            Coordinator::connect(coordinator)
                .await?
                .run(stop_rx.clone()),
        )];
        for _ in 0..WORKERS {
            let mut wc = WorkerConfig::new(config.clone());
            wc.concurrency = concurrency;
            let worker = Worker::connect(wc, handlers()).await?;
            tasks.push(tokio::spawn(worker.run(stop_rx.clone())));
        }
        Ok(Engines { stop, tasks })
    }

    /// Starts a coordinator with the defaults and two workers with the built-in handlers.
    pub(super) async fn builtin(
        config: &RedisConfig,
        concurrency: usize,
    ) -> anyhow::Result<Engines> {
        Engines::start(
            CoordinatorConfig::new(config.clone()),
            config,
            concurrency,
            weir_worker::builtin_handlers,
        )
        .await
    }

    /// [`Engines::builtin`], with one handler more: the phase's probe step under `name`.
    pub(super) async fn builtin_and(
        config: &RedisConfig,
        concurrency: usize,
        name: &str,
        step: Arc<dyn Step>,
    ) -> anyhow::Result<Engines> {
        Engines::start(
            CoordinatorConfig::new(config.clone()),
            config,
            concurrency,
            || {
                let mut handlers = weir_worker::builtin_handlers();
                handlers.register_arc(name, step.clone());
                handlers
            },
        )
        .await
    }

    /// Asks them all to stop and waits until they have.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

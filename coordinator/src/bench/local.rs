//! The LocalEngine benchmark: machine steps per second with events and history on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use weir::events::EventBus;
use weir::model::{Definition, Event, InstanceStatus};
use weir::{Engine, LocalEngine, StartOptions};

use super::workloads;

/// Counts events: the bus is on, and its cost is in the figure.
#[derive(Default)]
struct CountingBus(AtomicU64);

#[async_trait]
impl EventBus for CountingBus {
    async fn emit(&self, event: &Event) {
        self.try_emit(event);
    }

    fn try_emit(&self, _event: &Event) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// One measured run.
#[derive(Debug, Clone)]
pub struct LocalResult {
    /// Workload name.
    pub workload: String,
    /// Instances run.
    pub instances: usize,
    /// Machine steps run.
    pub steps: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Events emitted.
    pub events: u64,
}

impl LocalResult {
    /// Steps per second.
    pub fn steps_per_second(&self) -> f64 {
        self.steps as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `instances` instances of `def`, `concurrency` at a time, on a LocalEngine with the
/// built-in `noop`, a counting event bus and history on.
pub async fn run(
    def: Definition,
    instances: usize,
    concurrency: usize,
) -> anyhow::Result<LocalResult> {
    let bus = Arc::new(CountingBus::default());
    let engine = LocalEngine::builder()
        .handlers(weir_worker::builtin_handlers())
        .event_bus(bus.clone())
        .build();
    let steps_per = workloads::steps_of(&def);
    let name = def.name.clone();
    engine.register_definition(def).await?;
    let started = Instant::now();
    let per_task = instances.div_ceil(concurrency.max(1));
    let mut tasks = Vec::new();
    for t in 0..concurrency.max(1) {
        let engine = engine.clone();
        let name = name.clone();
        let n = per_task.min(instances.saturating_sub(t * per_task));
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                let inst = engine
                    .start_workflow(&name, StartOptions::default())
                    .await?;
                if inst.status != InstanceStatus::Completed {
                    let done = engine.wait(&inst.id, Duration::from_secs(60)).await?;
                    anyhow::ensure!(
                        done.status == InstanceStatus::Completed,
                        "instance ended {}",
                        done.status
                    );
                }
            }
            anyhow::Ok(n)
        }));
    }
    let mut ran = 0;
    for t in tasks {
        ran += t.await??;
    }
    let elapsed = started.elapsed();
    Ok(LocalResult {
        workload: name,
        instances: ran,
        steps: ran * steps_per,
        elapsed,
        events: bus.0.load(Ordering::Relaxed),
    })
}

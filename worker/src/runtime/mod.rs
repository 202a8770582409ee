//! The worker runtime: consume step attempts from Redis streams, run their handlers, report
//! the results. Workers are stateless: everything they hold is also pending in Redis, so a
//! worker killed at any moment loses nothing (its entries are reclaimed by a sibling).
//!
//! - [`consume`]: reads with `XREADGROUP` (group `workers`) within the concurrency limit,
//!   runs each attempt with its timeout, dead-letters entries it cannot decode.
//! - [`report`]: sends results in batches, each atomically with the acknowledgement of its
//!   step entry (`report.lua`).
//! - [`reclaim`]: heartbeats the entries in flight (so long steps are not reclaimed) and
//!   claims entries other workers left idle past the visibility timeout (`XAUTOCLAIM`);
//!   an entry delivered too often without an outcome goes to the dead-letter stream.
//!
//! SIGTERM (or the shutdown signal) drains: no new reads, attempts in flight get a grace
//! period to finish and report, the rest stay pending for another worker.

pub mod consume;
pub mod reclaim;
pub mod report;
pub mod secrets;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use weir::redis::keys::WORKER_GROUP;
use weir::redis::{groups, presence};
use weir::redis::{Connections, RedisConfig, RedisError};
use weir::Handlers;

/// How long a stopping worker waits, after the grace period, for the results of the
/// attempts that finished to be sent.
const REPORT_FLUSH: Duration = Duration::from_secs(1);

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Redis and namespace.
    pub redis: RedisConfig,
    /// This worker's id (its consumer name).
    pub id: String,
    /// The queues it serves.
    pub queues: Vec<String>,
    /// Attempts run at once.
    pub concurrency: usize,
    /// An entry idle this long is taken to belong to a dead worker and is reclaimed.
    pub visibility_timeout: Duration,
    /// Deliveries after which an entry that keeps failing to finish is dead-lettered.
    pub max_deliveries: u64,
    /// How long in-flight attempts may take to finish after shutdown is asked.
    pub grace: Duration,
    /// Dead letters kept per partition (approximately); older ones are dropped, counted
    /// (`weir_dlq_trimmed_total`) and logged.
    pub dlq_cap: usize,
    /// A consumer of the step streams' group with nothing pending and idle this long, and
    /// a heartbeat in `NS:workers` this old, belong to a worker gone for good: they are
    /// removed. Default 1 hour.
    pub stale_consumer_idle: Duration,
    /// What `{env:NAME}` and `{secret:NAME}` in step configs resolve to (see [`secrets`]).
    pub secrets: secrets::Secrets,
}

impl WorkerConfig {
    /// Defaults: queue `default`, 16 at once, 30 s visibility, 5 deliveries, 10 s grace.
    pub fn new(redis: RedisConfig) -> WorkerConfig {
        WorkerConfig {
            redis,
            id: format!("worker-{}", uuid::Uuid::now_v7().simple()),
            queues: vec![weir::definition::DEFAULT_QUEUE.to_string()],
            concurrency: 16,
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: 5,
            grace: Duration::from_secs(10),
            dlq_cap: 10_000,
            stale_consumer_idle: reclaim::STALE_CONSUMER_IDLE,
            secrets: secrets::Secrets::from_env(),
        }
    }
}

/// Counters a worker keeps (also for metrics).
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Attempts run.
    pub executed: AtomicU64,
    /// Attempts that succeeded.
    pub succeeded: AtomicU64,
    /// Attempts that failed.
    pub failed: AtomicU64,
    /// Results reported.
    pub reported: AtomicU64,
    /// Entries reclaimed from dead workers.
    pub reclaimed: AtomicU64,
    /// Entries dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Old dead letters the dead-letter streams' cap dropped.
    pub dead_letters_trimmed: AtomicU64,
    /// Results not appended because another worker had reclaimed their entry.
    pub results_disowned: AtomicU64,
    /// Results dropped after Redis kept refusing them (their entries run again).
    pub results_refused: AtomicU64,
    /// Idle consumers (of dead workers) removed from the step streams' group.
    pub consumers_removed: AtomicU64,
    /// Redis errors seen.
    pub redis_errors: AtomicU64,
}

/// An entry being worked on: its stream and id.
pub(crate) type InFlight = Arc<Mutex<HashMap<(String, String), ()>>>;

/// What the worker's tasks share.
pub struct WorkerShared {
    /// The worker's settings.
    pub config: WorkerConfig,
    /// Its connections to Redis.
    pub conns: Connections,
    /// Handlers by name.
    pub handlers: Handlers,
    /// The counters it exports as metrics.
    pub counters: Arc<WorkerCounters>,
    pub(crate) in_flight: InFlight,
    pub(crate) slots: consume::Slots,
}

/// A worker, connected.
pub struct Worker {
    shared: Arc<WorkerShared>,
}

impl Worker {
    /// Connects and creates the consumer groups of its queues in every partition.
    pub async fn connect(config: WorkerConfig, handlers: Handlers) -> Result<Worker, RedisError> {
        let mut redis = config.redis.clone();
        redis.blocking_pool_size = redis.blocking_pool_size.max(4);
        let conns = Connections::connect(&redis).await?;
        let config_concurrency = config.concurrency.max(1);
        let worker = Worker {
            shared: Arc::new(WorkerShared {
                config,
                conns,
                handlers,
                counters: Arc::new(WorkerCounters::default()),
                in_flight: Arc::new(Mutex::new(HashMap::new())),
                slots: Arc::new(tokio::sync::Semaphore::new(config_concurrency)),
            }),
        };
        ensure_groups(&worker.shared).await?;
        Ok(worker)
    }

    /// Its counters.
    pub fn counters(&self) -> Arc<WorkerCounters> {
        self.shared.counters.clone()
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.shared.config.id
    }

    /// Runs until `shutdown` turns true, then drains.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let shared = self.shared;
        let (results_tx, results_rx) = tokio::sync::mpsc::channel(4096);
        let reporter = tokio::spawn(report::run(shared.clone(), results_rx));
        let reclaimer = tokio::spawn(reclaim::run(
            shared.clone(),
            results_tx.clone(),
            shutdown.clone(),
        ));
        consume::run(shared.clone(), results_tx, shutdown).await;
        let _ = reclaimer.await;
        // The reporter ends when every sender is gone: all attempts reported. Attempts
        // still hung after the grace period keep their senders; don't wait for them: the
        // grace is over, so give the reporter only a moment to flush what did finish.
        let _ = tokio::time::timeout(REPORT_FLUSH, reporter).await;
        let _ = presence::forget_worker(
            &mut shared.conns.conn.clone(),
            &shared.conns.keys,
            &shared.config.id,
        )
        .await;
        tracing::info!(worker = %shared.config.id, "worker stopped");
    }
}

/// Creates the consumer group of every stream the worker reads (and the stream), where it
/// is missing: at start, and again whenever Redis answers `NOGROUP` (it lost its data).
pub(crate) async fn ensure_groups(shared: &WorkerShared) -> Result<(), RedisError> {
    let c = &shared.conns;
    groups::ensure_groups(&mut c.conn.clone(), &streams(shared), WORKER_GROUP)
        .await
        .map_err(|e| RedisError::from_redis(&c.display_url, e))
}

/// Every step stream the worker reads: its queues in every partition.
pub(crate) fn streams(shared: &WorkerShared) -> Vec<String> {
    let mut out = Vec::new();
    for part in shared.conns.keys.all_parts() {
        for q in &shared.config.queues {
            out.push(part.queue(q));
        }
    }
    out
}

//! The coordinator: advances instances held in Redis.
//!
//! Any number of coordinators may run. Each takes leases on a fair share of the
//! namespace's partitions ([`lease`]) and runs one loop per leased partition
//! ([`partition`]): read commands and results from the partition's streams, read the timers
//! due by the Redis clock, apply them with the pure core, and write everything the
//! transitions decided in one atomic script call guarded by the lease ([`apply`]). Beside
//! each loop, the lease holder fires the partition's delayed starts and schedules
//! ([`due`]) and relays its outbox of correlated-message hops and expires its kept
//! messages ([`messages`]). A coordinator killed at any moment loses nothing:
//! unacknowledged input stays pending in the streams, and whoever takes the lease next reads
//! it again (a result applied twice is refused as stale by its token).

pub mod apply;
pub mod due;
pub mod lease;
pub mod messages;
pub mod partition;
pub mod retention;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use weir::redis::store::DefinitionCache;
use weir::redis::{Connections, RedisConfig};

/// How a coordinator runs.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Redis and namespace.
    pub redis: RedisConfig,
    /// This coordinator's id (unique among live coordinators).
    pub id: String,
    /// How long a lease lasts without renewal: a dead coordinator's partitions are taken
    /// over after at most this long.
    pub lease: Duration,
    /// How long finished instances are kept.
    pub retention: Duration,
    /// Entries kept per partition event stream (approximately). An entry holds the events
    /// one commit wrote, so at least this many events are kept.
    pub events_cap: usize,
    /// Dead letters kept per partition stream (approximately).
    pub dlq_cap: usize,
    /// Messages read per batch.
    pub batch: usize,
    /// Deliveries after which an input that keeps failing is dead-lettered.
    pub max_deliveries: u64,
}

impl CoordinatorConfig {
    /// Defaults: a random id, 5 s leases, 7 days retention, 10,000 events per partition.
    pub fn new(redis: RedisConfig) -> CoordinatorConfig {
        CoordinatorConfig {
            redis,
            id: format!("coordinator-{}", uuid::Uuid::now_v7().simple()),
            lease: Duration::from_secs(5),
            retention: Duration::from_secs(7 * 24 * 3600),
            events_cap: 10_000,
            dlq_cap: 10_000,
            batch: 256,
            max_deliveries: 5,
        }
    }
}

/// Counters a coordinator keeps (also for metrics).
#[derive(Debug, Default)]
pub struct Counters {
    /// Inputs applied (transitions).
    pub transitions: AtomicU64,
    /// Stale results and timers dropped.
    pub stale: AtomicU64,
    /// Commands refused.
    pub refused: AtomicU64,
    /// Messages dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Batches committed.
    pub commits: AtomicU64,
    /// Redis errors seen.
    pub redis_errors: AtomicU64,
    /// Partitions held now.
    pub leases_held: AtomicU64,
    /// Instances deleted by retention.
    pub expired: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What the parts of a running coordinator share.
pub struct Shared {
    /// The coordinator's settings.
    pub config: CoordinatorConfig,
    /// Its connections to Redis.
    pub conns: Connections,
    /// Compiled definitions.
    pub defs: DefinitionCache,
    /// The counters it exports as metrics.
    pub counters: Arc<Counters>,
}

/// A coordinator, connected and ready to run.
pub struct Coordinator {
    shared: Arc<Shared>,
}

impl Coordinator {
    /// Connects to Redis.
    pub async fn connect(
        config: CoordinatorConfig,
    ) -> Result<Coordinator, weir::redis::RedisError> {
        let mut redis = config.redis.clone();
        redis.blocking_pool_size = redis.blocking_pool_size.max(64);
        let conns = Connections::connect(&redis).await?;
        // Redis is the only state: say loudly when it can lose it (see `redis::safety`).
        for warning in weir::redis::safety::check(&conns).await {
            tracing::warn!(url = %conns.display_url, "{warning}");
        }
        Ok(Coordinator {
            shared: Arc::new(Shared {
                config,
                conns,
                defs: DefinitionCache::new(),
                counters: Arc::new(Counters::default()),
            }),
        })
    }

    /// Its counters.
    pub fn counters(&self) -> Arc<Counters> {
        self.shared.counters.clone()
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.shared.config.id
    }

    /// Runs until `shutdown` turns true, then stops its partition loops after their current
    /// batch and releases its leases so another coordinator takes over at once.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        lease::run(self.shared, shutdown).await;
    }
}

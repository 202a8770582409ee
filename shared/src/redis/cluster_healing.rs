//! A Redis Cluster connection that replaces itself when it stops answering.
//!
//! redis-rs 1.8's cluster connection can stay stuck after a failover. Seen here in
//! `cluster_load`'s replicated failover test, with two CPU-bound processes beside it: the
//! killed master came back as a replica, the connection logged the start of a slot
//! refresh that never finished, and for over 30 s every request through it timed out while
//! the cluster itself answered. The connection refreshes its slot map under the lock of
//! its connection map, and each request waits for that lock, so one refresh that never
//! ends stops them all.
//!
//! So a [`HealingCluster`] counts the timeouts of its requests: after [`STUCK_AFTER`] in a
//! row, with no answer between them, it builds a new connection from the same client
//! (which connects to the seeds and reads the slot map afresh) in the background, and every
//! clone uses that one from then on. Requests already in flight finish on the old one. A
//! cluster that is only slow pays one reconnection.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::RedisResult;

/// Timeouts in a row after which the connection is replaced.
pub const STUCK_AFTER: u32 = 3;

/// A cluster connection shared by its clones, replaced when it stops answering.
#[derive(Clone)]
pub struct HealingCluster {
    shared: Arc<Shared>,
}

struct Shared {
    /// What a replacement is built from.
    client: ClusterClient,
    /// The connection requests go through now.
    current: RwLock<ClusterConnection>,
    /// Requests that timed out since the last answer.
    timeouts: AtomicU32,
    /// Set while a replacement is being built (one at a time).
    replacing: tokio::sync::Mutex<()>,
    /// How many times the connection was replaced.
    replaced: AtomicU64,
}

impl HealingCluster {
    /// Connects through `client`.
    pub async fn connect(client: ClusterClient) -> RedisResult<HealingCluster> {
        let conn = client.get_async_connection().await?;
        Ok(HealingCluster {
            shared: Arc::new(Shared {
                client,
                current: RwLock::new(conn),
                timeouts: AtomicU32::new(0),
                replacing: tokio::sync::Mutex::new(()),
                replaced: AtomicU64::new(0),
            }),
        })
    }

    /// The connection to send a request through now.
    pub fn connection(&self) -> ClusterConnection {
        self.shared
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How many times the connection was replaced since it was made.
    pub fn replacements(&self) -> u64 {
        self.shared.replaced.load(Ordering::Relaxed)
    }

    /// Takes note of a request's outcome: an answer (even an error reply) resets the count
    /// of timeouts; the [`STUCK_AFTER`]th timeout in a row starts a replacement.
    pub fn observe<T>(&self, result: &RedisResult<T>) {
        match result {
            Err(e) if e.is_timeout() => {
                let n = self.shared.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= STUCK_AFTER {
                    let this = self.clone();
                    tokio::spawn(async move { this.replace().await });
                }
            }
            Err(e) if e.is_io_error() => {}
            // Read first: every request of every clone passes here, and a store would
            // bounce the counter's cache line between threads.
            _ => {
                if self.shared.timeouts.load(Ordering::Relaxed) != 0 {
                    self.shared.timeouts.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// Builds a new connection and puts it in place of the current one, unless another
    /// replacement is under way or an answer came since.
    async fn replace(&self) {
        let Ok(_one) = self.shared.replacing.try_lock() else {
            return;
        };
        if self.shared.timeouts.load(Ordering::Relaxed) < STUCK_AFTER {
            return;
        }
        match self.shared.client.get_async_connection().await {
            Ok(fresh) => {
                *self
                    .shared
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
                self.shared.timeouts.store(0, Ordering::Relaxed);
                let n = self.shared.replaced.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    replacements = n,
                    "the Redis Cluster connection timed out {STUCK_AFTER} times in a row; replaced it with a new one"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "the Redis Cluster connection is not answering and a new one could not be made yet");
            }
        }
    }
}

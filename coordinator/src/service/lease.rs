//! Partition leases: each coordinator holds a fair share of the partitions, renews them,
//! takes over those whose holder died, and gives extras up when more coordinators join.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;
use weir::redis::scripts;

use super::{partition, Shared};

/// The longest a stop waits for the partition loops and the lease releases (bounded by the
/// lease time too): past it, the leases are left to expire.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// How often queue depths and pending counts are sampled for metrics.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

struct Held {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Keeps leases until shutdown; starts and stops partition loops as leases come and go.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut held: HashMap<u16, Held> = HashMap::new();
    let tick = shared.config.lease / 3;
    let mut backoff = Duration::from_millis(100);
    let mut last_sample = tokio::time::Instant::now();
    loop {
        match tick_once(&shared, &mut held).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                super::Counters::add(&shared.counters.redis_errors, 1);
                weir_worker::ops::metrics::redis_error("coordinator");
                tracing::warn!(error = %e, "lease renewal failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
        shared
            .counters
            .leases_held
            .store(held.len() as u64, Ordering::Relaxed);
        weir_worker::ops::metrics::leases_held(held.len());
        if last_sample.elapsed() >= SAMPLE_EVERY {
            last_sample = tokio::time::Instant::now();
            let parts: Vec<u16> = held.keys().copied().collect();
            tokio::spawn(weir_worker::ops::sample_partitions(
                shared.conns.clone(),
                parts,
            ));
        }
        let pause = if backoff > Duration::from_millis(100) {
            backoff.min(tick)
        } else {
            tick
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
    }
    // Graceful: stop loops after their batch, then release so a sibling takes over now.
    // All of it within a deadline: with Redis gone, a release cannot happen anyway (the
    // leases expire by themselves), and SIGTERM must still end the process promptly.
    for h in held.values() {
        let _ = h.stop.send(true);
    }
    let parts: Vec<u16> = held.keys().copied().collect();
    let mut tasks: Vec<JoinHandle<()>> = held.into_values().map(|h| h.task).collect();
    let deadline = shared
        .config
        .lease
        .clamp(Duration::from_secs(1), SHUTDOWN_DEADLINE);
    let drain = async {
        for task in tasks.iter_mut() {
            let _ = task.await;
        }
        let shared = &shared;
        let releases = parts.iter().map(|&p| {
            let part = shared.conns.keys.part(p);
            let mut conn = shared.conns.conn.clone();
            async move {
                let released: Result<i64, _> = scripts::RELEASE
                    .key(part.lease())
                    .arg(&shared.config.id)
                    .invoke_async(&mut conn)
                    .await;
                if let Err(e) = released {
                    tracing::warn!(partition = p, error = %e, "could not release lease; it will expire");
                }
            }
        });
        futures_util::future::join_all(releases).await;
        let _: Result<i64, _> = redis::cmd("ZREM")
            .arg(shared.conns.keys.coordinators())
            .arg(&shared.config.id)
            .query_async(&mut shared.conns.conn.clone())
            .await;
    };
    if tokio::time::timeout(deadline, drain).await.is_err() {
        for task in &tasks {
            task.abort();
        }
        tracing::warn!(
            ?deadline,
            "Redis did not answer in time while stopping; the leases will expire by themselves"
        );
    }
    tracing::info!(coordinator = %shared.config.id, "coordinator stopped");
}

async fn tick_once(
    shared: &Arc<Shared>,
    held: &mut HashMap<u16, Held>,
) -> Result<(), redis::RedisError> {
    let keys = &shared.conns.keys;
    let mut conn = shared.conns.conn.clone();
    let lease_ms = shared.config.lease.as_millis() as u64;
    // Heartbeat, and count the live coordinators to compute a fair share.
    let now = shared
        .conns
        .server_time()
        .await
        .map_err(|e| redis::RedisError::from((redis::ErrorKind::Io, "time", e.to_string())))?;
    let (alive,): (u64,) = redis::pipe()
        .cmd("ZADD")
        .arg(keys.coordinators())
        .arg(now)
        .arg(&shared.config.id)
        .ignore()
        .cmd("ZCOUNT")
        .arg(keys.coordinators())
        .arg(now - 3 * lease_ms as i64)
        .arg("+inf")
        .query_async(&mut conn)
        .await?;
    let partitions = keys.partitions() as u64;
    let share = partitions.div_ceil(alive.max(1)) as usize;

    // Loops that ended by themselves (lease lost) free their slot.
    held.retain(|p, h| {
        let alive = !h.task.is_finished();
        if !alive {
            tracing::info!(partition = p, "partition loop ended");
        }
        alive
    });
    // Renew what we hold.
    let mut lost = Vec::new();
    for p in held.keys() {
        let ok: i64 = scripts::LEASE
            .key(keys.part(*p).lease())
            .arg(&shared.config.id)
            .arg(lease_ms)
            .invoke_async(&mut conn)
            .await?;
        if ok == 0 {
            lost.push(*p);
        }
    }
    for p in lost {
        if let Some(h) = held.remove(&p) {
            tracing::warn!(partition = p, "lease lost to another coordinator");
            let _ = h.stop.send(true);
        }
    }
    // Give extras up when others joined (highest partitions first).
    while held.len() > share {
        let Some(&p) = held.keys().max() else { break };
        if let Some(h) = held.remove(&p) {
            let _ = h.stop.send(true);
            let _ = h.task.await;
            let _: i64 = scripts::RELEASE
                .key(keys.part(p).lease())
                .arg(&shared.config.id)
                .invoke_async(&mut conn)
                .await?;
            tracing::info!(partition = p, share, "released partition to rebalance");
        }
    }
    // Take free ones up to our share.
    for p in 0..keys.partitions() {
        if held.len() >= share {
            break;
        }
        if held.contains_key(&p) {
            continue;
        }
        let ok: i64 = scripts::LEASE
            .key(keys.part(p).lease())
            .arg(&shared.config.id)
            .arg(lease_ms)
            .invoke_async(&mut conn)
            .await?;
        if ok == 1 {
            tracing::info!(partition = p, coordinator = %shared.config.id, "took partition lease");
            let (stop, stop_rx) = watch::channel(false);
            let span =
                tracing::info_span!("partition", partition = p, coordinator = %shared.config.id);
            let task = tokio::spawn(partition::run(shared.clone(), p, stop_rx).instrument(span));
            held.insert(p, Held { stop, task });
        }
    }
    Ok(())
}

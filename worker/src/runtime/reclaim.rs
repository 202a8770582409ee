//! Heartbeats and reclaiming: entries in flight here are re-claimed often enough that they
//! never look idle; entries idle past the visibility timeout belong to a dead worker and are
//! claimed (`XAUTOCLAIM`) and run here, or dead-lettered when delivered too often.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::streams::{StreamAutoClaimReply, StreamPendingCountReply};
use tokio::sync::{mpsc, watch};
use weir::redis::keys::WORKER_GROUP;
use weir::redis::wire;

use super::consume::{dead_letter, start};
use super::report::Report;
use super::{streams, WorkerShared};

/// Runs until shutdown.
pub async fn run(
    shared: Arc<WorkerShared>,
    results: mpsc::Sender<Report>,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = (shared.config.visibility_timeout / 3).max(Duration::from_millis(50));
    let streams = streams(&shared);
    // The first heartbeat goes out at once, so that a worker shows as live (`weir stats`)
    // from its start rather than a third of a visibility timeout later.
    while !*shutdown.borrow() {
        match heartbeat(&shared).await {
            Ok(()) => {
                for stream in &streams {
                    if let Err(e) = reclaim(&shared, stream, &results).await {
                        shared.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
                        crate::ops::metrics::redis_error("worker");
                        tracing::warn!(error = %e, %stream, "reclaim failed");
                    }
                }
            }
            Err(e) => {
                shared.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
                crate::ops::metrics::redis_error("worker");
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Marks this worker alive, and resets the idle time of every entry it is working on.
async fn heartbeat(shared: &WorkerShared) -> Result<(), redis::RedisError> {
    let now = weir::Timestamp::now_system().millis();
    let in_flight: Vec<(String, String)> = shared
        .in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .cloned()
        .collect();
    let mut pipe = redis::pipe();
    pipe.cmd("ZADD")
        .arg(shared.conns.keys.workers())
        .arg(now)
        .arg(&shared.config.id)
        .ignore();
    for (stream, id) in &in_flight {
        pipe.cmd("XCLAIM")
            .arg(stream)
            .arg(WORKER_GROUP)
            .arg(&shared.config.id)
            .arg(0)
            .arg(id)
            .arg("JUSTID")
            .ignore();
    }
    pipe.query_async::<()>(&mut shared.conns.conn.clone()).await
}

/// Claims entries of one stream idle past the visibility timeout.
async fn reclaim(
    shared: &Arc<WorkerShared>,
    stream: &str,
    results: &mpsc::Sender<Report>,
) -> Result<(), redis::RedisError> {
    let free = shared.slots.available_permits();
    if free == 0 {
        return Ok(());
    }
    let mut conn = shared.conns.conn.clone();
    let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
        .arg(stream)
        .arg(WORKER_GROUP)
        .arg(&shared.config.id)
        .arg(shared.config.visibility_timeout.as_millis() as u64)
        .arg("0-0")
        .arg("COUNT")
        .arg(free.min(64))
        .query_async(&mut conn)
        .await?;
    if claimed.claimed.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for entry in &claimed.claimed {
        pipe.cmd("XPENDING")
            .arg(stream)
            .arg(WORKER_GROUP)
            .arg(&entry.id)
            .arg(&entry.id)
            .arg(1);
    }
    let pending: Vec<StreamPendingCountReply> = pipe.query_async(&mut conn).await?;
    for (entry, p) in claimed.claimed.into_iter().zip(pending) {
        let deliveries = p.ids.first().map(|x| x.times_delivered as u64).unwrap_or(1);
        let raw: Option<Vec<u8>> = entry.get(wire::FIELD);
        shared.counters.reclaimed.fetch_add(1, Ordering::Relaxed);
        crate::ops::metrics::reclaimed(1);
        tracing::info!(%stream, id = %entry.id, deliveries, "reclaimed an entry from a dead worker");
        if deliveries > shared.config.max_deliveries {
            let error = format!(
                "delivered {deliveries} times without an outcome (workers died or hung running it)"
            );
            dead_letter(
                shared,
                stream,
                &entry.id,
                raw.as_deref().unwrap_or(&[]),
                &error,
                deliveries,
            )
            .await;
            continue;
        }
        let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
            // No room after all: it stays claimed by us and idle, and is reclaimed again.
            continue;
        };
        start(
            shared,
            stream.to_string(),
            entry.id,
            raw,
            permit,
            results.clone(),
        )
        .await;
    }
    Ok(())
}

//! Heartbeats, reclaiming and cleaning up.
//!
//! - Heartbeat: the entries in flight here are re-claimed (`XCLAIM`, idle time reset)
//!   often enough that they never look idle, but only while they are still this worker's
//!   (`heartbeat.lua`): an entry a sibling reclaimed stays with the sibling.
//! - Reclaim: entries idle past the visibility timeout belong to a dead worker. Only as
//!   many are claimed (`XAUTOCLAIM`) as this worker has free slots, each started at once,
//!   so claiming never raises the delivery count of an entry that does not then run; an
//!   entry delivered more than `max_deliveries` times is dead-lettered and its step failed
//!   (kind `dead_lettered`). Each stream's `XAUTOCLAIM` cursor is kept between passes, so a
//!   long pending list is walked through rather than rescanned from its start.
//! - Cleanup: every [`CLEANUP_EVERY`] (or the idle time, when shorter), consumers of the
//!   step streams' group that have no pending entry and have been idle longer than
//!   `WorkerConfig::stale_consumer_idle` (default [`STALE_CONSUMER_IDLE`], 1 hour) are deleted
//!   (`XGROUP DELCONSUMER`; a live worker that was merely idle is re-created by its next
//!   read), and heartbeats older than that are removed from `NS:workers`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use weir::redis::groups::is_missing_group;
use weir::redis::{presence, steps, wire};

use super::consume::{dead_letter, partition_of_stream, start, DEAD_LETTERED_KIND};
use super::report::Report;
use super::{streams, WorkerShared};

/// The default of `WorkerConfig::stale_consumer_idle`: a consumer idle this long with
/// nothing pending, and a heartbeat this old, belong to a worker that is gone.
pub const STALE_CONSUMER_IDLE: Duration = Duration::from_secs(3600);

/// How often stale consumers and heartbeats are looked for.
pub const CLEANUP_EVERY: Duration = Duration::from_secs(300);

/// Runs until shutdown.
pub async fn run(
    shared: Arc<WorkerShared>,
    results: mpsc::Sender<Report>,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = (shared.config.visibility_timeout / 3).max(Duration::from_millis(50));
    let streams = streams(&shared);
    let mut cursors: HashMap<String, String> = HashMap::new();
    let mut last_cleanup: Option<Instant> = None;
    // The first heartbeat goes out at once, so that a worker shows as live (`weir stats`)
    // from its start rather than a third of a visibility timeout later.
    while !*shutdown.borrow() {
        match heartbeat(&shared).await {
            Ok(()) => {
                for stream in &streams {
                    if let Err(e) = reclaim(&shared, stream, &mut cursors, &results).await {
                        shared.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
                        weir::process::metrics::redis_error("worker");
                        if is_missing_group(&e) {
                            // The consume loop recreates the groups; start over then.
                            cursors.remove(stream);
                        }
                        tracing::warn!(error = %e, %stream, "reclaim failed");
                    }
                }
            }
            Err(e) => {
                shared.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
                weir::process::metrics::redis_error("worker");
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
        let stale = shared.config.stale_consumer_idle;
        if last_cleanup.is_none_or(|t| t.elapsed() >= CLEANUP_EVERY.min(stale)) {
            last_cleanup = Some(Instant::now());
            if let Err(e) = clean_up(&shared, &streams, stale).await {
                tracing::warn!(error = %e, "removing stale consumers failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Marks this worker alive, and resets the idle time of every entry it is working on and
/// still owns.
async fn heartbeat(shared: &WorkerShared) -> Result<(), redis::RedisError> {
    let now = weir::Timestamp::now_system().millis();
    let in_flight: Vec<(String, String)> = shared
        .in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .cloned()
        .collect();
    let mut conn = shared.conns.conn.clone();
    presence::worker_beat(&mut conn, &shared.conns.keys, &shared.config.id, now).await?;
    // One script call per partition: its keys share a slot.
    let mut by_part: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (stream, id) in in_flight {
        let tag = partition_of_stream(shared, &stream)
            .map(|p| p.tag().to_string())
            .unwrap_or_default();
        by_part.entry(tag).or_default().push((stream, id));
    }
    for entries in by_part.values() {
        let lost = steps::heartbeat(&mut conn, &shared.config.id, entries).await?;
        for id in lost {
            tracing::warn!(%id, "an entry running here was reclaimed by another worker (this one looked dead); its result will be dropped");
        }
    }
    Ok(())
}

/// Claims entries of one stream idle past the visibility timeout: at most as many as there
/// are free slots, each started at once (or dead-lettered when delivered too often).
async fn reclaim(
    shared: &Arc<WorkerShared>,
    stream: &str,
    cursors: &mut HashMap<String, String>,
    results: &mpsc::Sender<Report>,
) -> Result<(), redis::RedisError> {
    // The slots first: an entry claimed is an entry started.
    let mut permits = Vec::new();
    while permits.len() < 64 {
        match shared.slots.clone().try_acquire_owned() {
            Ok(p) => permits.push(p),
            Err(_) => break,
        }
    }
    if permits.is_empty() {
        return Ok(());
    }
    let mut conn = shared.conns.conn.clone();
    let from = cursors.get(stream).cloned().unwrap_or_else(|| "0-0".into());
    let claimed = steps::claim_idle(
        &mut conn,
        stream,
        &shared.config.id,
        shared.config.visibility_timeout,
        &from,
        permits.len(),
    )
    .await?;
    // "0-0" means the scan went round: the next pass starts again at the beginning.
    cursors.insert(stream.to_string(), claimed.next_stream_id.clone());
    if claimed.claimed.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = claimed.claimed.iter().map(|e| e.id.as_str()).collect();
    let deliveries = steps::deliveries(&mut conn, stream, &ids).await?;
    for (entry, deliveries) in claimed.claimed.into_iter().zip(deliveries) {
        let raw: Option<Vec<u8>> = entry.get(wire::FIELD);
        shared.counters.reclaimed.fetch_add(1, Ordering::Relaxed);
        weir::process::metrics::reclaimed(1);
        tracing::info!(%stream, id = %entry.id, deliveries, "reclaimed an entry from a dead worker");
        // COUNT was the permits held, so there is one for each entry.
        let Some(permit) = permits.pop() else {
            break;
        };
        if deliveries > shared.config.max_deliveries {
            drop(permit);
            let error = format!(
                "delivered {deliveries} times without an outcome (workers died or hung running it)"
            );
            dead_letter(
                shared,
                stream,
                &entry.id,
                raw.as_deref().unwrap_or(&[]),
                DEAD_LETTERED_KIND,
                &error,
                deliveries,
            )
            .await;
            continue;
        }
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

/// Deletes the group's consumers that have nothing pending and were idle longer than
/// `idle` (never this worker), and heartbeats older than `idle`. Returns how many
/// consumers were deleted.
pub(crate) async fn clean_up(
    shared: &WorkerShared,
    streams: &[String],
    idle: Duration,
) -> Result<u64, redis::RedisError> {
    let mut conn = shared.conns.conn.clone();
    let mut removed = 0;
    for stream in streams {
        removed +=
            presence::remove_idle_consumers(&mut conn, stream, idle, &shared.config.id).await?;
    }
    let now = weir::Timestamp::now_system().millis();
    let before = now - idle.as_millis() as i64;
    presence::forget_workers_before(&mut conn, &shared.conns.keys, before).await?;
    if removed > 0 {
        shared
            .counters
            .consumers_removed
            .fetch_add(removed, Ordering::Relaxed);
        tracing::info!(removed, "removed the consumers of workers gone for good");
    }
    Ok(removed)
}

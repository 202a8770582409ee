//! Reading step entries and running their attempts within the concurrency limit.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::streams::StreamReadReply;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use weir::redis::keys::WORKER_GROUP;
use weir::redis::scripts;
use weir::redis::wire::{self, Outcome, ResultMessage, StepMessage};
use weir::step::{execute_attempt, StepContext};
use weir::Timestamp;

use super::report::Report;
use super::{streams, WorkerShared};

/// How long one read blocks: also how quickly a drain notices shutdown.
const READ_BLOCK: Duration = Duration::from_millis(500);

/// Reads and runs attempts until shutdown, then waits (up to the grace period) for the
/// attempts in flight.
pub async fn run(
    shared: Arc<WorkerShared>,
    results: mpsc::Sender<Report>,
    shutdown: watch::Receiver<bool>,
) {
    let slots = shared.slots.clone();
    let mut streams = streams(&shared);
    let mut backoff = Duration::from_millis(100);
    // The blocking reads' own connection, made again after an error.
    let mut reader = None;
    while !*shutdown.borrow() {
        // Fairness: each read starts at the next stream, so a busy partition early in the
        // list cannot keep the slots from the others.
        streams.rotate_left(1);
        // Wait for capacity before reading, so entries are never read and left waiting.
        let available = match slots.clone().acquire_owned().await {
            Ok(permit) => {
                drop(permit);
                slots.available_permits().max(1)
            }
            Err(_) => break,
        };
        let read = read_batch(&shared, &mut reader, &streams, available).await;
        let reply = match read {
            Ok(r) => {
                backoff = Duration::from_millis(100);
                r
            }
            Err(e) => {
                shared.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
                crate::ops::metrics::redis_error("worker");
                tracing::warn!(error = %e, url = %shared.conns.display_url, "reading steps failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        for (stream, entry) in interleave(reply.map(|r| r.keys).unwrap_or_default()) {
            let raw: Option<Vec<u8>> = entry.get(wire::FIELD);
            // COUNT limits each stream, not the sum: a read over several streams can
            // return more entries than free slots. They are ours now, so each waits for
            // a slot here rather than idling until another worker reclaims it.
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            start(&shared, stream, entry.id, raw, permit, results.clone()).await;
        }
    }
    // Drain: every permit back means every attempt reported (or timed out by the grace).
    let all = shared.config.concurrency as u32;
    if tokio::time::timeout(shared.config.grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("attempts still running after the grace period; they will be reclaimed");
    }
}

/// The entries of a read, taking one from each stream in turn (the first of every stream,
/// then the second, ...), so that no stream's entries wait for all of another's.
fn interleave(keys: Vec<redis::streams::StreamKey>) -> Vec<(String, redis::streams::StreamId)> {
    let total = keys.iter().map(|k| k.ids.len()).sum();
    let mut out = Vec::with_capacity(total);
    let mut queues: Vec<(String, std::vec::IntoIter<redis::streams::StreamId>)> = keys
        .into_iter()
        .map(|k| (k.key, k.ids.into_iter()))
        .collect();
    while out.len() < total {
        for (key, ids) in queues.iter_mut() {
            if let Some(entry) = ids.next() {
                out.push((key.clone(), entry));
            }
        }
    }
    out
}

async fn read_batch(
    shared: &WorkerShared,
    reader: &mut Option<redis::aio::MultiplexedConnection>,
    streams: &[String],
    count: usize,
) -> Result<Option<StreamReadReply>, String> {
    if reader.is_none() {
        *reader = Some(shared.conns.dedicated().await.map_err(|e| e.to_string())?);
    }
    let Some(conn) = reader.as_mut() else {
        return Err("no reader connection".into());
    };
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(WORKER_GROUP)
        .arg(&shared.config.id)
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(READ_BLOCK.as_millis() as u64)
        .arg("STREAMS");
    for s in streams {
        cmd.arg(s);
    }
    for _ in streams {
        cmd.arg(">");
    }
    let read = cmd.query_async(conn).await;
    if read.is_err() {
        *reader = None;
    }
    read.map_err(|e| e.to_string())
}

/// Starts one entry: decode it (or dead-letter it), then run it in its own task.
pub(crate) async fn start(
    shared: &Arc<WorkerShared>,
    stream: String,
    id: String,
    raw: Option<Vec<u8>>,
    permit: OwnedSemaphorePermit,
    results: mpsc::Sender<Report>,
) {
    let decoded = match &raw {
        Some(bytes) => wire::decode::<StepMessage>(bytes).map_err(|e| e.to_string()),
        None => Err(wire::DecodeError::MissingField.to_string()),
    };
    let msg = match decoded {
        Ok(msg) => msg,
        Err(error) => {
            drop(permit);
            dead_letter(
                shared,
                &stream,
                &id,
                raw.as_deref().unwrap_or(&[]),
                &error,
                1,
            )
            .await;
            return;
        }
    };
    shared
        .in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((stream.clone(), id.clone()), ());
    let shared = shared.clone();
    let span = tracing::info_span!(
        "attempt",
        instance_id = %msg.instance_id,
        step = %msg.step,
        attempt = msg.attempt,
        worker = %shared.config.id,
    );
    tokio::spawn(
        async move {
            let result = execute(&shared, msg).await;
            // The permit is returned once the result is handed to the reporter.
            let _ = results.send(Report { stream, id, result }).await;
            drop(permit);
        }
        .instrument(span),
    );
}

/// Runs one attempt with its handler and timeout.
pub(crate) async fn execute(shared: &WorkerShared, msg: StepMessage) -> ResultMessage {
    let started_at = Timestamp::now_system();
    let ctx = StepContext::new(
        msg.instance_id.as_str().into(),
        msg.step.as_str().into(),
        msg.attempt,
        Arc::new(msg.config),
        Arc::new(msg.context),
    );
    let timeout = msg.timeout_ms.map(Duration::from_millis);
    crate::ops::metrics::attempt_picked_up(
        &msg.handler,
        msg.dispatched_at.millis(),
        started_at.millis(),
    );
    let clock = std::time::Instant::now();
    let ran = execute_attempt(&shared.handlers, &msg.handler, ctx, timeout).await;
    crate::ops::metrics::attempt_finished(&msg.handler, clock.elapsed(), ran.is_ok());
    let outcome = match ran {
        Ok(output) => {
            shared.counters.succeeded.fetch_add(1, Ordering::Relaxed);
            Outcome::Ok(output)
        }
        Err(e) => {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(error = %e, "attempt failed");
            Outcome::Err(e)
        }
    };
    shared.counters.executed.fetch_add(1, Ordering::Relaxed);
    ResultMessage {
        instance_id: msg.instance_id,
        step: msg.step,
        attempt: msg.attempt,
        token: msg.token,
        worker: shared.config.id.clone(),
        outcome,
        started_at,
        finished_at: Timestamp::now_system(),
    }
}

/// Moves an entry to its partition's dead-letter stream.
pub(crate) async fn dead_letter(
    shared: &WorkerShared,
    stream: &str,
    id: &str,
    raw: &[u8],
    error: &str,
    deliveries: u64,
) {
    // The stream's partition tag is its prefix up to the closing brace.
    let Some(part) = partition_of_stream(shared, stream) else {
        return;
    };
    tracing::warn!(%stream, %id, %error, "dead-lettering a step entry");
    let done: Result<i64, redis::RedisError> = scripts::DEAD_LETTER
        .key(stream)
        .key(part.dlq())
        .key(part.stats())
        .arg(WORKER_GROUP)
        .arg(id)
        .arg(raw)
        .arg(error)
        .arg(deliveries)
        .arg(shared.config.dlq_cap)
        .invoke_async(&mut shared.conns.conn.clone())
        .await;
    match done {
        Ok(_) => {
            shared
                .counters
                .dead_lettered
                .fetch_add(1, Ordering::Relaxed);
            crate::ops::metrics::dead_lettered(1);
        }
        Err(e) => tracing::warn!(error = %e, "dead-lettering failed; the entry stays pending"),
    }
}

pub(crate) fn partition_of_stream(
    shared: &WorkerShared,
    stream: &str,
) -> Option<weir::redis::PartitionKeys> {
    shared
        .conns
        .keys
        .all_parts()
        .find(|p| stream.starts_with(p.tag()))
}

/// The semaphore type used for concurrency (re-exported for the reclaimer).
pub(crate) type Slots = Arc<Semaphore>;

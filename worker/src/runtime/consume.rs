//! Reading step entries and running their attempts within the concurrency limit.
//!
//! # Never read more than can start
//!
//! `COUNT` in `XREADGROUP` limits each stream, not the sum, so one read over every
//! partition's stream could hand a worker many times its free slots; the surplus would sit
//! unheartbeated until a sibling reclaimed it and both ran it. So the worker first takes
//! every free slot, then reads the streams one by one (starting at a rotating stream, so
//! that every partition gets its turn) with `COUNT` = the slots still free, and starts each
//! entry at once with its own slot: an entry delivered here is always running and
//! heartbeated. Reading one stream at a time is also what Redis Cluster needs (each
//! partition lives on its own node).
//!
//! When a pass finds nothing, the worker blocks in a plain `XREAD` (which delivers nothing
//! to the group) from each stream's last delivered id, so that it wakes as soon as any
//! stream has an entry no worker has yet taken, and then reads again. That wake-up read is
//! the one command that spans every stream; on Redis Cluster it must become one per node.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde::Deserialize;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use weir::redis::groups::is_missing_group;
use weir::redis::steps::{self, DeadStep};
use weir::redis::wire::{self, Outcome, ResultMessage, StepMessage};
use weir::step::{execute_attempt, StepContext};
use weir::{StepError, Timestamp};

use super::report::Report;
use super::secrets::Secrets;
use super::{streams, WorkerShared};

/// How long the wake-up read blocks: also how quickly a drain notices shutdown.
const READ_BLOCK: Duration = Duration::from_millis(500);

/// The error kind of an attempt whose handler panicked (never retried: the same input
/// would panic again).
pub const PANIC_KIND: &str = "panic";

/// The error kind reported for a step entry moved to the dead-letter stream.
pub const DEAD_LETTERED_KIND: &str = "dead_lettered";

/// The error kind reported for a step message over [`wire::MAX_MESSAGE_BYTES`].
pub const TOO_LARGE_KIND: &str = "too_large";

/// Reads and runs attempts until shutdown, then waits (up to the grace period) for the
/// attempts in flight.
pub async fn run(
    shared: Arc<WorkerShared>,
    results: mpsc::Sender<Report>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = shared.slots.clone();
    let streams = streams(&shared);
    let mut first_stream = 0usize;
    let mut backoff = Duration::from_millis(100);
    // The wake-up reads' own connection (no response timeout), made again after an error.
    let mut waker = None;
    while !*shutdown.borrow() {
        // Hold every free slot before reading: each entry read starts at once with one.
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => continue,
        };
        let mut permits = vec![first];
        while let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        let pass = read_pass(&shared, &streams, first_stream, &mut permits, &results).await;
        // Fairness: the next pass starts at the next stream, so a busy partition early in
        // the list cannot keep the slots from the others.
        first_stream = (first_stream + 1) % streams.len().max(1);
        drop(permits);
        let outcome = match pass {
            Ok(0) => wait_for_entries(&shared, &mut waker, &streams).await,
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                shared.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
                weir::process::metrics::redis_error("worker");
                if is_missing_group(&e) {
                    // Redis lost its data (FLUSHALL, a restart without persistence, an
                    // empty replica promoted): make the groups again and carry on.
                    tracing::warn!(error = %e, "the workers' consumer group is gone (Redis lost its data?); creating it again");
                    if let Err(e) = super::ensure_groups(&shared).await {
                        tracing::warn!(error = %e, "creating the consumer groups failed; retrying");
                    }
                } else {
                    tracing::warn!(error = %e, "reading steps failed; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
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

/// Reads the streams one by one, from `first`, each with `COUNT` = the slots still held,
/// and starts every entry read with one of them. Returns how many entries were read.
async fn read_pass(
    shared: &Arc<WorkerShared>,
    streams: &[String],
    first: usize,
    permits: &mut Vec<OwnedSemaphorePermit>,
    results: &mpsc::Sender<Report>,
) -> Result<usize, redis::RedisError> {
    let mut read = 0;
    for i in 0..streams.len() {
        if permits.is_empty() {
            break;
        }
        let stream = &streams[(first + i) % streams.len()];
        let reply = steps::read_new(
            &mut shared.conns.conn.clone(),
            stream,
            &shared.config.id,
            permits.len(),
        )
        .await?;
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in key.ids {
                // COUNT was the permits held, so there is one for each entry.
                let Some(permit) = permits.pop() else {
                    tracing::error!(stream = %key.key, id = %entry.id, "more entries than asked for; it will be reclaimed");
                    continue;
                };
                read += 1;
                let raw: Option<Vec<u8>> = entry.get(wire::FIELD);
                start(
                    shared,
                    key.key.clone(),
                    entry.id,
                    raw,
                    permit,
                    results.clone(),
                )
                .await;
            }
        }
    }
    Ok(read)
}

/// Blocks (up to [`READ_BLOCK`]) until some stream has an entry the group has not
/// delivered yet, with a plain `XREAD` from each stream's last delivered id: it takes
/// nothing, so no entry is ever held without a slot.
async fn wait_for_entries(
    shared: &WorkerShared,
    waker: &mut Option<weir::redis::BlockingConnection>,
    streams: &[String],
) -> Result<(), redis::RedisError> {
    let from = steps::last_delivered(&mut shared.conns.conn.clone(), streams).await?;
    if waker.is_none() {
        match shared.conns.blocking().await {
            Ok(conn) => *waker = Some(conn),
            Err(e) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "cannot connect",
                    e.to_string(),
                )))
            }
        }
    }
    let Some(conn) = waker.as_mut() else {
        return Ok(());
    };
    let woke = steps::wait_for_new(conn, streams, &from, READ_BLOCK).await;
    if woke.is_err() {
        *waker = None;
    }
    woke
}

/// The fields of a step message that address its result, read even from a message too
/// large or too damaged to decode whole, so that its step can still be failed.
#[derive(Debug, Deserialize)]
struct StepAddress {
    instance_id: String,
    step: String,
    attempt: u32,
    token: u64,
}

/// Starts one entry: decode it (or dead-letter it, failing its step), then run it in its
/// own task. It is in the heartbeat set before this returns.
pub(crate) async fn start(
    shared: &Arc<WorkerShared>,
    stream: String,
    id: String,
    raw: Option<Vec<u8>>,
    permit: OwnedSemaphorePermit,
    results: mpsc::Sender<Report>,
) {
    let decoded = match &raw {
        Some(bytes) => wire::decode::<StepMessage>(bytes),
        None => Err(wire::DecodeError::MissingField),
    };
    let msg = match decoded {
        Ok(msg) => msg,
        Err(error) => {
            drop(permit);
            let kind = match error {
                wire::DecodeError::TooLarge(_) => TOO_LARGE_KIND,
                _ => DEAD_LETTERED_KIND,
            };
            let bytes = raw.as_deref().unwrap_or(&[]);
            let message = format!("the step message cannot be handled: {error}");
            dead_letter(shared, &stream, &id, bytes, kind, &message, 1).await;
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

/// Runs one attempt with its handler and timeout. A handler that panics fails the attempt
/// (kind [`PANIC_KIND`], not retried) instead of taking its slot and entry for ever.
pub(crate) async fn execute(shared: &WorkerShared, msg: StepMessage) -> ResultMessage {
    let started_at = Timestamp::now_system();
    // Secret references (`{env:NAME}`, `{secret:NAME}`) are resolved here, on the worker.
    let config = if Secrets::mentions(&msg.config) {
        shared.config.secrets.resolve(&msg.step, &msg.config)
    } else {
        Ok(msg.config)
    };
    let timeout = msg.timeout_ms.map(Duration::from_millis);
    weir::process::metrics::attempt_picked_up(
        &msg.handler,
        msg.dispatched_at.millis(),
        started_at.millis(),
    );
    let clock = std::time::Instant::now();
    let attempt = async {
        let ctx = StepContext::new(
            msg.instance_id.as_str().into(),
            msg.step.as_str().into(),
            msg.attempt,
            Arc::new(config?),
            Arc::new(msg.context),
        );
        execute_attempt(&shared.handlers, &msg.handler, ctx, timeout).await
    };
    let ran = std::panic::AssertUnwindSafe(attempt)
        .catch_unwind()
        .await
        .unwrap_or_else(|payload| {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic payload".into());
            tracing::error!(handler = %msg.handler, panic = %what, "the handler panicked");
            Err(StepError::fatal(
                PANIC_KIND,
                format!("handler {:?} panicked: {what}", msg.handler),
            ))
        });
    weir::process::metrics::attempt_finished(&msg.handler, clock.elapsed(), ran.is_ok());
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

/// Moves an entry to its partition's dead-letter stream and, when the entry says which
/// attempt it is, reports that attempt failed (error kind `kind`, not retried) in the same
/// script call, so the step's failure edges run instead of the instance waiting for ever.
pub(crate) async fn dead_letter(
    shared: &WorkerShared,
    stream: &str,
    id: &str,
    raw: &[u8],
    kind: &str,
    error: &str,
    deliveries: u64,
) {
    // The stream's partition tag is its prefix up to the closing brace.
    let Some(part) = partition_of_stream(shared, stream) else {
        return;
    };
    let failure = rmp_serde::from_slice::<StepAddress>(raw)
        .ok()
        .map(|address| {
            let now = Timestamp::now_system();
            wire::encode(&ResultMessage {
                instance_id: address.instance_id,
                step: address.step,
                attempt: address.attempt,
                token: address.token,
                worker: shared.config.id.clone(),
                outcome: Outcome::Err(StepError::fatal(kind, error)),
                started_at: now,
                finished_at: now,
            })
        });
    tracing::warn!(%stream, %id, %error, step_failed = failure.is_some(), "dead-lettering a step entry");
    let letter = DeadStep {
        stream,
        id,
        raw,
        error,
        deliveries,
        failure: failure.as_deref(),
    };
    let done = steps::dead_letter(
        &mut shared.conns.conn.clone(),
        &part,
        letter,
        shared.config.dlq_cap,
    )
    .await;
    match done {
        Ok(trimmed) => {
            shared
                .counters
                .dead_lettered
                .fetch_add(1, Ordering::Relaxed);
            weir::process::metrics::dead_lettered(1);
            if trimmed > 0 {
                // The dead-letter stream is capped: the oldest letters were dropped.
                shared
                    .counters
                    .dead_letters_trimmed
                    .fetch_add(trimmed as u64, Ordering::Relaxed);
                weir::process::metrics::dead_letters_trimmed(trimmed as u64);
                tracing::warn!(
                    dlq = %part.dlq(),
                    trimmed,
                    cap = shared.config.dlq_cap,
                    "the dead-letter stream is full: its oldest entries were dropped; \
                     inspect and replay or delete dead letters (weir dlq)"
                );
            }
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

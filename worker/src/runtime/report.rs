//! Reporting results: many at once, each atomically with the acknowledgement of its step
//! entry (`report.lua`).
//!
//! A result is appended only while its entry is still pending to this worker: one whose
//! entry another worker reclaimed is dropped and counted (`disowned`), since that worker's
//! run reports instead.
//!
//! While Redis is unreachable a batch is retried with backoff for as long as it takes
//! (nothing else could be sent either). A batch Redis answers with an error is retried
//! [`REFUSED_TRIES`] times, then sent one result at a time, so that one bad result cannot
//! block the others; a result Redis still refuses is dropped with an error log and counted
//! (`refused`). Its entry stays pending, so it is run again after the visibility timeout.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use weir::redis::steps::{self, StepReport};
use weir::redis::wire::{self, Outcome, ResultMessage};
use weir::StepError;

use super::consume::TOO_LARGE_KIND;

use super::WorkerShared;

/// The most results sent in one script call.
const MAX_BATCH: usize = 256;

/// How often a call Redis answers with an error is tried before it is split (a batch) or
/// dropped (a single result).
pub const REFUSED_TRIES: u32 = 3;

/// A finished attempt to report.
pub struct Report {
    /// The step stream the entry came from.
    pub stream: String,
    /// The entry id.
    pub id: String,
    /// The result.
    pub result: ResultMessage,
}

/// Sends results until every sender is gone.
pub async fn run(shared: Arc<WorkerShared>, mut rx: mpsc::Receiver<Report>) {
    let mut buf: Vec<Report> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        buf.push(first);
        while buf.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => buf.push(r),
                Err(_) => break,
            }
        }
        send_all(&shared, &mut buf).await;
    }
}

/// The encoded result; when it is over the wire limit (an output too large to carry), the
/// encoded failure of the attempt instead, kind `too_large`, not retried: the coordinator
/// could not decode it, and the step would wait for ever.
fn encode_within_limit(r: &Report) -> Vec<u8> {
    let bytes = wire::encode(&r.result);
    if bytes.len() <= wire::MAX_MESSAGE_BYTES {
        return bytes;
    }
    tracing::warn!(
        instance_id = %r.result.instance_id,
        step = %r.result.step,
        bytes = bytes.len(),
        "the step's result is over the wire limit; failing the step (too_large)"
    );
    let failure = ResultMessage {
        outcome: Outcome::Err(StepError::fatal(
            TOO_LARGE_KIND,
            format!(
                "the step's result is {} bytes encoded, over the limit of {} bytes: \
                 keep large data outside the context (store it elsewhere and pass a reference)",
                bytes.len(),
                wire::MAX_MESSAGE_BYTES
            ),
        )),
        ..r.result.clone()
    };
    wire::encode(&failure)
}

/// Sends a batch, one script call per partition (the calls of different partitions at
/// once).
async fn send_all(shared: &WorkerShared, buf: &mut Vec<Report>) {
    let mut by_results: HashMap<String, Vec<Report>> = HashMap::new();
    for r in buf.drain(..) {
        let key = shared.conns.keys.part_of(&r.result.instance_id).results();
        by_results.entry(key).or_default().push(r);
    }
    futures_util::future::join_all(
        by_results
            .into_iter()
            .map(|(results_key, reports)| send_partition(shared, results_key, reports)),
    )
    .await;
}

/// Sends the results of one partition in one `report.lua` call; split into single results
/// when Redis keeps refusing the batch.
async fn send_partition(shared: &WorkerShared, results_key: String, reports: Vec<Report>) {
    let encoded: Vec<Vec<u8>> = reports.iter().map(encode_within_limit).collect();
    if !send_until_refused(shared, &results_key, &reports, &encoded).await && reports.len() > 1 {
        tracing::warn!(
            results = reports.len(),
            "Redis keeps refusing a batch of results; sending them one by one"
        );
        for (r, e) in reports.iter().zip(&encoded) {
            send_until_refused(
                shared,
                &results_key,
                std::slice::from_ref(r),
                std::slice::from_ref(e),
            )
            .await;
        }
    }
    let mut in_flight = shared.in_flight.lock().unwrap_or_else(|e| e.into_inner());
    for r in &reports {
        in_flight.remove(&(r.stream.clone(), r.id.clone()));
    }
}

/// Sends results in one call, retrying with backoff while Redis is unreachable and up to
/// [`REFUSED_TRIES`] times while it answers with an error. Returns whether it was taken;
/// a single result refused for good is logged and counted here.
async fn send_until_refused(
    shared: &WorkerShared,
    results_key: &str,
    reports: &[Report],
    encoded: &[Vec<u8>],
) -> bool {
    let mut backoff = Duration::from_millis(50);
    let mut refused = 0;
    loop {
        let outcomes: Vec<StepReport<'_>> = reports
            .iter()
            .zip(encoded)
            .map(|(r, e)| StepReport {
                stream: &r.stream,
                id: &r.id,
                result: e,
            })
            .collect();
        let sent = steps::report(
            &mut shared.conns.conn.clone(),
            results_key,
            &shared.config.id,
            &outcomes,
        )
        .await;
        match sent {
            Ok(appended) => {
                // Under replicated durability, wait for a replica. The results are written
                // either way (sending them again would not help): a failed wait is a warning
                // that a failover of this master now may run these steps again.
                if let Err(e) = weir::redis::durability::confirm(
                    shared.conns.durability,
                    &mut shared.conns.conn.clone(),
                    results_key,
                    &shared.conns.display_url,
                )
                .await
                {
                    tracing::warn!(error = %e, "step results not confirmed by a replica");
                }
                let total = reports.len() as u64;
                shared
                    .counters
                    .reported
                    .fetch_add(appended, Ordering::Relaxed);
                if appended < total {
                    let disowned = total - appended;
                    shared
                        .counters
                        .results_disowned
                        .fetch_add(disowned, Ordering::Relaxed);
                    weir::process::metrics::results_dropped("disowned", disowned);
                    tracing::info!(
                        disowned,
                        "results dropped: their entries were reclaimed by another worker, whose run reports"
                    );
                }
                return true;
            }
            Err(e) => {
                shared.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
                weir::process::metrics::redis_error("worker");
                let unreachable = e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal();
                if !unreachable {
                    refused += 1;
                    if refused >= REFUSED_TRIES {
                        if let [r] = reports {
                            shared
                                .counters
                                .results_refused
                                .fetch_add(1, Ordering::Relaxed);
                            weir::process::metrics::results_dropped("refused", 1);
                            tracing::error!(
                                error = %e,
                                instance_id = %r.result.instance_id,
                                step = %r.result.step,
                                attempt = r.result.attempt,
                                "Redis refused this result {REFUSED_TRIES} times; dropping it (its entry is run again after the visibility timeout)"
                            );
                        }
                        return false;
                    }
                }
                tracing::warn!(error = %e, "reporting results failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

//! Reporting results: many at once, each atomically with the acknowledgement of its step
//! entry, retried until Redis takes them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use weir::redis::keys::WORKER_GROUP;
use weir::redis::scripts;
use weir::redis::wire::{self, ResultMessage};

use super::WorkerShared;

/// The most results sent in one script call.
const MAX_BATCH: usize = 256;

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

/// Sends a batch, one script call per partition (the calls of different partitions at
/// once), retrying with backoff while Redis is away.
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

/// Sends the results of one partition in one `report.lua` call, retrying until it is taken.
async fn send_partition(shared: &WorkerShared, results_key: String, reports: Vec<Report>) {
    {
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut inv = scripts::REPORT.prepare_invoke();
            inv.key(&results_key);
            for r in &reports {
                inv.key(&r.stream);
            }
            inv.arg(WORKER_GROUP);
            for r in &reports {
                inv.arg(&r.id).arg(wire::encode(&r.result));
            }
            match inv
                .invoke_async::<i64>(&mut shared.conns.conn.clone())
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    shared.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
                    crate::ops::metrics::redis_error("worker");
                    tracing::warn!(error = %e, "reporting results failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        let mut in_flight = shared.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        for r in &reports {
            in_flight.remove(&(r.stream.clone(), r.id.clone()));
        }
        shared
            .counters
            .reported
            .fetch_add(reports.len() as u64, Ordering::Relaxed);
    }
}

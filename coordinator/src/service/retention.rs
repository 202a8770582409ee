//! Retention: finished instances are deleted, with their history and index entries, once
//! they are older than the configured retention (ARCHITECTURE.md invariant 7).
//!
//! Each partition loop sweeps about once a second. A sweep deletes batches of
//! [`SWEEP_BATCH`] instances while some are past their retention, for at most
//! [`SWEEP_BUDGET`]: it keeps up with any completion rate the loop itself can reach (a
//! deletion costs far less than the transitions that finished the instance), and never
//! takes more than a quarter of the loop's time from the live instances.

use std::time::{Duration, Instant};

use weir::redis::batch::Batch;
use weir::redis::PartitionKeys;

use super::{Counters, Shared};

/// Instances deleted per batch (one read, one pipelined lookup, one commit).
pub const SWEEP_BATCH: usize = 500;

/// The longest one sweep of one partition runs.
pub const SWEEP_BUDGET: Duration = Duration::from_millis(250);

/// Deletes finished instances whose retention has passed, batch after batch, within
/// [`SWEEP_BUDGET`]; returns how many were deleted.
pub async fn sweep(shared: &Shared, part: &PartitionKeys) -> Result<usize, String> {
    let started = Instant::now();
    let now = shared
        .conns
        .server_time()
        .await
        .map_err(|e| e.to_string())?;
    let cutoff = now - shared.config.retention.as_millis() as i64;
    let mut deleted = 0;
    while started.elapsed() < SWEEP_BUDGET {
        let n = sweep_batch(shared, part, cutoff).await?;
        deleted += n;
        if n < SWEEP_BATCH {
            break;
        }
    }
    Ok(deleted)
}

/// Deletes up to [`SWEEP_BATCH`] finished instances that finished before `cutoff`.
async fn sweep_batch(shared: &Shared, part: &PartitionKeys, cutoff: i64) -> Result<usize, String> {
    let mut conn = shared.conns.conn.clone();
    let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(part.index_finished())
        .arg("-inf")
        .arg(cutoff)
        .arg("LIMIT")
        .arg(0)
        .arg(SWEEP_BATCH)
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if ids.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.cmd("HMGET")
            .arg(part.instance(id))
            .arg("status")
            .arg("def")
            .arg("tenant")
            .arg("creator");
    }
    type Row = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = pipe
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut batch = Batch::new(part.lease());
    for (id, (status, def, tenant, creator)) in ids.iter().zip(rows) {
        batch.del(&part.instance(id));
        batch.del(&part.history(id));
        batch.zrem(&part.index_all(), id);
        batch.zrem(&part.index_finished(), id);
        if let Some(s) = status {
            batch.zrem(&part.index_status(&s), id);
        }
        if let Some(d) = def {
            batch.zrem(&part.index_definition(&d), id);
        }
        if let Some(t) = tenant {
            batch.zrem(&part.index_tenant(&t), id);
        }
        if let Some(c) = creator {
            batch.zrem(&part.index_creator(&c), id);
        }
    }
    batch
        .commit(&mut conn, &shared.config.id)
        .await
        .map_err(|e| e.to_string())?;
    Counters::add(&shared.counters.expired, ids.len() as u64);
    tracing::debug!(count = ids.len(), "expired finished instances");
    Ok(ids.len())
}

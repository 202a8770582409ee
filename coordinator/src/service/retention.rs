//! Retention: finished instances are deleted, with their history and index entries, once
//! they are older than the configured retention (ARCHITECTURE.md invariant 7).
//!
//! Each partition loop sweeps about once a second. A sweep deletes batches of
//! [`SWEEP_BATCH`] instances while some are past their retention, for at most
//! [`SWEEP_BUDGET`], so that it never takes more than a quarter of the loop's time from the
//! live instances. That bound is also its limit: `weir bench redis` (its `retention` line)
//! measured about 4,600 deletions a second against 5,400-6,400 completions a second on a
//! 2-core machine, so a burst builds a backlog of a second or two of completions, which
//! empties within about a second after the burst (README, Retention).

use std::time::{Duration, Instant};

use weir::redis::batch::CommitError;
use weir::redis::{retention, PartitionKeys};

use super::{Counters, Shared};

/// Instances deleted per batch (one read, one pipelined lookup, one commit).
pub const SWEEP_BATCH: usize = 500;

/// The longest one sweep of one partition runs.
pub const SWEEP_BUDGET: Duration = Duration::from_millis(250);

/// Why a sweep stopped early (it is tried again at the next one).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The Redis clock could not be read.
    #[error("reading the Redis clock failed: {0}")]
    Clock(#[from] weir::redis::RedisError),
    /// Reading or deleting the finished instances failed.
    #[error(transparent)]
    Delete(#[from] CommitError),
}

/// Deletes finished instances whose retention has passed, batch after batch, within
/// [`SWEEP_BUDGET`]; returns how many were deleted.
pub async fn sweep(shared: &Shared, part: &PartitionKeys) -> Result<usize, SweepError> {
    let started = Instant::now();
    let now = shared.conns.server_time().await?;
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
async fn sweep_batch(
    shared: &Shared,
    part: &PartitionKeys,
    cutoff: i64,
) -> Result<usize, SweepError> {
    let n = retention::delete_finished_before(
        &mut shared.conns.conn.clone(),
        part,
        cutoff,
        SWEEP_BATCH,
        &shared.config.id,
    )
    .await?;
    if n > 0 {
        Counters::add(&shared.counters.expired, n as u64);
        tracing::debug!(count = n, "expired finished instances");
    }
    Ok(n)
}

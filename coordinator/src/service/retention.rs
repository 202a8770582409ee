//! Retention: finished instances are deleted, with their history and index entries, once
//! they are older than the configured retention (ARCHITECTURE.md invariant 7).
//!
//! A sweep deletes batches of [`SWEEP_BATCH`] instances while some are past their
//! retention, for at most [`SWEEP_BUDGET`]. When the next sweep comes is decided by
//! [`SweepCadence`] from what the last one found:
//! - nothing to delete: after [`IDLE_INTERVAL`] (a quarter second: a finished instance
//!   is deleted soon after its retention passes, for two cheap reads a sweep);
//! - some deleted, none left: after [`FOLLOW_INTERVAL`], so that deletions follow
//!   completions in small batches instead of a second's worth at once;
//! - stopped by its budget with some left: after three times as long as it ran, so that
//!   retention never takes more than a quarter of the partition loop's time from the live
//!   instances, however large the backlog.
//!
//! With a sweep only once a second, `weir bench redis` (its `retention` line) measured a
//! backlog of up to two seconds of completions under a burst (README, Retention): the
//! cadence, not the cost of deleting, was what lagged.

use std::time::{Duration, Instant};

use weir::redis::batch::CommitError;
use weir::redis::{retention, PartitionKeys};

use super::{Counters, Shared};

/// Instances deleted per batch (one read, one pipelined lookup, one commit).
pub const SWEEP_BATCH: usize = 500;

/// The longest one sweep of one partition runs.
pub const SWEEP_BUDGET: Duration = Duration::from_millis(250);

/// The time between sweeps that found nothing to delete: a finished instance waits about
/// this long past its retention at most, when nothing else was due. Each such sweep is one
/// `TIME` and one `ZRANGEBYSCORE` per partition.
pub const IDLE_INTERVAL: Duration = Duration::from_millis(250);

/// The time between sweeps while instances finish and get past their retention.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// What one sweep did, which decides when the next one comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Instances deleted.
    pub deleted: usize,
    /// Whether it stopped at [`SWEEP_BUDGET`] with instances still past their retention.
    pub backlog_left: bool,
    /// How long it ran.
    pub took: Duration,
}

/// When a partition loop sweeps next (the rules are in the module doc).
#[derive(Debug, Clone, Copy)]
pub struct SweepCadence {
    next: Instant,
}

impl SweepCadence {
    /// The first sweep comes [`IDLE_INTERVAL`] after `now`.
    pub fn new(now: Instant) -> SweepCadence {
        SweepCadence {
            next: now + IDLE_INTERVAL,
        }
    }

    /// Whether a sweep is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Plans the next sweep after one that ended at `now` and did `swept`.
    pub fn after(&mut self, now: Instant, swept: Option<Swept>) {
        let wait = match swept {
            // A failed sweep is tried again as if idle: an outage backs off elsewhere.
            None => IDLE_INTERVAL,
            Some(s) if s.backlog_left => (s.took * 3).max(FOLLOW_INTERVAL),
            Some(s) if s.deleted > 0 => FOLLOW_INTERVAL,
            Some(_) => IDLE_INTERVAL,
        };
        self.next = now + wait;
    }
}

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
/// [`SWEEP_BUDGET`]; says how many were deleted and whether some are left.
pub async fn sweep(shared: &Shared, part: &PartitionKeys) -> Result<Swept, SweepError> {
    let started = Instant::now();
    let now = shared.conns.server_time().await?;
    let cutoff = now - shared.config.retention.as_millis() as i64;
    let mut deleted = 0;
    let mut backlog_left = false;
    loop {
        let n = sweep_batch(shared, part, cutoff).await?;
        deleted += n;
        if n < SWEEP_BATCH {
            break;
        }
        if started.elapsed() >= SWEEP_BUDGET {
            backlog_left = true;
            break;
        }
    }
    Ok(Swept {
        deleted,
        backlog_left,
        took: started.elapsed(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn swept(deleted: usize, backlog_left: bool, took_ms: u64) -> Option<Swept> {
        Some(Swept {
            deleted,
            backlog_left,
            took: Duration::from_millis(took_ms),
        })
    }

    #[test]
    fn the_next_sweep_follows_what_the_last_one_found() {
        let t0 = Instant::now();
        let mut cadence = SweepCadence::new(t0);
        assert!(!cadence.due(t0));
        assert!(cadence.due(t0 + IDLE_INTERVAL));

        // Nothing to delete: an idle interval later.
        cadence.after(t0, swept(0, false, 1));
        assert!(!cadence.due(t0 + IDLE_INTERVAL - Duration::from_millis(1)));
        assert!(cadence.due(t0 + IDLE_INTERVAL));

        // Some deleted, none left: soon, to follow the completions.
        cadence.after(t0, swept(40, false, 5));
        assert!(!cadence.due(t0 + FOLLOW_INTERVAL - Duration::from_millis(1)));
        assert!(cadence.due(t0 + FOLLOW_INTERVAL));

        // Stopped by its budget: three times its run later, a quarter of the loop's time.
        cadence.after(t0, swept(2_000, true, 250));
        assert!(!cadence.due(t0 + Duration::from_millis(749)));
        assert!(cadence.due(t0 + Duration::from_millis(750)));

        // A failed sweep waits as an idle one.
        cadence.after(t0, None);
        assert!(!cadence.due(t0 + FOLLOW_INTERVAL));
        assert!(cadence.due(t0 + IDLE_INTERVAL));
    }
}

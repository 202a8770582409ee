//! The partition's delayed starts and schedules, fired by its lease holder.
//!
//! Beside each partition loop runs this task: about every [`TICK`] (sooner when something
//! is due sooner, by the Redis clock), while the lease is known valid, it moves the due
//! delayed starts to the command stream and fires the due schedules
//! ([`weir::redis::schedules`], which explains why each slot starts one instance even when
//! a holder dies mid-firing). It runs apart from the partition loop because a
//! `cancel_previous` firing waits for a coordinator (maybe this one) to apply the cancel.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use weir::redis::schedules::{self, DueError};
use weir::redis::WeirClient;

use super::lease::LeaseValidity;
use super::{Counters, Shared};

/// The longest pause between two looks at what is due.
pub const TICK: Duration = Duration::from_millis(100);

/// At most this many due starts and schedules per look.
const LIMIT: usize = 256;

/// Runs until `stop` turns true or the lease is lost.
pub async fn run(
    shared: Arc<Shared>,
    p: u16,
    mut stop: watch::Receiver<bool>,
    validity: Arc<LeaseValidity>,
) {
    let part = shared.conns.keys.part(p);
    let client = WeirClient::from_connections(shared.conns.clone())
        .with_reply_timeout(Duration::from_secs(5));
    let mut backoff = Duration::from_millis(50);
    loop {
        if *stop.borrow() {
            return;
        }
        let mut pause = TICK;
        if validity.valid() {
            match once(&shared, &client, &part).await {
                Ok(next) => {
                    backoff = Duration::from_millis(50);
                    pause = next;
                }
                Err(DueError::LeaseLost) => return,
                Err(e) => {
                    Counters::add(&shared.counters.redis_errors, 1);
                    tracing::warn!(error = %e, "delayed starts or schedules failed; will retry");
                    pause = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
}

/// One look: release the due starts, fire the due schedules; returns how long to pause.
async fn once(
    shared: &Shared,
    client: &WeirClient,
    part: &weir::redis::PartitionKeys,
) -> Result<Duration, DueError> {
    let due = schedules::due_work(&shared.conns, part, LIMIT).await?;
    let id = &shared.config.id;
    let released = schedules::release_due(&shared.conns, part, id, &due.starts).await?;
    if released > 0 {
        tracing::debug!(released, "delayed starts due");
    }
    for (name, _) in &due.schedules {
        let fired =
            schedules::fire_due(client, part, id, name, due.now_ms, shared.config.events_cap)
                .await?;
        weir::process::metrics::schedule_fired(fired.fired, fired.missed, fired.skipped);
        if fired.missed > 0 {
            tracing::warn!(schedule = %name, missed = fired.missed, "schedule slots missed (no coordinator ran at their time)");
        }
    }
    let full = due.starts.len() >= LIMIT || due.schedules.len() >= LIMIT;
    Ok(match due.next_ms {
        _ if full => Duration::ZERO,
        Some(next) => {
            Duration::from_millis((next - due.now_ms).clamp(1, TICK.as_millis() as i64) as u64)
        }
        None => TICK,
    })
}

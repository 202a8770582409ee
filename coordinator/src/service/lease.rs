//! Partition leases: each coordinator renews the leases it holds, takes every partition whose
//! lease is gone, and hands extras over to a coordinator short of its fair share.
//!
//! Two separate notions decide who runs a partition:
//!
//! - **Lease expiry** (the lease key's TTL, in Redis) decides *whether a partition may be
//!   taken*. A partition whose lease key is gone (expired because its holder died or froze,
//!   or deleted by a graceful stop) is taken at once by the first live coordinator that sees
//!   it, whatever its fair share: availability first. Each tick reads the remaining time of
//!   the other holders' leases and wakes again just after the earliest one would expire, so
//!   a dead coordinator's partitions are held again within a few milliseconds of its lease
//!   running out (the failover time is the lease, not the tick).
//! - **Liveness** (a heartbeat in `NS:coordinators` younger than one lease, [`is_live`])
//!   decides only the *fair share*, `ceil(partitions / live coordinators)`, which is used to
//!   rebalance afterwards: a coordinator holding more than its share hands one partition at a
//!   time directly to the live coordinator holding the fewest (`release.lua` sets the lease
//!   to that coordinator), never to the void, so rebalancing leaves no partition unowned. A
//!   coordinator that heartbeats every `lease / 3` stops being live exactly when its leases
//!   run out, so a dead one is never handed anything once its partitions expired.
//!
//! Heartbeats of processes silent for [`FORGET_AFTER`] are removed from `NS:coordinators`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;
use weir::redis::lease as leases;

use super::{partition, Shared};

/// The longest a stop waits for the partition loops and the lease releases (bounded by the
/// lease time too): past it, the leases are left to expire.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// How often queue depths and pending counts are sampled for metrics.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// A heartbeat entry older than this is removed from `NS:coordinators` (the process is
/// gone; `weir stats` lists the others with their last heartbeat).
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// How long after the earliest expiry of another coordinator's lease a tick wakes to take it.
const EXPIRY_MARGIN: Duration = Duration::from_millis(5);

/// Whether a coordinator whose last heartbeat (Redis clock, ms) is `beat` counts as live at
/// `now` for the fair share: it heartbeated less than one lease ago. This is liveness only;
/// whether its partitions may be taken is decided by their leases' expiry.
pub fn is_live(beat: i64, now: i64, lease: Duration) -> bool {
    now - beat < lease.as_millis() as i64
}

/// Until when a partition loop may trust that it holds its lease, by this process's
/// monotonic clock: the lease loop sets it at each renewal (the time the renewal was sent
/// plus the lease), and the partition loop reads no input past it. A process frozen past its
/// lease (SIGSTOP, a VM pause) sees it passed when it resumes, before any read.
#[derive(Debug, Default)]
pub struct LeaseValidity {
    until: Mutex<Option<Instant>>,
}

impl LeaseValidity {
    /// Records a renewal sent at `sent` for a lease of `lease`.
    pub fn renewed(&self, sent: Instant, lease: Duration) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = Some(sent + lease);
    }

    /// Whether the lease is still held by the local clock.
    pub fn valid(&self) -> bool {
        self.until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| Instant::now() < until)
    }
}

struct Held {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    validity: Arc<LeaseValidity>,
}

/// Keeps leases until shutdown; starts and stops partition loops as leases come and go.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut held: HashMap<u16, Held> = HashMap::new();
    let tick = shared.config.lease / 3;
    let mut backoff = Duration::from_millis(100);
    let mut last_sample = tokio::time::Instant::now();
    loop {
        let mut next = tick;
        match tick_once(&shared, &mut held).await {
            Ok(wake) => {
                backoff = Duration::from_millis(100);
                next = wake.min(tick);
            }
            Err(e) => {
                super::Counters::add(&shared.counters.redis_errors, 1);
                weir::process::metrics::redis_error("coordinator");
                tracing::warn!(error = %e, "lease renewal failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
        shared
            .counters
            .leases_held
            .store(held.len() as u64, Ordering::Relaxed);
        weir::process::metrics::leases_held(held.len());
        if last_sample.elapsed() >= SAMPLE_EVERY {
            last_sample = tokio::time::Instant::now();
            let parts: Vec<u16> = held.keys().copied().collect();
            tokio::spawn(weir::process::sample_partitions(
                shared.conns.clone(),
                parts,
            ));
        }
        let pause = if backoff > Duration::from_millis(100) {
            backoff.min(tick)
        } else {
            next
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
    }
    // Graceful: stop loops after their batch, then release so a sibling takes over now.
    // All of it within a deadline: with Redis gone, a release cannot happen anyway (the
    // leases expire by themselves), and SIGTERM must still end the process promptly.
    for h in held.values() {
        let _ = h.stop.send(true);
    }
    let parts: Vec<u16> = held.keys().copied().collect();
    let mut tasks: Vec<JoinHandle<()>> = held.into_values().map(|h| h.task).collect();
    let deadline = shared
        .config
        .lease
        .clamp(Duration::from_secs(1), SHUTDOWN_DEADLINE);
    let drain = async {
        for task in tasks.iter_mut() {
            let _ = task.await;
        }
        let shared = &shared;
        let releases = parts.iter().map(|&p| {
            let mut conn = shared.conns.conn.clone();
            async move {
                let released =
                    leases::release(&mut conn, &shared.conns.keys, p, &shared.config.id).await;
                if let Err(e) = released {
                    tracing::warn!(partition = p, error = %e, "could not release lease; it will expire");
                }
            }
        });
        futures_util::future::join_all(releases).await;
        let _ = leases::forget_coordinator(
            &mut shared.conns.conn.clone(),
            &shared.conns.keys,
            &shared.config.id,
        )
        .await;
    };
    if tokio::time::timeout(deadline, drain).await.is_err() {
        for task in &tasks {
            task.abort();
        }
        tracing::warn!(
            ?deadline,
            "Redis did not answer in time while stopping; the leases will expire by themselves"
        );
    }
    tracing::info!(coordinator = %shared.config.id, "coordinator stopped");
}

/// Why a lease tick stopped half-way (the next tick starts over, after a backoff).
#[derive(Debug, thiserror::Error)]
enum TickError {
    /// The Redis clock could not be read.
    #[error("reading the Redis clock failed: {0}")]
    Clock(#[source] weir::redis::RedisError),
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// One tick: heartbeat, renew, take every free partition, rebalance. Returns how soon the
/// next tick should come: just after the earliest expiry of another coordinator's lease.
async fn tick_once(
    shared: &Arc<Shared>,
    held: &mut HashMap<u16, Held>,
) -> Result<Duration, TickError> {
    let keys = &shared.conns.keys;
    let me = shared.config.id.as_str();
    let mut conn = shared.conns.conn.clone();
    let lease = shared.config.lease;
    let lease_ms = lease.as_millis() as u64;
    let partitions = keys.partitions();
    // Heartbeat; forget long-silent processes; read who is live (for the fair share) and
    // who holds each lease with its time left (for takeover).
    let now = shared.conns.server_time().await.map_err(TickError::Clock)?;
    let forget_before = now - FORGET_AFTER.as_millis() as i64;
    let table = leases::heartbeat_and_read(&mut conn, keys, me, now, forget_before).await?;
    let live: Vec<String> = table
        .heartbeats
        .into_iter()
        .filter(|(id, beat)| id == me || is_live(*beat, now, lease))
        .map(|(id, _)| id)
        .collect();
    let mut holders: Vec<Option<String>> = Vec::with_capacity(partitions as usize);
    let mut earliest_expiry: Option<u64> = None;
    for (holder, ttl) in table.holders {
        if holder.as_deref().is_some_and(|h| h != me) && ttl >= 0 {
            earliest_expiry = Some(earliest_expiry.map_or(ttl as u64, |e| e.min(ttl as u64)));
        }
        holders.push(holder);
    }

    // Loops that ended by themselves (lease lost) free their slot.
    held.retain(|p, h| {
        let alive = !h.task.is_finished();
        if !alive {
            tracing::info!(partition = p, "partition loop ended");
        }
        alive
    });
    // Renew what we hold.
    let mut lost = Vec::new();
    for (p, h) in held.iter() {
        let sent = Instant::now();
        if !leases::take_or_renew(&mut conn, keys, *p, me, lease_ms).await? {
            lost.push(*p);
        } else {
            h.validity.renewed(sent, lease);
        }
    }
    for p in lost {
        if let Some(h) = held.remove(&p) {
            tracing::warn!(partition = p, "lease lost to another coordinator");
            let _ = h.stop.send(true);
        }
    }
    // Take every partition whose lease is gone, whatever our share (availability first),
    // and those handed to us.
    for p in 0..partitions {
        if held.contains_key(&p) {
            continue;
        }
        match holders.get(p as usize).and_then(Option::as_deref) {
            None => {}
            Some(h) if h == me => {}
            Some(_) => continue,
        }
        let sent = Instant::now();
        if leases::take_or_renew(&mut conn, keys, p, me, lease_ms).await? {
            tracing::info!(partition = p, coordinator = %me, "took partition lease");
            let validity = Arc::new(LeaseValidity::default());
            validity.renewed(sent, lease);
            let (stop, stop_rx) = watch::channel(false);
            let span = tracing::info_span!("partition", partition = p, coordinator = %me);
            let task = tokio::spawn(
                partition::run(shared.clone(), p, stop_rx, validity.clone()).instrument(span),
            );
            held.insert(
                p,
                Held {
                    stop,
                    task,
                    validity,
                },
            );
            if let Some(slot) = holders.get_mut(p as usize) {
                *slot = Some(me.to_string());
            }
        }
    }
    // Rebalance: over our fair share, hand partitions (highest first) one at a time to the
    // live coordinator holding the fewest, while it is short of its share.
    let share = (partitions as usize).div_ceil(live.len().max(1));
    let mut counts: HashMap<&str, usize> = live.iter().map(|id| (id.as_str(), 0)).collect();
    for h in holders.iter().flatten() {
        if let Some(n) = counts.get_mut(h.as_str()) {
            *n += 1;
        }
    }
    while held.len() > share {
        let Some((target, n)) = counts
            .iter()
            .filter(|(id, _)| **id != me)
            .min_by_key(|(id, n)| (**n, **id))
            .map(|(id, n)| (id.to_string(), *n))
        else {
            break;
        };
        if n >= share {
            break;
        }
        let Some(&p) = held.keys().max() else { break };
        if let Some(h) = held.remove(&p) {
            let _ = h.stop.send(true);
            let _ = h.task.await;
            leases::hand_over(&mut conn, keys, p, me, &target, lease_ms).await?;
            tracing::info!(partition = p, share, to = %target, "handed partition over to rebalance");
            if let Some(c) = counts.get_mut(target.as_str()) {
                *c += 1;
            }
        }
    }
    Ok(earliest_expiry
        .map(|ms| Duration::from_millis(ms) + EXPIRY_MARGIN)
        .unwrap_or(Duration::MAX))
}

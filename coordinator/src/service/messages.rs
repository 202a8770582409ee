//! The partition's outbox relay and kept-message expiry, run by its lease holder.
//!
//! Beside each partition loop runs this task (see [`weir::redis::messages`] for the hops
//! and why relaying twice is harmless):
//! - woken by the loop after a commit that wrote hops (a correlated wait began or ended, a
//!   handed message was refused), it relays the outbox at once: low latency;
//! - about every [`TICK`], while the lease is known valid, it relays the entries older than
//!   [`weir::redis::messages::LEFTOVER_AGE_MS`] (a sender or coordinator killed between its
//!   write and its relay loses nothing), and drops the kept messages whose time to live
//!   ran out (counted as expired).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use weir::redis::messages;

use super::lease::LeaseValidity;
use super::{Counters, Shared};

/// The longest pause between two looks for leftovers and expired messages.
pub const TICK: Duration = Duration::from_millis(250);

/// At most this many expired messages are dropped per look.
const EXPIRE_LIMIT: usize = 512;

/// Runs until `stop` turns true.
pub async fn run(
    shared: Arc<Shared>,
    p: u16,
    mut stop: watch::Receiver<bool>,
    validity: Arc<LeaseValidity>,
    wake: Arc<Notify>,
) {
    let part = shared.conns.keys.part(p);
    let mut backoff = Duration::from_millis(50);
    let mut pause = TICK;
    loop {
        if *stop.borrow() {
            return;
        }
        let woken = tokio::select! {
            _ = wake.notified() => true,
            _ = tokio::time::sleep(pause) => false,
            _ = stop.changed() => continue,
        };
        pause = TICK;
        if !validity.valid() {
            continue;
        }
        let result = async {
            let mut relayed = 0;
            loop {
                let r = messages::relay_outbox(&shared.conns, &part, !woken).await?;
                relayed += r.hops;
                if r.hops + r.left < messages::RELAY_BATCH || r.hops == 0 {
                    break;
                }
            }
            let expired = if woken {
                0
            } else {
                messages::expire(&shared.conns, &part, EXPIRE_LIMIT).await?
            };
            Ok::<_, weir::redis::RedisError>((relayed, expired))
        }
        .await;
        match result {
            Ok((relayed, expired)) => {
                backoff = Duration::from_millis(50);
                if !woken && relayed > 0 {
                    tracing::debug!(relayed, "relayed outbox leftovers");
                }
                if expired > 0 {
                    tracing::debug!(expired, "kept messages expired");
                }
            }
            Err(e) => {
                Counters::add(&shared.counters.redis_errors, 1);
                tracing::warn!(error = %e, "message relay failed; will retry");
                // What a wake-up was for is left over now: a later look relays it.
                pause = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

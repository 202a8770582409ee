//! The loop of one leased partition: read, apply, commit, repeat.
//!
//! Each turn reads commands and results (first the entries a previous holder left pending,
//! then new ones), then the timers due by the Redis clock, applies all of them with the pure
//! core, and commits the outcome in one script call that also acknowledges the inputs. When
//! idle it blocks on the streams until the next timer is due (at most 100 ms), so timers fire
//! on time without polling.

use std::sync::Arc;
use std::time::Duration;

use redis::streams::StreamReadReply;
use tokio::sync::watch;
use weir::redis::batch::CommitError;
use weir::redis::keys::{COORDINATOR_CONSUMER, COORDINATOR_GROUP};
use weir::redis::scripts;

use super::apply::{self, Inbound};
use super::{retention, Counters, Shared};

/// The longest a loop blocks waiting for input.
const MAX_BLOCK: Duration = Duration::from_millis(100);

/// Runs the partition until told to stop or the lease is lost. The caller instruments it
/// with a `partition` span.
pub async fn run(shared: Arc<Shared>, p: u16, mut stop: watch::Receiver<bool>) {
    let part = shared.conns.keys.part(p);
    if ensure_groups(&shared, &part).await.is_err() {
        tracing::warn!("could not create consumer groups yet; will retry on first read");
    }
    let mut read_pending = true;
    // The blocking reads' own connection, made again after an error.
    let mut reader: Option<redis::aio::MultiplexedConnection> = None;
    let mut block = Duration::ZERO;
    let mut backoff = Duration::from_millis(50);
    let mut last_sweep = tokio::time::Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        match turn(&shared, &part, &mut reader, &mut read_pending, block).await {
            Ok(next_block) => {
                block = next_block;
                backoff = Duration::from_millis(50);
            }
            Err(TurnError::LeaseLost) => {
                tracing::warn!("lease lost; stopping this partition");
                break;
            }
            Err(TurnError::Other(e)) => {
                Counters::add(&shared.counters.redis_errors, 1);
                weir_worker::ops::metrics::redis_error("coordinator");
                tracing::warn!(error = %e, "partition turn failed; will retry");
                // What was read but not committed is still pending: read it again.
                read_pending = true;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        }
        if last_sweep.elapsed() > Duration::from_secs(1) {
            last_sweep = tokio::time::Instant::now();
            if let Err(e) = retention::sweep(&shared, &part).await {
                tracing::warn!(error = %e, "retention sweep failed");
            }
        }
    }
}

enum TurnError {
    LeaseLost,
    Other(String),
}

impl From<redis::RedisError> for TurnError {
    fn from(e: redis::RedisError) -> Self {
        TurnError::Other(e.to_string())
    }
}

/// One read-apply-commit turn; returns how long the next read may block.
async fn turn(
    shared: &Arc<Shared>,
    part: &weir::redis::PartitionKeys,
    reader: &mut Option<redis::aio::MultiplexedConnection>,
    read_pending: &mut bool,
    block: Duration,
) -> Result<Duration, TurnError> {
    let (commands, results) = (part.commands(), part.results());
    let batch = shared.config.batch;
    // 1. Read input; block only when there is nothing pending and no timer is due.
    let reply: Option<StreamReadReply> = {
        if reader.is_none() {
            *reader = Some(
                shared
                    .conns
                    .dedicated()
                    .await
                    .map_err(|e| TurnError::Other(e.to_string()))?,
            );
        }
        let Some(conn) = reader.as_mut() else {
            return Err(TurnError::Other("no reader connection".into()));
        };
        let id = if *read_pending { "0" } else { ">" };
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(COORDINATOR_GROUP)
            .arg(COORDINATOR_CONSUMER)
            .arg("COUNT")
            .arg(batch);
        if !*read_pending && !block.is_zero() {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS")
            .arg(&commands)
            .arg(&results)
            .arg(id)
            .arg(id);
        match cmd.query_async(conn).await {
            Ok(r) => r,
            Err(e) if e.to_string().contains("NOGROUP") => {
                ensure_groups(shared, part).await?;
                None
            }
            Err(e) => {
                *reader = None;
                return Err(e.into());
            }
        }
    };
    let mut inbound = Vec::new();
    let mut read = 0;
    for key in reply.map(|r| r.keys).unwrap_or_default() {
        let from_commands = key.key == commands;
        for entry in key.ids {
            read += 1;
            inbound.push(apply::decode_entry(&key.key, from_commands, entry));
        }
    }
    if *read_pending && read == 0 {
        *read_pending = false;
    }
    // 2. The Redis clock and the timers due by it.
    let due: Vec<redis::Value> = scripts::DUE_TIMERS
        .key(part.timers())
        .arg(batch)
        .invoke_async(&mut shared.conns.conn.clone())
        .await?;
    let (now, next_due, timers) = apply::parse_due(&due);
    inbound.extend(timers.into_iter().map(Inbound::Timer));

    let next_block = if *read_pending || read >= batch {
        Duration::ZERO
    } else if next_due >= 0 {
        Duration::from_millis((next_due - now).clamp(1, MAX_BLOCK.as_millis() as i64) as u64)
    } else {
        MAX_BLOCK
    };
    if inbound.is_empty() {
        return Ok(next_block);
    }
    // 3. Apply and commit.
    let batch = apply::build(shared, part, inbound, now)
        .await
        .map_err(TurnError::Other)?;
    let n = batch.inputs;
    match batch
        .batch
        .commit(&mut shared.conns.conn.clone(), &shared.config.id)
        .await
    {
        Ok(_) => {
            Counters::add(&shared.counters.commits, 1);
            Counters::add(&shared.counters.transitions, batch.applied);
            Counters::add(&shared.counters.stale, batch.stale);
            Counters::add(&shared.counters.refused, batch.refused);
            Counters::add(&shared.counters.dead_lettered, batch.dead);
            weir_worker::ops::metrics::batch_committed(n, batch.applied, batch.stale, batch.dead);
            let mut tally = batch.tally;
            tally.publish();
            tracing::trace!(inputs = n, "batch committed");
            // Anything fired may have scheduled a timer due now: don't block.
            Ok(if n > 0 { Duration::ZERO } else { next_block })
        }
        Err(CommitError::LeaseLost) => Err(TurnError::LeaseLost),
        Err(CommitError::Conflict(key)) => {
            *read_pending = true;
            Err(TurnError::Other(format!("concurrent change of {key}")))
        }
        Err(CommitError::Redis(e)) => Err(e.into()),
    }
}

/// Creates the coordinators' groups on the partition's input streams.
async fn ensure_groups(
    shared: &Shared,
    part: &weir::redis::PartitionKeys,
) -> Result<(), TurnError> {
    for stream in [part.commands(), part.results()] {
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg(COORDINATOR_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut shared.conns.conn.clone())
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.to_string().contains("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

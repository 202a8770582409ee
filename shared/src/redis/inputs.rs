//! A coordinator's reads of one partition's input: the command and result streams (group
//! `coordinators`, one consumer per coordinator), taking over what other consumers left
//! pending (`claim.lua`), and the timers due by the Redis clock (`due_timers.lua`).

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::streams::StreamReadReply;

use super::batch::DueTimers;
use super::keys::{PartitionKeys, COORDINATOR_GROUP};
use super::scripts;

/// Which entries a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The entries already delivered to this consumer and not acknowledged (ID `0`).
    Pending,
    /// Entries never delivered to any consumer (ID `>`).
    New,
}

/// Reads up to `count` entries of each of the partition's command and result streams as
/// consumer `consumer`, blocking up to `block` when given (a blocking read should use a
/// connection of its own). `None` when nothing came.
pub async fn read<C: ConnectionLike>(
    conn: &mut C,
    part: &PartitionKeys,
    consumer: &str,
    count: usize,
    block: Option<Duration>,
    from: ReadFrom,
) -> Result<Option<StreamReadReply>, redis::RedisError> {
    let id = match from {
        ReadFrom::Pending => "0",
        ReadFrom::New => ">",
    };
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(COORDINATOR_GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count);
    if let Some(block) = block {
        cmd.arg("BLOCK").arg(block.as_millis() as u64);
    }
    cmd.arg("STREAMS")
        .arg(part.commands())
        .arg(part.results())
        .arg(id)
        .arg(id);
    cmd.query_async(conn).await
}

/// Why [`claim`] moved nothing.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The caller does not hold the partition lease.
    #[error("the partition lease was lost")]
    LeaseLost,
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// Runs `claim.lua`: moves up to `limit` entries other consumers left pending on the
/// partition's input streams to `consumer` (the lease holder), and deletes those consumers.
/// Returns how many moved.
pub async fn claim<C: ConnectionLike>(
    conn: &mut C,
    part: &PartitionKeys,
    consumer: &str,
    limit: usize,
) -> Result<u64, ClaimError> {
    let moved: Result<u64, redis::RedisError> = scripts::CLAIM
        .key(part.lease())
        .key(part.commands())
        .key(part.results())
        .arg(COORDINATOR_GROUP)
        .arg(consumer)
        .arg(limit)
        .invoke_async(conn)
        .await;
    match moved {
        Ok(n) => Ok(n),
        Err(e) if e.code() == Some("LEASE") || e.detail().map(str::trim) == Some("LEASE") => {
            Err(ClaimError::LeaseLost)
        }
        Err(e) => Err(e.into()),
    }
}

/// The Redis clock and up to `limit` timers of the partition due by it (`due_timers.lua`).
pub async fn due_timers<C: ConnectionLike>(
    conn: &mut C,
    part: &PartitionKeys,
    limit: usize,
) -> Result<DueTimers, redis::RedisError> {
    let values: Vec<redis::Value> = scripts::DUE_TIMERS
        .key(part.timers())
        .arg(limit)
        .invoke_async(conn)
        .await?;
    Ok(DueTimers::parse(&values))
}

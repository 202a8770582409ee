//! Which workers are around: their heartbeats in `NS:workers` (worker id -> last
//! heartbeat, ms), and the consumers they leave in the step streams' group `workers`.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::streams::StreamInfoConsumersReply;

use super::groups::is_missing_group;
use super::keys::{Keys, WORKER_GROUP};

/// Records worker `id`'s heartbeat at `now_ms`.
pub async fn worker_beat<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    id: &str,
    now_ms: i64,
) -> Result<(), redis::RedisError> {
    redis::cmd("ZADD")
        .arg(keys.workers())
        .arg(now_ms)
        .arg(id)
        .query_async::<()>(conn)
        .await
}

/// Removes worker `id`'s heartbeat (a graceful stop).
pub async fn forget_worker<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    id: &str,
) -> Result<(), redis::RedisError> {
    let _: i64 = redis::cmd("ZREM")
        .arg(keys.workers())
        .arg(id)
        .query_async(conn)
        .await?;
    Ok(())
}

/// Removes the heartbeats older than `before_ms` (workers gone for good).
pub async fn forget_workers_before<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    before_ms: i64,
) -> Result<(), redis::RedisError> {
    let _: i64 = redis::cmd("ZREMRANGEBYSCORE")
        .arg(keys.workers())
        .arg("-inf")
        .arg(format!("({before_ms}"))
        .query_async(conn)
        .await?;
    Ok(())
}

/// Deletes the consumers of the workers' group on `stream` that have nothing pending and
/// were idle longer than `idle`, except `keep` (the caller). A stream without the group
/// has none. Returns how many were deleted.
pub async fn remove_idle_consumers<C: ConnectionLike>(
    conn: &mut C,
    stream: &str,
    idle: Duration,
    keep: &str,
) -> Result<u64, redis::RedisError> {
    let consumers: StreamInfoConsumersReply = match redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(WORKER_GROUP)
        .query_async(conn)
        .await
    {
        Ok(c) => c,
        Err(e) if is_missing_group(&e) => return Ok(0),
        Err(e) => return Err(e),
    };
    let idle_ms = idle.as_millis() as u64;
    let mut removed = 0;
    for c in consumers.consumers {
        if c.name != keep && c.pending == 0 && c.idle as u64 > idle_ms {
            let _: i64 = redis::cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(stream)
                .arg(WORKER_GROUP)
                .arg(&c.name)
                .query_async(conn)
                .await?;
            removed += 1;
        }
    }
    Ok(removed)
}

//! Partition leases and coordinator heartbeats: `{NS:pN}:lease` (the holder's id, with a
//! PX expiry) and `NS:coordinators` (coordinator id -> last heartbeat, ms, Redis clock).
//! The decisions (what to take, what to hand over) are the coordinator's; this is their I/O.

use redis::aio::ConnectionLike;

use super::keys::Keys;
use super::scripts;

/// What one lease tick reads, in one round trip.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeaseTable {
    /// Every coordinator with a heartbeat, and its last heartbeat (ms, Redis clock).
    pub heartbeats: Vec<(String, i64)>,
    /// Per partition (index = partition): its holder, and the time left on its lease (ms;
    /// negative when the key has no expiry or is gone, as `PTTL` answers).
    pub holders: Vec<(Option<String>, i64)>,
}

/// Records `me`'s heartbeat at `now_ms`, removes heartbeats older than `forget_before_ms`,
/// and reads every heartbeat and every partition's holder with its time left: one pipeline.
pub async fn heartbeat_and_read<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    me: &str,
    now_ms: i64,
    forget_before_ms: i64,
) -> Result<LeaseTable, redis::RedisError> {
    let mut pipe = redis::pipe();
    pipe.cmd("ZADD")
        .arg(keys.coordinators())
        .arg(now_ms)
        .arg(me)
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg(keys.coordinators())
        .arg("-inf")
        .arg(forget_before_ms)
        .ignore()
        .cmd("ZRANGE")
        .arg(keys.coordinators())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES");
    for part in keys.all_parts() {
        let lease_key = part.lease();
        pipe.cmd("GET").arg(&lease_key).cmd("PTTL").arg(&lease_key);
    }
    let values: Vec<redis::Value> = pipe.query_async(conn).await?;
    let beats: Vec<(String, f64)> =
        redis::from_redis_value_ref(values.first().unwrap_or(&redis::Value::Nil))?;
    let mut holders = Vec::with_capacity(keys.partitions() as usize);
    for pair in values[1.min(values.len())..].chunks(2) {
        let holder: Option<String> = redis::from_redis_value_ref(&pair[0])?;
        let ttl: i64 = pair
            .get(1)
            .map(redis::from_redis_value_ref)
            .transpose()?
            .unwrap_or(-2);
        holders.push((holder, ttl));
    }
    Ok(LeaseTable {
        heartbeats: beats
            .into_iter()
            .map(|(id, beat)| (id, beat as i64))
            .collect(),
        holders,
    })
}

/// Takes partition `partition`'s lease for `me`, or renews it, for `lease_ms` (`lease.lua`).
/// Returns whether `me` holds it now.
pub async fn take_or_renew<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    partition: u16,
    me: &str,
    lease_ms: u64,
) -> Result<bool, redis::RedisError> {
    let ok: i64 = scripts::LEASE
        .key(keys.part(partition).lease())
        .arg(me)
        .arg(lease_ms)
        .invoke_async(conn)
        .await?;
    Ok(ok == 1)
}

/// Gives up `me`'s lease on `partition` (`release.lua`), so a sibling takes it at once.
pub async fn release<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    partition: u16,
    me: &str,
) -> Result<(), redis::RedisError> {
    let _: i64 = scripts::RELEASE
        .key(keys.part(partition).lease())
        .arg(me)
        .invoke_async(conn)
        .await?;
    Ok(())
}

/// Hands `me`'s lease on `partition` directly to coordinator `to` for `lease_ms`
/// (`release.lua`), so a rebalance leaves no partition unowned.
pub async fn hand_over<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    partition: u16,
    me: &str,
    to: &str,
    lease_ms: u64,
) -> Result<(), redis::RedisError> {
    let _: i64 = scripts::RELEASE
        .key(keys.part(partition).lease())
        .arg(me)
        .arg(to)
        .arg(lease_ms)
        .invoke_async(conn)
        .await?;
    Ok(())
}

/// Removes `me`'s heartbeat from `NS:coordinators` (a graceful stop).
pub async fn forget_coordinator<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    me: &str,
) -> Result<(), redis::RedisError> {
    let _: i64 = redis::cmd("ZREM")
        .arg(keys.coordinators())
        .arg(me)
        .query_async(conn)
        .await?;
    Ok(())
}

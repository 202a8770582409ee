//! The Redis reads behind a process's health: the probe of `/readyz` (can this process
//! reach Redis, is a coordinator's heartbeat fresh) and the backlog a coordinator samples
//! into its gauges for `/metrics`.
//!
//! The decisions (timeouts, what counts as ready, which failure is worth a log line) are
//! the ops server's, in `weir::process` (feature `process`); this module only reads.

use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::AsyncConnectionConfig;

use super::keys::{PartitionKeys, COORDINATOR_GROUP, WORKER_GROUP};

/// Opens a fresh connection with `client` and pings it; each of the two may take up to
/// `timeout`. A fresh connection per probe is the point: a shared, already authenticated
/// one would hide a wrong password or a host that has become unreachable.
pub async fn connect_and_ping(
    client: &redis::Client,
    timeout: Duration,
) -> Result<MultiplexedConnection, redis::RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("PING").query_async::<()>(&mut conn).await?;
    Ok(conn)
}

/// A coordinator's last heartbeat, read together with the Redis clock it is compared to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Redis's clock (`TIME`) when it was read, in ms.
    pub now_ms: i64,
    /// The coordinator's last heartbeat (its score in `NS:coordinators`), in ms by the
    /// Redis clock; `None` when it has not joined (or has left).
    pub last_ms: Option<i64>,
}

impl Heartbeat {
    /// How long ago the coordinator last heartbeated, in ms (`None` when it never did).
    pub fn age_ms(&self) -> Option<i64> {
        self.last_ms.map(|last| self.now_ms - last)
    }
}

/// Reads coordinator `id`'s heartbeat from `coordinators` (the `NS:coordinators` key) and
/// Redis's clock, in one round trip.
pub async fn coordinator_heartbeat<C: ConnectionLike>(
    conn: &mut C,
    coordinators: &str,
    id: &str,
) -> Result<Heartbeat, redis::RedisError> {
    let ((secs, micros), beat): ((i64, i64), Option<f64>) = redis::pipe()
        .cmd("TIME")
        .cmd("ZSCORE")
        .arg(coordinators)
        .arg(id)
        .query_async(conn)
        .await?;
    Ok(Heartbeat {
        now_ms: secs * 1000 + micros / 1000,
        last_ms: beat.map(|b| b as i64),
    })
}

/// Entries of one stream that are not done yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamBacklog {
    /// Entries in the stream (`XLEN`): entries are deleted once handled, so these are
    /// waiting or in flight.
    pub len: u64,
    /// Entries delivered to a consumer and not acknowledged yet (`XPENDING`).
    pub pending: u64,
}

/// What one partition holds that is not done yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionBacklog {
    /// Each step queue used in the partition, by name.
    pub queues: Vec<(String, StreamBacklog)>,
    /// The client command stream.
    pub commands: StreamBacklog,
    /// The step result stream.
    pub results: StreamBacklog,
    /// Entries in the dead-letter stream.
    pub dead_letters: u64,
}

/// Reads the backlog of partition `part`. Only the list of its queues is required: it
/// fails when that cannot be read. A stream whose length or pending count cannot be read
/// (its consumer group not made yet, say) counts as empty, since sampling is best effort.
pub async fn partition_backlog<C: ConnectionLike + Send>(
    conn: &mut C,
    part: &PartitionKeys,
) -> Result<PartitionBacklog, redis::RedisError> {
    let names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(part.queues())
        .query_async(conn)
        .await?;
    let mut queues = Vec::with_capacity(names.len());
    for name in names {
        let backlog = stream_backlog(conn, &part.queue(&name), WORKER_GROUP).await;
        queues.push((name, backlog));
    }
    let commands = stream_backlog(conn, &part.commands(), COORDINATOR_GROUP).await;
    let results = stream_backlog(conn, &part.results(), COORDINATOR_GROUP).await;
    let dead_letters = redis::cmd("XLEN")
        .arg(part.dlq())
        .query_async::<u64>(conn)
        .await
        .unwrap_or(0);
    Ok(PartitionBacklog {
        queues,
        commands,
        results,
        dead_letters,
    })
}

/// The length and pending count of stream `key` for consumer group `group`; 0 for what
/// cannot be read.
async fn stream_backlog<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    group: &str,
) -> StreamBacklog {
    let len: u64 = redis::cmd("XLEN")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap_or(0);
    // The summary form: [count, first, last, consumers]; NOGROUP when not yet made.
    let summary: Result<redis::Value, _> = redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .query_async(conn)
        .await;
    let pending = match summary {
        Ok(redis::Value::Array(items)) => match items.first() {
            Some(redis::Value::Int(n)) => (*n).max(0) as u64,
            _ => 0,
        },
        _ => 0,
    };
    StreamBacklog { len, pending }
}

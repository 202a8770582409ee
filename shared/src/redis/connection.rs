//! One connection type for every way of running Redis, so the rest of the code writes
//! `cmd.query_async(&mut conn)` once: [`RedisConnection`] is a single server's
//! self-reconnecting connection, a Redis Cluster connection (which routes each command to
//! the master of its keys' slot, follows `MOVED` and `ASK`, and refreshes its slot map after
//! a failover), or a Sentinel-watched primary ([`SentinelConnection`]), which it finds anew
//! after a failover.

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use super::cluster_healing::HealingCluster;
use super::slots::command_slot;

pub use super::sentinel::SentinelConnection;

/// A connection to Redis, whatever its topology; cheap to clone (clones share the
/// underlying sockets, and pipeline their requests on them).
#[derive(Clone)]
pub enum RedisConnection {
    /// One server, through a multiplexed connection that reconnects by itself.
    Single(ConnectionManager),
    /// One server, through a plain multiplexed connection: a blocking reader's own (it
    /// does not reconnect; its owner makes a new one after an error).
    Direct(MultiplexedConnection),
    /// A Redis Cluster, through a connection that is replaced when it stops answering
    /// (see [`HealingCluster`]).
    Cluster(HealingCluster),
    /// The primary that Redis Sentinel names.
    Sentinel(SentinelConnection),
}

impl RedisConnection {
    /// Which kind of topology it talks to, for messages: `single`, `cluster`, `sentinel`.
    pub fn mode(&self) -> &'static str {
        match self {
            RedisConnection::Single(_) | RedisConnection::Direct(_) => "single",
            RedisConnection::Cluster(_) => "cluster",
            RedisConnection::Sentinel(_) => "sentinel",
        }
    }
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisConnection::{}", self.mode())
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(c) => c.req_packed_command(cmd),
            RedisConnection::Direct(c) => c.req_packed_command(cmd),
            RedisConnection::Cluster(c) => Box::pin(async move {
                let result = c.connection().req_packed_command(cmd).await;
                c.observe(&result);
                result
            }),
            RedisConnection::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConnection::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(c) => Box::pin(async move {
                let result = if pipeline.is_transaction() || offset != 0 || count != pipeline.len()
                {
                    // A transaction must stay in one slot (the server checks).
                    c.connection()
                        .req_packed_commands(pipeline, offset, count)
                        .await
                } else {
                    pipeline_per_slot(c.connection(), pipeline).await
                };
                c.observe(&result);
                result
            }),
            RedisConnection::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(c) => c.get_db(),
            RedisConnection::Direct(c) => c.get_db(),
            RedisConnection::Cluster(c) => c.connection().get_db(),
            RedisConnection::Sentinel(c) => c.get_db(),
        }
    }
}

/// Sends a pipeline over a cluster as one pipeline per slot, in parallel, and puts the
/// replies back in the order of the commands: a pipeline of commands on several
/// partitions (lease renewals, statistics) is one round trip per slot, and no request
/// crosses slots. Commands without a key go with the first slot's.
async fn pipeline_per_slot(
    conn: ClusterConnection,
    pipeline: &Pipeline,
) -> RedisResult<Vec<Value>> {
    let mut groups: Vec<(Option<u16>, Vec<usize>)> = Vec::new();
    for (i, cmd) in pipeline.cmd_iter().enumerate() {
        let slot = command_slot(cmd);
        let group = match slot {
            None => groups.first_mut(),
            Some(_) => groups.iter_mut().find(|(s, _)| s.is_none() || *s == slot),
        };
        match group {
            Some((s, members)) => {
                if s.is_none() {
                    *s = slot;
                }
                members.push(i);
            }
            None => groups.push((slot, vec![i])),
        }
    }
    if groups.len() <= 1 {
        let mut conn = conn;
        return conn.req_packed_commands(pipeline, 0, pipeline.len()).await;
    }
    let commands: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let sends = groups.iter().map(|(_, members)| {
        let mut part = redis::pipe();
        for i in members {
            part.add_command(commands[*i].clone());
        }
        let mut conn = conn.clone();
        async move { conn.req_packed_commands(&part, 0, part.len()).await }
    });
    let replies = futures_util::future::join_all(sends).await;
    let mut values = vec![Value::Nil; pipeline.len()];
    for ((_, members), reply) in groups.iter().zip(replies) {
        for (i, value) in members.iter().zip(reply?) {
            values[*i] = value;
        }
    }
    Ok(values)
}

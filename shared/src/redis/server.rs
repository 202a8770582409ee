//! What a Redis server says about itself (`PING`, `INFO`, `MEMORY USAGE`), and wiping a
//! namespace: for health checks, the benchmark and the demo.

use redis::aio::ConnectionLike;

use super::connection::RedisConnection;
use super::keys::Keys;
use crate::model::InstanceStatus;

/// `PING`: whether the server answers.
pub async fn ping<C: ConnectionLike>(conn: &mut C) -> Result<(), redis::RedisError> {
    let _: String = redis::cmd("PING").query_async(conn).await?;
    Ok(())
}

/// Whether a server at `url` answers `PING` now, on a short-lived blocking connection
/// (for waiting on a server this process just started, before any runtime connects).
pub fn answers_ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection() else {
        return false;
    };
    redis::cmd("PING").query::<String>(&mut conn).is_ok()
}

/// The text of `INFO section`.
pub async fn info<C: ConnectionLike>(
    conn: &mut C,
    section: &str,
) -> Result<String, redis::RedisError> {
    redis::cmd("INFO").arg(section).query_async(conn).await
}

/// The text of `INFO section` of every master, each with its address (`host:port`), in
/// address order. On a Redis Cluster a plain `INFO` cannot name one server (it has no key),
/// so it is sent to every master and the replies are kept apart; on one server (or a
/// Sentinel primary) it is that server's, under the address `server`.
pub async fn info_per_master(
    conn: &RedisConnection,
    section: &str,
) -> Result<Vec<(String, String)>, redis::RedisError> {
    use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
    let mut cmd = redis::cmd("INFO");
    cmd.arg(section);
    match conn {
        RedisConnection::Cluster(cluster) => {
            let result = cluster
                .connection()
                .route_command(
                    cmd,
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                )
                .await;
            cluster.observe(&result);
            let reply = result?;
            let by_node: std::collections::BTreeMap<String, String> =
                redis::from_redis_value(reply)?;
            Ok(by_node.into_iter().collect())
        }
        other => {
            let text: String = cmd.query_async(&mut other.clone()).await?;
            Ok(vec![("server".to_string(), text)])
        }
    }
}

/// Whether the server at `url` answers `CLUSTER INFO` with `cluster_state:ok` and knows
/// `nodes` nodes, on a short-lived blocking connection (for waiting on a cluster this process
/// just created).
pub fn cluster_ready(url: &str, nodes: usize) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection() else {
        return false;
    };
    let Ok(info) = redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut conn) else {
        return false;
    };
    info_field(&info, "cluster_state") == Some("ok")
        && info_field(&info, "cluster_known_nodes") == Some(nodes.to_string().as_str())
}

/// The value of `field` (`name:value` lines) in an `INFO` text.
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// `MEMORY USAGE key SAMPLES 0` of each of `keys` (`None` for a key that does not exist).
pub async fn memory_usage<C: ConnectionLike>(
    conn: &mut C,
    keys: &[String],
) -> Result<Vec<Option<u64>>, redis::RedisError> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0);
    }
    pipe.query_async(conn).await
}

/// How many instances of the namespace have `status` (the sizes of the status indexes).
pub async fn count_with_status<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    status: InstanceStatus,
) -> Result<u64, redis::RedisError> {
    let mut pipe = redis::pipe();
    for part in keys.all_parts() {
        pipe.cmd("ZCARD").arg(part.index_status(status.as_str()));
    }
    let counts: Vec<u64> = pipe.query_async(conn).await?;
    Ok(counts.iter().sum())
}

/// How many instances the namespace holds, of any status (the sizes of the status indexes,
/// which hold each instance once): retention removes an instance from them when it deletes
/// the instance.
pub async fn count_instances<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
) -> Result<u64, redis::RedisError> {
    let mut pipe = redis::pipe();
    for part in keys.all_parts() {
        for status in InstanceStatus::ALL {
            pipe.cmd("ZCARD").arg(part.index_status(status.as_str()));
        }
    }
    let counts: Vec<u64> = pipe.query_async(conn).await?;
    Ok(counts.iter().sum())
}

/// Removes every key of the namespace `ns` (`NS:…` and `{NS:p…}…`), with `SCAN` and
/// `UNLINK` in small steps: on a shared Redis, `KEYS` would block every other client while
/// it walks the whole keyspace. Returns how many keys were removed.
pub async fn wipe_namespace<C: ConnectionLike>(
    conn: &mut C,
    ns: &str,
) -> Result<u64, redis::RedisError> {
    let mut removed = 0;
    for pattern in [format!("{ns}:*"), format!("{{{ns}:p*")] {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(conn)
                .await?;
            if !keys.is_empty() {
                removed += keys.len() as u64;
                let _: () = redis::cmd("UNLINK").arg(keys).query_async(conn).await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(removed)
}

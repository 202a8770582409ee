//! What a Redis server says about itself (`PING`, `INFO`, `MEMORY USAGE`), and wiping a
//! namespace: for health checks, the benchmark and the demo.

use redis::aio::ConnectionLike;

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

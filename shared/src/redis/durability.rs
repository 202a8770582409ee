//! When a write counts as done (ARCHITECTURE.md invariant 10). Redis replicates
//! asynchronously: a master can acknowledge a write and die before any replica has it, and
//! the replica promoted in its place then lacks it. Under [`Durability::Replicated`] a call
//! is acknowledged only after `WAIT` has confirmed that at least one replica holds the
//! write; under [`Durability::Local`] (the default) the master's acknowledgement is enough.

use std::time::Duration;

use super::connection::RedisConnection;
use super::RedisError;

/// How long `WAIT` waits for a replica to confirm a write before the call fails with
/// [`RedisError::NotReplicated`].
pub const REPLICA_WAIT: Duration = Duration::from_secs(1);

/// When a write is acknowledged to the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// When the master has it: a failover right after may lose it.
    #[default]
    Local,
    /// When a replica has it too (`WAIT 1`): it survives the failover of its master.
    Replicated,
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(text: &str) -> Result<Durability, String> {
        match text {
            "local" => Ok(Durability::Local),
            "replicated" => Ok(Durability::Replicated),
            other => Err(format!(
                "unknown durability {other:?}: write `local` or `replicated`"
            )),
        }
    }
}

/// Runs a script that writes, and under [`Durability::Replicated`] a `WAIT 1` in the same
/// round trip (a pipeline on the script's node: `WAIT` has no key and goes with the
/// script's slot). Returns the script's answer and, when waited, how many replicas hold
/// the write: check it with [`require_replica`] before acknowledging anything.
pub async fn invoke<T: redis::FromRedisValue, C: redis::aio::ConnectionLike>(
    durability: Durability,
    conn: &mut C,
    inv: &redis::ScriptInvocation<'_>,
) -> redis::RedisResult<(T, Option<i64>)> {
    if durability == Durability::Local {
        return Ok((inv.invoke_async(conn).await?, None));
    }
    let mut loaded = false;
    loop {
        let mut pipe = redis::pipe();
        pipe.invoke_script(inv)
            .cmd("WAIT")
            .arg(1)
            .arg(REPLICA_WAIT.as_millis() as u64);
        let (answer, replicas): (redis::Value, i64) =
            pipe.ignore_errors().query_async(conn).await?;
        if let redis::Value::ServerError(e) = answer {
            let e = redis::RedisError::from(e);
            if !loaded && e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) {
                // The node does not have the script yet (a new or failed-over master).
                inv.load_async(conn).await?;
                loaded = true;
                continue;
            }
            return Err(e);
        }
        return Ok((T::from_redis_value(answer)?, Some(replicas)));
    }
}

/// After [`invoke`]: an error unless the write was waited for and a replica holds it (or
/// it was not waited for, under [`Durability::Local`]). `key` names the write in the error.
pub fn require_replica(
    replicas: Option<i64>,
    key: &str,
    display_url: &str,
) -> Result<(), RedisError> {
    match replicas {
        Some(n) if n < 1 => Err(RedisError::NotReplicated {
            url: display_url.to_string(),
            key: key.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Under [`Durability::Replicated`], waits until a replica holds what this connection
/// wrote to `key`'s master (`key` routes the `WAIT` to the node of the write on a cluster:
/// both go in one pipeline to its slot). Under [`Durability::Local`] returns at once.
pub async fn confirm(
    durability: Durability,
    conn: &mut RedisConnection,
    key: &str,
    display_url: &str,
) -> Result<(), RedisError> {
    if durability == Durability::Local {
        return Ok(());
    }
    // `EXISTS key` only gives the pipeline its slot: WAIT has no key of its own.
    let (_, replicas): (i64, i64) = redis::pipe()
        .cmd("EXISTS")
        .arg(key)
        .cmd("WAIT")
        .arg(1)
        .arg(REPLICA_WAIT.as_millis() as u64)
        .query_async(conn)
        .await
        .map_err(|e| RedisError::from_redis(display_url, e))?;
    if replicas < 1 {
        return Err(RedisError::NotReplicated {
            url: display_url.to_string(),
            key: key.to_string(),
        });
    }
    Ok(())
}

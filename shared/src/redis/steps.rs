//! A worker's side of the step streams (`{NS:pN}:q:QUEUE`, group `workers`): reading step
//! entries, waking when new ones arrive, keeping the ones it runs alive (`heartbeat.lua`),
//! claiming the ones dead workers left (`XAUTOCLAIM`), reporting results (`report.lua`)
//! and dead-lettering what cannot run (`dead_letter.lua`). The loops, limits and backoff
//! are the worker runtime's; this is their Redis I/O.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::streams::{
    StreamAutoClaimReply, StreamInfoGroupsReply, StreamPendingCountReply, StreamReadReply,
};

use super::keys::{PartitionKeys, WORKER_GROUP};
use super::scripts;

/// Reads up to `count` entries of `stream` never delivered to any worker (`>`), as
/// consumer `consumer`. One stream at a time: `COUNT` limits each stream, not the sum.
pub async fn read_new<C: ConnectionLike>(
    conn: &mut C,
    stream: &str,
    consumer: &str,
    count: usize,
) -> Result<Option<StreamReadReply>, redis::RedisError> {
    redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(WORKER_GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .query_async(conn)
        .await
}

/// The id of the last entry delivered to the workers' group on each of `streams`, in
/// order. A stream without the group is a `NOGROUP` error (see
/// [`super::groups::is_missing_group`]).
pub async fn last_delivered<C: ConnectionLike>(
    conn: &mut C,
    streams: &[String],
) -> Result<Vec<String>, redis::RedisError> {
    let mut pipe = redis::pipe();
    for s in streams {
        pipe.cmd("XINFO").arg("GROUPS").arg(s);
    }
    let infos: Vec<StreamInfoGroupsReply> = pipe.query_async(conn).await?;
    let mut from = Vec::with_capacity(streams.len());
    for (info, stream) in infos.iter().zip(streams) {
        match info.groups.iter().find(|g| g.name == WORKER_GROUP) {
            Some(group) => from.push(group.last_delivered_id.clone()),
            None => {
                return Err(redis::make_extension_error(
                    "NOGROUP".into(),
                    Some(format!("the group {WORKER_GROUP} is missing on {stream}")),
                ))
            }
        }
    }
    Ok(from)
}

/// Blocks up to `block` until any of `streams` has an entry after its id in `from` (a plain
/// `XREAD`, which delivers nothing to the group), on a blocking connection kept for it
/// (on a cluster its reader waits on every partition slot at once).
pub async fn wait_for_new(
    conn: &mut super::connect::BlockingConnection,
    streams: &[String],
    from: &[String],
    block: Duration,
) -> Result<(), redis::RedisError> {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        .arg(block.as_millis() as u64)
        .arg("STREAMS");
    for s in streams {
        cmd.arg(s);
    }
    for id in from {
        cmd.arg(id);
    }
    let _: Option<StreamReadReply> = conn.xread(&cmd).await?;
    Ok(())
}

/// One result to report: the step entry it answers and the encoded
/// [`super::wire::ResultMessage`].
#[derive(Debug, Clone, Copy)]
pub struct StepReport<'a> {
    /// The step stream of the entry.
    pub stream: &'a str,
    /// The entry id.
    pub id: &'a str,
    /// The encoded result.
    pub result: &'a [u8],
}

/// Appends results of one partition to its result stream `results_key` and acknowledges
/// their step entries, in one `report.lua` call; only results whose entry is still pending
/// to `consumer` are appended. Returns how many were.
pub async fn report<C: ConnectionLike>(
    conn: &mut C,
    results_key: &str,
    consumer: &str,
    reports: &[StepReport<'_>],
) -> Result<u64, redis::RedisError> {
    let mut inv = scripts::REPORT.prepare_invoke();
    inv.key(results_key);
    for o in reports {
        inv.key(o.stream);
    }
    inv.arg(WORKER_GROUP).arg(consumer);
    for o in reports {
        inv.arg(o.id).arg(o.result);
    }
    inv.invoke_async::<u64>(conn).await
}

/// A step entry to move to its partition's dead-letter stream.
#[derive(Debug, Clone, Copy)]
pub struct DeadStep<'a> {
    /// The step stream of the entry.
    pub stream: &'a str,
    /// The entry id.
    pub id: &'a str,
    /// The entry's message bytes, as they came.
    pub raw: &'a [u8],
    /// Why it is dead-lettered.
    pub error: &'a str,
    /// How often it was delivered.
    pub deliveries: u64,
    /// The encoded failure of its attempt, appended to the result stream in the same call
    /// when the entry said which attempt it is.
    pub failure: Option<&'a [u8]>,
}

/// Moves a step entry to the partition's dead-letter stream (capped near `cap`), off its
/// stream, with its attempt's failure when it has one (`dead_letter.lua`). Returns how
/// many old dead letters the cap dropped.
pub async fn dead_letter<C: ConnectionLike>(
    conn: &mut C,
    part: &PartitionKeys,
    letter: DeadStep<'_>,
    cap: usize,
) -> Result<i64, redis::RedisError> {
    let mut script = scripts::DEAD_LETTER.prepare_invoke();
    script.key(letter.stream).key(part.dlq()).key(part.stats());
    if letter.failure.is_some() {
        script.key(part.results());
    }
    script
        .arg(WORKER_GROUP)
        .arg(letter.id)
        .arg(letter.raw)
        .arg(letter.error)
        .arg(letter.deliveries)
        .arg(cap);
    if let Some(failure) = letter.failure {
        script.arg(failure);
    }
    script.invoke_async(conn).await
}

/// Resets the idle time of the step entries `entries` (stream, id; all of one partition)
/// that are still pending to `consumer` (`heartbeat.lua`). Returns the ids that are not
/// any more (another worker reclaimed them, or they are gone).
pub async fn heartbeat<C: ConnectionLike>(
    conn: &mut C,
    consumer: &str,
    entries: &[(String, String)],
) -> Result<Vec<String>, redis::RedisError> {
    let mut inv = scripts::HEARTBEAT.prepare_invoke();
    for (stream, _) in entries {
        inv.key(stream);
    }
    inv.arg(WORKER_GROUP).arg(consumer);
    for (_, id) in entries {
        inv.arg(id);
    }
    inv.invoke_async(conn).await
}

/// Claims for `consumer` up to `count` entries of `stream` idle longer than `min_idle`,
/// scanning the pending list from cursor `from` (`XAUTOCLAIM`; the reply carries the
/// cursor to go on from, `0-0` once the scan went round).
pub async fn claim_idle<C: ConnectionLike>(
    conn: &mut C,
    stream: &str,
    consumer: &str,
    min_idle: Duration,
    from: &str,
    count: usize,
) -> Result<StreamAutoClaimReply, redis::RedisError> {
    redis::cmd("XAUTOCLAIM")
        .arg(stream)
        .arg(WORKER_GROUP)
        .arg(consumer)
        .arg(min_idle.as_millis() as u64)
        .arg(from)
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
}

/// How often each of the entries `ids` of `stream` was delivered (1 for an entry no longer
/// pending), in order, in one round trip.
pub async fn deliveries<C: ConnectionLike>(
    conn: &mut C,
    stream: &str,
    ids: &[&str],
) -> Result<Vec<u64>, redis::RedisError> {
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("XPENDING")
            .arg(stream)
            .arg(WORKER_GROUP)
            .arg(id)
            .arg(id)
            .arg(1);
    }
    let pending: Vec<StreamPendingCountReply> = pipe.query_async(conn).await?;
    Ok(pending
        .iter()
        .map(|p| p.ids.first().map(|x| x.times_delivered as u64).unwrap_or(1))
        .collect())
}

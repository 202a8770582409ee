//! What operators read and repair in a namespace: counts, stream depths, consumers, leases,
//! live processes and counters ([`stats`]), and the dead-letter streams ([`dead_letters`],
//! [`replay`], [`purge`]). The `weir stats` and `weir dlq` commands print these; an HTTP
//! API can serve the same shapes.
//!
//! Dead letters are named `P/STREAM-ID` (partition `P`, the entry's id in `{NS:pP}:dlq`),
//! since stream ids alone are unique only within one partition.

use std::collections::BTreeMap;

use redis::streams::{StreamInfoConsumersReply, StreamPendingReply, StreamRangeReply};
use serde::{Deserialize, Serialize};

use super::connect::Connections;
use super::keys::{PartitionKeys, COORDINATOR_GROUP, WORKER_GROUP};
use super::messages::counter;
use super::slots::key_slot;
use super::{scripts, RedisError};
use crate::model::{InstanceStatus, MessageCounts};

/// A snapshot of a namespace, for operators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The namespace.
    pub namespace: String,
    /// Its partition count.
    pub partitions: u16,
    /// The Redis clock when read (ms).
    pub server_time_ms: i64,
    /// Instances per status (every status present, zero included).
    pub instances: BTreeMap<String, u64>,
    /// Open human tasks.
    pub open_tasks: u64,
    /// Pending timers.
    pub timers: u64,
    /// Schedules (paused ones too).
    #[serde(default)]
    pub schedules: u64,
    /// Delayed starts not due yet.
    #[serde(default)]
    pub delayed_starts: u64,
    /// Entries waiting in each queue, summed over partitions.
    pub queues: BTreeMap<String, u64>,
    /// Every stream with entries, pending entries or consumers.
    pub streams: Vec<StreamStats>,
    /// Dead letters, summed over partitions.
    pub dlq: u64,
    /// Who holds each partition's lease.
    pub leases: Vec<LeaseStats>,
    /// Coordinators that sent a heartbeat, newest first.
    pub coordinators: Vec<LiveProcess>,
    /// Workers that sent a heartbeat, newest first.
    pub workers: Vec<LiveProcess>,
    /// Counters of the partitions' stats hashes, summed.
    pub counters: BTreeMap<String, i64>,
    /// Correlated messages and signals: received by instances, kept, expired, refused as
    /// duplicates (the `msg_*` counters, summed; see [`super::messages`]).
    #[serde(default)]
    pub messages: MessageCounts,
    /// Messages kept now, waiting for an instance (expired ones until swept).
    #[serde(default)]
    pub kept_messages: u64,
    /// Hops between partitions not relayed yet (the outboxes' entries).
    #[serde(default)]
    pub outbox: u64,
}

/// One stream of one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    /// The stream's key.
    pub stream: String,
    /// Its partition.
    pub partition: u16,
    /// `queue`, `commands` or `results`.
    pub kind: String,
    /// The queue name (for a queue).
    pub queue: Option<String>,
    /// Entries in it (XLEN).
    pub length: u64,
    /// Its consumer group.
    pub group: String,
    /// Entries delivered and not acknowledged (XPENDING).
    pub pending: u64,
    /// The group's consumers.
    pub consumers: Vec<ConsumerStats>,
}

/// A consumer of a stream's group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerStats {
    /// Its name (a worker id, or `owner` for the coordinator holding the partition).
    pub name: String,
    /// Entries it holds unacknowledged.
    pub pending: u64,
    /// Since it last read or claimed (ms).
    pub idle_ms: u64,
}

/// A partition's lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseStats {
    /// The partition.
    pub partition: u16,
    /// The coordinator holding it, if any.
    pub holder: Option<String>,
    /// Time left on the lease (ms).
    pub ttl_ms: Option<i64>,
    /// The Redis node (`host:port`) that holds the partition's keys: on a cluster the
    /// master of the partition's slot, otherwise the one server (or Sentinel's primary).
    #[serde(default)]
    pub node: String,
}

/// A coordinator or worker and its last heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveProcess {
    /// Its id.
    pub id: String,
    /// Since its last heartbeat (ms, Redis clock).
    pub last_seen_ms_ago: i64,
}

/// One dead-lettered message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// `P/STREAM-ID`: how `replay` and `purge` name it.
    pub id: String,
    /// The partition.
    pub partition: u16,
    /// The stream it came from.
    pub source: String,
    /// The consumer group that could not handle it.
    pub group: String,
    /// Its id on the source stream.
    pub message_id: String,
    /// Why it was dead-lettered.
    pub error: String,
    /// How often it was delivered.
    pub deliveries: u64,
    /// Size of the raw message, bytes.
    pub size: usize,
}

/// What `replay` or `purge` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DlqOutcome {
    /// Dead letters handled.
    pub done: Vec<String>,
    /// Ids asked for that are not (or no longer) there.
    pub missing: Vec<String>,
}

/// Members of a sorted set with their scores.
type Scored = Vec<(String, f64)>;

fn err(c: &Connections, e: redis::RedisError) -> RedisError {
    RedisError::from_redis(&c.display_url, e)
}

/// Whether a per-stream read failed only because the stream or group does not exist.
fn absent(e: &redis::RedisError) -> bool {
    let text = e.to_string();
    text.contains("NOGROUP") || text.contains("no such key") || text.contains("ERR no such")
}

/// The node (`host:port`) of each partition, in partition order: on a cluster the master
/// of the slot of the partition's hash tag (`CLUSTER SLOTS`), otherwise the address of the
/// server this connection talks to (`CLIENT INFO`'s `laddr`).
async fn partition_nodes(
    c: &Connections,
    parts: &[PartitionKeys],
) -> Result<Vec<String>, RedisError> {
    let mut conn = c.conn.clone();
    if c.conn.mode() != "cluster" {
        let info: String = redis::cmd("CLIENT")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .map_err(|e| err(c, e))?;
        let node = info
            .split_whitespace()
            .find_map(|field| field.strip_prefix("laddr="))
            .unwrap_or("?")
            .to_string();
        return Ok(parts.iter().map(|_| node.clone()).collect());
    }
    let reply: redis::Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await
        .map_err(|e| err(c, e))?;
    let ranges = super::cluster_reads::slot_ranges(&reply)
        .ok_or_else(|| RedisError::Corrupt(format!("unexpected CLUSTER SLOTS reply: {reply:?}")))?;
    Ok(parts
        .iter()
        .map(|part| {
            let slot = key_slot(part.commands().as_bytes());
            ranges
                .iter()
                .find(|(start, end, _)| (*start..=*end).contains(&slot))
                .map(|(_, _, node)| node.clone())
                .unwrap_or_else(|| "unassigned".to_string())
        })
        .collect())
}

/// Reads a snapshot of the namespace.
pub async fn stats(c: &Connections) -> Result<Stats, RedisError> {
    let mut conn = c.conn.clone();
    let parts: Vec<PartitionKeys> = c.keys.all_parts().collect();
    let now = c.server_time().await?;
    let nodes = partition_nodes(c, &parts).await?;

    // One pipeline for the plain counts.
    let mut pipe = redis::pipe();
    for part in &parts {
        for s in InstanceStatus::ALL {
            pipe.cmd("ZCARD").arg(part.index_status(s.as_str()));
        }
        pipe.cmd("ZCARD").arg(part.index_tasks());
        pipe.cmd("ZCARD").arg(part.timers());
        pipe.cmd("XLEN").arg(part.dlq());
        pipe.cmd("GET").arg(part.lease());
        pipe.cmd("PTTL").arg(part.lease());
        pipe.cmd("HGETALL").arg(part.stats());
        pipe.cmd("SMEMBERS").arg(part.queues());
        pipe.cmd("ZCARD").arg(part.schedules_all());
        pipe.cmd("ZCARD").arg(part.due_starts());
        pipe.cmd("ZCARD").arg(part.kept_expiry());
        pipe.cmd("XLEN").arg(part.outbox());
    }
    let values: Vec<redis::Value> = pipe.query_async(&mut conn).await.map_err(|e| err(c, e))?;
    let per_part = InstanceStatus::ALL.len() + 11;
    let mut instances: BTreeMap<String, u64> = InstanceStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    let mut open_tasks = 0;
    let mut timers = 0;
    let mut schedules = 0;
    let mut delayed_starts = 0;
    let mut kept_messages = 0;
    let mut outbox = 0;
    let mut dlq = 0;
    let mut leases = Vec::new();
    let mut counters: BTreeMap<String, i64> = BTreeMap::new();
    let mut queue_streams: Vec<(u16, String)> = Vec::new();
    for (part, chunk) in parts.iter().zip(values.chunks(per_part)) {
        let get_u64 = |v: &redis::Value| redis::from_redis_value_ref::<u64>(v).unwrap_or(0);
        for (s, v) in InstanceStatus::ALL.iter().zip(chunk) {
            *instances.entry(s.as_str().to_string()).or_default() += get_u64(v);
        }
        let rest = &chunk[InstanceStatus::ALL.len()..];
        let [tasks, tim, dl, holder, ttl, hash, queues, scheds, delayed, kept, hops] = rest else {
            return Err(RedisError::Corrupt("short pipeline reply".into()));
        };
        kept_messages += get_u64(kept);
        outbox += get_u64(hops);
        open_tasks += get_u64(tasks);
        schedules += get_u64(scheds);
        delayed_starts += get_u64(delayed);
        timers += get_u64(tim);
        dlq += get_u64(dl);
        let holder: Option<String> = redis::from_redis_value_ref(holder).unwrap_or(None);
        let ttl: i64 = redis::from_redis_value_ref(ttl).unwrap_or(-2);
        leases.push(LeaseStats {
            node: nodes
                .get(usize::from(part.partition))
                .cloned()
                .unwrap_or_default(),
            partition: part.partition,
            ttl_ms: holder.as_ref().map(|_| ttl).filter(|t| *t >= 0),
            holder,
        });
        let hash: BTreeMap<String, i64> = redis::from_redis_value_ref(hash).unwrap_or_default();
        for (k, v) in hash {
            *counters.entry(k).or_default() += v;
        }
        let mut queues: Vec<String> = redis::from_redis_value_ref(queues).unwrap_or_default();
        queues.sort();
        for q in queues {
            queue_streams.push((part.partition, q));
        }
    }

    // Streams with a consumer group: commands and results (coordinators), queues (workers).
    let mut wanted: Vec<(u16, String, &'static str, Option<String>, &'static str)> = Vec::new();
    for part in &parts {
        wanted.push((
            part.partition,
            part.commands(),
            "commands",
            None,
            COORDINATOR_GROUP,
        ));
        wanted.push((
            part.partition,
            part.results(),
            "results",
            None,
            COORDINATOR_GROUP,
        ));
    }
    for (p, q) in &queue_streams {
        wanted.push((
            *p,
            c.keys.part(*p).queue(q),
            "queue",
            Some(q.clone()),
            WORKER_GROUP,
        ));
    }
    let mut queues: BTreeMap<String, u64> =
        queue_streams.iter().map(|(_, q)| (q.clone(), 0)).collect();
    let mut streams = Vec::new();
    for (partition, stream, kind, queue, group) in wanted {
        let length: u64 = redis::cmd("XLEN")
            .arg(&stream)
            .query_async(&mut conn)
            .await
            .map_err(|e| err(c, e))?;
        let pending: u64 = match redis::cmd("XPENDING")
            .arg(&stream)
            .arg(group)
            .query_async::<StreamPendingReply>(&mut conn)
            .await
        {
            Ok(r) => r.count() as u64,
            Err(e) if absent(&e) => 0,
            Err(e) => return Err(err(c, e)),
        };
        let consumers: Vec<ConsumerStats> = match redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&stream)
            .arg(group)
            .query_async::<StreamInfoConsumersReply>(&mut conn)
            .await
        {
            Ok(r) => r
                .consumers
                .into_iter()
                .map(|x| ConsumerStats {
                    name: x.name,
                    pending: x.pending as u64,
                    idle_ms: x.idle as u64,
                })
                .collect(),
            Err(e) if absent(&e) => Vec::new(),
            Err(e) => return Err(err(c, e)),
        };
        if let Some(q) = &queue {
            *queues.entry(q.clone()).or_default() += length;
        }
        if length > 0 || pending > 0 || !consumers.is_empty() {
            streams.push(StreamStats {
                stream,
                partition,
                kind: kind.to_string(),
                queue,
                length,
                group: group.to_string(),
                pending,
                consumers,
            });
        }
    }

    let (coordinators, workers): (Scored, Scored) = redis::pipe()
        .cmd("ZREVRANGE")
        .arg(c.keys.coordinators())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .cmd("ZREVRANGE")
        .arg(c.keys.workers())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .map_err(|e| err(c, e))?;
    let live = |list: Vec<(String, f64)>| {
        list.into_iter()
            .map(|(id, seen)| LiveProcess {
                id,
                last_seen_ms_ago: (now - seen as i64).max(0),
            })
            .collect::<Vec<_>>()
    };

    Ok(Stats {
        namespace: c.keys.namespace().to_string(),
        partitions: c.keys.partitions(),
        server_time_ms: now,
        instances,
        open_tasks,
        timers,
        schedules,
        delayed_starts,
        queues,
        streams,
        dlq,
        leases,
        coordinators: live(coordinators),
        workers: live(workers),
        messages: message_counts(&counters),
        kept_messages,
        outbox,
        counters,
    })
}

/// The message counts in the summed counters.
fn message_counts(counters: &BTreeMap<String, i64>) -> MessageCounts {
    let get = |k: &str| counters.get(k).copied().unwrap_or(0).max(0) as u64;
    MessageCounts {
        delivered: get(counter::DELIVERED),
        kept: get(counter::KEPT),
        expired: get(counter::EXPIRED),
        duplicates: get(counter::DUPLICATES),
    }
}

/// The dead letters of every partition, oldest first per partition, at most `limit` in all.
pub async fn dead_letters(c: &Connections, limit: usize) -> Result<Vec<DeadLetter>, RedisError> {
    let mut out = Vec::new();
    for part in c.keys.all_parts() {
        if out.len() >= limit {
            break;
        }
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(part.dlq())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg((limit - out.len()).min(i64::MAX as usize))
            .query_async(&mut c.conn.clone())
            .await
            .map_err(|e| err(c, e))?;
        for entry in reply.ids {
            let text = |k: &str| entry.get::<String>(k).unwrap_or_default();
            let size = entry.get::<Vec<u8>>("m").map_or(0, |m| m.len());
            out.push(DeadLetter {
                id: format!("{}/{}", part.partition, entry.id),
                partition: part.partition,
                source: text("source"),
                group: text("group"),
                message_id: text("id"),
                error: text("error"),
                deliveries: entry.get::<u64>("deliveries").unwrap_or(0),
                size,
            });
        }
    }
    Ok(out)
}

/// Parses `P/STREAM-ID`; `None` for anything else or a partition out of range.
fn parse_id(c: &Connections, id: &str) -> Option<(PartitionKeys, String)> {
    let (p, entry) = id.split_once('/')?;
    let p: u16 = p.parse().ok()?;
    if p >= c.keys.partitions() || entry.is_empty() {
        return None;
    }
    Some((c.keys.part(p), entry.to_string()))
}

/// Every dead letter's id, for `--all`.
async fn all_ids(c: &Connections) -> Result<Vec<String>, RedisError> {
    Ok(dead_letters(c, usize::MAX)
        .await?
        .into_iter()
        .map(|d| d.id)
        .collect())
}

/// Puts dead letters back on the streams they came from (each atomically: added there and
/// removed from the dead-letter stream); `None` replays all of them.
pub async fn replay(c: &Connections, ids: Option<&[String]>) -> Result<DlqOutcome, RedisError> {
    let ids = match ids {
        Some(ids) => ids.to_vec(),
        None => all_ids(c).await?,
    };
    let mut outcome = DlqOutcome::default();
    for id in ids {
        let Some((part, entry)) = parse_id(c, &id) else {
            outcome.missing.push(id);
            continue;
        };
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(part.dlq())
            .arg(&entry)
            .arg(&entry)
            .query_async(&mut c.conn.clone())
            .await
            .map_err(|e| err(c, e))?;
        let Some(source) = reply.ids.first().and_then(|e| e.get::<String>("source")) else {
            outcome.missing.push(id);
            continue;
        };
        // Only a stream of the same partition (same slot) may receive it.
        if !source.starts_with(&format!("{}:", part.tag())) {
            return Err(RedisError::Corrupt(format!(
                "dead letter {id} names source stream {source:?}, outside partition {}",
                part.partition
            )));
        }
        let added: redis::Value = scripts::DLQ_REPLAY
            .key(part.dlq())
            .key(&source)
            .arg(&entry)
            .invoke_async(&mut c.conn.clone())
            .await
            .map_err(|e| err(c, e))?;
        match added {
            redis::Value::Int(0) => outcome.missing.push(id),
            _ => outcome.done.push(id),
        }
    }
    Ok(outcome)
}

/// Drops dead letters; `None` drops all of them.
pub async fn purge(c: &Connections, ids: Option<&[String]>) -> Result<DlqOutcome, RedisError> {
    let ids = match ids {
        Some(ids) => ids.to_vec(),
        None => all_ids(c).await?,
    };
    let mut outcome = DlqOutcome::default();
    for id in ids {
        let Some((part, entry)) = parse_id(c, &id) else {
            outcome.missing.push(id);
            continue;
        };
        let deleted: u64 = redis::cmd("XDEL")
            .arg(part.dlq())
            .arg(&entry)
            .query_async(&mut c.conn.clone())
            .await
            .map_err(|e| err(c, e))?;
        if deleted > 0 {
            outcome.done.push(id);
        } else {
            outcome.missing.push(id);
        }
    }
    Ok(outcome)
}

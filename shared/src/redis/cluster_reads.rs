//! `XREAD` over the streams of several partitions, on any topology.
//!
//! On one server (or with Sentinel) such an `XREAD` is one command, blocking or not. On a
//! Redis Cluster the streams of different partitions are in different slots, which one
//! command may not span (ARCHITECTURE.md invariant 12): the server refuses a multi-slot
//! command with `CROSSSLOT` even when both slots are on the same node. So on a cluster:
//!
//! - a read that does not block becomes one `XREAD` per stream, sent as one pipeline
//!   (which [`RedisConnection`] sends as one pipeline per slot, in parallel), and the
//!   replies are merged into the reply the single `XREAD` would have given ([`xread`]);
//! - a blocking read goes through a [`ClusterReader`]: one blocking `XREAD` per partition
//!   slot (all the streams of a partition share its slot, so one command reads them all),
//!   all at once, each on a socket of its own to the master of its slot. The reader keeps
//!   "lanes", cluster connections that each hold one socket per master: the k-th slot being
//!   read on a node goes on lane k, so a node gets as many blocking sockets as it has
//!   partitions being read, and no more. The first read to answer wakes the caller; the
//!   others stay in flight and are taken up by the next call (their entries filtered to
//!   what that call asked for), so no read is ever abandoned on a socket that is then used
//!   again. Lanes follow `MOVED`, `ASK` and failovers like any cluster connection, and the
//!   reader re-reads the slot map after an error and every [`SLOT_MAP_AGE`].
//!
//! A blocking read on a cluster connection without a reader (which nothing in Weir sends)
//! polls every [`CLUSTER_POLL`] instead.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Arg, Cmd, FromRedisValue, RedisResult, Value};
use tokio::task::JoinHandle;

use super::connection::RedisConnection;
use super::slots::key_slot;

/// How old a [`ClusterReader`]'s slot map may get before it is read again.
pub const SLOT_MAP_AGE: Duration = Duration::from_secs(10);

/// How often a blocking multi-partition read on a cluster connection without a
/// [`ClusterReader`] looks for new entries.
pub const CLUSTER_POLL: Duration = Duration::from_millis(50);

/// Runs an `XREAD [COUNT n] [BLOCK ms] STREAMS key... id...` built by the caller on
/// `conn`: as it is on one server or with Sentinel, and as one read per stream on a
/// cluster (see the module doc). The reply is the same either way.
pub async fn xread<T: FromRedisValue>(cmd: &Cmd, conn: &mut RedisConnection) -> RedisResult<T> {
    let RedisConnection::Cluster(_) = conn else {
        return cmd.query_async(conn).await;
    };
    let Some(read) = XRead::parse(cmd) else {
        // Not a shape this module knows: let the cluster judge it.
        return cmd.query_async(conn).await;
    };
    if read.keys.len() <= 1 {
        return cmd.query_async(conn).await;
    }
    let ids = fix_dollar_ids(&read, conn).await?;
    let deadline = read.block.map(|b| Instant::now() + b);
    loop {
        let mut pipe = redis::pipe();
        for (key, id) in read.keys.iter().zip(&ids) {
            let part = pipe.cmd("XREAD");
            if let Some(count) = read.count {
                part.arg("COUNT").arg(count);
            }
            part.arg("STREAMS").arg(key).arg(id);
        }
        let replies: Vec<Value> = pipe.query_async(conn).await?;
        let merged = merge(replies);
        let found = !matches!(&merged, Value::Nil);
        let past = match (read.block, deadline) {
            // BLOCK 0 waits for ever.
            (Some(b), _) if b.is_zero() => false,
            (_, Some(deadline)) => Instant::now() >= deadline,
            _ => true,
        };
        if found || past {
            return T::from_redis_value(merged).map_err(Into::into);
        }
        tokio::time::sleep(CLUSTER_POLL).await;
    }
}

/// `$` means "what is added from now on": fixes it to each stream's last id, so that a
/// read repeated or split per slot does not move the start along.
async fn fix_dollar_ids(read: &XRead, conn: &mut RedisConnection) -> RedisResult<Vec<String>> {
    let mut ids = read.ids.clone();
    if ids.iter().any(|id| id == "$") {
        let mut pipe = redis::pipe();
        for key in &read.keys {
            pipe.cmd("XREVRANGE")
                .arg(key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
        }
        let lasts: Vec<Vec<(String, Value)>> = pipe.query_async(conn).await?;
        for (id, last) in ids.iter_mut().zip(lasts) {
            if id == "$" {
                *id = last
                    .into_iter()
                    .next()
                    .map(|(last_id, _)| last_id)
                    .unwrap_or_else(|| "0-0".to_string());
            }
        }
    }
    Ok(ids)
}

/// Blocking multi-partition `XREAD`s on a Redis Cluster, one blocking read per partition
/// slot on a socket of its own (see the module doc). Kept by a
/// [`super::connect::BlockingConnection`], and pooled with it.
pub struct ClusterReader {
    /// Makes lane connections (no response timeout).
    client: ClusterClient,
    /// Lane k carries the k-th slot read on each node; `None` until needed, or after its
    /// socket was left with a read nobody will take up.
    lanes: Vec<Option<ClusterConnection>>,
    /// The read in flight on each slot.
    reads: HashMap<u16, InFlight>,
    /// The master (`host:port`) of each slot range, and when it was read.
    slot_map: Option<(Instant, Vec<SlotRange>)>,
}

/// A range of slots and its master: (first slot, last slot, `host:port`).
pub type SlotRange = (u16, u16, String);

/// A blocking read sent and not answered yet.
struct InFlight {
    keys: Vec<Vec<u8>>,
    ids: Vec<StreamId>,
    lane: usize,
    node: String,
    task: JoinHandle<RedisResult<Value>>,
}

impl Drop for ClusterReader {
    fn drop(&mut self) {
        // Dropping the task drops its handle on the lane; once the lanes go too, their
        // sockets close and the server lets go of the blocked reads.
        for read in self.reads.values() {
            read.task.abort();
        }
    }
}

impl ClusterReader {
    /// A reader whose lanes `client` connects (a client without a response timeout).
    pub fn new(client: ClusterClient) -> ClusterReader {
        ClusterReader {
            client,
            lanes: Vec::new(),
            reads: HashMap::new(),
            slot_map: None,
        }
    }

    /// Runs a blocking `XREAD … BLOCK ms STREAMS key… id…` built by the caller: one
    /// blocking read per slot, answered as the single `XREAD` would have been. `shared`
    /// (an ordinary connection) reads the slot map and the ids `$` stands for. Commands of
    /// another shape go to `shared`'s [`xread`].
    pub async fn xread<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        shared: &mut RedisConnection,
    ) -> RedisResult<T> {
        let read = match XRead::parse(cmd) {
            Some(read) if read.block.is_some() && read.keys.len() > 1 => read,
            _ => return xread(cmd, shared).await,
        };
        let ids = fix_dollar_ids(&read, shared).await?;
        let mut after: HashMap<Vec<u8>, StreamId> = HashMap::new();
        for (key, id) in read.keys.iter().zip(&ids) {
            after.insert(key.clone(), StreamId::parse(id)?);
        }
        // The keys (and their ids) of each slot, in the order of the command.
        let mut slots: Vec<(u16, Vec<Vec<u8>>)> = Vec::new();
        for key in &read.keys {
            let slot = key_slot(key);
            match slots.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, keys)) => keys.push(key.clone()),
                None => slots.push((slot, vec![key.clone()])),
            }
        }
        let block = read.block.unwrap_or_default();
        // BLOCK 0 waits for ever.
        let deadline = (!block.is_zero()).then(|| tokio::time::Instant::now() + block);
        if self
            .slot_map
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() > SLOT_MAP_AGE)
        {
            self.read_slot_map(shared).await;
        }
        loop {
            for (slot, keys) in &slots {
                let wanted: Vec<StreamId> = keys.iter().map(|k| after[k]).collect();
                if let Some(read) = self.reads.get(slot) {
                    // A read from earlier ids than these can be taken up: what it brings
                    // is filtered to what comes after them. Any other cannot.
                    let usable = &read.keys == keys
                        && read.ids.iter().zip(&wanted).all(|(old, new)| old <= new);
                    if usable {
                        continue;
                    }
                    self.abandon(*slot);
                }
                let remaining = match deadline {
                    Some(deadline) => {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        (left.as_millis() as u64).max(1)
                    }
                    None => 0,
                };
                self.launch(*slot, keys, &wanted, read.count, remaining)
                    .await?;
            }
            let waiting: Vec<u16> = slots.iter().map(|(s, _)| *s).collect();
            let answered = {
                let reads = &mut self.reads;
                let first = std::future::poll_fn(|cx| {
                    let mut done = Vec::new();
                    for slot in &waiting {
                        if let Some(read) = reads.get_mut(slot) {
                            if let Poll::Ready(out) = Pin::new(&mut read.task).poll(cx) {
                                done.push((*slot, out));
                            }
                        }
                    }
                    if done.is_empty() {
                        Poll::Pending
                    } else {
                        Poll::Ready(done)
                    }
                });
                match deadline {
                    Some(deadline) => match tokio::time::timeout_at(deadline, first).await {
                        Ok(done) => done,
                        Err(_) => return T::from_redis_value(Value::Nil).map_err(Into::into),
                    },
                    None => first.await,
                }
            };
            let mut replies = Vec::new();
            let mut failed = None;
            for (slot, out) in answered {
                self.reads.remove(&slot);
                match out {
                    Ok(Ok(value)) => replies.push(entries_after(value, &after)),
                    Ok(Err(e)) => failed = Some(e),
                    Err(e) => {
                        failed = Some(redis::RedisError::from((
                            redis::ErrorKind::Io,
                            "a blocking cluster read stopped",
                            e.to_string(),
                        )))
                    }
                }
            }
            if let Some(e) = failed {
                // The slots may have moved: read the map again next time.
                self.slot_map = None;
                return Err(e);
            }
            let merged = merge(replies);
            if !matches!(merged, Value::Nil) {
                return T::from_redis_value(merged).map_err(Into::into);
            }
            // Only entries this call had already seen, or a read whose block ended before
            // this call's: read again.
        }
    }

    /// Sends the blocking read of one slot on the first lane free on its node.
    async fn launch(
        &mut self,
        slot: u16,
        keys: &[Vec<u8>],
        ids: &[StreamId],
        count: Option<u64>,
        block_ms: u64,
    ) -> RedisResult<()> {
        let node = self.node_of(slot);
        let busy: Vec<usize> = self
            .reads
            .values()
            .filter(|r| r.node == node)
            .map(|r| r.lane)
            .collect();
        let lane = (0..).find(|l| !busy.contains(l)).unwrap_or(0);
        if self.lanes.len() <= lane {
            self.lanes.resize(lane + 1, None);
        }
        let mut conn = match &self.lanes[lane] {
            Some(conn) => conn.clone(),
            None => {
                let conn = self.client.get_async_connection().await?;
                self.lanes[lane] = Some(conn.clone());
                conn
            }
        };
        let mut cmd = redis::cmd("XREAD");
        if let Some(count) = count {
            cmd.arg("COUNT").arg(count);
        }
        cmd.arg("BLOCK").arg(block_ms).arg("STREAMS");
        for key in keys {
            cmd.arg(key);
        }
        for id in ids {
            cmd.arg(id.to_string());
        }
        let task = tokio::spawn(async move { cmd.query_async::<Value>(&mut conn).await });
        self.reads.insert(
            slot,
            InFlight {
                keys: keys.to_vec(),
                ids: ids.to_vec(),
                lane,
                node,
                task,
            },
        );
        Ok(())
    }

    /// Gives up the read in flight on `slot`: its lane's socket on that node stays blocked
    /// until the read ends, so the lane gets a new connection.
    fn abandon(&mut self, slot: u16) {
        if let Some(read) = self.reads.remove(&slot) {
            read.task.abort();
            if let Some(lane) = self.lanes.get_mut(read.lane) {
                *lane = None;
            }
        }
    }

    /// The master of `slot` by the last slot map read (empty when unknown: such slots
    /// share lanes as if on one node, which costs waiting, never correctness).
    fn node_of(&self, slot: u16) -> String {
        self.slot_map
            .as_ref()
            .and_then(|(_, ranges)| {
                ranges
                    .iter()
                    .find(|(start, end, _)| (*start..=*end).contains(&slot))
            })
            .map(|(_, _, node)| node.clone())
            .unwrap_or_default()
    }

    /// Reads the slot map (`CLUSTER SLOTS`); keeps none when the cluster does not answer.
    async fn read_slot_map(&mut self, shared: &mut RedisConnection) {
        let reply: RedisResult<Value> =
            redis::cmd("CLUSTER").arg("SLOTS").query_async(shared).await;
        self.slot_map = reply
            .ok()
            .and_then(|reply| slot_ranges(&reply))
            .map(|ranges| (Instant::now(), ranges));
    }
}

/// `CLUSTER SLOTS` as (first slot, last slot, master `host:port`).
pub fn slot_ranges(reply: &Value) -> Option<Vec<SlotRange>> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    ranges
        .iter()
        .map(|range| {
            let Value::Array(fields) = range else {
                return None;
            };
            let start: u16 = redis::from_redis_value_ref(fields.first()?).ok()?;
            let end: u16 = redis::from_redis_value_ref(fields.get(1)?).ok()?;
            let Value::Array(master) = fields.get(2)? else {
                return None;
            };
            let host: String = redis::from_redis_value_ref(master.first()?).ok()?;
            let port: u16 = redis::from_redis_value_ref(master.get(1)?).ok()?;
            Some((start, end, format!("{host}:{port}")))
        })
        .collect()
}

/// A stream entry id (`ms-seq`), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct StreamId(u64, u64);

impl StreamId {
    /// `ms-seq`, or `ms` (sequence 0).
    fn parse(id: &str) -> RedisResult<StreamId> {
        let bad = || {
            redis::RedisError::from((redis::ErrorKind::Client, "not a stream id", id.to_string()))
        };
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        Ok(StreamId(
            ms.parse().map_err(|_| bad())?,
            seq.parse().map_err(|_| bad())?,
        ))
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// The entries of an `XREAD` reply that come after the id in `after` of their stream: a
/// read taken up from earlier ids brings entries the caller has seen.
fn entries_after(reply: Value, after: &HashMap<Vec<u8>, StreamId>) -> Value {
    let streams: Vec<Value> = match reply {
        Value::Array(items) => items,
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(key, entries)| Value::Array(vec![key, entries]))
            .collect(),
        _ => return Value::Nil,
    };
    let mut kept = Vec::new();
    for stream in streams {
        let Value::Array(mut parts) = stream else {
            continue;
        };
        if parts.len() != 2 {
            continue;
        }
        let entries = parts.pop();
        let key = parts.pop();
        let (Some(key), Some(Value::Array(entries))) = (key, entries) else {
            continue;
        };
        let from = match &key {
            Value::BulkString(bytes) => after.get(bytes).copied(),
            Value::SimpleString(text) => after.get(text.as_bytes()).copied(),
            _ => None,
        };
        let entries: Vec<Value> = entries
            .into_iter()
            .filter(|entry| {
                let id = match entry {
                    Value::Array(fields) => fields
                        .first()
                        .and_then(|id| redis::from_redis_value_ref::<String>(id).ok())
                        .and_then(|id| StreamId::parse(&id).ok()),
                    _ => None,
                };
                match (id, from) {
                    (Some(id), Some(from)) => id > from,
                    _ => true,
                }
            })
            .collect();
        if !entries.is_empty() {
            kept.push(Value::Array(vec![key, Value::Array(entries)]));
        }
    }
    if kept.is_empty() {
        Value::Nil
    } else {
        Value::Array(kept)
    }
}

/// The parts of an `XREAD` command.
struct XRead {
    count: Option<u64>,
    block: Option<Duration>,
    keys: Vec<Vec<u8>>,
    ids: Vec<String>,
}

impl XRead {
    fn parse(cmd: &Cmd) -> Option<XRead> {
        let args: Vec<&[u8]> = cmd
            .args_iter()
            .filter_map(|a| match a {
                Arg::Simple(bytes) => Some(bytes),
                _ => None,
            })
            .collect();
        if !args.first()?.eq_ignore_ascii_case(b"XREAD") {
            return None;
        }
        let number = |a: &[u8]| std::str::from_utf8(a).ok()?.parse::<u64>().ok();
        let mut read = XRead {
            count: None,
            block: None,
            keys: Vec::new(),
            ids: Vec::new(),
        };
        let mut i = 1;
        while i < args.len() {
            let word = args[i].to_ascii_uppercase();
            match word.as_slice() {
                b"COUNT" => read.count = Some(number(args.get(i + 1)?)?),
                b"BLOCK" => read.block = Some(Duration::from_millis(number(args.get(i + 1)?)?)),
                b"STREAMS" => {
                    let rest = &args[i + 1..];
                    if rest.is_empty() || rest.len() % 2 != 0 {
                        return None;
                    }
                    let (keys, ids) = rest.split_at(rest.len() / 2);
                    read.keys = keys.iter().map(|k| k.to_vec()).collect();
                    read.ids = ids
                        .iter()
                        .map(|id| String::from_utf8_lossy(id).into_owned())
                        .collect();
                    return Some(read);
                }
                _ => return None,
            }
            i += 2;
        }
        None
    }
}

/// Merges per-stream `XREAD` replies into one: the streams that had entries, in order, or
/// nil when none had (RESP2 arrays of `[key, entries]`; RESP3 maps are turned into those).
fn merge(replies: Vec<Value>) -> Value {
    let mut streams = Vec::new();
    for reply in replies {
        match reply {
            Value::Array(items) => streams.extend(items),
            Value::Map(pairs) => streams.extend(
                pairs
                    .into_iter()
                    .map(|(key, entries)| Value::Array(vec![key, entries])),
            ),
            _ => {}
        }
    }
    if streams.is_empty() {
        Value::Nil
    } else {
        Value::Array(streams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_xread_is_taken_apart() {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(5).arg("BLOCK").arg(200);
        cmd.arg("STREAMS").arg("a").arg("b").arg("0").arg("$");
        let read = XRead::parse(&cmd).expect("parsed");
        assert_eq!(read.count, Some(5));
        assert_eq!(read.block, Some(Duration::from_millis(200)));
        assert_eq!(read.keys, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(read.ids, vec!["0".to_string(), "$".to_string()]);
        let mut odd = redis::cmd("XREAD");
        odd.arg("STREAMS").arg("a").arg("b").arg("0");
        assert!(XRead::parse(&odd).is_none());
        assert!(XRead::parse(&redis::cmd("GET")).is_none());
    }

    #[test]
    fn replies_merge_in_order_and_none_is_nil() {
        let stream = |k: &str| {
            Value::Array(vec![Value::Array(vec![
                Value::BulkString(k.as_bytes().to_vec()),
                Value::Array(vec![]),
            ])])
        };
        assert_eq!(merge(vec![Value::Nil, Value::Nil]), Value::Nil);
        let merged = merge(vec![stream("a"), Value::Nil, stream("c")]);
        let Value::Array(items) = merged else {
            panic!("not an array");
        };
        assert_eq!(items.len(), 2);
    }
}

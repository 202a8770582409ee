//! `XREAD` over the streams of several partitions, on any topology.
//!
//! On one server (or with Sentinel) such an `XREAD` is one command, blocking or not. On a
//! Redis Cluster the streams of different partitions are in different slots, which one
//! command may not span (ARCHITECTURE.md invariant 12). There the read becomes one
//! `XREAD` per stream, sent as one pipeline (which [`RedisConnection`] sends as one
//! pipeline per slot, in parallel), and the replies are merged into the reply the single
//! `XREAD` would have given. A blocking read on a cluster polls that way every
//! [`CLUSTER_POLL`] until an entry comes or its block time has passed, so it costs at most
//! that much latency; one blocking read per node is left for later.

use std::time::{Duration, Instant};

use redis::{Arg, Cmd, FromRedisValue, RedisResult, Value};

use super::connection::RedisConnection;

/// How often a blocking multi-partition read on a cluster looks for new entries.
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
    let mut ids = read.ids.clone();
    // `$` means "what is added from now on": fix it to each stream's last id, so that the
    // polls after the first do not move the start along.
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
        for ((id, last), _key) in ids.iter_mut().zip(lasts).zip(&read.keys) {
            if id == "$" {
                *id = last
                    .into_iter()
                    .next()
                    .map(|(last_id, _)| last_id)
                    .unwrap_or_else(|| "0-0".to_string());
            }
        }
    }
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

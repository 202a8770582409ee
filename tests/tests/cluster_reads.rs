//! Blocking reads over every partition on a real Redis Cluster: one blocking `XREAD` per
//! partition slot, waiting on the master of each at once (no polling), woken by an entry
//! on any of them, and the same sockets reused by the next read and the next user of the
//! pooled blocking connection.

use std::time::{Duration, Instant};

use weir::redis::{BlockingConnection, Connections, RedisConfig};
use weir_tests::{wait_until_async, RedisCluster};

/// How long a test waits for the reads to be blocked on the nodes.
const SETTLE: Duration = Duration::from_secs(10);

/// The number of clients blocked in an `XREAD` on each node of the cluster.
fn blocked_reads(cluster: &mut RedisCluster) -> anyhow::Result<Vec<usize>> {
    let mut counts = Vec::new();
    for i in 0..cluster.len() {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut cluster.node(i).connection()?)?;
        counts.push(
            list.lines()
                .filter(|line| {
                    line.contains(" cmd=xread ")
                        && line
                            .split_whitespace()
                            .any(|f| f.starts_with("flags=") && f.contains('b'))
                })
                .count(),
        );
    }
    Ok(counts)
}

/// A blocking read of the event streams of every partition, after `ids` (one per
/// partition), in a task; it gives back the connection, and the streams that had entries.
fn read_events(
    conns: &Connections,
    mut conn: BlockingConnection,
    ids: Vec<String>,
) -> tokio::task::JoinHandle<anyhow::Result<(BlockingConnection, Vec<String>)>> {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT")
        .arg(10)
        .arg("BLOCK")
        .arg(20_000)
        .arg("STREAMS");
    for part in conns.keys.all_parts() {
        cmd.arg(part.events());
    }
    for id in ids {
        cmd.arg(id);
    }
    tokio::spawn(async move {
        let reply: Option<redis::streams::StreamReadReply> = conn.xread(&cmd).await?;
        let keys = reply
            .map(|r| r.keys.into_iter().map(|k| k.key).collect())
            .unwrap_or_default();
        Ok((conn, keys))
    })
}

async fn add_event(conns: &Connections, stream: &str) -> anyhow::Result<String> {
    Ok(redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("e")
        .arg("{}")
        .query_async(&mut conns.conn.clone())
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_read_over_all_partitions_waits_on_every_master_and_reuses_its_sockets(
) -> anyhow::Result<()> {
    let mut cluster = RedisCluster::start()?;
    let conns = Connections::connect(&RedisConfig::new(cluster.urls(), "t")).await?;
    let parts: Vec<_> = conns.keys.all_parts().collect();
    let n = parts.len();
    let masters = {
        let mut masters = std::collections::BTreeSet::new();
        for part in &parts {
            let slot = cluster.slot_of(&part.events())?;
            masters.insert(cluster.master_of_slot(slot)?);
        }
        masters
    };
    assert!(masters.len() > 1, "the partitions are on one master");

    // The first read: one blocking XREAD per partition, on the masters that own them.
    let conn = conns.blocking().await?;
    let read = read_events(&conns, conn, vec!["$".to_string(); n]);
    wait_until_async(SETTLE, "a blocked read on every partition", async || {
        blocked_reads(&mut cluster).is_ok_and(|c| c.iter().sum::<usize>() == n)
    })
    .await?;
    let per_node = blocked_reads(&mut cluster)?;
    for (i, count) in per_node.iter().enumerate() {
        assert_eq!(*count > 0, masters.contains(&i), "node {i}: {per_node:?}");
    }
    // An entry on one partition wakes it at once, with that entry only.
    let woke_at = Instant::now();
    let first = add_event(&conns, &parts[5].events()).await?;
    let (conn, keys) = tokio::time::timeout(Duration::from_secs(5), read).await???;
    assert!(woke_at.elapsed() < Duration::from_secs(2));
    assert_eq!(keys, vec![parts[5].events()]);

    // The next read, after that entry, takes up the reads still in flight: no more
    // blocked reads than partitions, and it wakes on another partition's entry.
    let mut ids = vec!["0-0".to_string(); n];
    for (i, part) in parts.iter().enumerate() {
        let last: Vec<(String, redis::Value)> = redis::cmd("XREVRANGE")
            .arg(part.events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conns.conn.clone())
            .await?;
        if let Some((id, _)) = last.into_iter().next() {
            ids[i] = id;
        }
    }
    assert_eq!(ids[5], first);
    let read = read_events(&conns, conn, ids.clone());
    wait_until_async(SETTLE, "the second read blocked", async || {
        blocked_reads(&mut cluster).is_ok_and(|c| c.iter().sum::<usize>() == n)
    })
    .await?;
    add_event(&conns, &parts[2].events()).await?;
    let (conn, keys) = tokio::time::timeout(Duration::from_secs(5), read).await???;
    assert_eq!(keys, vec![parts[2].events()]);
    assert_eq!(blocked_reads(&mut cluster)?.iter().sum::<usize>(), n - 1);

    // Back to the pool, and out again for the next user: still no more than one blocked
    // read per partition (the pooled reader's reads are taken up, not abandoned).
    drop(conn);
    let conn = conns.blocking().await?;
    let mut fresh = ids.clone();
    // The stream of partition 2 from its new last entry.
    let last: Vec<(String, redis::Value)> = redis::cmd("XREVRANGE")
        .arg(parts[2].events())
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conns.conn.clone())
        .await?;
    fresh[2] = last
        .into_iter()
        .next()
        .map(|(id, _)| id)
        .ok_or_else(|| anyhow::anyhow!("no entry on partition 2"))?;
    let read = read_events(&conns, conn, fresh);
    wait_until_async(SETTLE, "the pooled reader blocked", async || {
        blocked_reads(&mut cluster).is_ok_and(|c| c.iter().sum::<usize>() == n)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(blocked_reads(&mut cluster)?.iter().sum::<usize>(), n);
    add_event(&conns, &parts[7 % n].events()).await?;
    let (_conn, keys) = tokio::time::timeout(Duration::from_secs(5), read).await???;
    assert_eq!(keys, vec![parts[7 % n].events()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_read_on_a_cluster_returns_nothing_when_its_time_is_up() -> anyhow::Result<()> {
    let cluster = RedisCluster::start()?;
    let conns = Connections::connect(&RedisConfig::new(cluster.urls(), "t")).await?;
    let mut conn = conns.blocking().await?;
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("BLOCK").arg(300).arg("STREAMS");
    let parts: Vec<_> = conns.keys.all_parts().collect();
    for part in &parts {
        cmd.arg(part.events());
    }
    for _ in &parts {
        cmd.arg("$");
    }
    let started = Instant::now();
    let reply: Option<redis::streams::StreamReadReply> = conn.xread(&cmd).await?;
    assert!(reply.is_none());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    Ok(())
}

//! Weir's connections on a real Redis Cluster and a real Sentinel setup: cluster mode is
//! detected from one node's URL or a seed list, passwords work, blocking reads have their
//! own connections (no head-of-line blocking of ordinary commands), a partition's keys
//! follow a slot migration and a master failover, and a Sentinel URL follows the primary
//! through a failover.

use std::time::{Duration, Instant};

use weir::redis::keys::DEFAULT_PARTITIONS;
use weir::redis::{Connections, RedisConfig, RedisError, RedisMode};
use weir_tests::{wait_until_async, RedisCluster, RedisSentinel};

/// How long the tests wait for a failover to be followed.
const FOLLOW: Duration = Duration::from_secs(30);

async fn set_get(conns: &Connections, key: &str, value: &str) -> anyhow::Result<()> {
    let mut conn = conns.conn.clone();
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(&mut conn)
        .await?;
    let got: String = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
    anyhow::ensure!(got == value, "{key}: {got} != {value}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_is_detected_from_one_node_or_seeds_and_blocking_reads_do_not_block_others(
) -> anyhow::Result<()> {
    let mut cluster = RedisCluster::builder().password("s3cret").start()?;

    // Any single node's URL is enough; so is the seed list.
    for url in [cluster.url(4), cluster.urls()] {
        let conns = Connections::connect(&RedisConfig::new(&url, "t")).await?;
        assert_eq!(conns.conn.mode(), "cluster");
        assert!(
            !conns.display_url.contains("s3cret"),
            "{}",
            conns.display_url
        );
        // Every partition's keys, on whichever master owns their slot.
        for part in conns.keys.all_parts() {
            set_get(&conns, &part.stats(), "1").await?;
        }
        assert!(conns.server_time().await? > 1_700_000_000_000);
    }
    // Without the password the cluster refuses.
    let no_auth = cluster.url(0).replace(":s3cret@", "");
    let err = Connections::connect(&RedisConfig::new(no_auth, "t"))
        .await
        .unwrap_err();
    assert!(matches!(err, RedisError::Unreachable { .. }), "{err:?}");
    // Cluster mode can be forced instead of detected.
    let forced =
        Connections::connect(&RedisConfig::new(cluster.url(1), "t").with_mode(RedisMode::Cluster))
            .await?;
    assert_eq!(forced.conn.mode(), "cluster");
    set_get(&forced, &forced.keys.part(5).stats(), "2").await?;

    // A blocking read of one partition waits on its own connection: ordinary commands
    // go on meanwhile, and the read wakes up when an entry arrives.
    let conns = Connections::connect(&RedisConfig::new(cluster.urls(), "t")).await?;
    let part = conns.keys.part(3);
    let stream = part.events();
    let mut reader = conns.dedicated().await?;
    let blocked = {
        let stream = stream.clone();
        tokio::spawn(async move {
            let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(10_000)
                .arg("STREAMS")
                .arg(&stream)
                .arg("$")
                .query_async(&mut reader)
                .await?;
            Ok::<_, redis::RedisError>(reply.map(|r| r.keys.len()).unwrap_or(0))
        })
    };
    // Ordinary commands to the same node meanwhile answer at once.
    let started = Instant::now();
    for _ in 0..20 {
        let _: i64 = redis::cmd("XLEN")
            .arg(&stream)
            .query_async(&mut conns.conn.clone())
            .await?;
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Make sure the read is blocked before the entry comes (or it would read past it).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("e")
        .arg("{}")
        .query_async(&mut conns.conn.clone())
        .await?;
    let woke = tokio::time::timeout(Duration::from_secs(5), blocked).await???;
    assert_eq!(woke, 1);
    // And a pooled-style blocking connection (BLPOP for command replies).
    let mut blocking = conns.blocking().await?;
    let reply = part.reply("r1");
    let _: () = redis::cmd("RPUSH")
        .arg(&reply)
        .arg("done")
        .query_async(&mut conns.conn.clone())
        .await?;
    let popped: Option<(String, String)> = redis::cmd("BLPOP")
        .arg(&reply)
        .arg(1)
        .query_async(&mut blocking)
        .await?;
    assert_eq!(popped.map(|p| p.1).as_deref(), Some("done"));

    // The default partition count spreads the namespace over all three masters.
    let mut masters = std::collections::BTreeSet::new();
    for p in 0..DEFAULT_PARTITIONS {
        let slot = cluster.slot_of(&conns.keys.part(p).stats())?;
        masters.insert(cluster.master_of_slot(slot)?);
    }
    assert_eq!(masters.len(), 3, "partitions on masters {masters:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_follows_a_slot_migration_and_a_master_failover() -> anyhow::Result<()> {
    let mut cluster = RedisCluster::start()?;
    let conns = Connections::connect(&RedisConfig::new(cluster.url(0), "t")).await?;
    let part = conns.keys.part(0);
    let key = part.stats();
    set_get(&conns, &key, "before").await?;
    let slot = cluster.slot_of(&key)?;

    // Half-way through a migration (ASK for keys already moved), then done (MOVED).
    let from = cluster.master_of_slot(slot)?;
    let to = other_master(&mut cluster, from).ok_or_else(|| anyhow::anyhow!("one master"))?;
    cluster.begin_slot_migration(slot, to)?;
    set_get(&conns, &key, "migrating").await?;
    cluster.finish_slot_migration(slot, to)?;
    set_get(&conns, &key, "moved").await?;
    assert_eq!(cluster.master_of_slot(slot)?, to);

    // The master is killed: after the replica's promotion the same connection carries on.
    let _: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut cluster.node(to).connection()?)?;
    cluster.kill_master_of_slot(slot)?;
    wait_until_async(FOLLOW, "the connection follows the failover", async || {
        set_get(&conns, &key, "after").await.is_ok()
    })
    .await?;
    Ok(())
}

/// A master other than `not`.
fn other_master(cluster: &mut RedisCluster, not: usize) -> Option<usize> {
    (0..weir_tests::redis_cluster::SLOTS)
        .step_by(500)
        .filter_map(|slot| cluster.master_of_slot(slot).ok())
        .find(|m| *m != not)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_url_follows_the_primary_through_a_failover() -> anyhow::Result<()> {
    let mut setup = RedisSentinel::start()?;
    let conns = Connections::connect(&RedisConfig::new(setup.url(), "t")).await?;
    assert_eq!(conns.conn.mode(), "sentinel");
    set_get(&conns, "k", "before").await?;
    let synced: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut conns.conn.clone())
        .await?;
    assert_eq!(synced, 1);
    let mut reader = conns.dedicated().await?;
    setup.kill_primary()?;
    wait_until_async(FOLLOW, "writes reach the promoted primary", async || {
        set_get(&conns, "k2", "after").await.is_ok()
    })
    .await?;
    let kept: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut conns.conn.clone())
        .await?;
    assert_eq!(kept, "before");
    // A blocking reader's own connection follows too, after its first failure.
    wait_until_async(
        FOLLOW,
        "the reader reaches the promoted primary",
        async || {
            redis::cmd("GET")
                .arg("k")
                .query_async::<String>(&mut reader)
                .await
                .is_ok()
        },
    )
    .await?;
    // What the promoted server holds is what Weir reads.
    let on_new: String = redis::cmd("GET")
        .arg("k2")
        .query(&mut setup.server(1).connection()?)?;
    assert_eq!(on_new, "after");
    Ok(())
}

//! A Redis Cluster connection that stops answering is replaced
//! (`weir::redis::cluster_healing`): after three request timeouts in a row, the clones of
//! a connection go on through a new one, and an answer in between resets the count.

use std::time::Duration;

use weir::redis::{Connections, RedisConfig, RedisConnection, RedisMode};
use weir_tests::process::signal;
use weir_tests::redis_cluster::RedisCluster;
use weir_tests::wait_until_async;

fn replacements(conn: &RedisConnection) -> u64 {
    match conn {
        RedisConnection::Cluster(c) => c.replacements(),
        _ => 0,
    }
}

/// Sends `n` reads of `key` through `conn`, each of which must time out.
async fn assert_timeouts(conn: &mut RedisConnection, key: &str, n: usize) {
    for _ in 0..n {
        let stalled: redis::RedisResult<Option<String>> =
            redis::cmd("GET").arg(key).query_async(conn).await;
        assert!(
            stalled.as_ref().is_err_and(|e| e.is_timeout()),
            "{stalled:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_connection_that_times_out_three_times_in_a_row_is_replaced() -> anyhow::Result<()>
{
    let mut cluster = RedisCluster::start()?;
    let mut config = RedisConfig::new(cluster.urls(), "heal").with_mode(RedisMode::Cluster);
    config.response_timeout = Duration::from_millis(400);
    let conns = Connections::connect(&config).await?;
    let mut conn = conns.conn.clone();
    let key = "heal:k";
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("v")
        .query_async(&mut conn)
        .await?;

    // Answers, and timeouts with an answer between them, replace nothing.
    let slot = cluster.slot_of(key)?;
    let master = cluster.master_of_slot(slot)?;
    let pid = cluster
        .node(master)
        .pid()
        .ok_or_else(|| anyhow::anyhow!("the master of {key} is not running"))?;
    for _ in 0..2 {
        signal(pid, "STOP")?;
        assert_timeouts(&mut conn, key, 2).await;
        signal(pid, "CONT")?;
        let v: Option<String> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
        assert_eq!(v.as_deref(), Some("v"));
    }
    assert_eq!(replacements(&conn), 0, "replaced though it answered");

    // Three timeouts in a row (well inside the cluster's node timeout, so no failover):
    // the connection is replaced, and every clone goes on through the new one.
    signal(pid, "STOP")?;
    assert_timeouts(&mut conn, key, 3).await;
    signal(pid, "CONT")?;
    wait_until_async(
        Duration::from_secs(20),
        "the connection is replaced",
        async || replacements(&conns.conn) == 1,
    )
    .await?;
    let mut other_clone = conns.conn.clone();
    let v: Option<String> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut other_clone)
        .await?;
    assert_eq!(v.as_deref(), Some("v"));
    assert_eq!(replacements(&conn), 1);
    Ok(())
}

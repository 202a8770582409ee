//! `weir stats` names the Redis node of each partition: on a cluster the master of the
//! partition's slot (ARCHITECTURE.md invariant 12), on one server that server.

use std::collections::BTreeSet;

use weir::redis::slots::key_slot;
use weir::redis::{admin, Connections, RedisConfig};
use weir_tests::{RedisCluster, RedisServer};

/// `redis://127.0.0.1:PORT` -> `127.0.0.1:PORT`.
fn host_port(url: &str) -> String {
    url.trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_names_the_master_of_each_partition_on_a_cluster() -> anyhow::Result<()> {
    let mut cluster = RedisCluster::start()?;
    let c = Connections::connect(&RedisConfig::new(cluster.urls(), "t").with_partitions(8)).await?;
    let stats = admin::stats(&c).await?;
    assert_eq!(stats.leases.len(), 8);
    let mut seen = BTreeSet::new();
    for lease in &stats.leases {
        let slot = key_slot(c.keys.part(lease.partition).commands().as_bytes());
        let master = cluster.master_of_slot(slot)?;
        assert_eq!(
            lease.node,
            host_port(&cluster.url(master)),
            "partition {}",
            lease.partition
        );
        seen.insert(lease.node.clone());
    }
    assert!(seen.len() > 1, "all partitions on one master: {seen:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_names_the_one_server_otherwise() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let c = Connections::connect(&RedisConfig::new(redis.url(), "t")).await?;
    let stats = admin::stats(&c).await?;
    for lease in &stats.leases {
        assert_eq!(lease.node, host_port(&redis.url()), "{lease:?}");
    }
    Ok(())
}

//! Weir on a Redis Cluster whose master is killed mid-run: the coordinator, the worker and
//! the client were given that very node's URL as their only seed; the replica is promoted,
//! every process refreshes its slot map and carries on without a restart, and the
//! instances finish with each transition applied once.

mod common;

use std::time::Duration;

use common::coordinator_config;
use serde_json::json;
use weir::model::InstanceStatus;
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator_with, start_worker};
use weir_tests::{wait_until_async, RedisCluster};

const FLOW: &str = r#"
name: flow
version: "1.0.0"
steps:
  start: { type: machine, handler: set, config: { seen: true } }
  approve: { type: human, assignee: ann }
  cool: { type: timer, duration: 100ms }
  end: { type: machine, handler: set, config: { ended: true } }
edges:
  - { from: start, to: approve }
  - { from: approve, to: cool }
  - { from: cool, to: end }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_finish_across_a_killed_cluster_master() -> anyhow::Result<()> {
    init_logs();
    let mut cluster = RedisCluster::start()?;
    // The seed every process gets is the master that will be killed.
    let probe = client(&cluster.url(0), "t").await?;
    let keys = common::keys(&probe);
    let slot = cluster.slot_of(&keys.part(0).stats())?;
    let victim = cluster.master_of_slot(slot)?;
    drop(probe);
    let url = cluster.url(victim);
    let _coordinator = start_coordinator_with(coordinator_config(&url, "t")).await?;
    let _worker = start_worker(&url, "t").await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let mut ids = Vec::new();
    for i in 0..8 {
        let options = StartOptions {
            id: Some(format!("order-{i}")),
            ..StartOptions::default()
        };
        ids.push(client.start_workflow("flow", options).await?.id);
    }
    for id in &ids {
        let v = client.wait(id, Duration::from_secs(10)).await?;
        assert_eq!(v.status, InstanceStatus::Waiting, "{v:?}");
    }
    // Everything so far is on the replicas too (replication is asynchronous).
    for i in 0..cluster.len() {
        let mut node = cluster.node(i).connection()?;
        let role: String = redis::cmd("INFO").arg("replication").query(&mut node)?;
        if role.contains("role:master") {
            let synced: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut node)?;
            assert_eq!(synced, 1, "node {i}'s replica did not acknowledge");
        }
    }
    let (killed, _) = cluster.kill_master_of_slot(slot)?;
    assert_eq!(killed, victim);

    wait_until_async(
        Duration::from_secs(30),
        "the client reaches the promoted master",
        async || client.get_instance(&ids[0]).await.is_ok(),
    )
    .await?;
    // A completion refused as `not_applied` changed nothing (ARCHITECTURE.md invariant 11),
    // so it is safe to send again while the coordinator takes its partitions back.
    for id in &ids {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match client
                .complete_human_task(id, "approve", "ann", json!({}))
                .await
            {
                Ok(_) => break,
                Err(e)
                    if matches!(e.kind(), "not_applied" | "redis")
                        && std::time::Instant::now() < deadline => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    for id in &ids {
        let v = client.wait(id, Duration::from_secs(30)).await?;
        assert_eq!(v.status, InstanceStatus::Completed, "{v:?}");
        let history = client.history(id).await?;
        let ends = history.iter().filter(|r| &*r.step == "end").count();
        assert_eq!(ends, 1, "the last step recorded {ends} times: {history:?}");
    }
    Ok(())
}

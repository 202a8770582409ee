//! The DLQ commands and the live event feed on a real Redis Cluster, over partitions on
//! every master: `weir dlq list|replay|purge` (the `admin` functions they call) and the
//! blocking event reads of `weir events --follow` and the SSE stream
//! (`WeirClient::read_events` with a block time).

use std::collections::BTreeSet;
use std::time::Duration;

use weir::model::EventKind;
use weir::redis::{admin, Connections, RedisConfig, WeirClient};
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_coordinator::service::CoordinatorConfig;
use weir_tests::cluster::{init_logs, start_builtin_worker, start_coordinator_with};
use weir_tests::RedisCluster;
use weir_worker::WorkerConfig;

const FLOW: &str = r#"
name: flow
version: "1.0.0"
steps:
  start: { type: machine, handler: set, config: { seen: true } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_on_every_master_are_listed_replayed_and_purged() -> anyhow::Result<()> {
    let cluster = RedisCluster::start()?;
    let conns = Connections::connect(&RedisConfig::new(cluster.urls(), "t")).await?;
    let parts: Vec<_> = conns.keys.all_parts().collect();
    for part in &parts {
        let _: String = redis::cmd("XADD")
            .arg(part.dlq())
            .arg("*")
            .arg("source")
            .arg(part.queue("default"))
            .arg("group")
            .arg("workers")
            .arg("id")
            .arg("1-1")
            .arg("error")
            .arg("boom")
            .arg("deliveries")
            .arg(3)
            .arg("m")
            .arg("payload")
            .query_async(&mut conns.conn.clone())
            .await?;
    }
    let letters = admin::dead_letters(&conns, 100).await?;
    assert_eq!(letters.len(), parts.len());
    let seen: BTreeSet<u16> = letters.iter().map(|l| l.partition).collect();
    assert_eq!(seen.len(), parts.len());

    // Replay one: back on its own partition's queue stream, off the DLQ.
    let one = letters[parts.len() - 1].clone();
    let outcome = admin::replay(&conns, Some(std::slice::from_ref(&one.id))).await?;
    assert_eq!(outcome.done, vec![one.id.clone()]);
    let queued: u64 = redis::cmd("XLEN")
        .arg(conns.keys.part(one.partition).queue("default"))
        .query_async(&mut conns.conn.clone())
        .await?;
    assert_eq!(queued, 1);
    // Purge the rest, across every master.
    let outcome = admin::purge(&conns, None).await?;
    assert_eq!(outcome.done.len(), parts.len() - 1);
    assert!(admin::dead_letters(&conns, 100).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_event_feed_sees_instances_on_every_partition() -> anyhow::Result<()> {
    init_logs();
    let cluster = RedisCluster::start()?;
    let config = RedisConfig::new(cluster.urls(), "t");
    let mut coordinator = CoordinatorConfig::new(config.clone());
    coordinator.lease = Duration::from_secs(1);
    let _coordinator = start_coordinator_with(coordinator).await?;
    let mut worker = WorkerConfig::new(config.clone());
    worker.grace = Duration::from_secs(2);
    let _worker = start_builtin_worker(worker).await?;
    let client = WeirClient::connect(&config).await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let mut cursor = client.events_now().await?;
    let keys = client.connections().keys.clone();
    // Enough instances to land on every partition.
    let mut ids = BTreeSet::new();
    let mut i = 0;
    while (0..keys.partitions()).any(|p| {
        !ids.iter()
            .any(|id: &String| keys.part_of(id).partition == p)
    }) {
        let opts = StartOptions {
            id: Some(format!("order-{i}")),
            ..StartOptions::default()
        };
        ids.insert(client.start_workflow("flow", opts).await?.id);
        i += 1;
    }
    // Follow as `weir events --follow` and the SSE stream do: blocking reads from a cursor.
    let mut completed = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while completed.len() < ids.len() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "events of {} of {} instances seen",
            completed.len(),
            ids.len()
        );
        let (events, next) = client
            .read_events(&cursor, 100, Some(Duration::from_secs(2)))
            .await?;
        cursor = next;
        for event in events {
            if matches!(event.kind, EventKind::WorkflowCompleted) {
                completed.insert(event.instance_id.to_string());
            }
        }
    }
    assert_eq!(completed, ids);
    Ok(())
}

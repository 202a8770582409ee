//! Faults under load on a real six-node Redis Cluster (short, for CI): a coordinator and a
//! worker killed while a steady stream of starts flows, in process (their runtime dropped
//! at once) and as real `weir coordinator` and `weir-worker` processes killed with SIGKILL.
//! Nothing is lost (every instance completes) and no transition is doubled (each step
//! completes once in history and in events). The process case needs the binaries:
//! `cargo build --workspace --bins`.

mod common;

use std::time::Duration;

use common::{assert_each_step_once, coordinator_config, wait_all_completed, worker_config};
use weir::redis::WeirClient;
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator_with, start_worker_with};
use weir_tests::process::WeirProcess;
use weir_tests::{wait_until_async, RedisCluster};

const LINE: &str = r#"
name: line
version: "1.0.0"
steps:
  s1: { type: machine, handler: sleep, config: { duration: 100ms } }
  s2: { type: machine, handler: sleep, config: { duration: 100ms } }
  s3: { type: machine, handler: set, config: { done: true } }
edges:
  - { from: s1, to: s2 }
  - { from: s2, to: s3 }
"#;

/// How many instances the steady stream starts, one every [`EVERY`].
const STARTS: usize = 60;
const EVERY: Duration = Duration::from_millis(40);

/// Starts [`STARTS`] instances, one every [`EVERY`], in a task; returns their ids.
fn steady_starts(client: &WeirClient) -> tokio::task::JoinHandle<anyhow::Result<Vec<String>>> {
    let client = client.clone();
    tokio::spawn(async move {
        let mut ids = Vec::new();
        let mut tick = tokio::time::interval(EVERY);
        for i in 0..STARTS {
            tick.tick().await;
            let opts = StartOptions {
                id: Some(format!("load-{i}")),
                ..StartOptions::default()
            };
            ids.push(client.start_workflow("line", opts).await?.id);
        }
        Ok(ids)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_under_a_stream_of_starts_on_a_cluster_loses_and_doubles_nothing(
) -> anyhow::Result<()> {
    init_logs();
    let cluster = RedisCluster::start()?;
    let url = cluster.urls();
    let a = start_coordinator_with(coordinator_config(&url, "t")).await?;
    let b = start_coordinator_with(coordinator_config(&url, "t")).await?;
    let mut wc = worker_config(&url, "t", Duration::from_secs(2));
    wc.concurrency = 8;
    let _worker = start_worker_with(wc, weir_worker::builtin_handlers()).await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(LINE)?).await?;
    let starts = steady_starts(&client);
    // Mid-stream: the starts go on while A's partitions wait for B to take them.
    tokio::time::sleep(STARTS as u32 / 3 * EVERY).await;
    a.kill();
    let ids = starts.await??;
    wait_all_completed(&client, &ids, Duration::from_secs(45)).await?;
    assert_each_step_once(&client, &ids, &["s1", "s2", "s3"]).await?;
    drop(b);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_under_a_stream_of_starts_on_a_cluster_loses_and_doubles_nothing(
) -> anyhow::Result<()> {
    init_logs();
    let cluster = RedisCluster::start()?;
    let url = cluster.urls();
    let _coordinator = start_coordinator_with(coordinator_config(&url, "t")).await?;
    // A short visibility timeout: the survivor reclaims the killed worker's steps soon.
    let mut first = worker_config(&url, "t", Duration::from_secs(1));
    first.concurrency = 8;
    let first = start_worker_with(first, weir_worker::builtin_handlers()).await?;
    let mut second = worker_config(&url, "t", Duration::from_secs(1));
    second.concurrency = 8;
    let _second = start_worker_with(second, weir_worker::builtin_handlers()).await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(LINE)?).await?;
    let starts = steady_starts(&client);
    tokio::time::sleep(STARTS as u32 / 3 * EVERY).await;
    first.kill();
    let ids = starts.await??;
    wait_all_completed(&client, &ids, Duration::from_secs(45)).await?;
    assert_each_step_once(&client, &ids, &["s1", "s2", "s3"]).await?;
    Ok(())
}

/// The holder of each partition's lease (`None`: not held).
async fn lease_holders(client: &WeirClient) -> anyhow::Result<Vec<Option<String>>> {
    let keys = common::keys(client);
    let mut conn = client.connections().conn.clone();
    let mut holders = Vec::new();
    for part in keys.all_parts() {
        holders.push(
            redis::cmd("GET")
                .arg(part.lease())
                .query_async(&mut conn)
                .await?,
        );
    }
    Ok(holders)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_and_a_worker_process_sigkilled_under_a_stream_of_starts_on_a_cluster_lose_and_double_nothing(
) -> anyhow::Result<()> {
    init_logs();
    let cluster = RedisCluster::start()?;
    let url = cluster.urls();
    let lease = Duration::from_secs(1);
    let visibility = Duration::from_secs(1);
    let mut coord_a = WeirProcess::coordinator(&url, "t", "coord-a", lease)?;
    let mut coord_b = WeirProcess::coordinator(&url, "t", "coord-b", lease)?;
    let mut worker_a = WeirProcess::worker(&url, "t", "worker-a", 8, visibility)?;
    let mut worker_b = WeirProcess::worker(&url, "t", "worker-b", 8, visibility)?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(LINE)?).await?;
    // Both coordinators hold partitions, so the one killed leaves work behind.
    wait_until_async(
        Duration::from_secs(30),
        "both coordinators hold partitions",
        async || {
            lease_holders(&client).await.is_ok_and(|h| {
                ["coord-a", "coord-b"]
                    .iter()
                    .all(|c| h.iter().any(|x| x.as_deref() == Some(*c)))
            })
        },
    )
    .await?;
    let starts = steady_starts(&client);
    tokio::time::sleep(STARTS as u32 / 3 * EVERY).await;
    coord_a.kill()?;
    worker_a.kill()?;
    let ids = starts.await??;
    let done = wait_all_completed(&client, &ids, Duration::from_secs(45)).await;
    for survivor in [&mut coord_b, &mut worker_b] {
        if let Some(exit) = survivor.exited() {
            anyhow::bail!("{exit}:\n{}", survivor.log_tail(20));
        }
    }
    if let Err(e) = done {
        anyhow::bail!(
            "{e}\n--- coord-b log:\n{}\n--- worker-b log:\n{}",
            coord_b.log_tail(20),
            worker_b.log_tail(20)
        );
    }
    assert_each_step_once(&client, &ids, &["s1", "s2", "s3"]).await?;
    Ok(())
}

//! A coordinator frozen past its lease (SIGSTOP, like a VM pause) and resumed under load
//! strands nothing (issue 15, item 3): the entries it read while it no longer held the
//! lease are taken over by the holder, every instance completes, none twice. And the
//! takeover itself: entries a gone consumer left pending are applied by the next holder,
//! which removes that consumer. `cargo build --workspace --bins` first (real processes).

mod common;
mod procs;

use std::time::Duration;

use common::{keys, raw, worker_config};
use procs::two_coordinators_sharing;
use weir::model::InstanceStatus;
use weir::redis::keys::COORDINATOR_GROUP;
use weir::redis::WeirClient;
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_tests::cluster::{client, init_logs, start_builtin_worker, start_coordinator};
use weir_tests::{wait_until_async, RedisServer};

const STARTS: usize = 900;

const FLOW: &str = r#"
name: flow
version: "1.0.0"
steps:
  s1: { type: machine, handler: sleep, config: { duration: 20ms } }
  s2: { type: machine, handler: set, config: { two: true } }
  s3: { type: machine, handler: sleep, config: { duration: 20ms } }
edges:
  - { from: s1, to: s2 }
  - { from: s2, to: s3 }
"#;

async fn start(client: &WeirClient, id: String) -> anyhow::Result<String> {
    let options = StartOptions {
        id: Some(id.clone()),
        ..StartOptions::default()
    };
    client.start_workflow("flow", options).await?;
    Ok(id)
}

/// Consumers of the coordinators' group on a stream, with their pending counts.
async fn consumers(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> anyhow::Result<Vec<(String, u64)>> {
    let reply: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(COORDINATOR_GROUP)
        .query_async(conn)
        .await?;
    Ok(reply
        .into_iter()
        .map(|c| {
            let name = c
                .get("name")
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                .unwrap_or_default();
            let pending = c
                .get("pending")
                .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok())
                .unwrap_or_default();
            (name, pending)
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_frozen_past_its_lease_strands_nothing() -> anyhow::Result<()> {
    init_logs();
    let lease = Duration::from_secs(1);
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let keys = keys(&client);
    let conn = raw(&url).await?;
    let (a, b) = two_coordinators_sharing(&url, "t", &keys, lease).await?;
    let mut wc = worker_config(&url, "t", Duration::from_secs(2));
    wc.concurrency = 16;
    let (_worker, _) = start_builtin_worker(wc).await?;

    // Load: a start every 15 ms for about 14 s, each on its own task (a start on a frozen
    // coordinator's partition waits for the takeover, within the reply timeout). A is
    // frozen three times for 4 leases (long enough for any takeover rule), and resumes
    // each time while the load goes on.
    let producer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..STARTS {
                let client = client.clone();
                set.spawn(async move { start(&client, format!("load-{i}")).await });
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            let mut ids = Vec::new();
            while let Some(r) = set.join_next().await {
                ids.push(r??);
            }
            anyhow::Ok(ids)
        })
    };
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        a.signal("STOP")?;
        tokio::time::sleep(lease * 4).await;
        a.signal("CONT")?;
    }
    let ids = producer.await??;
    assert_eq!(ids.len(), STARTS, "every start succeeded");

    common::wait_all_completed(&client, &ids, Duration::from_secs(60)).await?;
    common::assert_each_step_once(&client, &ids, &["s1", "s2", "s3"]).await?;
    // Nothing left pending for any consumer.
    let mut conn = conn.clone();
    for part in keys.all_parts() {
        for stream in [part.commands(), part.results()] {
            for (name, pending) in consumers(&mut conn, &stream).await? {
                assert_eq!(pending, 0, "{stream}: entries pending for {name}");
            }
        }
    }
    drop((a, b));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_holder_applies_what_a_gone_consumer_left_pending_and_removes_it(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t")
        .await?
        .with_reply_timeout(Duration::from_secs(10));
    client.register_definition(parse_definition(FLOW)?).await?;
    let keys = keys(&client);
    let part = keys.part_of("left-behind");
    let mut conn = raw(&url).await?;
    // A start is queued, and read by a consumer that then vanished (a holder that lost
    // its lease after reading): it is pending for "ghost".
    let starting = {
        let client = client.clone();
        tokio::spawn(async move { start(&client, "left-behind".into()).await })
    };
    wait_until_async(Duration::from_secs(5), "the start is queued", async || {
        common::xlen(&mut conn.clone(), &part.commands())
            .await
            .is_ok_and(|n| n == 1)
    })
    .await?;
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(part.commands())
        .arg(COORDINATOR_GROUP)
        .arg("0")
        .query_async(&mut conn)
        .await;
    if let Err(e) = created {
        assert!(e.to_string().contains("BUSYGROUP"), "{e}");
    }
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(COORDINATOR_GROUP)
        .arg("ghost")
        .arg("STREAMS")
        .arg(part.commands())
        .arg(">")
        .query_async(&mut conn)
        .await?;
    assert_eq!(
        common::pending(&mut conn, &part.commands(), COORDINATOR_GROUP).await?,
        1
    );

    let _coordinator = start_coordinator(&url, "t").await?;
    let (_worker, _) =
        start_builtin_worker(worker_config(&url, "t", Duration::from_secs(2))).await?;
    let id = starting.await??;
    let done = client.wait(&id, Duration::from_secs(10)).await?;
    assert_eq!(done.status, InstanceStatus::Completed);
    let names: Vec<String> = consumers(&mut conn, &part.commands())
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert!(
        !names.iter().any(|n| n == "ghost"),
        "the gone consumer is removed: {names:?}"
    );
    Ok(())
}

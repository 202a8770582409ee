//! One bad record does not stop a partition (issue 15, item 4): an instance whose stored
//! state no longer decodes, or whose definition no longer loads, is quarantined (failed,
//! with the reason; its inputs dead-lettered) and the rest of its partition goes on.

mod common;

use std::time::Duration;

use common::{keys, raw, stream_entries, worker_config};
use weir::model::InstanceStatus;
use weir::redis::WeirClient;
use weir::Engine;
use weir::{parse_definition, InstanceFilter, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator, start_worker_with};
use weir_tests::{wait_for_async, wait_until_async, RedisServer};

const FLOW: &str = r#"
name: flow
version: "1.0.0"
steps:
  s1: { type: machine, handler: sleep, config: { duration: 100ms } }
  s2: { type: machine, handler: sleep, config: { duration: 100ms } }
  s3: { type: machine, handler: sleep, config: { duration: 100ms } }
  s4: { type: machine, handler: sleep, config: { duration: 100ms } }
  s5: { type: machine, handler: set, config: { done: true } }
edges:
  - { from: s1, to: s2 }
  - { from: s2, to: s3 }
  - { from: s3, to: s4 }
  - { from: s4, to: s5 }
"#;

const NAP: &str = r#"
name: nap
version: "1.0.0"
steps:
  rest: { type: timer, duration: 2s }
  after: { type: machine, handler: set, config: { woke: true } }
edges:
  - { from: rest, to: after }
"#;

async fn start(client: &WeirClient, def: &str, id: &str) -> anyhow::Result<()> {
    let options = StartOptions {
        id: Some(id.to_string()),
        ..StartOptions::default()
    };
    // Created by the coordinator, not just stored: the tests damage what it created.
    client
        .start_workflow_created(def, options, Duration::from_secs(15))
        .await?;
    Ok(())
}

async fn completed(client: &WeirClient) -> usize {
    client
        .list_instances(&InstanceFilter {
            status: Some(InstanceStatus::Completed),
            limit: Some(1000),
            ..InstanceFilter::default()
        })
        .await
        .map(|l| l.len())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_instance_is_quarantined_and_its_partition_goes_on() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let mut wc = worker_config(&url, "t", Duration::from_secs(2));
    wc.concurrency = 16;
    let _worker = start_worker_with(wc, weir_worker::builtin_handlers()).await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let keys = keys(&client);
    let mut conn = raw(&url).await?;
    let bad = "bad-0";
    let part = keys.part_of(bad);
    // 40 instances, a few of them in the bad one's partition.
    let mut ids = vec![bad.to_string()];
    ids.extend(
        (0..)
            .map(|i| format!("ok-{i}"))
            .filter(|id| keys.partition_of(id) == part.partition)
            .take(5),
    );
    ids.extend((0..34).map(|i| format!("other-{i}")));
    // The bad one starts first; then its record is damaged (and its revision moved on, so
    // the coordinator cannot keep using its own copy); then the load comes.
    start(&client, "flow", bad).await?;
    let _: () = redis::cmd("HSET")
        .arg(part.instance(bad))
        .arg("state")
        .arg(&b"\xc1 not messagepack"[..])
        .arg("rev")
        .arg(9999)
        .query_async(&mut conn)
        .await?;
    for id in &ids[1..] {
        start(&client, "flow", id).await?;
    }

    wait_until_async(
        Duration::from_secs(30),
        "all the others complete",
        async || completed(&client).await == ids.len() - 1,
    )
    .await?;
    // The bad one is failed, quarantined with the reason, its bytes kept aside.
    let view = wait_for_async(
        Duration::from_secs(10),
        "the bad one is quarantined",
        async || {
            let v = client.get_instance(bad).await.ok()?;
            (v.status == InstanceStatus::Failed).then_some(v)
        },
    )
    .await?;
    let error = view.error.clone().unwrap_or_default();
    assert!(
        error.contains("quarantined") && error.contains("decode"),
        "{error}"
    );
    let (reason, kept): (Option<String>, Option<Vec<u8>>) = redis::cmd("HMGET")
        .arg(part.instance(bad))
        .arg("quarantined")
        .arg("corrupt_state")
        .query_async(&mut conn)
        .await?;
    assert!(reason.is_some_and(|r| r.contains("decode")));
    assert_eq!(kept.as_deref(), Some(&b"\xc1 not messagepack"[..]));
    let failed: Vec<String> = client
        .list_instances(&InstanceFilter {
            status: Some(InstanceStatus::Failed),
            ..InstanceFilter::default()
        })
        .await?
        .into_iter()
        .map(|v| v.id.to_string())
        .collect();
    assert_eq!(failed, vec![bad.to_string()]);
    // The result that met it is dead-lettered with the reason.
    wait_until_async(
        Duration::from_secs(10),
        "its result is dead-lettered",
        async || {
            stream_entries(&mut conn.clone(), &part.dlq())
                .await
                .is_ok_and(|entries| {
                    entries.iter().any(|(_, f)| {
                        f.get("error")
                            .is_some_and(|e| String::from_utf8_lossy(e).contains("quarantined"))
                    })
                })
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_definition_no_longer_loads_is_quarantined() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(NAP)?).await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let keys = keys(&client);
    let mut conn = raw(&url).await?;
    let first = start_coordinator(&url, "t").await?;
    let napper = "napper";
    start(&client, "nap", napper).await?;
    // The coordinator stops while the instance sleeps; meanwhile its stored definition is
    // damaged (a new coordinator compiles it from Redis).
    first.stop().await;
    let _: () = redis::cmd("HSET")
        .arg(keys.definitions())
        .arg("nap@1.0.0")
        .arg("{not json")
        .query_async(&mut conn)
        .await?;
    let _coordinator = start_coordinator(&url, "t").await?;
    let _worker = start_worker_with(
        worker_config(&url, "t", Duration::from_secs(2)),
        weir_worker::builtin_handlers(),
    )
    .await?;
    // Its partition goes on: an instance there completes.
    let same = (0..)
        .map(|i| format!("same-{i}"))
        .find(|id| keys.partition_of(id) == keys.partition_of(napper))
        .unwrap_or_default();
    start(&client, "flow", &same).await?;
    assert_eq!(
        client.wait(&same, Duration::from_secs(15)).await?.status,
        InstanceStatus::Completed
    );
    // When its timer fires it is quarantined: failed, with the reason.
    let part = keys.part_of(napper);
    let (status, reason) = wait_for_async(
        Duration::from_secs(15),
        "the napper is quarantined",
        async || {
            let (status, reason): (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(part.instance(napper))
                .arg("status")
                .arg("quarantined")
                .query_async(&mut conn.clone())
                .await
                .ok()?;
            Some((status?, reason?))
        },
    )
    .await?;
    assert_eq!(status, "failed");
    assert!(reason.contains("nap@1.0.0"), "{reason}");
    let in_failed: Option<f64> = redis::cmd("ZSCORE")
        .arg(part.index_status("failed"))
        .arg(napper)
        .query_async(&mut conn)
        .await?;
    assert!(in_failed.is_some());
    Ok(())
}

const JAMMED: &str = r#"
name: jammed
version: "1.0.0"
steps:
  only: { type: machine, handler: set, queue: jammed, config: { x: 1 } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_whose_writes_redis_refuses_is_dead_lettered_and_the_rest_goes_on(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    client
        .register_definition(parse_definition(JAMMED)?)
        .await?;
    let keys = keys(&client);
    let mut conn = raw(&url).await?;
    // Every partition's `jammed` queue key holds a string: a start of `jammed` dispatches
    // there, and Redis refuses the batch that does it.
    for part in keys.all_parts() {
        let _: () = redis::cmd("SET")
            .arg(part.queue("jammed"))
            .arg("not a stream")
            .query_async(&mut conn)
            .await?;
    }
    let _coordinator = start_coordinator(&url, "t").await?;
    let mut wc = worker_config(&url, "t", Duration::from_secs(2));
    wc.concurrency = 16;
    let _worker = start_worker_with(wc, weir_worker::builtin_handlers()).await?;
    let jam = "jam-1";
    let part = keys.part_of(jam);
    let jamming = {
        let client = client.clone().with_reply_timeout(Duration::from_secs(8));
        let options = StartOptions {
            id: Some(jam.to_string()),
            ..StartOptions::default()
        };
        tokio::spawn(async move { client.start_workflow("jammed", options).await })
    };
    // Others, some in the same partition, start and complete meanwhile.
    let mut ids: Vec<String> = (0..)
        .map(|i| format!("near-{i}"))
        .filter(|id| keys.partition_of(id) == part.partition)
        .take(5)
        .collect();
    ids.extend((0..15).map(|i| format!("far-{i}")));
    for id in &ids {
        start(&client, "flow", id).await?;
    }
    wait_until_async(Duration::from_secs(30), "the others complete", async || {
        completed(&client).await == ids.len()
    })
    .await?;
    // The start was stored (starting is enqueueing); its creation is refused for good:
    // dead-lettered with the reason.
    jamming.await??;
    wait_until_async(
        Duration::from_secs(10),
        "the start is dead-lettered",
        async || {
            stream_entries(&mut conn.clone(), &part.dlq())
                .await
                .is_ok_and(|entries| {
                    entries.iter().any(|(_, f)| {
                        f.get("source")
                            .is_some_and(|s| s == part.commands().as_bytes())
                            && f.get("error").is_some_and(|e| {
                                let e = String::from_utf8_lossy(e);
                                e.contains("refused 5 times") && e.contains("not a stream")
                            })
                    })
                })
        },
    )
    .await?;
    // Its instance ends visibly with the dead letter: failed, saying why and what to do,
    // announced as WorkflowFailed; never `pending` for ever.
    let failed = wait_for_async(
        Duration::from_secs(10),
        "the start's instance fails",
        async || {
            client
                .get_instance(jam)
                .await
                .ok()
                .filter(|v| v.status == InstanceStatus::Failed)
        },
    )
    .await?;
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.contains("dead-lettered")
            && error.contains("not a stream")
            && error.contains("weir dlq replay"),
        "{failed:?}"
    );
    assert!(failed.finished_at.is_some(), "{failed:?}");
    let pending = client
        .list_instances(&InstanceFilter {
            status: Some(InstanceStatus::Pending),
            ..InstanceFilter::default()
        })
        .await?;
    assert!(pending.is_empty(), "{pending:?}");
    let listed = client
        .list_instances(&InstanceFilter {
            status: Some(InstanceStatus::Failed),
            ..InstanceFilter::default()
        })
        .await?;
    assert!(listed.iter().any(|v| v.id == jam), "{listed:?}");
    // It left `pending` for its workflow's index: listed by workflow and status.
    let by_workflow = client
        .list_instances(&InstanceFilter {
            status: Some(InstanceStatus::Failed),
            definition: Some("jammed".into()),
            ..InstanceFilter::default()
        })
        .await?;
    assert!(by_workflow.iter().any(|v| v.id == jam), "{by_workflow:?}");
    let (events, _) = client
        .read_events(&Default::default(), 10_000, None)
        .await?;
    assert!(
        events.iter().any(|e| &*e.instance_id == jam
            && matches!(&e.kind, weir::EventKind::WorkflowFailed { step: None, error } if error.contains("dead-lettered"))),
        "no WorkflowFailed for {jam}"
    );
    // Once the cause is fixed, replaying the dead letter creates the instance after all.
    for part in keys.all_parts() {
        let _: () = redis::cmd("DEL")
            .arg(part.queue("jammed"))
            .query_async(&mut conn)
            .await?;
    }
    weir::redis::admin::replay(client.connections(), None).await?;
    let created = wait_for_async(
        Duration::from_secs(15),
        "the replayed start is created",
        async || {
            client.get_instance(jam).await.ok().filter(|v| {
                matches!(
                    v.status,
                    InstanceStatus::Running | InstanceStatus::Completed
                )
            })
        },
    )
    .await?;
    assert_eq!(created.error, None, "{created:?}");
    Ok(())
}

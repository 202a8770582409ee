//! Coordinators dying, losing leases and handing over (ARCHITECTURE.md invariants 2, 3 and 8): a
//! survivor takes a dead coordinator's partitions within seconds and nothing is lost or
//! applied twice; a coordinator without the lease writes nothing; a batch is all or
//! nothing; a graceful stop hands partitions over at once; repeated kills of every
//! service leave every instance consistent.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::{
    all_events, completed_records, coordinator_config, count_events, id_in_partition, keys,
    leased_by, pending, raw, worker_config, xlen,
};
use serde_json::json;
use weir::model::{AttemptStatus, InstanceStatus};
use weir::redis::batch::{Batch, CommitError};
use weir::redis::keys::{COORDINATOR_GROUP, WORKER_GROUP};
use weir::redis::WeirClient;
use weir::Engine;
use weir::{parse_definition, InstanceFilter, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator_with, start_worker_with};
use weir_tests::{wait_for_async, wait_until_async, RedisServer};

const LINE: &str = r#"
name: line
version: "1.0.0"
steps:
  s1: { type: machine, handler: sleep, config: { duration: 150ms } }
  s2: { type: machine, handler: sleep, config: { duration: 150ms } }
  s3: { type: machine, handler: sleep, config: { duration: 150ms } }
  s4: { type: machine, handler: set, config: { done: true } }
edges:
  - { from: s1, to: s2 }
  - { from: s2, to: s3 }
  - { from: s3, to: s4 }
"#;

const APPROVAL: &str = r#"
name: approval
version: "1.0.0"
steps:
  prepare: { type: machine, handler: set, config: { prepared: true } }
  approve: { type: human }
  done: { type: machine, handler: set, config: { done: true } }
edges:
  - { from: prepare, to: approve }
  - { from: approve, to: done }
"#;

fn with_id(id: &str) -> StartOptions {
    StartOptions {
        id: Some(id.into()),
        ..StartOptions::default()
    }
}

async fn completed_count(client: &WeirClient) -> anyhow::Result<usize> {
    Ok(client
        .list_instances(&InstanceFilter {
            status: Some(InstanceStatus::Completed),
            limit: Some(1000),
            ..InstanceFilter::default()
        })
        .await?
        .len())
}

/// Starts `n` instances of `name` at once, with ids `prefix-0` ...
async fn start_many(
    client: &WeirClient,
    name: &str,
    prefix: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (client, name, id) = (client.clone(), name.to_string(), format!("{prefix}-{i}"));
        set.spawn(async move { client.start_workflow(&name, with_id(&id)).await });
    }
    let mut ids = Vec::new();
    while let Some(r) = set.join_next().await {
        ids.push(r??.id);
    }
    ids.sort();
    Ok(ids)
}

/// Every step of every instance completed exactly once, in history and in events, and
/// every instance completed once.
async fn assert_applied_once(
    client: &WeirClient,
    ids: &[String],
    steps: &[&str],
) -> anyhow::Result<()> {
    let events = all_events(client).await?;
    for id in ids {
        for step in steps {
            assert_eq!(
                completed_records(client, id, step).await?,
                1,
                "{id}: step {step} must complete exactly once in history"
            );
            let executed = events
                .iter()
                .filter(|e| &*e.instance_id == id.as_str() && common::is_executed(e, step))
                .count();
            assert_eq!(executed, 1, "{id}: one StepExecuted for {step}");
        }
        assert_eq!(count_events(&events, id, "WorkflowStarted"), 1, "{id}");
        assert_eq!(count_events(&events, id, "WorkflowCompleted"), 1, "{id}");
    }
    Ok(())
}

/// Nothing is left unhandled: every command, result and step stream is empty.
async fn assert_streams_drained(url: &str, client: &WeirClient) -> anyhow::Result<()> {
    let mut conn = raw(url).await?;
    for part in keys(client).all_parts() {
        for (stream, group) in [
            (part.commands(), COORDINATOR_GROUP),
            (part.results(), COORDINATOR_GROUP),
            (part.queue("default"), WORKER_GROUP),
        ] {
            assert_eq!(xlen(&mut conn, &stream).await?, 0, "{stream} holds entries");
            assert_eq!(pending(&mut conn, &stream, group).await?, 0, "{stream}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_under_load_is_replaced_and_nothing_is_lost_or_doubled(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let a = start_coordinator_with(coordinator_config(&url, "t")).await?;
    let a_id = a.id.clone();
    let mut wc = worker_config(&url, "t", Duration::from_secs(2));
    wc.concurrency = 8;
    let _worker = start_worker_with(wc, weir_worker::builtin_handlers()).await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(LINE)?).await?;
    let mut conn = raw(&url).await?;
    let keys = keys(&client);
    wait_until_async(
        Duration::from_secs(5),
        "A leases every partition",
        async || {
            leased_by(&mut conn.clone(), &keys, &a_id)
                .await
                .is_ok_and(|p| p.len() == keys.partitions() as usize)
        },
    )
    .await?;
    // B joins: the two share the partitions.
    let b = start_coordinator_with(coordinator_config(&url, "t")).await?;
    wait_until_async(Duration::from_secs(5), "B takes its share", async || {
        leased_by(&mut conn.clone(), &keys, &b.id)
            .await
            .is_ok_and(|p| p.len() == keys.partitions() as usize / 2)
    })
    .await?;

    let ids = start_many(&client, "line", "load", 50).await?;
    // Kill once a first result is applied: instances advance about in step (the workers
    // serve the partitions fairly), so waiting for a first completion could find nearly
    // all of them done on a fast machine, or by the time a loaded one looks.
    wait_until_async(
        Duration::from_secs(10),
        "a first step result is applied",
        async || {
            client.get_instance(&ids[0]).await.is_ok_and(|v| {
                v.status == InstanceStatus::Completed || !v.current_steps.iter().any(|s| s == "s1")
            })
        },
    )
    .await?;
    let a_parts = leased_by(&mut conn, &keys, &a_id).await?;
    a.kill();
    let mut unfinished_in_a = 0;
    for id in &ids {
        let status = client.get_instance(id).await?.status;
        if status != InstanceStatus::Completed && a_parts.contains(&keys.partition_of(id)) {
            unfinished_in_a += 1;
        }
    }
    assert!(
        unfinished_in_a > 0,
        "the kill must hit A mid-way (work left in its partitions)"
    );

    // B takes A's partitions within seconds (1 s lease, 3 s to be counted dead), and
    // every instance completes.
    wait_until_async(
        Duration::from_secs(8),
        "B holds every partition",
        async || {
            leased_by(&mut conn.clone(), &keys, &b.id)
                .await
                .is_ok_and(|p| p.len() == keys.partitions() as usize)
        },
    )
    .await?;
    wait_until_async(Duration::from_secs(15), "all 50 complete", async || {
        completed_count(&client).await.is_ok_and(|n| n == 50)
    })
    .await?;
    assert_applied_once(&client, &ids, &["s1", "s2", "s3", "s4"]).await?;
    assert_streams_drained(&url, &client).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_without_the_lease_writes_nothing_and_loses_nothing() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let coordinator = start_coordinator_with(coordinator_config(&url, "t")).await?;
    let _worker = start_worker_with(
        worker_config(&url, "t", Duration::from_secs(2)),
        weir_worker::builtin_handlers(),
    )
    .await?;
    let client = client(&url, "t")
        .await?
        .with_reply_timeout(Duration::from_millis(1500));
    client
        .register_definition(parse_definition(APPROVAL)?)
        .await?;
    let keys = keys(&client);
    let mut conn = raw(&url).await?;
    wait_until_async(
        Duration::from_secs(5),
        "the coordinator leases all",
        async || {
            leased_by(&mut conn.clone(), &keys, &coordinator.id)
                .await
                .is_ok_and(|p| p.len() == keys.partitions() as usize)
        },
    )
    .await?;

    // An instance waits on a task in partition 3; then someone else holds that lease.
    let waiting_id = id_in_partition(&keys, 3, "w");
    client
        .start_workflow("approval", with_id(&waiting_id))
        .await?;
    let waiting = client.wait(&waiting_id, Duration::from_secs(5)).await?;
    assert_eq!(waiting.status, InstanceStatus::Waiting);
    let lease = keys.part(3).lease();
    let _: () = redis::cmd("SET")
        .arg(&lease)
        .arg("intruder")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await?;

    // Commands for partition 3 are not applied (the coordinator gives it up)... A start
    // needs no coordinator: it is stored, pending.
    let fresh_id = id_in_partition(&keys, 3, "fresh");
    let fresh = client
        .start_workflow("approval", with_id(&fresh_id))
        .await?;
    assert_eq!(fresh.status, InstanceStatus::Pending);
    let err = client
        .complete_human_task(&waiting_id, "approve", "ann", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "not_applied", "{err}");
    assert_eq!(
        client.get_instance(&fresh_id).await?.status,
        InstanceStatus::Pending
    );
    let still = client.get_instance(&waiting_id).await?;
    assert_eq!(still.status, InstanceStatus::Waiting);
    assert_eq!(still.updated_at, waiting.updated_at, "nothing written");
    // ... while the coordinator's other partitions carry on.
    let other = id_in_partition(&keys, 4, "other");
    client.start_workflow("approval", with_id(&other)).await?;
    assert_eq!(
        client.wait(&other, Duration::from_secs(5)).await?.status,
        InstanceStatus::Waiting
    );
    // The commands are kept, not lost.
    assert_eq!(xlen(&mut conn, &keys.part(3).commands()).await?, 2);

    // The intruder goes away: the coordinator takes partition 3 back. It creates the
    // pending start, and discards the completion: past its deadline (its caller was told
    // that nothing changed), it is never applied.
    let _: () = redis::cmd("DEL").arg(&lease).query_async(&mut conn).await?;
    let fresh = wait_for_async(Duration::from_secs(8), "the start applied", async || {
        let v = client.get_instance(&fresh_id).await.ok()?;
        (v.status == InstanceStatus::Waiting).then_some(v)
    })
    .await?;
    assert_eq!(fresh.context["prepared"], json!(true));
    wait_until_async(
        Duration::from_secs(8),
        "both commands handled",
        async || {
            xlen(&mut conn.clone(), &keys.part(3).commands())
                .await
                .is_ok_and(|n| n == 0)
        },
    )
    .await?;
    let still = client.get_instance(&waiting_id).await?;
    assert_eq!(still.status, InstanceStatus::Waiting, "{still:?}");
    assert_eq!(completed_records(&client, &waiting_id, "done").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_fenced_by_the_lease_and_revision_and_all_or_nothing() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    let keys = keys(&client);
    let part = keys.part(0);
    let mut conn = raw(&url).await?;
    let inst = part.instance("i");
    let _: () = redis::cmd("HSET")
        .arg(&inst)
        .arg("rev")
        .arg(5)
        .arg("state")
        .arg("old")
        .query_async(&mut conn)
        .await?;
    let _: () = redis::cmd("SET")
        .arg(part.lease())
        .arg("me")
        .query_async(&mut conn)
        .await?;
    let batch = |rev: Option<u64>| {
        let mut b = Batch::new(part.lease());
        b.rpush_capped(&part.history("i"), 10, &inst, "history_dropped", b"record");
        b.check_revision(&inst, rev);
        b.hset(&inst, &[("state", b"new"), ("rev", b"6")]);
        b.xadd(&part.events(), 100, "e", b"{}");
        b
    };
    let state = async |conn: &mut redis::aio::MultiplexedConnection| -> anyhow::Result<_> {
        let s: (String, u64, u64) = redis::pipe()
            .cmd("HGET")
            .arg(&inst)
            .arg("state")
            .cmd("LLEN")
            .arg(part.history("i"))
            .cmd("XLEN")
            .arg(part.events())
            .query_async(conn)
            .await?;
        Ok(s)
    };

    // A coordinator that lost the lease: refused, nothing written.
    let err = batch(Some(5))
        .commit(&mut conn.clone(), "zombie")
        .await
        .unwrap_err();
    assert!(matches!(err, CommitError::LeaseLost), "{err}");
    assert_eq!(state(&mut conn).await?, ("old".to_string(), 0, 0));
    // A stale revision: refused, nothing written (not even the writes queued before it).
    let err = batch(Some(4))
        .commit(&mut conn.clone(), "me")
        .await
        .unwrap_err();
    assert!(matches!(err, CommitError::Conflict(_)), "{err}");
    assert_eq!(state(&mut conn).await?, ("old".to_string(), 0, 0));
    // A new instance whose key exists already: refused.
    let err = batch(None)
        .commit(&mut conn.clone(), "me")
        .await
        .unwrap_err();
    assert!(matches!(err, CommitError::Conflict(_)), "{err}");
    assert_eq!(state(&mut conn).await?, ("old".to_string(), 0, 0));
    // A conflict on an instance whose id says LEASE is still a conflict, not a lost lease.
    let mut b = Batch::new(part.lease());
    b.check_revision(&part.instance("RELEASE-1"), Some(1));
    let err = b.commit(&mut conn.clone(), "me").await.unwrap_err();
    assert!(
        matches!(&err, CommitError::Conflict(k) if k.ends_with("RELEASE-1")),
        "{err:?}"
    );
    // The holder with the right revision: everything written.
    batch(Some(5)).commit(&mut conn.clone(), "me").await?;
    assert_eq!(state(&mut conn).await?, ("new".to_string(), 1, 1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hands_partitions_over_before_the_lease_expires() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    // Long leases: a takeover by expiry would take 6 s (and 18 s to count A as gone).
    let config = || {
        let mut c = coordinator_config(&url, "t");
        c.lease = Duration::from_secs(6);
        c
    };
    let a = start_coordinator_with(config()).await?;
    let _worker = start_worker_with(
        worker_config(&url, "t", Duration::from_secs(2)),
        weir_worker::builtin_handlers(),
    )
    .await?;
    let client = client(&url, "t").await?;
    client
        .register_definition(parse_definition(APPROVAL)?)
        .await?;
    let keys = keys(&client);
    let conn = raw(&url).await?;
    let n = keys.partitions() as usize;
    wait_until_async(Duration::from_secs(5), "A leases all", async || {
        leased_by(&mut conn.clone(), &keys, &a.id)
            .await
            .is_ok_and(|p| p.len() == n)
    })
    .await?;
    let b = start_coordinator_with(config()).await?;
    // A gives half up when B joins (rebalancing).
    wait_until_async(Duration::from_secs(6), "A and B share", async || {
        let (pa, pb) = (
            leased_by(&mut conn.clone(), &keys, &a.id).await,
            leased_by(&mut conn.clone(), &keys, &b.id).await,
        );
        matches!((pa, pb), (Ok(pa), Ok(pb)) if pa.len() == n / 2 && pb.len() == n / 2)
    })
    .await?;
    let pa: BTreeSet<u16> = leased_by(&mut conn.clone(), &keys, &a.id)
        .await?
        .into_iter()
        .collect();
    let first = *pa.iter().next().unwrap();
    let id = id_in_partition(&keys, first, "handover");
    client.start_workflow("approval", with_id(&id)).await?;
    assert_eq!(
        client.wait(&id, Duration::from_secs(5)).await?.status,
        InstanceStatus::Waiting
    );

    let stopped_at = std::time::Instant::now();
    a.stop().await;
    wait_until_async(Duration::from_secs(4), "B holds all at once", async || {
        leased_by(&mut conn.clone(), &keys, &b.id)
            .await
            .is_ok_and(|p| p.len() == n)
    })
    .await?;
    assert!(stopped_at.elapsed() < Duration::from_secs(6));
    client
        .complete_human_task(&id, "approve", "ann", json!({}))
        .await?;
    let done = client.wait(&id, Duration::from_secs(5)).await?;
    assert_eq!(done.status, InstanceStatus::Completed);
    Ok(())
}

const CHAOS: &str = r#"
name: chaos
version: "1.0.0"
steps:
  start: { type: machine, handler: sleep, config: { duration: 50ms } }
  left: { type: machine, handler: sleep, config: { duration: 80ms } }
  right: { type: machine, handler: set, config: { right: true } }
  pause: { type: timer, duration: 300ms }
  join: { type: machine, handler: set, config: { joined: true } }
edges:
  - { from: start, to: left }
  - { from: start, to: right }
  - { from: right, to: pause }
  - { from: left, to: join }
  - { from: pause, to: join }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kills_of_every_service_leave_every_instance_consistent() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let coordinator = || {
        let mut c = coordinator_config(&url, "t");
        c.lease = Duration::from_millis(500);
        start_coordinator_with(c)
    };
    let worker = || {
        let mut c = worker_config(&url, "t", Duration::from_millis(600));
        c.concurrency = 8;
        start_worker_with(c, weir_worker::builtin_handlers())
    };
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(CHAOS)?).await?;
    let mut c1 = coordinator().await?;
    let mut w1 = worker().await?;
    let starting = {
        let client = client.clone();
        tokio::spawn(async move { start_many(&client, "chaos", "chaos", 40).await })
    };
    // Kill and replace the coordinator and the worker, in turn, while the load runs.
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        if round % 2 == 0 {
            c1.kill();
            c1 = coordinator().await?;
        } else {
            w1.kill();
            w1 = worker().await?;
        }
    }
    let ids = starting.await??;
    assert_eq!(ids.len(), 40);
    wait_until_async(Duration::from_secs(15), "all 40 complete", async || {
        completed_count(&client).await.is_ok_and(|n| n == 40)
    })
    .await?;
    assert_applied_once(&client, &ids, &["start", "left", "right", "pause", "join"]).await?;
    assert_streams_drained(&url, &client).await?;

    // The indexes agree with the state: each instance in exactly one status index (its
    // own), in the finished index, with no timer or task left behind.
    let mut conn = raw(&url).await?;
    let keys = keys(&client);
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for part in keys.all_parts() {
        for status in InstanceStatus::ALL {
            let n: usize = redis::cmd("ZCARD")
                .arg(part.index_status(status.as_str()))
                .query_async(&mut conn)
                .await?;
            *by_status.entry(status.as_str().into()).or_default() += n;
        }
        let timers: usize = redis::cmd("ZCARD")
            .arg(part.timers())
            .query_async(&mut conn)
            .await?;
        assert_eq!(timers, 0, "no timer left in partition {}", part.partition);
        let tasks: usize = redis::cmd("HLEN")
            .arg(part.tasks())
            .query_async(&mut conn)
            .await?;
        assert_eq!(tasks, 0);
    }
    assert_eq!(by_status["completed"], 40, "{by_status:?}");
    assert_eq!(by_status.values().sum::<usize>(), 40, "{by_status:?}");
    for id in &ids {
        let part = keys.part_of(id);
        let finished: Option<f64> = redis::cmd("ZSCORE")
            .arg(part.index_finished())
            .arg(id)
            .query_async(&mut conn)
            .await?;
        assert!(finished.is_some(), "{id} is in the finished index");
        let history = client.history(id).await?;
        assert!(
            history
                .iter()
                .all(|r| matches!(r.status, AttemptStatus::Completed)),
            "{id}: {history:?}"
        );
    }
    drop((c1, w1));
    Ok(())
}

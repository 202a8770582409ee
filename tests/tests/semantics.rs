//! Engine semantics across processes: step timeouts enforced by a live worker and, when it
//! died, by the coordinator; cancel racing a running step, stopping timers and voiding
//! tasks; idempotent start by caller id under a race; retention of finished instances
//! with their index entries; bounded streams that never drop unhandled work.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{
    all_events, completed_records, coordinator_config, count_events, keys, pending, raw,
    worker_config, xlen, Probe,
};
use serde_json::json;
use weir::model::{AttemptStatus, InstanceStatus};
use weir::redis::keys::{COORDINATOR_GROUP, WORKER_GROUP};
use weir::redis::WeirClient;
use weir::Engine;
use weir::{parse_definition, InstanceFilter, StartOptions};
use weir_tests::cluster::{
    client, init_logs, start_coordinator, start_coordinator_counted, start_coordinator_with,
    start_worker, start_worker_counted, start_worker_with,
};
use weir_tests::{wait_for_async, wait_until_async, RedisServer};

fn with_id(id: &str) -> StartOptions {
    StartOptions {
        id: Some(id.into()),
        ..StartOptions::default()
    }
}

const TIMEOUT_FLOW: &str = r#"
name: timeout
version: "1.0.0"
steps:
  a:
    type: machine
    handler: probe
    timeout: 800ms
    retry: { max_attempts: 2, initial_interval: 100ms, jitter: false }
  b: { type: machine, handler: set, config: { b: true } }
edges:
  - { from: a, to: b }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_timeout_with_a_live_worker_cancels_the_handler_and_follows_the_retry_policy(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let probe = Probe::new(|_, _| Duration::from_secs(20));
    // One slot: the second attempt can only run if the worker gave up the first.
    let mut wc = worker_config(&url, "t", Duration::from_secs(2));
    wc.concurrency = 1;
    let _worker = start_worker_with(wc, probe.handlers()).await?;
    let client = client(&url, "t").await?;
    client
        .register_definition(parse_definition(TIMEOUT_FLOW)?)
        .await?;
    let inst = client
        .start_workflow("timeout", StartOptions::default())
        .await?;

    let failed = wait_for_async(Duration::from_secs(6), "the instance fails", async || {
        let v = client.get_instance(&inst.id).await.ok()?;
        (v.status == InstanceStatus::Failed).then_some(v)
    })
    .await?;
    assert_eq!(failed.failed_step.as_deref(), Some("a"));
    wait_until_async(
        Duration::from_secs(2),
        "the worker freed its slot and ran attempt 2",
        async || probe.started() == 2,
    )
    .await?;
    assert_eq!(probe.finished(), 0, "both executions were canceled");
    let history: Vec<_> = client
        .history(&inst.id)
        .await?
        .into_iter()
        .filter(|r| &*r.step == "a")
        .collect();
    let statuses: Vec<_> = history.iter().map(|r| (r.attempt, r.status)).collect();
    assert_eq!(
        statuses,
        vec![(1, AttemptStatus::Retrying), (2, AttemptStatus::TimedOut)],
        "{history:?}"
    );
    assert!(history[0]
        .error
        .as_deref()
        .unwrap_or("")
        .contains("timeout"));
    let events = all_events(&client).await?;
    assert_eq!(count_events(&events, &inst.id, "StepTimedOut"), 2);
    assert_eq!(count_events(&events, &inst.id, "WorkflowFailed"), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_timeout_with_a_dead_worker_is_enforced_by_the_coordinator() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    // The first execution hangs (its worker dies); any later one takes 50 ms.
    let probe = Probe::new(|_, n| {
        if n == 1 {
            Duration::from_secs(60)
        } else {
            Duration::from_millis(50)
        }
    });
    let vis = Duration::from_secs(2);
    let w1 = start_worker_with(worker_config(&url, "t", vis), probe.handlers()).await?;
    let client = client(&url, "t").await?;
    client
        .register_definition(parse_definition(TIMEOUT_FLOW)?)
        .await?;
    let inst = client
        .start_workflow("timeout", StartOptions::default())
        .await?;
    wait_until_async(Duration::from_secs(5), "attempt 1 runs", async || {
        probe.started() == 1
    })
    .await?;
    w1.kill();
    let (_w2, w2_counters) =
        start_worker_counted(worker_config(&url, "t", vis), probe.handlers()).await?;

    // The coordinator's timer fails attempt 1 at 800 ms, before the visibility timeout
    // (2 s) lets anyone reclaim it; the retry runs on the live worker.
    let done = client.wait(&inst.id, Duration::from_secs(5)).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(w2_counters.reclaimed.load(Ordering::SeqCst), 0);
    let history: Vec<_> = client
        .history(&inst.id)
        .await?
        .into_iter()
        .filter(|r| &*r.step == "a")
        .collect();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0].status, AttemptStatus::Retrying);
    assert_eq!(
        history[0].worker, None,
        "the coordinator saw the timeout, not a worker"
    );
    assert!(history[0]
        .error
        .as_deref()
        .unwrap_or("")
        .contains("timeout"));
    assert_eq!(history[1].status, AttemptStatus::Completed);
    let seen = probe.keys();
    assert_ne!(seen[0], seen[1], "each attempt has its own idempotency key");

    // Later the dead worker's attempt-1 entry is reclaimed and run again; its result is
    // stale and changes nothing, and the step stream ends up empty.
    let mut conn = raw(&url).await?;
    let part = keys(&client).part_of(&inst.id);
    let (q, results) = (part.queue("default"), part.results());
    wait_until_async(
        Duration::from_secs(6),
        "attempt 1 reclaimed, run, reported and dropped",
        async || {
            let mut c = conn.clone();
            probe.started() == 3
                // attempt 2 of a, b, and the reclaimed attempt 1 of a
                && w2_counters.reported.load(Ordering::SeqCst) == 3
                && xlen(&mut c, &q).await.ok() == Some(0)
                && xlen(&mut c, &results).await.ok() == Some(0)
        },
    )
    .await?;
    assert_eq!(pending(&mut conn, &results, COORDINATOR_GROUP).await?, 0);
    assert_eq!(pending(&mut conn, &q, WORKER_GROUP).await?, 0);
    assert_eq!(completed_records(&client, &inst.id, "a").await?, 1);
    assert_eq!(
        client.get_instance(&inst.id).await?.updated_at,
        done.updated_at
    );
    Ok(())
}

const SLOW: &str = r#"
name: slow
version: "1.0.0"
steps:
  a: { type: machine, handler: probe }
  b: { type: machine, handler: set, config: { b: true } }
edges:
  - { from: a, to: b }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_racing_a_running_step_wins_and_the_late_result_changes_nothing(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let (_coordinator, counters) = start_coordinator_counted(coordinator_config(&url, "t")).await?;
    let probe = Probe::new(|_, _| Duration::from_millis(1000));
    let (_worker, wcounters) = start_worker_counted(
        worker_config(&url, "t", Duration::from_secs(2)),
        probe.handlers(),
    )
    .await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(SLOW)?).await?;
    let inst = client
        .start_workflow("slow", StartOptions::default())
        .await?;
    wait_until_async(Duration::from_secs(5), "step a runs", async || {
        probe.started() == 1
    })
    .await?;

    let canceled = client
        .cancel_workflow(&inst.id, Some("changed my mind"))
        .await?;
    assert_eq!(canceled.status, InstanceStatus::Canceled);
    // The handler finishes anyway and its result arrives late.
    let mut conn = raw(&url).await?;
    let results = keys(&client).part_of(&inst.id).results();
    wait_until_async(
        Duration::from_secs(5),
        "the late result handled",
        async || {
            let mut c = conn.clone();
            wcounters.reported.load(Ordering::SeqCst) == 1
                && xlen(&mut c, &results).await.ok() == Some(0)
                && pending(&mut c, &results, COORDINATOR_GROUP).await.ok() == Some(0)
        },
    )
    .await?;
    let after = client.get_instance(&inst.id).await?;
    assert_eq!(after.status, InstanceStatus::Canceled);
    assert_eq!(
        after.updated_at, canceled.updated_at,
        "the late result changed nothing"
    );
    assert!(after.context.get("probe").is_none());
    assert!(counters.stale.load(Ordering::SeqCst) >= 1);
    let history = client.history(&inst.id).await?;
    assert_eq!(completed_records(&client, &inst.id, "a").await?, 0);
    assert!(
        history
            .iter()
            .any(|r| &*r.step == "a" && r.status == AttemptStatus::Canceled),
        "{history:?}"
    );
    let events = all_events(&client).await?;
    assert_eq!(count_events(&events, &inst.id, "WorkflowCanceled"), 1);
    assert_eq!(count_events(&events, &inst.id, "StepExecuted"), 0);
    assert_eq!(count_events(&events, &inst.id, "WorkflowCompleted"), 0);
    // b was never dispatched.
    assert_eq!(probe.started(), 1);
    let _ = &mut conn;
    Ok(())
}

const FORK: &str = r#"
name: fork
version: "1.0.0"
steps:
  start: { type: machine, handler: set, config: { started: true } }
  pause: { type: timer, duration: 30s }
  approve: { type: human, assignee: ann }
  end: { type: machine, handler: set, config: { ended: true } }
edges:
  - { from: start, to: pause }
  - { from: start, to: approve }
  - { from: pause, to: end }
  - { from: approve, to: end }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_timers_and_voids_open_tasks() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let _worker = start_worker(&url, "t").await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FORK)?).await?;
    let inst = client
        .start_workflow("fork", StartOptions::default())
        .await?;
    wait_until_async(Duration::from_secs(5), "timer and task open", async || {
        client
            .get_instance(&inst.id)
            .await
            .is_ok_and(|v| v.current_steps == ["approve", "pause"])
    })
    .await?;
    let part = keys(&client).part_of(&inst.id);
    let mut conn = raw(&url).await?;
    let zcard = async |conn: &mut redis::aio::MultiplexedConnection, key: String| {
        redis::cmd("ZCARD")
            .arg(key)
            .query_async::<u64>(conn)
            .await
            .unwrap_or(u64::MAX)
    };
    assert_eq!(zcard(&mut conn, part.timers()).await, 1);
    assert_eq!(zcard(&mut conn, part.index_tasks()).await, 1);

    client.cancel_workflow(&inst.id, None).await?;
    assert_eq!(
        zcard(&mut conn, part.timers()).await,
        0,
        "the timer is gone"
    );
    assert_eq!(zcard(&mut conn, part.index_tasks()).await, 0);
    let open: u64 = redis::cmd("HLEN")
        .arg(part.tasks())
        .query_async(&mut conn)
        .await?;
    assert_eq!(open, 0, "the task is void");
    assert!(client
        .list_tasks(&weir::TaskFilter::default())
        .await?
        .is_empty());
    let err = client
        .complete_human_task(&inst.id, "approve", "ann", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), "wrong_status" | "task_not_open"),
        "{err}"
    );
    let view = client.get_instance(&inst.id).await?;
    assert_eq!(view.status, InstanceStatus::Canceled);
    assert!(view.current_steps.is_empty(), "{view:?}");
    Ok(())
}

const TASK: &str = r#"
name: task
version: "1.0.0"
steps:
  approve: { type: human }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_starting_the_same_caller_id_at_once_start_one_instance() -> anyhow::Result<()>
{
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let c1 = client(&url, "t").await?;
    let c2 = client(&url, "t").await?;
    c1.register_definition(parse_definition(TASK)?).await?;
    let start = |c: &WeirClient, id: String, who: u32| {
        let c = c.clone();
        async move {
            let mut o = with_id(&id);
            o.initial_data.insert("who".into(), json!(who));
            c.start_workflow("task", o).await
        }
    };
    let mut races = tokio::task::JoinSet::new();
    for i in 0..8 {
        let id = format!("order-{i}");
        let (a, b) = (start(&c1, id.clone(), 1), start(&c2, id, 2));
        races.spawn(async move { tokio::join!(a, b) });
    }
    while let Some(r) = races.join_next().await {
        let (a, b) = r?;
        let (a, b) = (a?, b?);
        assert_eq!(a.id, b.id);
        assert_eq!(a.created_at, b.created_at, "both got the same instance");
        assert_eq!(a.context["who"], b.context["who"], "one start won");
        // Starts are stored pending; the coordinator creates them.
        c1.wait(&a.id, Duration::from_secs(10)).await?;
    }
    let all = c1
        .list_instances(&InstanceFilter {
            definition: Some("task".into()),
            ..InstanceFilter::default()
        })
        .await?;
    assert_eq!(all.len(), 8, "one instance per caller id");
    let events = all_events(&c1).await?;
    let tasks = c1.list_tasks(&weir::TaskFilter::default()).await?;
    assert_eq!(tasks.len(), 8, "one task per instance");
    for i in 0..8 {
        let id = format!("order-{i}");
        assert_eq!(count_events(&events, &id, "WorkflowStarted"), 1, "{id}");
    }
    // A later start with the id returns the instance and starts nothing.
    let again = start(&c2, "order-0".into(), 3).await?;
    assert_ne!(again.context["who"], json!(3));
    assert_eq!(
        count_events(&all_events(&c1).await?, "order-0", "WorkflowStarted"),
        1
    );

    // Caller ids are per tenant: the same id started at once for two tenants gives each
    // its own instance (`TENANT:ID`), and neither meets the other's.
    let for_tenant = |c: &WeirClient, tenant: &str| {
        let (c, mut o) = (c.clone(), with_id("shared-id"));
        o.tenant_id = Some(tenant.into());
        async move { c.start_workflow("task", o).await }
    };
    let (a, b) = tokio::join!(for_tenant(&c1, "acme"), for_tenant(&c2, "globex"));
    let (a, b) = (a?, b?);
    assert_eq!(a.id, "acme:shared-id");
    assert_eq!(b.id, "globex:shared-id");
    // Within one tenant, two at once start one instance.
    let (a2, b2) = tokio::join!(for_tenant(&c1, "acme"), for_tenant(&c2, "acme"));
    assert_eq!(a2?.id, "acme:shared-id");
    assert_eq!(b2?.id, "acme:shared-id");
    for id in ["acme:shared-id", "globex:shared-id"] {
        c1.wait(id, Duration::from_secs(10)).await?;
        assert_eq!(
            count_events(&all_events(&c1).await?, id, "WorkflowStarted"),
            1
        );
    }
    Ok(())
}

const QUICK: &str = r#"
name: quick
version: "1.0.0"
steps:
  a: { type: machine, handler: set, config: { a: 1 } }
  b: { type: machine, handler: set, config: { b: 2 } }
edges:
  - { from: a, to: b }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_finished_instances_with_their_index_entries() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let mut config = coordinator_config(&url, "t");
    config.retention = Duration::from_secs(1);
    let (_coordinator, counters) = start_coordinator_counted(config).await?;
    let _worker = start_worker(&url, "t").await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(QUICK)?).await?;
    client.register_definition(parse_definition(TASK)?).await?;
    let owned = |id: &str| StartOptions {
        id: Some(id.into()),
        tenant_id: Some("acme".into()),
        created_by: Some("ann".into()),
        ..StartOptions::default()
    };
    let mut finished = Vec::new();
    for i in 0..3 {
        // A caller id with a tenant names the instance `TENANT:ID`.
        let id = format!("acme:done-{i}");
        client
            .start_workflow("quick", owned(&format!("done-{i}")))
            .await?;
        let v = client.wait(&id, Duration::from_secs(5)).await?;
        assert_eq!(v.status, InstanceStatus::Completed);
        finished.push((id, "completed", "quick"));
    }
    client.start_workflow("task", owned("canceled")).await?;
    client.cancel_workflow("acme:canceled", None).await?;
    finished.push(("acme:canceled".into(), "canceled", "task"));
    client.start_workflow("task", owned("waiting")).await?;

    wait_until_async(
        Duration::from_secs(8),
        "only the waiting one is left",
        async || {
            client
                .list_instances(&InstanceFilter::default())
                .await
                .is_ok_and(|l| l.len() == 1 && l[0].id == "acme:waiting")
        },
    )
    .await?;
    assert_eq!(counters.expired.load(Ordering::SeqCst), 4);
    let keys = keys(&client);
    let mut conn = raw(&url).await?;
    for (id, status, def) in &finished {
        let part = keys.part_of(id);
        let exists: u64 = redis::cmd("EXISTS")
            .arg(part.instance(id))
            .arg(part.history(id))
            .query_async(&mut conn)
            .await?;
        assert_eq!(exists, 0, "{id}: its keys are gone");
        for index in [
            part.index_status(status),
            part.index_definition(def),
            part.index_tenant("acme"),
            part.index_creator("ann"),
            part.index_finished(),
        ] {
            let score: Option<f64> = redis::cmd("ZSCORE")
                .arg(&index)
                .arg(id)
                .query_async(&mut conn)
                .await?;
            assert_eq!(score, None, "{id} is still in {index}");
        }
        assert_eq!(
            client.get_instance(id).await.unwrap_err().kind(),
            "not_found"
        );
    }
    // The unfinished one is kept, whatever its age, with its task.
    assert_eq!(
        client.get_instance("acme:waiting").await?.status,
        InstanceStatus::Waiting
    );
    assert_eq!(
        client.list_tasks(&weir::TaskFilter::default()).await?.len(),
        1
    );
    let by_tenant = client
        .list_instances(&InstanceFilter {
            tenant_id: Some("acme".into()),
            ..InstanceFilter::default()
        })
        .await?;
    assert_eq!(by_tenant.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_capped_or_emptied_but_unhandled_work_is_never_trimmed() -> anyhow::Result<()> {
    init_logs();
    // Small stream nodes so that `MAXLEN ~` trims close to the cap.
    let redis = RedisServer::builder()
        .config("stream-node-max-entries", "5")
        .start()?;
    let url = redis.url();
    let mut config = coordinator_config(&url, "t");
    config.events_cap = 10;
    let _coordinator = start_coordinator_with(config).await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(QUICK)?).await?;
    let keys = keys(&client);
    let mut conn = raw(&url).await?;

    // No worker yet: every dispatched step waits in its stream, however many events pass.
    let mut per_part = vec![0usize; keys.partitions() as usize];
    let mut ids = Vec::new();
    // Each start is a commit of its own (created before the next is sent), so each
    // partition's event stream gets at least one entry per instance: 160 over 8 partitions
    // make well over the cap in the busiest one.
    for i in 0..160 {
        let id = format!("bounded-{i}");
        per_part[keys.partition_of(&id) as usize] += 1;
        client
            .start_workflow_created("quick", with_id(&id), Duration::from_secs(10))
            .await?;
        ids.push(id);
    }
    let mut queued = 0;
    for part in keys.all_parts() {
        queued += xlen(&mut conn, &part.queue("default")).await?;
    }
    assert_eq!(queued, 160, "unacknowledged steps are never trimmed");

    let _worker = start_worker(&url, "t").await?;
    for id in &ids {
        let v = client.wait(id, Duration::from_secs(10)).await?;
        assert_eq!(v.status, InstanceStatus::Completed);
    }
    // Each partition keeps about the last 10 entries (an entry holds a commit's events).
    let busiest = keys.part(
        per_part
            .iter()
            .enumerate()
            .max_by_key(|(_, n)| **n)
            .map(|(p, _)| p as u16)
            .unwrap_or(0),
    );
    let info: redis::Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(busiest.events())
        .query_async(&mut conn)
        .await?;
    let fields: std::collections::HashMap<String, redis::Value> = redis::from_redis_value(info)?;
    let added = fields
        .get("entries-added")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("XINFO STREAM without entries-added: {fields:?}"))?;
    let added: u64 = redis::from_redis_value(added)?;
    assert!(added > 15, "{added} entries added: too few to show the cap");
    for part in keys.all_parts() {
        let n = xlen(&mut conn, &part.events()).await?;
        assert!(n <= 15, "{} holds {n} entries", part.events());
        for (stream, group) in [
            (part.queue("default"), WORKER_GROUP),
            (part.results(), COORDINATOR_GROUP),
            (part.commands(), COORDINATOR_GROUP),
        ] {
            assert_eq!(xlen(&mut conn, &stream).await?, 0, "{stream}");
            assert_eq!(pending(&mut conn, &stream, group).await?, 0, "{stream}");
        }
    }
    Ok(())
}

const OVERDUE: &str = r#"
name: overdue
version: "1.0.0"
steps:
  approve: { type: human, assignee: ann, due: 300ms }
  approved: { type: machine, handler: set, config: { approved: true } }
  escalate: { type: machine, handler: set, config: { escalated: true } }
edges:
  - { from: approve, to: approved }
  - { from: approve, to: escalate, on: timeout }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_task_follows_its_timeout_edge_by_the_redis_clock() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let _worker = start_worker(&url, "t").await?;
    let client = client(&url, "t").await?;
    client
        .register_definition(parse_definition(OVERDUE)?)
        .await?;
    let inst = client
        .start_workflow_created("overdue", StartOptions::default(), Duration::from_secs(10))
        .await?;
    // The deadline is a timer scored by the Redis clock.
    let mut conn = raw(&url).await?;
    let part = keys(&client).part_of(&inst.id);
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
    let redis_now = secs * 1000 + micros / 1000;
    let due: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(part.timers())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await?;
    assert_eq!(due.len(), 1, "{due:?}");
    let delta = due[0].1 as i64 - redis_now;
    assert!(
        (0..=300).contains(&delta),
        "due in {delta} ms by the Redis clock"
    );

    let done = wait_for_async(Duration::from_secs(5), "escalated", async || {
        let v = client.get_instance(&inst.id).await.ok()?;
        v.status.is_terminal().then_some(v)
    })
    .await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(done.context["escalated"], json!(true));
    assert!(done.context.get("approved").is_none());
    assert!(client
        .list_tasks(&weir::TaskFilter::default())
        .await?
        .is_empty());
    let err = client
        .complete_human_task(&inst.id, "approve", "ann", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), "wrong_status" | "task_not_open"),
        "{err}"
    );
    Ok(())
}

const APPROVAL: &str = r#"
name: approval
version: "1.0.0"
steps:
  approve: { type: human, assignee: ann }
  done: { type: machine, handler: set, config: { done: true } }
edges:
  - { from: approve, to: done }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassigned_task_moves_to_the_new_assignee_and_only_they_complete_it(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let _worker = start_worker(&url, "t").await?;
    let client = client(&url, "t").await?;
    client
        .register_definition(parse_definition(APPROVAL)?)
        .await?;
    let inst = client
        .start_workflow_created("approval", with_id("r1"), Duration::from_secs(10))
        .await?;
    let to = weir::model::Assignment {
        assignee: Some("bob".into()),
        candidates: vec![],
        groups: Vec::new(),
    };
    let view = client
        .reassign_task("r1", "approve", &weir::model::Actor::admin("ops"), to)
        .await?;
    assert_eq!(view.status, InstanceStatus::Waiting);

    let for_user = async |user: &str| -> anyhow::Result<usize> {
        let filter = weir::TaskFilter {
            assignee: Some(user.into()),
            ..weir::TaskFilter::default()
        };
        Ok(client.list_tasks(&filter).await?.len())
    };
    assert_eq!(
        for_user("bob").await?,
        1,
        "the task is listed for its new assignee"
    );
    assert_eq!(for_user("ann").await?, 0, "and no longer for the old one");
    let err = client
        .complete_human_task(&inst.id, "approve", "ann", json!({}))
        .await
        .expect_err("ann may not complete it any more");
    assert_eq!(err.kind(), "forbidden", "{err}");
    let none = weir::model::Assignment::default();
    let err = client
        .reassign_task("r1", "approve", &weir::model::Actor::admin("ops"), none)
        .await
        .expect_err("a reassignment names someone");
    assert_eq!(err.kind(), "invalid_data", "{err}");

    client
        .complete_human_task(&inst.id, "approve", "bob", json!({}))
        .await?;
    let done = client.wait(&inst.id, Duration::from_secs(5)).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    let history = client.history(&inst.id).await?;
    let record = history
        .iter()
        .find(|r| r.status == AttemptStatus::Reassigned)
        .expect("the reassignment is in the history");
    assert_eq!(record.worker.as_deref(), Some("ops"));
    assert_eq!(record.note.as_deref(), Some("assigned to bob"));
    let events = all_events(&client).await?;
    assert_eq!(count_events(&events, "r1", "HumanTaskReassigned"), 1);
    Ok(())
}

//! Workers dying, pausing and crashing on a message (ARCHITECTURE.md invariants 2, 4 and 5): a step a
//! dead worker held is reclaimed after the visibility timeout and its transition applied
//! once; heartbeats keep a long step from being reclaimed; a step run twice applies once;
//! a message that keeps killing workers is dead-lettered after N deliveries.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{
    all_events, completed_records, count_events, is_executed, keys, pending, raw, stream_entries,
    worker_config, xlen, Probe,
};
use weir::model::InstanceStatus;
use weir::redis::keys::{COORDINATOR_GROUP, WORKER_GROUP};
use weir::redis::wire::{self, StepMessage};
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_tests::cluster::{
    client, init_logs, start_coordinator, start_coordinator_counted, start_worker_counted,
    start_worker_with,
};
use weir_tests::{wait_until_async, RedisServer};

const FLOW: &str = r#"
name: slow
version: "1.0.0"
steps:
  a: { type: machine, handler: probe }
  b: { type: machine, handler: set, config: { b: true } }
edges:
  - { from: a, to: b }
"#;

fn start_with_id(id: &str) -> StartOptions {
    StartOptions {
        id: Some(id.into()),
        ..StartOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_step_is_reclaimed_and_the_step_applied_once() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    // The first execution hangs (its worker is killed during it); later ones are quick.
    let probe = Probe::new(|_, n| {
        if n == 1 {
            Duration::from_secs(60)
        } else {
            Duration::from_millis(100)
        }
    });
    let vis = Duration::from_secs(1);
    let w1 = start_worker_with(worker_config(&url, "t", vis), probe.handlers()).await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let inst = client
        .start_workflow("slow", start_with_id("job-1"))
        .await?;

    wait_until_async(
        Duration::from_secs(5),
        "the first worker runs step a",
        async || probe.started() == 1,
    )
    .await?;
    w1.kill();
    let (_w2, w2_counters) =
        start_worker_counted(worker_config(&url, "t", vis), probe.handlers()).await?;

    let done = client.wait(&inst.id, Duration::from_secs(15)).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(probe.started(), 2, "killed once, run again once");
    assert_eq!(probe.finished(), 1);
    assert!(w2_counters.reclaimed.load(Ordering::SeqCst) >= 1);
    // The reclaimed execution is the same attempt: same idempotency key.
    let seen = probe.keys();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0], seen[1],
        "a reclaimed attempt keeps its idempotency key"
    );
    assert!(
        seen[0].contains("job-1") && seen[0].contains('a'),
        "{}",
        seen[0]
    );
    // Its transition applied once.
    assert_eq!(completed_records(&client, &inst.id, "a").await?, 1);
    assert_eq!(completed_records(&client, &inst.id, "b").await?, 1);
    let events = all_events(&client).await?;
    assert_eq!(events.iter().filter(|e| is_executed(e, "a")).count(), 1);
    assert_eq!(done.context["probe"], serde_json::json!(2));
    // Nothing left behind in the step stream.
    let mut conn = raw(&url).await?;
    let q = keys(&client).part_of(&inst.id).queue("default");
    assert_eq!(xlen(&mut conn, &q).await?, 0);
    assert_eq!(pending(&mut conn, &q, WORKER_GROUP).await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_long_step_from_being_reclaimed() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    // Each execution takes three visibility timeouts.
    let probe = Probe::new(|_, _| Duration::from_millis(2400));
    let vis = Duration::from_millis(800);
    let (_w1, c1) = start_worker_counted(worker_config(&url, "t", vis), probe.handlers()).await?;
    let (_w2, c2) = start_worker_counted(worker_config(&url, "t", vis), probe.handlers()).await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let inst = client
        .start_workflow("slow", StartOptions::default())
        .await?;

    let done = client.wait(&inst.id, Duration::from_secs(10)).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(
        probe.started(),
        1,
        "a live worker's long step must not be reclaimed by its sibling"
    );
    assert_eq!(
        c1.reclaimed.load(Ordering::SeqCst) + c2.reclaimed.load(Ordering::SeqCst),
        0
    );
    assert_eq!(completed_records(&client, &inst.id, "a").await?, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_run_twice_by_two_workers_is_applied_once() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let (_coordinator, counters) =
        start_coordinator_counted(common::coordinator_config(&url, "t")).await?;
    let probe = Probe::new(|_, _| Duration::from_millis(1500));
    // The first worker heartbeats only every 10 s: to a sibling with a 300 ms visibility
    // timeout it looks dead (as a worker paused by GC or a stopped VM would), so the sibling
    // claims its step and runs it too. Both finish; only the entry's owner, the sibling,
    // reports: the first worker's result is dropped (disowned) before it reaches Redis.
    let (_w1, c1) = start_worker_counted(
        worker_config(&url, "t", Duration::from_secs(30)),
        probe.handlers(),
    )
    .await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let inst = client
        .start_workflow("slow", start_with_id("twice"))
        .await?;
    wait_until_async(
        Duration::from_secs(5),
        "the first worker runs step a",
        async || probe.started() == 1,
    )
    .await?;
    let _w2 = start_worker_with(
        worker_config(&url, "t", Duration::from_millis(300)),
        probe.handlers(),
    )
    .await?;

    let done = client.wait(&inst.id, Duration::from_secs(10)).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    let conn = raw(&url).await?;
    let results = keys(&client).part_of(&inst.id).results();
    wait_until_async(
        Duration::from_secs(5),
        "both executions finished, the first one's result dropped, the results stream drained",
        async || {
            probe.finished() == 2
                && c1.results_disowned.load(Ordering::SeqCst) == 1
                && xlen(&mut conn.clone(), &results).await.ok() == Some(0)
                && pending(&mut conn.clone(), &results, COORDINATOR_GROUP)
                    .await
                    .ok()
                    == Some(0)
        },
    )
    .await?;
    assert_eq!(probe.started(), 2, "the step ran twice (at least once)");
    assert_eq!(
        counters.stale.load(Ordering::SeqCst),
        0,
        "the disowned result never reached the coordinator"
    );
    // ... and its transition applied once.
    assert_eq!(completed_records(&client, &inst.id, "a").await?, 1);
    assert_eq!(completed_records(&client, &inst.id, "b").await?, 1);
    let events = all_events(&client).await?;
    assert_eq!(events.iter().filter(|e| is_executed(e, "a")).count(), 1);
    assert_eq!(count_events(&events, &inst.id, "WorkflowCompleted"), 1);
    let after = client.get_instance(&inst.id).await?;
    assert_eq!(
        after.updated_at, done.updated_at,
        "the late duplicate changed nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_keeps_killing_workers_is_dead_lettered() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let probe = Probe::new(|_, _| Duration::from_secs(60));
    let config = || {
        let mut c = worker_config(&url, "t", Duration::from_millis(400));
        c.max_deliveries = 2;
        c
    };
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let w1 = start_worker_with(config(), probe.handlers()).await?;
    let inst = client
        .start_workflow("slow", start_with_id("crashy"))
        .await?;

    // Two workers "crash" on it in turn (delivery 1 and 2).
    wait_until_async(Duration::from_secs(5), "worker 1 runs it", async || {
        probe.started() == 1
    })
    .await?;
    w1.kill();
    let w2 = start_worker_with(config(), probe.handlers()).await?;
    wait_until_async(
        Duration::from_secs(5),
        "worker 2 reclaims and runs it",
        async || probe.started() == 2,
    )
    .await?;
    w2.kill();
    // The third delivery is over the limit: dead-lettered, not run.
    let (_w3, c3) = start_worker_counted(config(), probe.handlers()).await?;
    let part = keys(&client).part_of(&inst.id);
    let mut conn = raw(&url).await?;
    let dead = wait_for_dlq(&mut conn, &part.dlq(), 1).await?;
    assert_eq!(
        probe.started(),
        2,
        "the poison step is not run a third time"
    );
    // The worker counts the dead letter once its script returned, just after the entry
    // appears: wait for the count, then check it stays at one.
    wait_until_async(
        Duration::from_secs(5),
        "the dead letter counted",
        async || c3.dead_lettered.load(Ordering::SeqCst) >= 1,
    )
    .await?;
    assert_eq!(c3.dead_lettered.load(Ordering::SeqCst), 1);
    let (_, fields) = &dead[0];
    assert_eq!(fields["source"], part.queue("default").into_bytes());
    let error = String::from_utf8_lossy(&fields["error"]).to_string();
    assert!(error.contains("delivered 3 times"), "{error}");
    let msg: StepMessage = wire::decode(&fields["m"])?;
    assert_eq!(
        (msg.instance_id.as_str(), msg.step.as_str()),
        ("crashy", "a")
    );
    // It left its stream (it blocks nothing) and was counted.
    let q = part.queue("default");
    assert_eq!(xlen(&mut conn, &q).await?, 0);
    assert_eq!(pending(&mut conn, &q, WORKER_GROUP).await?, 0);
    let stats: Option<u64> = redis::cmd("HGET")
        .arg(part.stats())
        .arg("dead_lettered")
        .query_async(&mut conn)
        .await?;
    assert_eq!(stats, Some(1));
    // Its step failed (kind dead_lettered): with no failure edge, the instance fails
    // instead of waiting RUNNING for ever.
    let done = client.wait(&inst.id, Duration::from_secs(10)).await?;
    assert_eq!(done.status, InstanceStatus::Failed, "{done:?}");
    let history = client.history(&inst.id).await?;
    assert!(
        history
            .iter()
            .any(|r| format!("{r:?}").contains("dead_lettered")),
        "{history:?}"
    );
    Ok(())
}

/// Waits until the dead-letter stream holds `n` entries, and returns them.
async fn wait_for_dlq(
    conn: &mut redis::aio::MultiplexedConnection,
    dlq: &str,
    n: usize,
) -> anyhow::Result<Vec<(String, std::collections::HashMap<String, Vec<u8>>)>> {
    weir_tests::wait_for_async(Duration::from_secs(10), "dead letters", async || {
        let entries = stream_entries(&mut conn.clone(), dlq).await.ok()?;
        (entries.len() >= n).then_some(entries)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_worker_finishes_what_fits_in_its_grace_and_leaves_the_rest(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    // The first execution fits in the 2 s grace period, the second does not; later ones
    // (on the next worker) are quick.
    let probe = Probe::new(|_, n| match n {
        1 => Duration::from_millis(600),
        2 => Duration::from_secs(30),
        _ => Duration::from_millis(50),
    });
    let vis = Duration::from_secs(1);
    let mut config = worker_config(&url, "t", vis);
    config.grace = Duration::from_secs(2);
    let (w1, c1) = start_worker_counted(config, probe.handlers()).await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let fits = client.start_workflow("slow", start_with_id("fits")).await?;
    wait_until_async(Duration::from_secs(5), "the first step runs", async || {
        probe.started() == 1
    })
    .await?;
    let long = client.start_workflow("slow", start_with_id("long")).await?;
    wait_until_async(Duration::from_secs(5), "the second step runs", async || {
        probe.started() == 2
    })
    .await?;

    let stopping = std::time::Instant::now();
    w1.stop().await;
    let took = stopping.elapsed();
    // At most one read (0.5 s), the grace (2 s), and a moment (1 s) to flush reports.
    assert!(
        took < Duration::from_millis(4500),
        "the drain is bounded by the grace period: {took:?}"
    );
    // The step that fit was finished and reported during the drain.
    assert_eq!(probe.finished(), 1);
    assert_eq!(c1.reported.load(Ordering::SeqCst), 1);
    assert_eq!(completed_records(&client, &fits.id, "a").await?, 1);
    // No new reads after the stop: `fits` now waits at step b with nobody to run it.
    let view = client.get_instance(&fits.id).await?;
    assert_eq!(view.current_steps, vec!["b"]);
    assert_eq!(c1.executed.load(Ordering::SeqCst), 1);

    // The step left behind is reclaimed by the next worker; both instances complete.
    let (_w2, c2) = start_worker_counted(worker_config(&url, "t", vis), probe.handlers()).await?;
    for id in [&fits.id, &long.id] {
        let done = client.wait(id, Duration::from_secs(10)).await?;
        assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
        assert_eq!(completed_records(&client, id, "a").await?, 1);
    }
    assert_eq!(c2.reclaimed.load(Ordering::SeqCst), 1);
    assert_eq!(probe.started(), 3, "only the unfinished step ran again");
    Ok(())
}

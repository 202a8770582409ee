//! Schedules and delayed starts against a real redis-server: each slot fires exactly once
//! while a coordinator is killed with SIGKILL, `skip` with a slow workflow, catch-up after
//! every coordinator was down for five slots, and a delayed start (pending with its time,
//! canceled before, created after).

mod common;
mod procs;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{keys, leased_by, raw};
use procs::two_coordinators_sharing;
use weir::model::InstanceStatus;
use weir::redis::WeirClient;
use weir::schedule::{FiringOutcome, Overlap, ScheduleSpec, Trigger};
use weir::{parse_definition, Engine, InstanceFilter, StartOptions, Timestamp};
use weir_tests::cluster::{client, init_logs, start_coordinator, start_worker};
use weir_tests::{wait_for_async, wait_until_async, RedisServer};

const QUICK: &str = r#"
name: tick
version: "1.0.0"
steps:
  note: { type: machine, handler: set, config: { ticked: true } }
"#;

const SLOW: &str = r#"
name: slow
version: "1.0.0"
steps:
  rest: { type: timer, duration: 2500ms }
"#;

fn every_second(name: &str, workflow: &str, overlap: Overlap, catch_up: u32) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        workflow: workflow.into(),
        version: None,
        trigger: Trigger::Every { every_ms: 1000 },
        data: Default::default(),
        overlap,
        catch_up,
    }
}

/// The slots (ms) of the instances a schedule started, from their ids `NAME@SLOT`.
async fn slots_started(client: &WeirClient, name: &str) -> anyhow::Result<Vec<i64>> {
    let views = client
        .list_instances(&InstanceFilter {
            created_by: Some(format!("schedule:{name}")),
            limit: Some(1000),
            ..InstanceFilter::default()
        })
        .await?;
    let mut slots = Vec::new();
    for v in views {
        let (_, slot) =
            v.id.split_once('@')
                .ok_or_else(|| anyhow::anyhow!("id {:?} names no slot", v.id))?;
        slots.push(Timestamp::parse_rfc3339(slot)?.millis());
    }
    slots.sort();
    Ok(slots)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_slot_fires_once_while_a_coordinator_is_killed() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let ns = "sched-kill";
    let client = client(&url, ns).await?;
    client.register_definition(parse_definition(QUICK)?).await?;
    let k = keys(&client);
    let lease = Duration::from_millis(1000);
    let (mut a, mut b) = two_coordinators_sharing(&url, ns, &k, lease).await?;
    let _worker = start_worker(&url, ns).await?;
    // Catch-up covers the takeover: the slots due while the killed holder's lease runs out
    // fire when the other coordinator takes the partition.
    let view = client
        .create_schedule(every_second("tick", "tick", Overlap::Allow, 20))
        .await?;
    let first = view
        .next_fire
        .ok_or_else(|| anyhow::anyhow!("no next fire"))?;
    // Kill the holder of the schedule's partition with SIGKILL after about four slots.
    wait_until_async(Duration::from_secs(10), "four slots fired", async || {
        slots_started(&client, "tick")
            .await
            .is_ok_and(|s| s.len() >= 4)
    })
    .await?;
    let part = k.partition_of("tick");
    let holder_a = leased_by(&mut raw(&url).await?, &k, &a.id)
        .await?
        .contains(&part);
    let survivor = if holder_a {
        a.kill()?;
        &b.id
    } else {
        b.kill()?;
        &a.id
    };
    // Ten slots in all: the survivor takes the partition and goes on.
    let last = first.millis() + 9_000;
    wait_until_async(Duration::from_secs(20), "ten slots fired", async || {
        slots_started(&client, "tick")
            .await
            .is_ok_and(|s| s.iter().filter(|t| **t <= last).count() >= 10)
    })
    .await?;
    assert!(leased_by(&mut raw(&url).await?, &k, survivor)
        .await?
        .contains(&part));
    let slots: Vec<i64> = slots_started(&client, "tick")
        .await?
        .into_iter()
        .filter(|t| *t <= last)
        .collect();
    // Each slot from the first to the tenth has exactly one instance, by its id: no slot
    // missed, none twice (an id is one instance), and no instance outside the slots.
    let expected: Vec<i64> = (0..10).map(|k| first.millis() + k * 1000).collect();
    assert_eq!(slots, expected, "instances by slot");
    let unique: BTreeSet<i64> = slots.iter().copied().collect();
    assert_eq!(unique.len(), slots.len());
    let detail = client.get_schedule("tick").await?;
    assert_eq!(detail.schedule.missed, 0, "{detail:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_starts_no_slot_while_the_previous_instance_runs() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let ns = "sched-skip";
    let client = client(&url, ns).await?;
    client.register_definition(parse_definition(SLOW)?).await?;
    let _coordinator = start_coordinator(&url, ns).await?;
    let _worker = start_worker(&url, ns).await?;
    client
        .create_schedule(every_second("slow", "slow", Overlap::Skip, 1))
        .await?;
    // Each instance rests 2.5 s: of the slots while it runs, none starts.
    wait_until_async(Duration::from_secs(15), "three slots skipped", async || {
        client
            .get_schedule("slow")
            .await
            .is_ok_and(|d| d.schedule.skipped >= 3)
    })
    .await?;
    client.pause_schedule("slow").await?;
    let views = client
        .list_instances(&InstanceFilter {
            created_by: Some("schedule:slow".into()),
            ..InstanceFilter::default()
        })
        .await?;
    assert!(!views.is_empty());
    // No two instances ran at once: each started after the one before finished.
    let mut runs: Vec<(Timestamp, Option<Timestamp>)> = Vec::new();
    for v in &views {
        let done = client.wait(&v.id, Duration::from_secs(10)).await?;
        runs.push((done.created_at, done.finished_at));
    }
    runs.sort();
    for pair in runs.windows(2) {
        let finished = pair[0].1.ok_or_else(|| anyhow::anyhow!("unfinished"))?;
        assert!(
            pair[1].0 >= finished,
            "an instance started at {} while the one before ran until {finished}",
            pair[1].0
        );
    }
    let detail = client.get_schedule("slow").await?;
    assert!(detail
        .recent
        .iter()
        .any(|f| f.outcome == FiringOutcome::SkippedOverlap));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_slots_catch_up_when_a_coordinator_returns() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let ns = "sched-catch-up";
    let client = client(&url, ns).await?;
    client.register_definition(parse_definition(QUICK)?).await?;
    let coordinator = start_coordinator(&url, ns).await?;
    let _worker = start_worker(&url, ns).await?;
    client
        .create_schedule(every_second("nightly", "tick", Overlap::Allow, 2))
        .await?;
    wait_until_async(Duration::from_secs(10), "a first slot fired", async || {
        slots_started(&client, "nightly")
            .await
            .is_ok_and(|s| !s.is_empty())
    })
    .await?;
    // Every coordinator down (killed) for five slots and more.
    coordinator.kill();
    let before = slots_started(&client, "nightly").await?;
    let down_from = client.connections().server_time().await?;
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let _back = start_coordinator(&url, ns).await?;
    let detail = wait_for_async(
        Duration::from_secs(10),
        "the missed slots counted",
        async || {
            client
                .get_schedule("nightly")
                .await
                .ok()
                .filter(|d| d.schedule.missed > 0)
        },
    )
    .await?;
    // The slots of the outage: the two most recent fired, the older ones missed.
    let after = slots_started(&client, "nightly").await?;
    let caught_up: Vec<i64> = after
        .iter()
        .copied()
        .filter(|s| !before.contains(s) && *s <= down_from + 5_500)
        .collect();
    let last_before = before.last().copied().unwrap_or(0);
    let due_in_outage = (down_from + 5_500 - last_before) / 1000;
    assert!(detail.schedule.missed >= 3, "{detail:?}");
    assert!(
        caught_up.len() <= 2 + 1,
        "at most the catch-up (2) of the outage fired, plus a slot due after it: {caught_up:?}"
    );
    assert!(
        detail.schedule.missed + caught_up.len() as u64 >= due_in_outage as u64 - 1,
        "missed {} + fired {} cover the {due_in_outage} slots of the outage",
        detail.schedule.missed,
        caught_up.len()
    );
    assert!(detail
        .recent
        .iter()
        .any(|f| matches!(f.outcome, FiringOutcome::Missed { count } if count >= 3)));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_start_is_pending_with_its_time_until_then() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let ns = "delayed";
    let client = client(&url, ns).await?;
    client.register_definition(parse_definition(QUICK)?).await?;
    let _coordinator = start_coordinator(&url, ns).await?;
    let _worker = start_worker(&url, ns).await?;
    let delayed = |id: &str| StartOptions {
        id: Some(id.into()),
        start_delay_ms: Some(2_000),
        ..StartOptions::default()
    };
    let kept = client.start_workflow("tick", delayed("later-1")).await?;
    let doomed = client.start_workflow("tick", delayed("later-2")).await?;
    let due = kept
        .start_at
        .ok_or_else(|| anyhow::anyhow!("no start_at: {kept:?}"))?;
    assert_eq!(kept.status, InstanceStatus::Pending);
    // Pending with its time, in status and in the listing, while a coordinator runs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let read = client.get_instance("later-1").await?;
    assert_eq!(
        (read.status, read.start_at),
        (InstanceStatus::Pending, Some(due))
    );
    let listed = client.list_instances(&InstanceFilter::default()).await?;
    assert!(listed
        .iter()
        .any(|v| v.id == "later-1" && v.start_at == Some(due)));
    // The same caller id again is the same start.
    let again = client.start_workflow("tick", delayed("later-1")).await?;
    assert_eq!(again.id, "later-1");
    // Canceled before its time: never created.
    let canceled = client
        .cancel_workflow(&doomed.id, Some("not needed"))
        .await?;
    assert_eq!(canceled.status, InstanceStatus::Canceled);
    // Created at its time, not before.
    let done = client.wait("later-1", Duration::from_secs(10)).await?;
    assert_eq!(done.status, InstanceStatus::Completed);
    let now = client.connections().server_time().await?;
    assert!(now >= due.millis());
    assert!(done.updated_at >= due, "{done:?} ran before {due}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        client.get_instance("later-2").await?.status,
        InstanceStatus::Canceled
    );
    // A start time in the past starts at once; both kinds at once are refused.
    let past = client
        .start_workflow(
            "tick",
            StartOptions {
                start_at: Some(Timestamp(0)),
                ..StartOptions::default()
            },
        )
        .await?;
    assert_eq!(past.start_at, None);
    let both = client
        .start_workflow(
            "tick",
            StartOptions {
                start_at: Some(due),
                start_delay_ms: Some(5),
                ..StartOptions::default()
            },
        )
        .await;
    assert!(
        matches!(both, Err(weir::EngineError::BadRequest(_))),
        "{both:?}"
    );
    Ok(())
}

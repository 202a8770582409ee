//! Issue 12 under load, on a real six-node Redis Cluster (three masters, three replicas): a
//! steady stream of four-step instances flows through two coordinators and two workers
//! while
//!
//! - the slot of a busy partition is migrated to another master and back, each time with
//!   a spell half-way (some of its keys moved, the slot `MIGRATING`/`IMPORTING`: `ASK`
//!   for the keys moved, `TRYAGAIN` for a script over keys on both sides), then finished
//!   (`MOVED` for every client whose slot map is older);
//! - the master of a busy partition is killed with SIGKILL and its replica promoted (the
//!   killed node then comes back as the new master's replica), under `--durability
//!   replicated` and under `local`.
//!
//! Every instance completes, no transition is doubled (each step completes once in history
//! and has one `StepExecuted` event; each instance one `WorkflowStarted` and one
//! `WorkflowCompleted`), no stream keeps an entry or a pending delivery, nothing is dead-
//! lettered. Under `replicated`, no acknowledged start is lost; under `local`, what the
//! README allows (the last acknowledged starts before the kill) is counted, and every
//! instance that survived completes once. The pause in the busy partition's progress (the
//! longest time without one of its transitions, around the fault) is printed: run with
//! `--no-capture` to see it.

mod common;

use std::time::Duration;

use common::{all_events, assert_each_step_once, wait_all_completed};
use weir::model::InstanceStatus;
use weir::redis::keys::{COORDINATOR_GROUP, WORKER_GROUP};
use weir::redis::{Durability, Keys, RedisConfig, WeirClient};
use weir::{parse_definition, Engine};
use weir_coordinator::service::CoordinatorConfig;
use weir_tests::cluster::{init_logs, start_builtin_worker, start_coordinator_with, Service};
use weir_tests::load::{longest_quiet, now_millis, start_again, steady_starts, Started};
use weir_tests::{wait_until_async, RedisCluster};
use weir_worker::WorkerConfig;

const FLOW: &str = r#"
name: flow
version: "1.0.0"
steps:
  a: { type: machine, handler: set, config: { a: 1 } }
  b: { type: machine, handler: sleep, config: { duration: 50ms } }
  c: { type: machine, handler: set, config: { c: 1 } }
  d: { type: machine, handler: set, config: { d: 1 } }
edges:
  - { from: a, to: b }
  - { from: b, to: c }
  - { from: c, to: d }
"#;
const STEPS: &[&str] = &["a", "b", "c", "d"];
const NS: &str = "t";
/// How many instances the load starts, one every [`EVERY`] (half in the busy partition).
const STARTS: usize = 200;
const EVERY: Duration = Duration::from_millis(50);
/// How long the load runs before the fault: the baseline.
const BEFORE: Duration = Duration::from_secs(2);
/// How long a migration stays half-way (keys on both masters).
const HALF_WAY: Duration = Duration::from_millis(1500);
/// How long the instances may take to finish once the load ends.
const DRAIN: Duration = Duration::from_secs(60);

/// Two coordinators and two workers (in-process, each on its own runtime) and a client.
struct Deployment {
    _services: Vec<Service>,
    client: WeirClient,
    keys: Keys,
}

async fn deploy(url: &str, durability: Durability) -> anyhow::Result<Deployment> {
    let config = RedisConfig::new(url, NS).with_durability(durability);
    let mut services = Vec::new();
    for _ in 0..2 {
        let mut c = CoordinatorConfig::new(config.clone());
        c.lease = Duration::from_secs(1);
        services.push(start_coordinator_with(c).await?);
    }
    for _ in 0..2 {
        let mut w = WorkerConfig::new(config.clone());
        w.visibility_timeout = Duration::from_secs(2);
        w.grace = Duration::from_secs(1);
        w.concurrency = 8;
        services.push(start_builtin_worker(w).await?.0);
    }
    let client = WeirClient::connect(&config).await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let keys = common::keys(&client);
    Ok(Deployment {
        _services: services,
        client,
        keys,
    })
}

/// `n` instance ids, every other one in partition `busy`.
fn load_ids(keys: &Keys, busy: u16, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            if i % 2 == 1 {
                return format!("load-{i}");
            }
            let mut k = 0;
            loop {
                let id = format!("load-{i}-{k}");
                if keys.partition_of(&id) == busy {
                    return id;
                }
                k += 1;
            }
        })
        .collect()
}

/// The slot of partition `busy`.
fn slot_of(cluster: &mut RedisCluster, keys: &Keys, busy: u16) -> anyhow::Result<u16> {
    cluster.slot_of(&keys.part(busy).commands())
}

/// Moves `slot` to master `to` under load: half its keys first, a spell half-way, then the
/// rest and the slot itself.
async fn migrate_in_two_halves(
    cluster: &mut RedisCluster,
    slot: u16,
    to: usize,
) -> anyhow::Result<()> {
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        cluster.begin_slot_migration(slot, to)?;
        let keys = cluster.keys_in_slot(slot)?;
        let moved = cluster.move_slot_keys(slot, to, usize::try_from(keys / 2)?.max(1))?;
        eprintln!("slot {slot}: {moved} of its {keys} keys moved to node {to}; half-way");
        Ok(())
    })?;
    tokio::time::sleep(HALF_WAY).await;
    tokio::task::block_in_place(|| cluster.finish_slot_migration(slot, to))
}

/// Streams that still hold entries or pending deliveries, and dead letters.
async fn stranded(client: &WeirClient) -> anyhow::Result<Vec<String>> {
    let keys = common::keys(client);
    let mut conn = client.connections().conn.clone();
    let mut out = Vec::new();
    for part in keys.all_parts() {
        for (stream, group) in [
            (part.commands(), COORDINATOR_GROUP),
            (part.results(), COORDINATOR_GROUP),
            (part.queue("default"), WORKER_GROUP),
        ] {
            let len: u64 = redis::cmd("XLEN")
                .arg(&stream)
                .query_async(&mut conn)
                .await?;
            let pending: redis::Value = redis::cmd("XPENDING")
                .arg(&stream)
                .arg(group)
                .query_async(&mut conn)
                .await?;
            let pending = match pending {
                redis::Value::Array(items) => match items.first() {
                    Some(redis::Value::Int(n)) => *n,
                    _ => 0,
                },
                _ => 0,
            };
            if len > 0 || pending > 0 {
                out.push(format!("{stream}: {len} entries, {pending} pending"));
            }
        }
        let dead: u64 = redis::cmd("XLEN")
            .arg(part.dlq())
            .query_async(&mut conn)
            .await?;
        if dead > 0 {
            out.push(format!("{}: {dead} dead letters", part.dlq()));
        }
    }
    Ok(out)
}

/// Waits until every one of `ids` completed; if one does not in time, the error lists those
/// that did not (status and current steps) and what the streams still hold.
async fn wait_completed(client: &WeirClient, ids: &[String]) -> anyhow::Result<()> {
    let Err(e) = wait_all_completed(client, ids, DRAIN).await else {
        return Ok(());
    };
    let mut stuck = Vec::new();
    for id in ids {
        match client.get_instance(id).await {
            Ok(v) if v.status == InstanceStatus::Completed => {}
            Ok(v) => stuck.push(format!(
                "{id} (partition {}): {} at {:?}, updated at {}",
                common::keys(client).partition_of(id),
                v.status.as_str(),
                v.current_steps,
                v.updated_at.millis()
            )),
            Err(e) => stuck.push(format!("{id}: {e}")),
        }
    }
    // What happened to the first ones: their history and events, and their partition's
    // step stream as its master sees it.
    let events = all_events(client).await.unwrap_or_default();
    let mut detail = String::new();
    for id in ids
        .iter()
        .filter(|id| stuck.iter().any(|s| s.starts_with(id.as_str())))
        .take(3)
    {
        let history = client.history(id).await.map(|h| {
            h.iter()
                .map(|r| {
                    format!(
                        "{} #{} {:?} {:?}..{:?} by {:?} {:?}",
                        r.step,
                        r.attempt,
                        r.status,
                        r.started_at.map(|t| t.millis()),
                        r.finished_at.map(|t| t.millis()),
                        r.worker,
                        r.note
                    )
                })
                .collect::<Vec<_>>()
        });
        let mine: Vec<String> = events
            .iter()
            .filter(|e| &*e.instance_id == id.as_str())
            .map(|e| format!("{} {}", e.timestamp.millis(), e.kind.type_name()))
            .collect();
        let part = common::keys(client).part_of(id);
        let info: Result<redis::Value, _> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(part.queue("default"))
            .arg("FULL")
            .query_async(&mut client.connections().conn.clone())
            .await;
        detail.push_str(&format!(
            "\n--- {id}: history {history:?}\nevents {mine:?}\nits step stream: {info:?}"
        ));
    }
    anyhow::bail!(
        "{e}: {} not completed: {stuck:?}; streams: {:?}{detail}",
        stuck.len(),
        stranded(client).await
    )
}

/// Waits until no stream keeps an entry, a pending delivery or a dead letter.
async fn assert_nothing_stranded(client: &WeirClient) -> anyhow::Result<()> {
    let drained = wait_until_async(Duration::from_secs(20), "streams drained", async || {
        stranded(client).await.is_ok_and(|s| s.is_empty())
    })
    .await;
    if let Err(e) = drained {
        anyhow::bail!("{e}: {:?}", stranded(client).await?);
    }
    Ok(())
}

/// The busy partition's pause around the fault, and before it, and the longest pause of
/// any other partition around the fault; printed, and the busy partition's returned.
async fn report_pause(
    what: &str,
    d: &Deployment,
    busy: u16,
    load_began: i64,
    fault: (i64, i64),
) -> anyhow::Result<Duration> {
    let events = all_events(&d.client).await?;
    let partition = |e: &weir::model::Event| d.keys.partition_of(&e.instance_id);
    let baseline = longest_quiet(
        &events,
        |e| partition(e) == busy && e.timestamp.millis() < fault.0,
        (load_began, fault.0),
    );
    let pause = longest_quiet(&events, |e| partition(e) == busy, fault)
        .ok_or_else(|| anyhow::anyhow!("no transition of partition {busy} around the fault"))?;
    let others = (0..d.keys.partitions())
        .filter(|p| *p != busy)
        .filter_map(|p| longest_quiet(&events, |e| partition(e) == p, fault))
        .max();
    eprintln!(
        "{what}: partition {busy}'s longest pause around the fault {pause:?} (the fault took \
         {} ms; before it, the longest pause was {baseline:?}); the other partitions' longest \
         pause around it {others:?}",
        fault.1 - fault.0
    );
    Ok(pause)
}

/// How long after a fault ended a start may still be refused: a client meets the new
/// slot map on its next command, and the machine is loaded.
const SETTLE_MS: i64 = 5000;

/// Ids of the starts the load acknowledged, and of those it did not; a start refused
/// though it was sent well after the fault had ended (`fault_ended`, epoch ms) fails the
/// test.
fn split(started: &[Started], fault_ended: i64) -> (Vec<String>, Vec<String>) {
    let (acked, refused): (Vec<&Started>, Vec<&Started>) =
        started.iter().partition(|s| s.acknowledged());
    for s in &refused {
        eprintln!(
            "start of {} (sent {} ms after the fault ended) refused: {:?}",
            s.id,
            s.sent_at - fault_ended,
            s.outcome
        );
        assert!(
            s.sent_at <= fault_ended + SETTLE_MS,
            "the start of {} was refused {} ms after the fault had ended: {:?}",
            s.id,
            s.sent_at - fault_ended,
            s.outcome
        );
    }
    (
        acked.iter().map(|s| s.id.clone()).collect(),
        refused.iter().map(|s| s.id.clone()).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_partition_migrated_to_another_master_and_back_under_load_loses_and_doubles_nothing(
) -> anyhow::Result<()> {
    init_logs();
    let mut cluster = RedisCluster::start()?;
    let d = deploy(&cluster.urls(), Durability::Local).await?;
    let busy = 0;
    let slot = slot_of(&mut cluster, &d.keys, busy)?;
    let home = cluster.master_of_slot(slot)?;
    let away = cluster
        .masters()?
        .into_iter()
        .find(|m| *m != home)
        .ok_or_else(|| anyhow::anyhow!("only one master"))?;
    let (moved_before, ask_before) = (
        cluster.error_replies("MOVED")?,
        cluster.error_replies("ASK")?,
    );
    let ids = load_ids(&d.keys, busy, STARTS);
    let began = now_millis();
    let load = steady_starts(&d.client, "flow", ids.clone(), EVERY);
    tokio::time::sleep(BEFORE).await;

    let fault_began = now_millis();
    migrate_in_two_halves(&mut cluster, slot, away).await?;
    assert_eq!(cluster.master_of_slot(slot)?, away);
    tokio::time::sleep(BEFORE).await;
    migrate_in_two_halves(&mut cluster, slot, home).await?;
    assert_eq!(cluster.master_of_slot(slot)?, home);
    let fault_ended = now_millis();

    let started = load.finish().await?;
    let (_, refused) = split(&started, fault_ended);
    start_again(&d.client, "flow", &refused, Duration::from_secs(30)).await?;
    wait_completed(&d.client, &ids).await?;
    assert_each_step_once(&d.client, &ids, STEPS).await?;
    assert_nothing_stranded(&d.client).await?;

    let (moved, ask) = (
        cluster.error_replies("MOVED")? - moved_before,
        cluster.error_replies("ASK")? - ask_before,
    );
    eprintln!(
        "migrations: {moved} MOVED and {ask} ASK replies, {} TRYAGAIN; {} of {} starts refused \
         and made again",
        cluster.error_replies("TRYAGAIN")?,
        refused.len(),
        ids.len()
    );
    assert!(moved > 0, "no client was sent MOVED");
    assert!(ask > 0, "no client was sent ASK");
    report_pause(
        "slot migrated away and back",
        &d,
        busy,
        began,
        (fault_began, fault_ended),
    )
    .await?;
    Ok(())
}

/// A run in which the master of the busy partition was killed under load.
struct Killed {
    /// The cluster, its killed node back as a replica.
    _cluster: RedisCluster,
    d: Deployment,
    /// Every id the load started.
    ids: Vec<String>,
    /// What became of each start.
    started: Vec<Started>,
    busy: u16,
    /// When the load began, and the fault began and ended (epoch ms).
    began: i64,
    fault: (i64, i64),
}

/// Kills the master of the busy partition under load, then brings it back as the new
/// master's replica.
async fn kill_a_busy_master_under_load(durability: Durability) -> anyhow::Result<Killed> {
    let mut cluster = RedisCluster::start()?;
    let d = deploy(&cluster.urls(), durability).await?;
    let busy = 0;
    let slot = slot_of(&mut cluster, &d.keys, busy)?;
    let ids = load_ids(&d.keys, busy, STARTS);
    let began = now_millis();
    let load = steady_starts(&d.client, "flow", ids.clone(), EVERY);
    tokio::time::sleep(BEFORE).await;

    let fault_began = now_millis();
    let (killed, promoted) = tokio::task::block_in_place(|| cluster.kill_master_of_slot(slot))?;
    eprintln!(
        "node {killed} killed; node {promoted} promoted in its place {} ms later",
        now_millis() - fault_began
    );
    // Under `replicated` a master without a replica refuses every write: the killed node
    // comes back as the promoted one's replica, as an operator (or an orchestrator) would
    // bring it back.
    tokio::task::block_in_place(|| cluster.restart(killed))?;
    let fault_ended = now_millis();
    let started = load.finish().await?;
    Ok(Killed {
        _cluster: cluster,
        d,
        ids,
        started,
        busy,
        began,
        fault: (fault_began, fault_ended),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_master_killed_under_load_loses_no_acknowledged_start_when_replicated(
) -> anyhow::Result<()> {
    init_logs();
    let Killed {
        _cluster,
        d,
        ids,
        started,
        busy,
        began,
        fault,
    } = kill_a_busy_master_under_load(Durability::Replicated).await?;
    let (acked, refused) = split(&started, fault.1);
    // Nothing acknowledged is lost: every acknowledged start is there, before any start
    // is made again.
    for id in &acked {
        // The last answer is kept for the failure message: a start that is gone and a
        // client that cannot reach its node fail this wait alike, and mean different things.
        let last = std::sync::Mutex::new(String::new());
        let found = wait_until_async(
            Duration::from_secs(30),
            &format!("the acknowledged start of {id} is there"),
            async || match d.client.get_instance(id).await {
                Ok(_) => true,
                Err(e) => {
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
                    false
                }
            },
        )
        .await;
        if let Err(e) = found {
            let last = last.into_inner().unwrap_or_else(|p| p.into_inner());
            anyhow::bail!("{e}; the last answer for {id}: {last}");
        }
    }
    start_again(&d.client, "flow", &refused, Duration::from_secs(30)).await?;
    wait_completed(&d.client, &ids).await?;
    assert_each_step_once(&d.client, &ids, STEPS).await?;
    assert_nothing_stranded(&d.client).await?;
    eprintln!(
        "replicated: {} of {} starts acknowledged, all there; {} refused during the failover \
         and made again",
        acked.len(),
        ids.len(),
        refused.len()
    );
    report_pause("master killed (replicated)", &d, busy, began, fault).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_master_killed_under_load_doubles_nothing_when_local() -> anyhow::Result<()> {
    init_logs();
    let Killed {
        _cluster,
        d,
        ids,
        started,
        busy,
        began,
        fault,
    } = kill_a_busy_master_under_load(Durability::Local).await?;
    let (acked, refused) = split(&started, fault.1);
    // Under `local` a failover may drop the master's last writes, acknowledged starts
    // included (README, "Durability"): those are counted, not made again; every other
    // instance completes once.
    let mut lost = Vec::new();
    for id in &acked {
        let found = wait_until_async(
            Duration::from_secs(30),
            &format!("the start of {id} is readable"),
            async || match d.client.get_instance(id).await {
                Ok(_) => true,
                Err(e) => e.kind() == "not_found",
            },
        )
        .await;
        found?;
        if d.client.get_instance(id).await.is_err() {
            lost.push(id.clone());
        }
    }
    start_again(&d.client, "flow", &refused, Duration::from_secs(30)).await?;
    let kept: Vec<String> = ids
        .iter()
        .filter(|id| !lost.contains(id))
        .cloned()
        .collect();
    wait_completed(&d.client, &kept).await?;
    assert_each_step_once(&d.client, &kept, STEPS).await?;
    assert_nothing_stranded(&d.client).await?;
    eprintln!(
        "local: {} of {} starts acknowledged, {} of them lost in the failover ({lost:?}); {} \
         refused and made again",
        acked.len(),
        ids.len(),
        lost.len(),
        refused.len()
    );
    report_pause("master killed (local)", &d, busy, began, fault).await?;
    Ok(())
}

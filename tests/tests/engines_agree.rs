//! One pure core (ARCHITECTURE.md invariant 1): the in-process LocalEngine and the Redis coordinator
//! with its workers drive the same transition function, so the same workflows with the same
//! inputs end the same way in both: status, context, failed step and error, and the history
//! of attempts (step, attempt, outcome, error).
//!
//! Each test runs on both Redis topologies ([`Topology`]): one `redis-server`, and a
//! six-node Redis Cluster (three masters, three replicas), where the scenarios' instances
//! fall in partitions of several masters (checked). One piece of code, the topology a
//! parameter.

use std::time::Duration;

use serde_json::{json, Value};
use weir::model::{AttemptRecord, InstanceStatus};
use weir::redis::WeirClient;
use weir::{
    parse_definition, Engine, EngineError, InstanceView, LocalEngine, Refusal, StartOptions,
};
use weir_tests::cluster::{client, init_logs, start_coordinator, start_worker};
use weir_tests::wait_until_async;
use weir_tests::{RedisCluster, RedisServer};

/// Where the Redis engine keeps its state in a test.
#[derive(Debug, Clone, Copy)]
enum Topology {
    /// One `redis-server`.
    OneServer,
    /// A six-node Redis Cluster: three masters, each with a replica.
    Cluster,
}

/// The servers of a [`Topology`], running until dropped.
enum Servers {
    // Held only to keep the server running.
    #[allow(dead_code)]
    One(RedisServer),
    Cluster(RedisCluster),
}

impl Topology {
    /// Starts the servers; returns them with the URL Weir's processes are given.
    fn start(self) -> anyhow::Result<(Servers, String)> {
        Ok(match self {
            Topology::OneServer => {
                let server = RedisServer::start()?;
                let url = server.url();
                (Servers::One(server), url)
            }
            Topology::Cluster => {
                let cluster = RedisCluster::start()?;
                let url = cluster.urls();
                (Servers::Cluster(cluster), url)
            }
        })
    }
}

impl Servers {
    /// On a cluster, the masters that hold the partitions of `ids` (an empty set on one
    /// server).
    fn masters_of(
        &mut self,
        keys: &weir::redis::Keys,
        ids: &[String],
    ) -> anyhow::Result<std::collections::BTreeSet<usize>> {
        let mut masters = std::collections::BTreeSet::new();
        if let Servers::Cluster(cluster) = self {
            for id in ids {
                let slot = cluster.slot_of(&keys.part_of(id).commands())?;
                masters.insert(cluster.master_of_slot(slot)?);
            }
        }
        Ok(masters)
    }
}

struct Scenario {
    definition: &'static str,
    data: Value,
    /// A human task to complete when the instance waits: (step, user, data).
    task: Option<(&'static str, &'static str, Value)>,
    /// Retry the instance (from its failed step) when it fails.
    retry_on_failure: bool,
    expected: InstanceStatus,
}

const ROUTING: &str = r#"
name: routing
version: "1.0.0"
steps:
  start: { type: machine, handler: set, config: { seen: true } }
  route: { type: gateway }
  big: { type: machine, handler: set, config: { size: big } }
  small: { type: machine, handler: set, config: { size: small } }
  join: { type: machine, handler: set, config: { joined: true } }
  approve:
    type: human
    assignee: ann
    form: { type: object, required: [ok], properties: { ok: { type: boolean } } }
  cool: { type: timer, duration: 100ms }
  end: { type: machine, handler: set, config: { ended: true } }
edges:
  - { from: start, to: route }
  - { from: route, to: big, condition: "context.amount > 100" }
  - { from: route, to: small, default: true }
  - { from: big, to: join }
  - { from: small, to: join }
  - { from: join, to: approve }
  - { from: approve, to: cool, condition: "context.ok == true" }
  - { from: approve, to: end, default: true }
  - { from: cool, to: end }
"#;

const RETRIES: &str = r#"
name: retries
version: "1.0.0"
steps:
  flaky:
    type: machine
    handler: fail
    config: { times: 2, message: "not yet" }
    retry: { max_attempts: 3, initial_interval: 50ms, jitter: false }
  boom:
    type: machine
    handler: fail
    config: { times: -1, message: "always" }
    retry: { max_attempts: 2, initial_interval: 50ms, jitter: false }
  recover: { type: machine, handler: set, config: { recovered: true } }
edges:
  - { from: flaky, to: boom }
  - { from: boom, to: recover, on: failure }
"#;

const RESUME: &str = r#"
name: resume
version: "1.0.0"
steps:
  a: { type: machine, handler: set, config: { a: 1 } }
  x: { type: machine, handler: fail, config: { times: 1, message: "once" } }
  last: { type: machine, handler: set, config: { last: 2 } }
edges:
  - { from: a, to: x }
  - { from: x, to: last }
"#;

const FANOUT: &str = r#"
name: fanout
version: "1.0.0"
steps:
  a: { type: machine, handler: set, config: { a: 1 } }
  b: { type: machine, handler: set, config: { b: 1 } }
  c: { type: machine, handler: set, config: { c: 1 } }
  # The failing branch waits first, so that in both engines its siblings have finished when
  # it fails (which branches were still running when the instance failed is a race).
  pause: { type: machine, handler: sleep, config: { duration: 500ms } }
  d: { type: machine, handler: fail, config: { times: -1, retryable: false } }
  join: { type: machine, handler: set, config: { joined: true } }
edges:
  - { from: a, to: b }
  - { from: a, to: c }
  - { from: a, to: pause }
  - { from: pause, to: d }
  - { from: b, to: join }
  - { from: c, to: join }
  - { from: d, to: join }
"#;

fn scenarios() -> Vec<(&'static str, Scenario)> {
    vec![
        (
            "routing",
            Scenario {
                definition: ROUTING,
                data: json!({ "amount": 250 }),
                task: Some(("approve", "ann", json!({ "ok": true }))),
                retry_on_failure: false,
                expected: InstanceStatus::Completed,
            },
        ),
        (
            "routing",
            Scenario {
                definition: ROUTING,
                data: json!({ "amount": 5 }),
                task: Some(("approve", "ann", json!({ "ok": false }))),
                retry_on_failure: false,
                expected: InstanceStatus::Completed,
            },
        ),
        (
            "retries",
            Scenario {
                definition: RETRIES,
                data: json!({}),
                task: None,
                retry_on_failure: false,
                expected: InstanceStatus::Completed,
            },
        ),
        (
            "resume",
            Scenario {
                definition: RESUME,
                data: json!({}),
                task: None,
                retry_on_failure: true,
                expected: InstanceStatus::Completed,
            },
        ),
        (
            "fanout",
            Scenario {
                definition: FANOUT,
                data: json!({}),
                task: None,
                retry_on_failure: false,
                expected: InstanceStatus::Failed,
            },
        ),
    ]
}

/// What must agree: the view without times, and the history without times and workers,
/// sorted (parallel branches may finish in either order).
fn outcome(view: &InstanceView, history: &[AttemptRecord]) -> Value {
    let mut attempts: Vec<String> = history
        .iter()
        .map(|r| {
            format!(
                "{} #{} {:?} {}",
                r.step,
                r.attempt,
                r.status,
                r.error.as_deref().unwrap_or("")
            )
        })
        .collect();
    attempts.sort();
    json!({
        "status": view.status.as_str(),
        "context": view.context,
        "error": view.error,
        "failed_step": view.failed_step,
        "current_steps": view.current_steps,
        "attempts": attempts,
    })
}

/// Runs a scenario through the engine API, the same calls whichever engine answers them.
async fn run(engine: &dyn Engine, id: &str, name: &str, s: &Scenario) -> Value {
    let wait = Duration::from_secs(10);
    let opts = StartOptions {
        id: Some(id.into()),
        initial_data: s.data.as_object().cloned().unwrap_or_default(),
        ..StartOptions::default()
    };
    engine.start_workflow(name, opts).await.unwrap();
    let mut view = engine.wait(id, wait).await.unwrap();
    if let (InstanceStatus::Waiting, Some((step, user, data))) = (view.status, &s.task) {
        engine
            .complete_human_task(id, step, user, data.clone())
            .await
            .unwrap();
        view = engine.wait(id, wait).await.unwrap();
    }
    if view.status == InstanceStatus::Failed && s.retry_on_failure {
        engine.retry(id, None).await.unwrap();
        view = engine.wait(id, wait).await.unwrap();
    }
    outcome(&view, &engine.history(id).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_engine_and_the_redis_engine_end_every_workflow_the_same_way(
) -> anyhow::Result<()> {
    every_workflow_ends_the_same_way(Topology::OneServer).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_engine_and_the_redis_engine_on_a_cluster_end_every_workflow_the_same_way(
) -> anyhow::Result<()> {
    every_workflow_ends_the_same_way(Topology::Cluster).await
}

/// Runs every scenario on the LocalEngine and on the Redis engine over `topology`, at
/// once, and compares how each ended.
async fn every_workflow_ends_the_same_way(topology: Topology) -> anyhow::Result<()> {
    init_logs();
    let (mut servers, url) = topology.start()?;
    let _coordinator = start_coordinator(&url, "t").await?;
    let _worker = start_worker(&url, "t").await?;
    let client = client(&url, "t").await?;
    let ids: Vec<String> = scenarios()
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{name}-{i}"))
        .collect();
    if matches!(topology, Topology::Cluster) {
        let masters = servers.masters_of(&client.connections().keys, &ids)?;
        assert!(
            masters.len() >= 2,
            "the scenarios' instances all fall on one master: {masters:?}"
        );
    }
    let local = LocalEngine::builder()
        .handlers(weir_worker::builtin_handlers())
        .build();
    let engines: [&dyn Engine; 2] = [&local, &client];
    for definition in [ROUTING, RETRIES, RESUME, FANOUT] {
        for engine in engines {
            engine
                .register_definition(parse_definition(definition)?)
                .await?;
        }
    }
    for ((name, s), id) in scenarios().into_iter().zip(ids) {
        assert!(s.definition.contains(&format!("name: {name}")));
        let (l, r) = tokio::join!(run(&local, &id, name, &s), run(&client, &id, name, &s));
        assert_eq!(l["status"], json!(s.expected.as_str()), "{id}: {l:#}");
        assert_eq!(l, r, "{id}: the engines disagree ({topology:?})");
    }
    Ok(())
}

const TWO_APPROVALS: &str = r#"
name: two_approvals
version: "1.0.0"
steps:
  approve: { type: human, assignee: ann }
  confirm: { type: human, assignee: bob }
edges:
  - { from: approve, to: confirm }
"#;

/// Starts an instance of `two_approvals` and waits until it waits on `approve`.
async fn waiting_on_approve(engine: &dyn Engine, id: &str) -> InstanceView {
    let opts = StartOptions {
        id: Some(id.into()),
        ..StartOptions::default()
    };
    engine.start_workflow("two_approvals", opts).await.unwrap();
    let view = engine.wait(id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(view.status, InstanceStatus::Waiting, "{view:?}");
    view
}

/// What the second of two identical commands gets: the first applied, the second refused.
async fn second_of_two(engine: &dyn Engine, id: &str, cancel: bool) -> EngineError {
    let command = || async move {
        if cancel {
            engine.cancel_workflow(id, Some("twice")).await
        } else {
            engine
                .complete_human_task(id, "approve", "ann", json!({}))
                .await
        }
    };
    let (a, b) = tokio::join!(command(), command());
    match (a, b) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
        other => panic!("{id}: expected one applied and one refused, got {other:?}"),
    }
}

/// A refusal that only the coordinator can make (the client's dry run, against the state
/// before either command, passes both) comes back through Redis as the same typed
/// `EngineError::Refused(Refusal)` the LocalEngine returns: the reply carries the core's
/// refusal, not just its kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_through_redis_is_the_same_typed_refusal_as_in_process() -> anyhow::Result<()> {
    the_same_typed_refusal(Topology::OneServer).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_through_a_cluster_is_the_same_typed_refusal_as_in_process() -> anyhow::Result<()>
{
    the_same_typed_refusal(Topology::Cluster).await
}

async fn the_same_typed_refusal(topology: Topology) -> anyhow::Result<()> {
    init_logs();
    let (_servers, url) = topology.start()?;
    let coordinator = start_coordinator(&url, "t").await?;
    let client: WeirClient = client(&url, "t")
        .await?
        .with_reply_timeout(Duration::from_secs(30));
    let local = LocalEngine::builder().build();
    let engines: [&dyn Engine; 2] = [&local, &client];
    for engine in engines {
        engine
            .register_definition(parse_definition(TWO_APPROVALS)?)
            .await?;
        waiting_on_approve(engine, "done-twice").await;
        waiting_on_approve(engine, "canceled-twice").await;
    }

    // In process the two commands run one after the other.
    let local_done = second_of_two(&local, "done-twice", false).await;
    let local_canceled = second_of_two(&local, "canceled-twice", true).await;

    // Through Redis both are checked against the state before either (no coordinator
    // runs), queued, and decided by the coordinator once one runs again.
    coordinator.stop().await;
    let commands = async {
        tokio::join!(
            second_of_two(&client, "done-twice", false),
            second_of_two(&client, "canceled-twice", true)
        )
    };
    let queued = async {
        let conns = client.connections();
        wait_until_async(
            Duration::from_secs(20),
            "the four commands are queued",
            async || queued_commands(conns).await >= 4,
        )
        .await?;
        start_coordinator(&url, "t").await
    };
    let ((redis_done, redis_canceled), restarted) = tokio::join!(commands, queued);
    let _coordinator = restarted?;

    assert!(
        matches!(local_done, EngineError::Refused(Refusal::TaskNotOpen(_))),
        "{local_done:?}"
    );
    assert!(
        matches!(
            local_canceled,
            EngineError::Refused(Refusal::WrongStatus { .. })
        ),
        "{local_canceled:?}"
    );
    for (local, redis) in [(local_done, redis_done), (local_canceled, redis_canceled)] {
        match (&local, &redis) {
            (EngineError::Refused(l), EngineError::Refused(r)) => assert_eq!(l, r),
            _ => panic!(
                "the engines refuse differently: {local:?} in process, {redis:?} through Redis"
            ),
        }
    }
    Ok(())
}

/// Commands waiting on the partitions' command streams.
async fn queued_commands(conns: &weir::redis::Connections) -> usize {
    let mut total = 0;
    for part in conns.keys.all_parts() {
        let len: Result<usize, _> = redis::cmd("XLEN")
            .arg(part.commands())
            .query_async(&mut conns.conn.clone())
            .await;
        total += len.unwrap_or(0);
    }
    total
}

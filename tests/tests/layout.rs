//! The key layout (ARCHITECTURE.md invariant 8): every key is under its namespace,
//! every key of an instance under its partition's hash tag, two namespaces share one Redis
//! without touching each other, and the coordinator's scripts run on a Redis Cluster node,
//! which refuses any script that touches keys of more than one slot.

mod common;

use std::time::Duration;

use common::{coordinator_config, raw};
use serde_json::json;
use weir::model::InstanceStatus;
use weir::redis::Keys;
use weir::Engine;
use weir::{parse_definition, InstanceFilter, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator_with, start_worker};
use weir_tests::{wait_until_async, RedisCluster, RedisServer};

const EVERYTHING: &str = r#"
name: everything
version: "1.0.0"
steps:
  a: { type: machine, handler: set, config: { a: 1 } }
  route: { type: gateway }
  pause: { type: timer, duration: 100ms }
  skipped: { type: machine, handler: set, config: { never: true } }
  approve: { type: human, assignee: ann, due: 1h }
  done: { type: machine, handler: set, config: { done: true } }
edges:
  - { from: a, to: route }
  - { from: route, to: pause, condition: "context.a == 1" }
  - { from: route, to: skipped, default: true }
  - { from: pause, to: approve }
  - { from: skipped, to: approve }
  - { from: approve, to: done }
"#;

fn start_options(id: &str) -> StartOptions {
    StartOptions {
        id: Some(id.into()),
        tenant_id: Some("acme".into()),
        created_by: Some("bob".into()),
        ..StartOptions::default()
    }
}

/// Checks every key of namespace `ns` found in `all`: global keys by name, the rest under
/// a partition tag, and the keys of an instance under the tag of its own partition.
fn check_keys(all: &[String], ns: &str, keys: &Keys) -> usize {
    let globals = ["meta", "defs", "coordinators", "workers"].map(|k| format!("{ns}:{k}"));
    let mut seen = 0;
    for key in all {
        if globals.contains(key) {
            seen += 1;
            continue;
        }
        let Some(rest) = key.strip_prefix(&format!("{{{ns}:p")) else {
            continue;
        };
        seen += 1;
        let (p, tail) = rest.split_once("}:").unwrap_or_else(|| panic!("{key}"));
        let p: u16 = p.parse().unwrap_or_else(|_| panic!("{key}"));
        assert!(p < keys.partitions(), "{key}");
        for kind in ["i:", "h:"] {
            if let Some(id) = tail.strip_prefix(kind) {
                assert_eq!(keys.partition_of(id), p, "{key} is not in its partition");
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_is_under_its_namespace_and_partition_and_namespaces_do_not_mix(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let mut services = Vec::new();
    let mut clients = Vec::new();
    for ns in ["t", "u"] {
        services.push(start_coordinator_with(coordinator_config(&url, ns)).await?);
        services.push(start_worker(&url, ns).await?);
        let client = client(&url, ns).await?;
        client
            .register_definition(parse_definition(EVERYTHING)?)
            .await?;
        for i in 0..4 {
            client
                .start_workflow("everything", start_options(&format!("order-{i}")))
                .await?;
        }
        for i in 0..4 {
            let v = client
                .wait(&format!("acme:order-{i}"), Duration::from_secs(5))
                .await?;
            assert_eq!(v.status, InstanceStatus::Waiting, "{v:?}");
        }
        clients.push(client);
    }
    // The same ids in two namespaces are two instances: finish them in `t` only.
    let (t, u) = (&clients[0], &clients[1]);
    for i in 0..2 {
        t.complete_human_task(&format!("acme:order-{i}"), "approve", "ann", json!({}))
            .await?;
    }
    for i in 0..2 {
        let id = format!("acme:order-{i}");
        assert_eq!(
            t.wait(&id, Duration::from_secs(5)).await?.status,
            InstanceStatus::Completed
        );
        assert_eq!(u.get_instance(&id).await?.status, InstanceStatus::Waiting);
    }
    let waiting_in_u = u
        .list_instances(&InstanceFilter {
            status: Some(InstanceStatus::Waiting),
            ..InstanceFilter::default()
        })
        .await?;
    assert_eq!(waiting_in_u.len(), 4);
    assert_eq!(u.list_tasks(&weir::TaskFilter::default()).await?.len(), 4);
    assert_eq!(t.list_tasks(&weir::TaskFilter::default()).await?.len(), 2);

    let mut conn = raw(&url).await?;
    let all: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await?;
    let mut seen = 0;
    for (ns, client) in [("t", t), ("u", u)] {
        seen += check_keys(&all, ns, &common::keys(client));
    }
    assert_eq!(seen, all.len(), "keys outside both namespaces: {all:?}");
    // Each namespace has instance hashes, histories, indexes, tasks, timers or events.
    assert!(all
        .iter()
        .any(|k| k.starts_with("{u:p") && k.contains("}:i:acme:order-")));
    assert!(all
        .iter()
        .any(|k| k.starts_with("{t:p") && k.contains("}:x:tenant:acme")));
    drop(services);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_scripts_never_cross_slots_on_a_cluster_node() -> anyhow::Result<()> {
    init_logs();
    // A one-node Redis Cluster owning every slot: it refuses a command or script whose keys
    // are in more than one slot (CROSSSLOT), and a script touching an undeclared key of
    // another slot.
    let redis = RedisServer::builder()
        .config("cluster-enabled", "yes")
        .start()?;
    let url = redis.url();
    let mut conn = raw(&url).await?;
    let _: () = redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query_async(&mut conn)
        .await?;
    wait_until_async(Duration::from_secs(5), "the cluster is up", async || {
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async::<String>(&mut conn.clone())
            .await
            .is_ok_and(|info| info.contains("cluster_state:ok"))
    })
    .await?;
    let refused: Result<(), _> = redis::cmd("MSET")
        .arg("{a}x")
        .arg(1)
        .arg("{b}y")
        .arg(1)
        .query_async(&mut conn)
        .await;
    assert!(refused.is_err(), "the node must refuse cross-slot commands");

    // Only steps without a worker: the worker reads the step streams of every partition in
    // one XREADGROUP, which a cluster refuses (a known limit; see the report).
    const NO_MACHINE: &str = r#"
name: no_machine
version: "1.0.0"
steps:
  route: { type: gateway }
  pause: { type: timer, duration: 100ms }
  other: { type: timer, duration: 1h }
  approve: { type: human, assignee: ann, due: 1h }
edges:
  - { from: route, to: pause, condition: "context.go == true" }
  - { from: route, to: other, default: true }
  - { from: pause, to: approve }
  - { from: other, to: approve }
"#;
    let mut config = coordinator_config(&url, "t");
    config.retention = Duration::from_secs(1);
    let _coordinator = start_coordinator_with(config).await?;
    let client = client(&url, "t").await?;
    client
        .register_definition(parse_definition(NO_MACHINE)?)
        .await?;
    let mut go = StartOptions::default();
    go.initial_data.insert("go".into(), json!(true));
    let a = client.start_workflow("no_machine", go).await?;
    let b = client
        .start_workflow("no_machine", StartOptions::default())
        .await?;
    let waiting = client.wait(&a.id, Duration::from_secs(5)).await?;
    assert_eq!(waiting.status, InstanceStatus::Waiting, "{waiting:?}");
    let err = client
        .complete_human_task(&a.id, "approve", "mallory", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "forbidden");
    client
        .complete_human_task(&a.id, "approve", "ann", json!({}))
        .await?;
    assert_eq!(
        client.wait(&a.id, Duration::from_secs(5)).await?.status,
        InstanceStatus::Completed
    );
    client.cancel_workflow(&b.id, None).await?;
    // Retention deletes both in one script per partition.
    wait_until_async(Duration::from_secs(8), "both expired", async || {
        client
            .list_instances(&InstanceFilter::default())
            .await
            .is_ok_and(|l| l.is_empty())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_against_a_cluster_node() -> anyhow::Result<()> {
    init_logs();
    // A real cluster: three masters with a replica each. The services are given one
    // node's URL and detect the cluster; every command and script stays in one slot, and
    // reads over several partitions go per slot.
    let cluster = RedisCluster::start()?;
    let url = cluster.url(0);
    let _coordinator = start_coordinator_with(coordinator_config(&url, "t")).await?;
    let _worker = start_worker(&url, "t").await?;
    let client = client(&url, "t").await?;
    assert_eq!(client.connections().conn.mode(), "cluster");
    client
        .register_definition(parse_definition(EVERYTHING)?)
        .await?;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            client
                .start_workflow("everything", start_options(&format!("order-{i}")))
                .await?
                .id,
        );
    }
    // Machine steps, a gateway and a timer ran: each waits at its human task.
    for id in &ids {
        let v = client.wait(id, Duration::from_secs(10)).await?;
        assert_eq!(v.status, InstanceStatus::Waiting, "{v:?}");
    }
    for id in &ids {
        client
            .complete_human_task(id, "approve", "ann", json!({}))
            .await?;
    }
    for id in &ids {
        let v = client.wait(id, Duration::from_secs(10)).await?;
        assert_eq!(v.status, InstanceStatus::Completed, "{v:?}");
        assert_eq!(v.context.get("done"), Some(&json!(true)), "{v:?}");
    }
    // The instances are spread over partitions on several masters.
    let keys = common::keys(&client);
    let parts: std::collections::BTreeSet<u16> =
        ids.iter().map(|id| keys.partition_of(id)).collect();
    assert!(parts.len() > 1, "{parts:?}");
    let listed = client.list_instances(&InstanceFilter::default()).await?;
    assert_eq!(listed.len(), ids.len());
    // Event reads span partitions: at once, and blocking (nothing new: it times out).
    let (events, cursor) = client.read_events(&Default::default(), 1000, None).await?;
    assert!(!events.is_empty());
    let started = std::time::Instant::now();
    let (more, _) = client
        .read_events(&cursor, 10, Some(Duration::from_millis(300)))
        .await?;
    assert!(more.is_empty(), "{more:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    Ok(())
}

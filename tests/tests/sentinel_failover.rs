//! Weir on Redis Sentinel: a coordinator, a worker and a client given a
//! `redis+sentinel://` URL run workflows with machine, gateway, human and timer steps; the
//! primary is killed mid-run, Sentinel promotes the replica, and every process follows it
//! without a restart: the instances finish, each transition applied once.

mod common;

use std::time::Duration;

use common::coordinator_config;
use serde_json::json;
use weir::model::InstanceStatus;
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator_with, start_worker};
use weir_tests::{wait_until_async, RedisSentinel};

const FLOW: &str = r#"
name: flow
version: "1.0.0"
steps:
  start: { type: machine, handler: set, config: { seen: true } }
  route: { type: gateway }
  big: { type: machine, handler: set, config: { size: big } }
  small: { type: machine, handler: set, config: { size: small } }
  approve: { type: human, assignee: ann }
  cool: { type: timer, duration: 100ms }
  end: { type: machine, handler: set, config: { ended: true } }
edges:
  - { from: start, to: route }
  - { from: route, to: big, condition: "context.amount > 100" }
  - { from: route, to: small, default: true }
  - { from: big, to: approve }
  - { from: small, to: approve }
  - { from: approve, to: cool }
  - { from: cool, to: end }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_finish_across_a_sentinel_failover() -> anyhow::Result<()> {
    init_logs();
    let mut setup = RedisSentinel::start()?;
    let url = setup.url();
    let _coordinator = start_coordinator_with(coordinator_config(&url, "t")).await?;
    let _worker = start_worker(&url, "t").await?;
    let client = client(&url, "t").await?;
    assert_eq!(client.connections().conn.mode(), "sentinel");
    client.register_definition(parse_definition(FLOW)?).await?;
    let mut ids = Vec::new();
    for amount in [50, 500, 5, 5000] {
        let mut options = StartOptions::default();
        options.initial_data.insert("amount".into(), json!(amount));
        ids.push(client.start_workflow("flow", options).await?.id);
    }
    for id in &ids {
        let v = client.wait(id, Duration::from_secs(10)).await?;
        assert_eq!(v.status, InstanceStatus::Waiting, "{v:?}");
    }
    // Everything so far is on the replica too (replication is asynchronous: without this
    // the failover may drop the last writes, which the durability option of issue 12 is for).
    let primary = setup.primary()?;
    let synced: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut setup.server(primary).connection()?)?;
    assert_eq!(synced, 1);
    setup.kill_primary()?;

    // The client follows the new primary; then the tasks are completed.
    wait_until_async(
        Duration::from_secs(30),
        "the client reaches the new primary",
        async || client.get_instance(&ids[0]).await.is_ok(),
    )
    .await?;
    // A completion refused as `not_applied` changed nothing (ARCHITECTURE.md invariant 11),
    // so it is safe to send again while the coordinator takes its partitions back.
    for id in &ids {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match client
                .complete_human_task(id, "approve", "ann", json!({}))
                .await
            {
                Ok(_) => break,
                Err(e) if e.kind() == "not_applied" && std::time::Instant::now() < deadline => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    // The coordinator and the worker follow too: every instance runs its timer and last step.
    for id in &ids {
        let v = client.wait(id, Duration::from_secs(30)).await?;
        assert_eq!(v.status, InstanceStatus::Completed, "{v:?}");
        assert_eq!(v.context.get("ended"), Some(&json!(true)), "{v:?}");
        let history = client.history(id).await?;
        let ends = history.iter().filter(|r| &*r.step == "end").count();
        assert_eq!(ends, 1, "the last step recorded {ends} times: {history:?}");
    }
    Ok(())
}

//! `--durability replicated` (ARCHITECTURE.md invariant 10): a start is acknowledged only
//! once `WAIT` confirms that a replica holds it, so it survives the SIGKILL of its master;
//! with no replica to confirm it, the start fails with a typed error that says the write
//! may not survive a failover (the write itself is done, and a retry with the same id is
//! safe). The same holds behind Sentinel; and a coordinator under replicated durability
//! publishes a command's verdict only once a replica holds the commit that decided it.

use std::time::Duration;

use weir::api::EngineError;
use weir::model::InstanceStatus;
use weir::redis::{Durability, RedisConfig, RedisError, WeirClient};
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_coordinator::service::CoordinatorConfig;
use weir_tests::cluster::{init_logs, start_builtin_worker, start_coordinator_with};
use weir_tests::{wait_until_async, RedisCluster, RedisSentinel, RedisServer};
use weir_worker::WorkerConfig;

const FLOW: &str = r#"
name: flow
version: "1.0.0"
steps:
  start: { type: machine, handler: set, config: { seen: true } }
"#;

fn start_options(id: &str) -> StartOptions {
    StartOptions {
        id: Some(id.to_string()),
        ..StartOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_start_survives_the_kill_of_its_master() -> anyhow::Result<()> {
    init_logs();
    let mut cluster = RedisCluster::start()?;
    let config = RedisConfig::new(cluster.urls(), "t").with_durability(Durability::Replicated);
    let client = WeirClient::connect(&config).await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    // No coordinator runs: the start stays pending, exactly as start.lua stored it.
    let started = client
        .start_workflow("flow", start_options("order-1"))
        .await?;
    let keys = client.connections().keys.clone();
    let slot = cluster.slot_of(&keys.part_of(&started.id).commands())?;
    // SIGKILL right after the acknowledgement: only what a replica holds survives.
    cluster.kill_master_of_slot(slot)?;
    let mut seen = None;
    wait_until_async(
        Duration::from_secs(30),
        "the client reads the start from the promoted master",
        async || match client.get_instance(&started.id).await {
            Ok(view) => {
                seen = Some(view);
                true
            }
            Err(_) => false,
        },
    )
    .await?;
    let view = seen.ok_or_else(|| anyhow::anyhow!("no view"))?;
    assert_eq!(view.status, InstanceStatus::Pending, "{view:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_replica_a_replicated_start_fails_and_says_why() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let url = redis.url();
    let replicated =
        WeirClient::connect(&RedisConfig::new(&url, "t").with_durability(Durability::Replicated))
            .await?;
    replicated
        .register_definition(parse_definition(FLOW)?)
        .await?;
    let err = replicated
        .start_workflow("flow", start_options("order-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Redis(RedisError::NotReplicated { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    for part in [
        "may not survive a failover",
        "retrying with the same id is safe",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    // The write is done: the start is stored, and a local-durability client sees it and
    // starting it again with the same id answers that same start.
    let local = WeirClient::connect(&RedisConfig::new(&url, "t")).await?;
    let view = local.get_instance("order-1").await?;
    assert_eq!(view.status, InstanceStatus::Pending, "{view:?}");
    let again = local
        .start_workflow("flow", start_options("order-1"))
        .await?;
    assert_eq!(again.id, "order-1");
    assert_eq!(
        again.created_at, view.created_at,
        "the retry stored another start"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_run_on_a_cluster_with_every_process_replicated() -> anyhow::Result<()> {
    init_logs();
    let cluster = RedisCluster::start()?;
    let config = RedisConfig::new(cluster.urls(), "t").with_durability(Durability::Replicated);
    let mut coordinator = CoordinatorConfig::new(config.clone());
    coordinator.lease = Duration::from_secs(1);
    let _coordinator = start_coordinator_with(coordinator).await?;
    let mut worker = WorkerConfig::new(config.clone());
    worker.grace = Duration::from_secs(2);
    let _worker = start_builtin_worker(worker).await?;
    let client = WeirClient::connect(&config).await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let mut ids = Vec::new();
    for i in 0..8 {
        let id = format!("order-{i}");
        ids.push(client.start_workflow("flow", start_options(&id)).await?.id);
    }
    for id in &ids {
        let view = client.wait(id, Duration::from_secs(20)).await?;
        assert_eq!(view.status, InstanceStatus::Completed, "{view:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_start_survives_the_kill_of_the_sentinel_primary() -> anyhow::Result<()> {
    init_logs();
    let mut setup = RedisSentinel::start()?;
    let config = RedisConfig::new(setup.url(), "t").with_durability(Durability::Replicated);
    let client = WeirClient::connect(&config).await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    // No coordinator runs: the start stays pending, exactly as start.lua stored it.
    let started = client
        .start_workflow("flow", start_options("order-1"))
        .await?;
    // SIGKILL right after the acknowledgement: only what the replica holds survives.
    setup.kill_primary()?;
    let mut seen = None;
    wait_until_async(
        Duration::from_secs(30),
        "the client reads the start from the promoted replica",
        async || match client.get_instance(&started.id).await {
            Ok(view) => {
                seen = Some(view);
                true
            }
            Err(_) => false,
        },
    )
    .await?;
    let view = seen.ok_or_else(|| anyhow::anyhow!("no view"))?;
    assert_eq!(view.status, InstanceStatus::Pending, "{view:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_coordinator_publishes_a_verdict_only_once_a_replica_holds_it(
) -> anyhow::Result<()> {
    init_logs();
    let primary = RedisServer::start()?;
    let url = primary.url();
    // The coordinator waits for a replica; there is none yet. Callers use local durability
    // so that only the coordinator's side is under test.
    let replicated = RedisConfig::new(&url, "t").with_durability(Durability::Replicated);
    let mut coordinator = CoordinatorConfig::new(replicated);
    coordinator.lease = Duration::from_secs(1);
    let _coordinator = start_coordinator_with(coordinator).await?;
    let client = WeirClient::connect(&RedisConfig::new(&url, "t"))
        .await?
        .with_reply_timeout(Duration::from_secs(60));
    client.register_definition(parse_definition(FLOW)?).await?;
    // No worker: the instance waits on its step once the coordinator created it (its
    // commits stand; only their confirmation is missing).
    let id = client
        .start_workflow("flow", start_options("order-1"))
        .await?
        .id;
    wait_until_async(Duration::from_secs(30), "the instance runs", async || {
        client
            .get_instance(&id)
            .await
            .is_ok_and(|v| v.status == InstanceStatus::Running)
    })
    .await?;
    let cancel = {
        let client = client.clone();
        let id = id.clone();
        tokio::spawn(async move { client.cancel_workflow(&id, Some("test")).await })
    };
    // The cancel is committed, but its verdict is not published while no replica has it.
    wait_until_async(
        Duration::from_secs(30),
        "the cancel is committed",
        async || {
            client
                .get_instance(&id)
                .await
                .is_ok_and(|v| v.status == InstanceStatus::Canceled)
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !cancel.is_finished(),
        "a verdict no replica holds was published"
    );
    // A replica joins: the coordinator's next confirmation covers the commit, and the
    // verdict reaches the caller.
    let replica = RedisServer::start()?;
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port())
        .query(&mut replica.connection()?)?;
    let view = tokio::time::timeout(Duration::from_secs(30), cancel).await???;
    assert_eq!(view.status, InstanceStatus::Canceled, "{view:?}");
    Ok(())
}

//! Correlated messages on a real Redis Cluster (three masters with a replica each), with
//! the message's correlation partition and the waiting instance's partition on different
//! masters: every hop between them (subscribe, deliver, return) goes through an outbox
//! stream and a script on one slot (ARCHITECTURE.md invariants 12 and 14). Under
//! `--durability replicated`, sends and relays wait for a replica (invariant 10).

mod common;
use common::{finished, hops_settled, received_messages};

use std::time::Duration;

use serde_json::json;
use weir::api::EngineError;
use weir::model::{MessageFilter, MessageOutcome, SendMessage};
use weir::redis::messages::{route_of, Waiter};
use weir::redis::{admin, Durability, Keys, RedisConfig, RedisError, WeirClient};
use weir::{parse_definition, Engine, InstanceStatus, StartOptions};
use weir_coordinator::service::CoordinatorConfig;
use weir_tests::cluster::{client, init_logs, start_coordinator, start_coordinator_with};
use weir_tests::{RedisCluster, RedisServer};

const ORDER: &str = r#"
name: order_payment
version: "1.0.0"
steps:
  wait_payment: { type: event, event: payment_received, correlation: context.order_id, output: payment }
"#;

const WAIT: Duration = Duration::from_secs(20);

fn payment(key: &str, id: &str) -> SendMessage {
    SendMessage::new("payment_received", key, json!({ "id": id })).with_id(id)
}

/// The master serving partition `p`'s hash tag.
fn master_of(cluster: &mut RedisCluster, keys: &Keys, p: u16) -> anyhow::Result<usize> {
    let slot = cluster.slot_of(&keys.part(p).lease())?;
    cluster.master_of_slot(slot)
}

/// An instance id whose partition is on another master than the route of `key`.
fn id_elsewhere(cluster: &mut RedisCluster, keys: &Keys, key: &str) -> anyhow::Result<String> {
    let route = route_of(None, "payment_received", key);
    let corr = master_of(cluster, keys, keys.correlation_partition(&route))?;
    for i in 0..1000 {
        let id = format!("order-{key}-{i}");
        if master_of(cluster, keys, keys.partition_of(&id))? != corr {
            return Ok(id);
        }
    }
    anyhow::bail!("no instance id on another master than the route of {key}")
}

async fn start(client: &WeirClient, id: &str, key: &str) -> anyhow::Result<()> {
    client
        .start_workflow(
            "order_payment",
            StartOptions {
                id: Some(id.to_string()),
                initial_data: [("order_id".to_string(), json!(key))].into_iter().collect(),
                ..StartOptions::default()
            },
        )
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_masters_between_their_route_and_their_instance() -> anyhow::Result<()> {
    init_logs();
    let mut cluster = RedisCluster::start()?;
    let url = cluster.url(0);
    let _coordinator = start_coordinator(&url, "t").await?;
    let client = client(&url, "t").await?;
    assert_eq!(client.connections().conn.mode(), "cluster");
    client.register_definition(parse_definition(ORDER)?).await?;
    let keys = client.connections().keys.clone();

    // Sent before the instance waits: kept on the route's master, taken by the
    // subscription that comes from the instance's master.
    let early = id_elsewhere(&mut cluster, &keys, "B-1")?;
    let sent = client.send_message(payment("B-1", "m-early")).await?;
    assert_eq!(sent.outcome, MessageOutcome::Kept, "{sent:?}");
    start(&client, &early, "B-1").await?;
    let done = finished(&client, &early).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(received_messages(&client, &early).await?, vec!["m-early"]);

    // Sent while it waits: handed over from the route's master to the instance's.
    let late = id_elsewhere(&mut cluster, &keys, "B-2")?;
    start(&client, &late, "B-2").await?;
    let view = client.wait(&late, WAIT).await?;
    assert_eq!(view.status, InstanceStatus::Waiting, "{view:?}");
    hops_settled(&client).await?;
    let sent = client.send_message(payment("B-2", "m-late")).await?;
    assert_eq!(sent.outcome, MessageOutcome::Delivered, "{sent:?}");
    assert_eq!(sent.instance_id.as_deref(), Some(late.as_str()));
    let done = finished(&client, &late).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(received_messages(&client, &late).await?, vec!["m-late"]);
    let again = client.send_message(payment("B-2", "m-late")).await?;
    assert_eq!(again.outcome, MessageOutcome::Duplicate, "{again:?}");

    // Handed to a waiter that no longer waits (its instance is on another master): it
    // refuses, and the return hop brings the message back to be kept.
    let ghost = id_elsewhere(&mut cluster, &keys, "B-3")?;
    let route = route_of(None, "payment_received", "B-3");
    let waiters = keys
        .part(keys.correlation_partition(&route))
        .waiters(&route);
    let member = Waiter {
        token: 999,
        step: "wait_payment".into(),
        instance: ghost.clone(),
    }
    .encode();
    let mut conn = client.connections().conn.clone();
    redis::cmd("ZADD")
        .arg(&waiters)
        .arg(1)
        .arg(&member)
        .query_async::<()>(&mut conn)
        .await?;
    let sent = client.send_message(payment("B-3", "m-ghost")).await?;
    assert_eq!(
        sent.instance_id.as_deref(),
        Some(ghost.as_str()),
        "{sent:?}"
    );
    common::kept(&client, "m-ghost").await?;
    let stats = admin::stats(client.connections()).await?;
    assert_eq!(stats.messages.delivered, 2, "{:?}", stats.messages);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_on_a_cluster_with_every_process_replicated() -> anyhow::Result<()> {
    init_logs();
    let mut cluster = RedisCluster::start()?;
    let config = RedisConfig::new(cluster.urls(), "t").with_durability(Durability::Replicated);
    let mut coordinator = CoordinatorConfig::new(config.clone());
    coordinator.lease = Duration::from_secs(1);
    let _coordinator = start_coordinator_with(coordinator).await?;
    let client = WeirClient::connect(&config).await?;
    client.register_definition(parse_definition(ORDER)?).await?;
    let keys = client.connections().keys.clone();
    // Kept, then taken by a subscription; and handed over to a waiting instance: every
    // hop is confirmed by a replica before it leaves its outbox.
    let early = id_elsewhere(&mut cluster, &keys, "R-1")?;
    let sent = client.send_message(payment("R-1", "r-early")).await?;
    assert_eq!(sent.outcome, MessageOutcome::Kept, "{sent:?}");
    start(&client, &early, "R-1").await?;
    let late = id_elsewhere(&mut cluster, &keys, "R-2")?;
    start(&client, &late, "R-2").await?;
    let view = client.wait(&late, WAIT).await?;
    assert_eq!(view.status, InstanceStatus::Waiting, "{view:?}");
    hops_settled(&client).await?;
    let sent = client.send_message(payment("R-2", "r-late")).await?;
    assert_eq!(sent.instance_id.as_deref(), Some(late.as_str()), "{sent:?}");
    for (id, message) in [(&early, "r-early"), (&late, "r-late")] {
        let done = finished(&client, id).await?;
        assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
        assert_eq!(received_messages(&client, id).await?, vec![message]);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_replica_a_replicated_send_fails_and_says_why() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let config = RedisConfig::new(redis.url(), "t").with_durability(Durability::Replicated);
    let client = WeirClient::connect(&config).await?;
    let err = client
        .send_message(payment("N-1", "n-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Redis(RedisError::NotReplicated { .. })),
        "{err:?}"
    );
    // The write is done (kept on the master); a resend of the same id is a duplicate.
    let kept = client.list_messages(&MessageFilter::default()).await?;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let again = client.send_message(payment("N-1", "n-1")).await?;
    assert_eq!(again.outcome, MessageOutcome::Duplicate, "{again:?}");
    Ok(())
}

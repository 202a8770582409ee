//! Correlated messages across a coordinator's SIGKILL: two `weir coordinator` processes
//! share the partitions while messages flow to many waiting instances (and some are sent
//! before their instance waits); one is killed mid-flow. Every message is received exactly
//! once (each instance's history names its own message id, once), and none is lost: what
//! the dead coordinator left in its outboxes or command streams is relayed or applied by
//! the one that takes its partitions over (ARCHITECTURE.md invariants 2 and 14). Needs the
//! binaries: `cargo build --workspace --bins`.

mod common;
use common::received_messages;
mod procs;

use std::time::Duration;

use serde_json::json;
use weir::model::{MessageFilter, MessageOutcome, SendMessage};
use weir::redis::admin;
use weir::{parse_definition, Engine, InstanceStatus, StartOptions};
use weir_tests::cluster::{client, init_logs};
use weir_tests::{wait_until_async, RedisServer};

const ORDER: &str = r#"
name: order_payment
version: "1.0.0"
steps:
  wait_payment: { type: event, event: payment_received, correlation: context.order_id, output: payment }
"#;

/// Instances, one key each.
const N: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flowing_while_a_coordinator_is_killed_are_each_received_once(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let ns = "mf";
    let client = client(&url, ns).await?;
    let keys = common::keys(&client);
    let (mut a, _b) =
        procs::two_coordinators_sharing(&url, ns, &keys, Duration::from_secs(1)).await?;
    client.register_definition(parse_definition(ORDER)?).await?;

    // A third of the messages go first (kept); then the instances start, and once some of
    // them wait, the rest of the messages are sent and A is killed half-way through,
    // while messages flow to waiting instances, subscriptions are relayed and kept
    // messages taken; B takes A's partitions over.
    let key = |i: usize| format!("order-{i}");
    let send = |i: usize| {
        let client = client.clone();
        async move {
            client
                .send_message(
                    SendMessage::new("payment_received", key(i), json!({ "i": i }))
                        .with_id(format!("m-{i}")),
                )
                .await
        }
    };
    for i in 0..N / 3 {
        assert_eq!(send(i).await?.outcome, MessageOutcome::Kept);
    }
    let mut ids = Vec::new();
    for i in 0..N {
        let started = client
            .start_workflow(
                "order_payment",
                StartOptions {
                    id: Some(format!("inst-{i}")),
                    initial_data: [("order_id".to_string(), json!(key(i)))]
                        .into_iter()
                        .collect(),
                    ..StartOptions::default()
                },
            )
            .await?;
        ids.push(started.id);
    }
    wait_until_async(Duration::from_secs(20), "some instances wait", async || {
        admin::stats(client.connections())
            .await
            .is_ok_and(|s| s.instances.get("waiting").copied().unwrap_or(0) >= (N / 3) as u64)
    })
    .await?;
    for i in N / 3..N {
        if i == N / 2 {
            a.kill()?;
        }
        let sent = send(i).await?;
        assert_ne!(sent.outcome, MessageOutcome::Duplicate, "{sent:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    wait_until_async(
        Duration::from_secs(60),
        "every instance received its message",
        async || {
            let mut all = true;
            for id in &ids {
                match client.get_instance(id).await {
                    Ok(v) if v.status == InstanceStatus::Completed => {}
                    _ => all = false,
                }
            }
            all
        },
    )
    .await?;
    // B did take A's partitions over (so A's part of the flow went through the takeover).
    let mut conn = common::raw(&url).await?;
    let held = common::leased_by(&mut conn, &keys, "coord-b").await?;
    assert_eq!(held.len(), keys.partitions() as usize, "{held:?}");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            received_messages(&client, id).await?,
            vec![format!("m-{i}")],
            "{id}"
        );
        let view = client.get_instance(id).await?;
        assert_eq!(view.context["payment"], json!({ "i": i }), "{id}");
    }
    // Nothing left over: no message kept, no hop unrelayed, each delivery counted once.
    common::hops_settled(&client).await?;
    assert!(client
        .list_messages(&MessageFilter::default())
        .await?
        .is_empty());
    let stats = admin::stats(client.connections()).await?;
    assert_eq!(stats.messages.delivered, N as u64, "{:?}", stats.messages);
    Ok(())
}

//! Event steps, signals and correlated messages on the Redis engine (a real redis-server,
//! a coordinator, the client): messages kept until an instance waits, delivered to the
//! oldest waiter, once per id, expired and counted, returned when a waiter stopped waiting
//! (a timeout, a cancel, an instance gone), per tenant; and signals by instance id.
//! `messages_cluster.rs`, `messages_faults.rs` and `messages_random.rs` run the same
//! promises on a cluster, across a coordinator's SIGKILL, and under random interleavings.

use std::time::Duration;

use serde_json::json;
use weir::model::{MessageFilter, MessageOutcome, SendMessage};
use weir::redis::messages::{route_of, Waiter};
use weir::redis::{admin, WeirClient};
use weir::{parse_definition, Engine, InstanceStatus, InstanceView, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator, Service};
use weir_tests::{wait_for_async, wait_until_async, RedisServer};

const ORDER: &str = r#"
name: order_payment
version: "1.0.0"
steps:
  wait_payment: { type: event, event: payment_received, correlation: context.order_id, output: payment }
"#;

const ORDER_TIMED: &str = r#"
name: order_timed
version: "1.0.0"
steps:
  wait_payment: { type: event, event: payment_received, correlation: context.order_id, timeout: 300ms }
  after_timeout: { type: event, event: after }
edges:
  - { from: wait_payment, to: after_timeout, on: timeout }
"#;

mod common;
use common::{finished, hops_settled, received_messages};

const APPROVAL: &str = r#"
name: approval_signal
version: "1.0.0"
steps:
  wait_go: { type: event, event: go, output: go }
  wait_more: { type: event, event: more }
edges:
  - { from: wait_go, to: wait_more }
"#;

const TIMED: &str = r#"
name: timed_signal
version: "1.0.0"
steps:
  wait_go: { type: event, event: go, timeout: 300ms }
  after_timeout: { type: event, event: after }
edges:
  - { from: wait_go, to: after_timeout, on: timeout }
"#;

const TWICE: &str = r#"
name: twice_signal
version: "1.0.0"
steps:
  first_go: { type: event, event: go, output: first }
  second_go: { type: event, event: go, output: second }
edges:
  - { from: first_go, to: second_go }
"#;

const WAIT: Duration = Duration::from_secs(10);

/// What a refused or duplicate signal must leave as it was.
fn unchanged(a: &InstanceView, b: &InstanceView) -> bool {
    a.status == b.status
        && a.current_steps == b.current_steps
        && a.context == b.context
        && a.updated_at == b.updated_at
}

/// One redis-server, a coordinator and a client, with `definition` registered.
async fn running(definition: &str) -> anyhow::Result<(RedisServer, Service, WeirClient)> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let coordinator = start_coordinator(&url, "t").await?;
    let client = client(&url, "t").await?;
    client
        .register_definition(parse_definition(definition)?)
        .await?;
    Ok((redis, coordinator, client))
}

/// Starts `order_payment` for `order_id` (with `tenant`) and waits until it waits and its
/// subscription reached its correlation partition (no hop left in any outbox).
async fn waiting_order(
    client: &WeirClient,
    workflow: &str,
    order_id: &str,
    tenant: Option<&str>,
) -> anyhow::Result<String> {
    let started = client
        .start_workflow(
            workflow,
            StartOptions {
                initial_data: [("order_id".to_string(), json!(order_id))]
                    .into_iter()
                    .collect(),
                tenant_id: tenant.map(str::to_string),
                ..StartOptions::default()
            },
        )
        .await?;
    let view = client.wait(&started.id, WAIT).await?;
    anyhow::ensure!(view.status == InstanceStatus::Waiting, "{view:?}");
    hops_settled(client).await?;
    Ok(started.id)
}

fn payment(key: &str, id: &str) -> SendMessage {
    SendMessage::new("payment_received", key, json!({ "amount": 42, "id": id })).with_id(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_before_the_step_is_kept_and_one_sent_after_is_delivered(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let client = client(&url, "t").await?;
    // Correlated event steps register on the Redis engine.
    client.register_definition(parse_definition(ORDER)?).await?;

    // Before: kept, and listed until an instance takes it.
    let sent = client.send_message(payment("A-1", "m-1")).await?;
    assert_eq!(sent.outcome, MessageOutcome::Kept, "{sent:?}");
    assert_eq!(sent.id, "m-1");
    let kept = client.list_messages(&MessageFilter::default()).await?;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!((kept[0].id.as_str(), kept[0].key.as_str()), ("m-1", "A-1"));
    assert!(kept[0].expires_at > kept[0].sent_at);
    let first = client
        .start_workflow(
            "order_payment",
            StartOptions {
                initial_data: [("order_id".to_string(), json!("A-1"))]
                    .into_iter()
                    .collect(),
                ..StartOptions::default()
            },
        )
        .await?;
    let done = finished(&client, &first.id).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(done.context["payment"]["id"], json!("m-1"));
    assert_eq!(received_messages(&client, &first.id).await?, vec!["m-1"]);
    assert!(client
        .list_messages(&MessageFilter::default())
        .await?
        .is_empty());

    // After: delivered to the waiting instance, named in the answer.
    let second = waiting_order(&client, "order_payment", "A-2", None).await?;
    let sent = client.send_message(payment("A-2", "m-2")).await?;
    assert_eq!(sent.outcome, MessageOutcome::Delivered, "{sent:?}");
    assert_eq!(sent.instance_id.as_deref(), Some(second.as_str()));
    let done = finished(&client, &second).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(received_messages(&client, &second).await?, vec!["m-2"]);

    // Each delivery is announced (MessageReceived, with the message id) and counted.
    let events = common::all_events(&client).await?;
    let announced: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            weir::model::EventKind::MessageReceived { message_id, .. } => Some(message_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(announced, vec!["m-1", "m-2"]);
    let stats = admin::stats(client.connections()).await?;
    assert_eq!(stats.messages.delivered, 2, "{:?}", stats.messages);
    assert_eq!(stats.messages.kept, 1, "{:?}", stats.messages);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_waiting_on_one_key_receive_one_message_each_oldest_first(
) -> anyhow::Result<()> {
    let (_redis, _coordinator, client) = running(ORDER).await?;
    let older = waiting_order(&client, "order_payment", "K", None).await?;
    let newer = waiting_order(&client, "order_payment", "K", None).await?;
    let first = client.send_message(payment("K", "p-1")).await?;
    assert_eq!(first.outcome, MessageOutcome::Delivered);
    assert_eq!(first.instance_id.as_deref(), Some(older.as_str()));
    let second = client.send_message(payment("K", "p-2")).await?;
    assert_eq!(second.instance_id.as_deref(), Some(newer.as_str()));
    finished(&client, &older).await?;
    finished(&client, &newer).await?;
    assert_eq!(received_messages(&client, &older).await?, vec!["p-1"]);
    assert_eq!(received_messages(&client, &newer).await?, vec!["p-2"]);
    // No one waits now: the third is kept.
    hops_settled(&client).await?;
    let third = client.send_message(payment("K", "p-3")).await?;
    assert_eq!(third.outcome, MessageOutcome::Kept, "{third:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_id_within_its_ttl_is_delivered_once() -> anyhow::Result<()> {
    let (_redis, _coordinator, client) = running(ORDER).await?;
    assert_eq!(
        client.send_message(payment("D", "same")).await?.outcome,
        MessageOutcome::Kept
    );
    let again = client.send_message(payment("D", "same")).await?;
    assert_eq!(again.outcome, MessageOutcome::Duplicate, "{again:?}");
    assert_eq!(
        client.list_messages(&MessageFilter::default()).await?.len(),
        1
    );
    let a = waiting_or_done(&client, "D").await?;
    let b = waiting_order(&client, "order_payment", "D", None).await?;
    // Delivered to `a`; to the waiting `b`, the same id is still a duplicate.
    let third = client.send_message(payment("D", "same")).await?;
    assert_eq!(third.outcome, MessageOutcome::Duplicate, "{third:?}");
    assert_eq!(received_messages(&client, &a).await?, vec!["same"]);
    let view = client.get_instance(&b).await?;
    assert_eq!(view.status, InstanceStatus::Waiting, "{view:?}");
    // Concurrent resends of one new id: one send wins, the others are duplicates.
    let sends: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.send_message(payment("D", "burst")).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for send in sends {
        outcomes.push(send.await??.outcome);
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o != MessageOutcome::Duplicate)
            .count(),
        1,
        "{outcomes:?}"
    );
    finished(&client, &b).await?;
    assert_eq!(received_messages(&client, &b).await?, vec!["burst"]);
    let stats = admin::stats(client.connections()).await?;
    assert_eq!(stats.messages.duplicates, 6, "{:?}", stats.messages);
    Ok(())
}

/// Starts an instance for `key` and waits until it finished or waits.
async fn waiting_or_done(client: &WeirClient, key: &str) -> anyhow::Result<String> {
    let started = client
        .start_workflow(
            "order_payment",
            StartOptions {
                initial_data: [("order_id".to_string(), json!(key))].into_iter().collect(),
                ..StartOptions::default()
            },
        )
        .await?;
    finished(client, &started.id).await?;
    Ok(started.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_message_is_not_delivered_and_is_counted() -> anyhow::Result<()> {
    let (_redis, _coordinator, client) = running(ORDER).await?;
    let short = payment("E", "short").with_ttl(Duration::from_millis(200));
    assert_eq!(
        client.send_message(short).await?.outcome,
        MessageOutcome::Kept
    );
    wait_until_async(
        WAIT,
        "the kept message expires and is counted",
        async || {
            admin::stats(client.connections())
                .await
                .is_ok_and(|s| s.messages.expired == 1 && s.kept_messages == 0)
        },
    )
    .await?;
    assert!(client
        .list_messages(&MessageFilter::default())
        .await?
        .is_empty());
    // An instance waiting now does not get it; the next message it does.
    let id = waiting_order(&client, "order_payment", "E", None).await?;
    assert_eq!(
        client.get_instance(&id).await?.status,
        InstanceStatus::Waiting
    );
    let next = client.send_message(payment("E", "long")).await?;
    assert_eq!(next.outcome, MessageOutcome::Delivered, "{next:?}");
    finished(&client, &id).await?;
    assert_eq!(received_messages(&client, &id).await?, vec!["long"]);
    // Its id is free again once its time to live ran out.
    let reused = payment("E", "short");
    assert_eq!(
        client.send_message(reused).await?.outcome,
        MessageOutcome::Kept
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_timed_out_follows_its_timeout_edge_and_later_messages_are_kept(
) -> anyhow::Result<()> {
    let (_redis, _coordinator, client) = running(ORDER_TIMED).await?;
    let started = client
        .start_workflow(
            "order_timed",
            StartOptions {
                initial_data: [("order_id".to_string(), json!("T"))].into_iter().collect(),
                ..StartOptions::default()
            },
        )
        .await?;
    let id = started.id.as_str();
    wait_until_async(WAIT, "the timeout edge", async || {
        client
            .get_instance(id)
            .await
            .is_ok_and(|v| v.current_steps == ["after_timeout"])
    })
    .await?;
    hops_settled(&client).await?;
    let sent = client.send_message(payment("T", "late")).await?;
    assert_eq!(sent.outcome, MessageOutcome::Kept, "{sent:?}");
    assert!(received_messages(&client, id).await?.is_empty());
    let kept = client.list_messages(&MessageFilter::default()).await?;
    assert_eq!(kept.len(), 1, "{kept:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_for_a_canceled_wait_is_kept_not_lost() -> anyhow::Result<()> {
    let (_redis, _coordinator, client) = running(ORDER).await?;
    let id = waiting_order(&client, "order_payment", "C", None).await?;
    let canceled = client.cancel_workflow(&id, Some("changed my mind")).await?;
    assert_eq!(canceled.status, InstanceStatus::Canceled);
    hops_settled(&client).await?;
    let sent = client.send_message(payment("C", "after-cancel")).await?;
    assert_eq!(sent.outcome, MessageOutcome::Kept, "{sent:?}");
    let next = waiting_or_done(&client, "C").await?;
    assert_eq!(
        received_messages(&client, &next).await?,
        vec!["after-cancel"]
    );
    assert!(received_messages(&client, &id).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_handed_to_a_waiter_that_no_longer_waits_goes_to_the_next_or_is_kept(
) -> anyhow::Result<()> {
    let (redis, _coordinator, client) = running(ORDER).await?;
    let url = redis.url();
    let keys = common::keys(&client);
    let mut raw = common::raw(&url).await?;
    // Ghost waiters (a replayed subscription of a wait that ended, an instance gone), older
    // than any real one: each is handed the message, refuses it, and it comes back.
    let ghost = |instance: &str, step: &str| Waiter {
        token: 999,
        step: step.into(),
        instance: instance.into(),
    };
    let add_ghost = async |raw: &mut redis::aio::MultiplexedConnection, w: Waiter, key: &str| {
        let route = route_of(None, "payment_received", key);
        let part = keys.part(keys.correlation_partition(&route));
        redis::cmd("ZADD")
            .arg(part.waiters(&route))
            .arg(1)
            .arg(w.encode())
            .query_async::<()>(raw)
            .await
    };
    // Alone: handed to the ghost, then kept.
    add_ghost(&mut raw, ghost("no-such-instance", "wait_payment"), "G").await?;
    let sent = client.send_message(payment("G", "g-1")).await?;
    assert_eq!(sent.outcome, MessageOutcome::Delivered, "{sent:?}");
    assert_eq!(sent.instance_id.as_deref(), Some("no-such-instance"));
    common::kept(&client, "g-1").await?;
    // Before a real waiter (an instance whose earlier wait the ghost was): the real one
    // gets it after the ghost refuses.
    let real = waiting_order(&client, "order_payment", "H", None).await?;
    add_ghost(&mut raw, ghost(&real, "wait_payment"), "H").await?;
    let sent = client.send_message(payment("H", "h-1")).await?;
    assert_eq!(sent.instance_id.as_deref(), Some(real.as_str()), "{sent:?}");
    let done = finished(&client, &real).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(received_messages(&client, &real).await?, vec!["h-1"]);
    hops_settled(&client).await?;
    let kept = client.list_messages(&MessageFilter::default()).await?;
    assert_eq!(
        kept.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec!["g-1"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hop_its_writer_did_not_relay_is_relayed_by_the_lease_holder() -> anyhow::Result<()> {
    let (redis, _coordinator, client) = running(ORDER).await?;
    let url = redis.url();
    let id = waiting_order(&client, "order_payment", "L", None).await?;
    // What `send_message.lua` writes when it hands a message to this waiter, by a sender
    // killed before its relay: the waiter popped, the seen key naming it, and the deliver
    // hop in the correlation partition's outbox, relayed by no one but the lease holder.
    let keys = common::keys(&client);
    let route = route_of(None, "payment_received", "L");
    let part = keys.part(keys.correlation_partition(&route));
    let mut raw = common::raw(&url).await?;
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(part.waiters(&route))
        .arg(0)
        .arg(-1)
        .query_async(&mut raw)
        .await?;
    let [member] = members.as_slice() else {
        anyhow::bail!("one waiter expected: {members:?}");
    };
    assert_eq!(Waiter::parse(member).map(|w| w.instance), Some(id.clone()));
    let body = weir::redis::wire::MessageBody {
        id: "left-1".into(),
        tenant_id: None,
        name: "payment_received".into(),
        key: "L".into(),
        data: json!({ "left": true }),
    };
    let now = client.connections().server_time().await?;
    let field = weir::redis::messages::field_of(&route, "left-1");
    redis::pipe()
        .cmd("ZREM")
        .arg(part.waiters(&route))
        .arg(member)
        .cmd("SET")
        .arg(part.seen(&field))
        .arg(format!("d:{member}"))
        .arg("PX")
        .arg(3_600_000)
        .cmd("XADD")
        .arg(part.outbox())
        .arg("*")
        .arg("k")
        .arg("deliver")
        .arg("w")
        .arg(member)
        .arg("m")
        .arg(weir::redis::wire::encode(&body))
        .arg("s")
        .arg(now)
        .arg("x")
        .arg(now + 3_600_000)
        .query_async::<()>(&mut raw)
        .await?;
    let done = finished(&client, &id).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(done.context["payment"], json!({ "left": true }));
    assert_eq!(received_messages(&client, &id).await?, vec!["left-1"]);
    hops_settled(&client).await?;
    // Its id is taken: a resend is a duplicate.
    let again = client.send_message(payment("L", "left-1")).await?;
    assert_eq!(again.outcome, MessageOutcome::Duplicate, "{again:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_only_instances_of_their_tenant() -> anyhow::Result<()> {
    let (_redis, _coordinator, client) = running(ORDER).await?;
    let acme = waiting_order(&client, "order_payment", "X", Some("acme")).await?;
    let untenanted = client.send_message(payment("X", "x-none")).await?;
    assert_eq!(untenanted.outcome, MessageOutcome::Kept, "{untenanted:?}");
    let other = client
        .send_message(payment("X", "x-globex").for_tenant(Some("globex".into())))
        .await?;
    assert_eq!(other.outcome, MessageOutcome::Kept, "{other:?}");
    let own = client
        .send_message(payment("X", "x-acme").for_tenant(Some("acme".into())))
        .await?;
    assert_eq!(own.instance_id.as_deref(), Some(acme.as_str()), "{own:?}");
    finished(&client, &acme).await?;
    assert_eq!(received_messages(&client, &acme).await?, vec!["x-acme"]);
    let globex = client
        .list_messages(&MessageFilter {
            tenant_id: Some("globex".into()),
            ..MessageFilter::default()
        })
        .await?;
    assert_eq!(
        globex.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec!["x-globex"]
    );
    assert_eq!(
        client.list_messages(&MessageFilter::default()).await?.len(),
        2
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_message_is_refused_with_nothing_stored() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let client = client(&redis.url(), "t").await?;
    let err = client
        .send_message(SendMessage::new("bad name!", "k", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "bad_request", "{err}");
    let err = client
        .send_message(SendMessage::new("ok", "k", json!({})).with_ttl(Duration::ZERO))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "bad_request", "{err}");
    assert!(client
        .list_messages(&MessageFilter::default())
        .await?
        .is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_reaches_the_waiting_step_once_per_id_and_is_refused_when_none_waits(
) -> anyhow::Result<()> {
    let (_redis, _coordinator, client) = running(APPROVAL).await?;
    let started = client
        .start_workflow("approval_signal", StartOptions::default())
        .await?;
    let id = started.id.as_str();
    let waiting = client.wait(id, WAIT).await?;
    assert_eq!(waiting.status, InstanceStatus::Waiting, "{waiting:?}");
    assert_eq!(waiting.current_steps, vec!["wait_go"]);

    // No step waits on `more` yet: refused, nothing changed, and its id not used up.
    let err = client
        .signal(id, "more", json!({}), Some("s-more"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "not_waiting", "{err}");
    assert!(unchanged(&waiting, &client.get_instance(id).await?));

    // Delivered: the step takes the data under its `output`, the instance moves on.
    let moved = client
        .signal(id, "go", json!({ "by": "ops" }), Some("s-1"))
        .await?;
    assert_eq!(moved.current_steps, vec!["wait_more"], "{moved:?}");
    assert_eq!(moved.context["go"], json!({ "by": "ops" }));

    // The same id again: a duplicate, answered with the instance as it is, changing nothing.
    let again = client
        .signal(id, "go", json!({ "by": "someone else" }), Some("s-1"))
        .await?;
    assert!(unchanged(&moved, &again), "{again:?}");

    // The id refused earlier was not used up: it is delivered now that a step waits.
    let done = client.signal(id, "more", json!({}), Some("s-more")).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");

    // Finished: refused, nothing changed.
    let err = client
        .signal(id, "go", json!({}), Some("s-3"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "not_waiting", "{err}");
    assert!(unchanged(&done, &client.get_instance(id).await?));

    // Each delivery is in the history once, with its message id.
    let history = client.history(id).await?;
    let notes: Vec<&str> = history.iter().filter_map(|r| r.note.as_deref()).collect();
    assert_eq!(notes, vec!["message s-1", "message s-more"], "{history:?}");

    // A signal to an instance that does not exist is refused.
    let err = client
        .signal("no-such-instance", "go", json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "not_found", "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_step_without_a_signal_in_time_follows_its_timeout_edge() -> anyhow::Result<()> {
    let (_redis, _coordinator, client) = running(TIMED).await?;
    let started = client
        .start_workflow("timed_signal", StartOptions::default())
        .await?;
    let id = started.id.as_str();
    let timed_out = wait_for_async(WAIT, "the timeout edge", async || {
        let view = client.get_instance(id).await.ok()?;
        (view.current_steps == ["after_timeout"] || view.status.is_terminal()).then_some(view)
    })
    .await?;
    assert_eq!(timed_out.status, InstanceStatus::Waiting, "{timed_out:?}");
    assert_eq!(timed_out.current_steps, vec!["after_timeout"]);
    let err = client.signal(id, "go", json!({}), None).await.unwrap_err();
    assert_eq!(err.kind(), "not_waiting", "{err}");
    let done = client.signal(id, "after", json!({}), None).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_signal_id_sent_concurrently_is_delivered_once() -> anyhow::Result<()> {
    let (_redis, _coordinator, client) = running(TWICE).await?;
    let started = client
        .start_workflow("twice_signal", StartOptions::default())
        .await?;
    let id = started.id.as_str();
    assert_eq!(client.wait(id, WAIT).await?.current_steps, vec!["first_go"]);
    // Both steps wait on `go`: only the id tells a resend from a second signal. Sent at
    // once, both pass the client's check; the coordinator applies the id once.
    let (a, b) = tokio::join!(
        client.signal(id, "go", json!(1), Some("same")),
        client.signal(id, "go", json!(2), Some("same")),
    );
    a?;
    b?;
    let view = client.get_instance(id).await?;
    assert_eq!(view.status, InstanceStatus::Waiting, "{view:?}");
    assert_eq!(view.current_steps, vec!["second_go"], "{view:?}");
    assert!(view.context.get("second").is_none(), "{view:?}");
    let done = client.signal(id, "go", json!(3), Some("other")).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(done.context["second"], json!(3));
    Ok(())
}

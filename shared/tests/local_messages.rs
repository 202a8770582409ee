//! Messages and signals in the LocalEngine: kept messages (sent before the step is
//! reached), the oldest waiter first, idempotent ids, time to live, timeouts, cancel,
//! signals, tenants, and a property test of random interleavings that never delivers a
//! message twice nor loses one inside its time to live.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::Set;
use proptest::prelude::*;
use serde_json::json;
use weir::model::{InstanceStatus, MessageFilter, MessageOutcome, SendMessage};
use weir::{parse_definition, Engine, EngineError, LocalEngine, Refusal, StartOptions};

const LONG: Duration = Duration::from_secs(3600);

const ORDER: &str = r#"
name: order
version: "1.0.0"
steps:
  wait_payment:
    type: event
    event: payment_received
    correlation: context.order_id
    output: payment
    timeout: 2h
  ship: { type: machine, handler: set, config: { shipped: true } }
  cancel_order: { type: machine, handler: set, config: { canceled: true } }
edges:
  - { from: wait_payment, to: ship }
  - { from: wait_payment, to: cancel_order, on: timeout }
"#;

fn engine() -> LocalEngine {
    let engine = LocalEngine::builder().handler("set", Set).build();
    engine
        .registry()
        .register_definition(parse_definition(ORDER).unwrap())
        .unwrap();
    engine
}

async fn start(engine: &LocalEngine, order: &str) -> String {
    let options = StartOptions::with_data(common::obj(json!({ "order_id": order })));
    engine.start_workflow("order", options).await.unwrap().id
}

fn payment(key: &str, id: &str) -> SendMessage {
    SendMessage::new("payment_received", key, json!({ "amount": 30 })).with_id(id)
}

#[tokio::test(start_paused = true)]
async fn a_message_after_the_step_is_delivered_at_once() {
    let engine = engine();
    let id = start(&engine, "o-1").await;
    assert_eq!(
        engine.get_instance(&id).await.unwrap().status,
        InstanceStatus::Waiting
    );
    let sent = engine.send_message(payment("o-1", "m-1")).await.unwrap();
    assert_eq!(sent.outcome, MessageOutcome::Delivered);
    assert_eq!(sent.instance_id.as_deref(), Some(id.as_str()));
    let view = engine.wait(&id, LONG).await.unwrap();
    assert_eq!(view.status, InstanceStatus::Completed);
    assert_eq!(view.context["payment"], json!({ "amount": 30 }));
    assert_eq!(view.context["shipped"], true);
    let history = engine.history(&id).await.unwrap();
    assert_eq!(history[0].note.as_deref(), Some("message m-1"));
    assert_eq!(engine.message_counts().delivered, 1);
}

#[tokio::test(start_paused = true)]
async fn a_message_before_the_step_is_kept_and_received_when_the_step_is_reached() {
    let engine = engine();
    let sent = engine.send_message(payment("o-1", "m-1")).await.unwrap();
    assert_eq!(sent.outcome, MessageOutcome::Kept);
    let kept = engine
        .list_messages(&MessageFilter::default())
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].name.as_str(), kept[0].key.as_str()),
        ("payment_received", "o-1")
    );
    let id = start(&engine, "o-1").await;
    let view = engine.wait(&id, LONG).await.unwrap();
    assert_eq!(view.status, InstanceStatus::Completed);
    assert_eq!(view.context["payment"]["amount"], 30);
    assert!(engine
        .list_messages(&MessageFilter::default())
        .await
        .unwrap()
        .is_empty());
    let counts = engine.message_counts();
    assert_eq!((counts.kept, counts.delivered), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn of_two_instances_waiting_on_one_key_the_oldest_gets_the_message() {
    let engine = engine();
    let first = start(&engine, "o-1").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = start(&engine, "o-1").await;
    let sent = engine.send_message(payment("o-1", "m-1")).await.unwrap();
    assert_eq!(sent.instance_id.as_deref(), Some(first.as_str()));
    assert_eq!(
        engine.wait(&first, LONG).await.unwrap().status,
        InstanceStatus::Completed
    );
    assert_eq!(
        engine.get_instance(&second).await.unwrap().status,
        InstanceStatus::Waiting,
        "one message, one instance"
    );
    let sent = engine.send_message(payment("o-1", "m-2")).await.unwrap();
    assert_eq!(sent.instance_id.as_deref(), Some(second.as_str()));
}

#[tokio::test(start_paused = true)]
async fn the_same_message_id_twice_is_delivered_once() {
    let engine = engine();
    let first = start(&engine, "o-1").await;
    let second = start(&engine, "o-1").await;
    let sent = engine.send_message(payment("o-1", "m-1")).await.unwrap();
    assert_eq!(sent.outcome, MessageOutcome::Delivered);
    let again = engine.send_message(payment("o-1", "m-1")).await.unwrap();
    assert_eq!(again.outcome, MessageOutcome::Duplicate);
    assert_eq!(again.instance_id, None);
    assert_eq!(
        engine.get_instance(&second).await.unwrap().status,
        InstanceStatus::Waiting
    );
    assert_eq!(
        engine.wait(&first, LONG).await.unwrap().status,
        InstanceStatus::Completed
    );
    // Kept, then sent again: still one.
    engine.send_message(payment("o-9", "m-9")).await.unwrap();
    let again = engine.send_message(payment("o-9", "m-9")).await.unwrap();
    assert_eq!(again.outcome, MessageOutcome::Duplicate);
    assert_eq!(
        engine
            .list_messages(&MessageFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(engine.message_counts().duplicates, 2);
}

#[tokio::test(start_paused = true)]
async fn an_expired_message_is_not_delivered_and_its_id_may_be_used_again() {
    let engine = engine();
    let message = payment("o-1", "m-1").with_ttl(Duration::from_secs(1));
    assert_eq!(
        engine.send_message(message.clone()).await.unwrap().outcome,
        MessageOutcome::Kept
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(engine
        .list_messages(&MessageFilter::default())
        .await
        .unwrap()
        .is_empty());
    let id = start(&engine, "o-1").await;
    assert_eq!(
        engine.get_instance(&id).await.unwrap().status,
        InstanceStatus::Waiting
    );
    assert_eq!(engine.message_counts().expired, 1);
    // The id's time to live is over too: the same id is a new message now.
    let sent = engine.send_message(message).await.unwrap();
    assert_eq!(sent.outcome, MessageOutcome::Delivered);
}

#[tokio::test(start_paused = true)]
async fn without_a_message_the_timeout_edge_is_followed_and_a_late_message_is_kept() {
    let engine = engine();
    let id = start(&engine, "o-1").await;
    tokio::time::sleep(Duration::from_secs(2 * 3600 + 1)).await;
    let view = engine.wait(&id, LONG).await.unwrap();
    assert_eq!(view.status, InstanceStatus::Completed);
    assert_eq!(view.context["canceled"], true);
    assert!(view.context.get("payment").is_none());
    let late = engine.send_message(payment("o-1", "m-1")).await.unwrap();
    assert_eq!(late.outcome, MessageOutcome::Kept, "no one waits any more");
}

#[tokio::test(start_paused = true)]
async fn cancel_while_waiting_stops_the_wait() {
    let engine = engine();
    let id = start(&engine, "o-1").await;
    engine.cancel_workflow(&id, Some("gone")).await.unwrap();
    let sent = engine.send_message(payment("o-1", "m-1")).await.unwrap();
    assert_eq!(sent.outcome, MessageOutcome::Kept);
    assert_eq!(
        engine.get_instance(&id).await.unwrap().status,
        InstanceStatus::Canceled
    );
}

#[tokio::test(start_paused = true)]
async fn a_signal_goes_to_one_instance_by_id_and_is_refused_when_it_does_not_wait() {
    let engine = engine();
    let first = start(&engine, "o-1").await;
    let second = start(&engine, "o-1").await;
    let refused = engine
        .signal(&second, "refund", json!({}), Some("s-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, EngineError::Refused(Refusal::NotWaiting { .. })),
        "{refused}"
    );
    assert_eq!(
        engine.get_instance(&second).await.unwrap().status,
        InstanceStatus::Waiting
    );
    engine
        .signal(
            &second,
            "payment_received",
            json!({ "amount": 5 }),
            Some("s-1"),
        )
        .await
        .unwrap();
    let view = engine.wait(&second, LONG).await.unwrap();
    assert_eq!(view.context["payment"]["amount"], 5);
    assert_eq!(
        engine.get_instance(&first).await.unwrap().status,
        InstanceStatus::Waiting
    );
    // The signaled instance left the waiters: the next message goes to the other one.
    let sent = engine.send_message(payment("o-1", "m-1")).await.unwrap();
    assert_eq!(sent.instance_id.as_deref(), Some(first.as_str()));
}

#[tokio::test(start_paused = true)]
async fn messages_reach_only_instances_of_their_tenant() {
    let engine = engine();
    let mut options = StartOptions::with_data(common::obj(json!({ "order_id": "o-1" })));
    options.tenant_id = Some("acme".into());
    let id = engine.start_workflow("order", options).await.unwrap().id;
    let other = engine
        .send_message(payment("o-1", "m-1").for_tenant(Some("globex".into())))
        .await
        .unwrap();
    assert_eq!(other.outcome, MessageOutcome::Kept);
    let filter = MessageFilter {
        tenant_id: Some("acme".into()),
        ..MessageFilter::default()
    };
    assert!(engine.list_messages(&filter).await.unwrap().is_empty());
    let own = engine
        .send_message(payment("o-1", "m-1").for_tenant(Some("acme".into())))
        .await
        .unwrap();
    assert_eq!(own.instance_id.as_deref(), Some(id.as_str()));
}

#[tokio::test(start_paused = true)]
async fn malformed_messages_are_refused_with_nothing_stored() {
    let engine = engine();
    for bad in [
        SendMessage::new("bad name", "k", json!({})),
        SendMessage::new("paid", "", json!({})),
        SendMessage::new("paid", "k", json!({})).with_ttl(Duration::ZERO),
        SendMessage::new("paid", "k", json!({})).with_id(""),
    ] {
        let err = engine.send_message(bad).await.unwrap_err();
        assert!(matches!(err, EngineError::BadRequest(_)), "{err}");
    }
    assert!(engine
        .list_messages(&MessageFilter::default())
        .await
        .unwrap()
        .is_empty());
}

/// One step of a random interleaving.
#[derive(Debug, Clone)]
enum Op {
    /// Start an instance waiting on key `k` (it times out after 10 s).
    Start(u8),
    /// Send message id `m` to key `k`, kept for `ttl_s` seconds.
    Send { k: u8, m: u8, ttl_s: u8 },
    /// Cancel the `i`-th instance started (modulo).
    Cancel(u8),
    /// Let time pass.
    Sleep(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3).prop_map(Op::Start),
        (0u8..3, 0u8..8, 1u8..20).prop_map(|(k, m, ttl_s)| Op::Send { k, m, ttl_s }),
        any::<u8>().prop_map(Op::Cancel),
        (1u16..8000).prop_map(Op::Sleep),
    ]
}

const SHORT_WAIT: &str = r#"
name: wait
version: "1.0.0"
steps:
  wait: { type: event, event: ping, correlation: context.k, output: got, timeout: 10s }
  late: { type: gateway }
edges:
  - { from: wait, to: late, on: timeout }
"#;

/// Runs one interleaving and checks: no message id is received twice, and every message
/// that was not a duplicate is received, still kept, or past its time to live; and no
/// message is kept while an instance waits on its key.
async fn interleaving(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let engine = LocalEngine::builder().build();
    engine
        .registry()
        .register_definition(parse_definition(SHORT_WAIT).unwrap())
        .unwrap();
    let mut instances: Vec<String> = Vec::new();
    // Message id -> when it stops counting (its time to live), for sends not refused as
    // duplicates.
    let mut sent: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
    let mut unique = 0u32;
    for op in ops {
        match op {
            Op::Start(k) => {
                let options = StartOptions::with_data(common::obj(json!({ "k": format!("k{k}") })));
                instances.push(engine.start_workflow("wait", options).await.unwrap().id);
            }
            Op::Send { k, m, ttl_s } => {
                let ttl = Duration::from_secs(u64::from(ttl_s));
                let id = format!("m{m}");
                let message = SendMessage::new("ping", format!("k{k}"), json!(m))
                    .with_id(&id)
                    .with_ttl(ttl);
                let outcome = engine.send_message(message).await.unwrap().outcome;
                if outcome != MessageOutcome::Duplicate {
                    // A message id used again after its time to live is a new message:
                    // give it a name of its own in the books.
                    unique += 1;
                    sent.insert(format!("{id}#{unique}"), tokio::time::Instant::now() + ttl);
                }
            }
            Op::Cancel(i) => {
                if !instances.is_empty() {
                    let id = &instances[usize::from(i) % instances.len()];
                    let _ = engine.cancel_workflow(id, None).await;
                }
            }
            Op::Sleep(ms) => tokio::time::sleep(Duration::from_millis(u64::from(ms))).await,
        }
    }
    // Received, per message id.
    let mut received: BTreeMap<String, usize> = BTreeMap::new();
    let mut waiting_keys = BTreeSet::new();
    for id in &instances {
        let view = engine.get_instance(id).await.unwrap();
        if view.status == InstanceStatus::Waiting {
            waiting_keys.insert(view.context["k"].as_str().unwrap().to_string());
        }
        for record in engine.history(id).await.unwrap() {
            if let Some(m) = record
                .note
                .as_deref()
                .and_then(|n| n.strip_prefix("message "))
            {
                *received.entry(m.to_string()).or_default() += 1;
            }
        }
    }
    let kept = engine
        .list_messages(&MessageFilter::default())
        .await
        .unwrap();
    for m in &kept {
        prop_assert!(
            !waiting_keys.contains(&m.key),
            "message {} is kept while an instance waits on {}",
            m.id,
            m.key
        );
    }
    let counts = engine.message_counts();
    let total_received: usize = received.values().sum();
    prop_assert_eq!(total_received as u64, counts.delivered);
    // Every message sent and not a duplicate is received, kept or expired: the counts add
    // up, and the ones still inside their time to live are received or kept.
    prop_assert_eq!(
        sent.len() as u64,
        counts.delivered + counts.expired + kept.len() as u64,
        "sent {:?}, received {:?}, kept {:?}, counts {:?}",
        sent,
        received,
        kept,
        counts
    );
    let now = tokio::time::Instant::now();
    let live = sent.values().filter(|until| **until > now).count();
    prop_assert!(live as u64 <= counts.delivered + kept.len() as u64);
    // Within one time to live an id is received at most once; ids reused after it may be
    // received again, once per send that was not a duplicate.
    for (id, n) in &received {
        let sends = sent
            .keys()
            .filter(|k| k.split('#').next() == Some(id))
            .count();
        prop_assert!(*n <= sends, "{id} received {n} times for {sends} sends");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_interleavings_never_deliver_twice_nor_lose_a_message(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(interleaving(ops))?;
    }
}

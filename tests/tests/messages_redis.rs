//! Event steps and signals on the Redis engine (a real redis-server, a coordinator, the
//! client). What works distributed: event steps without `correlation`, which wait for a
//! signal by instance id, their timeout edge, and `signal` (delivered once per id, refused
//! with nothing changed when no step waits on the name). What does not yet, and says so
//! clearly, storing nothing: event steps with `correlation` (refused at registration),
//! `send_message` and `list_messages`.

use std::time::Duration;

use serde_json::json;
use weir::model::{MessageFilter, SendMessage};
use weir::{parse_definition, Engine, EngineError, InstanceStatus, InstanceView, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator};
use weir_tests::{wait_for_async, RedisServer};

const ORDER: &str = r#"
name: order_payment
version: "1.0.0"
steps:
  wait_payment: { type: event, event: payment_received, correlation: context.order_id }
"#;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlated_event_steps_and_messages_by_key_are_refused_until_supported(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let client = client(&redis.url(), "t").await?;
    let err = client
        .register_definition(parse_definition(ORDER)?)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::BadRequest(m) if m.contains("wait_payment") && m.contains("not yet supported")),
        "{err}"
    );
    assert!(
        client.list_definitions().await?.is_empty(),
        "nothing stored"
    );
    let sent = client
        .send_message(SendMessage::new("payment_received", "A-17", json!({})))
        .await
        .unwrap_err();
    assert!(sent.to_string().contains("not yet supported"), "{sent}");
    let listed = client
        .list_messages(&MessageFilter::default())
        .await
        .unwrap_err();
    assert!(listed.to_string().contains("not yet supported"), "{listed}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_reaches_the_waiting_step_once_per_id_and_is_refused_when_none_waits(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let client = client(&url, "t").await?;
    client
        .register_definition(parse_definition(APPROVAL)?)
        .await?;
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
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(TIMED)?).await?;
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
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(TWICE)?).await?;
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

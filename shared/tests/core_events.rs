//! The pure core's event steps: waiting on a correlation key, receiving a message (and
//! refusals that change nothing), the timeout edge, cancel while waiting, signals, and the
//! checks at registration.

mod common;

use common::{Sim, T0};
use serde_json::json;
use weir::core::{Effect, Input, Refusal, TimerKind};
use weir::model::{AttemptStatus, EventKind, InstanceStatus, StepStatus};
use weir::{compile, parse_definition, Timestamp};

const PAYMENT: &str = r#"
name: order
version: "1.0.0"
steps:
  reserve: { type: machine, handler: set }
  wait_payment:
    type: event
    event: payment_received
    correlation: context.order_id
    output: payment
    timeout: 2h
  ship: { type: machine, handler: set }
  cancel_order: { type: machine, handler: set }
edges:
  - { from: reserve, to: wait_payment }
  - { from: wait_payment, to: ship }
  - { from: wait_payment, to: cancel_order, on: timeout }
"#;

/// An order that reserved its goods and now waits for its payment.
fn waiting_order() -> Sim {
    let mut sim = Sim::start(PAYMENT, json!({ "order_id": "o-42" }));
    sim.succeed("reserve", json!({}));
    sim
}

#[test]
fn reaching_an_event_step_subscribes_on_the_key_and_the_instance_waits() {
    let sim = waiting_order();
    assert_eq!(sim.status(), InstanceStatus::Waiting);
    assert_eq!(sim.step_status("wait_payment"), StepStatus::Waiting);
    let awaiting = sim.step("wait_payment").awaiting.clone().unwrap();
    assert_eq!(&*awaiting.event, "payment_received");
    assert_eq!(awaiting.key.as_deref(), Some("o-42"));
    assert_eq!(
        sim.waits["wait_payment"],
        ("payment_received".to_string(), Some("o-42".to_string()))
    );
    let timeout = sim.timer("wait_payment", TimerKind::Timeout).unwrap();
    assert_eq!(timeout.due_at, Timestamp(T0.0 + 2 * 3_600_000));
    assert!(sim.last_types().contains(&"MessageAwaited"));
}

#[test]
fn a_message_for_the_key_is_stored_under_output_recorded_and_the_instance_goes_on() {
    let mut sim = waiting_order();
    sim.message(
        "m-1",
        "payment_received",
        Some("o-42"),
        json!({ "amount": 30 }),
    )
    .unwrap();
    assert_eq!(sim.ctx()["payment"], json!({ "amount": 30 }));
    assert_eq!(sim.step_status("wait_payment"), StepStatus::Completed);
    assert!(sim.step("wait_payment").awaiting.is_none());
    assert!(sim.waits.is_empty(), "the wait is unsubscribed");
    assert!(sim.timer("wait_payment", TimerKind::Timeout).is_none());
    assert_eq!(sim.running(), vec!["ship".to_string()]);
    assert_eq!(sim.status(), InstanceStatus::Running);
    let record = sim
        .history
        .iter()
        .find(|r| &*r.step == "wait_payment")
        .unwrap();
    assert_eq!(record.status, AttemptStatus::Completed);
    assert_eq!(record.note.as_deref(), Some("message m-1"));
    let received = sim.events.iter().find_map(|e| match &e.kind {
        EventKind::MessageReceived {
            event,
            key,
            message_id,
            ..
        } => Some((event.to_string(), key.clone(), message_id.clone())),
        _ => None,
    });
    assert_eq!(
        received,
        Some(("payment_received".into(), Some("o-42".into()), "m-1".into()))
    );
}

#[test]
fn messages_for_another_key_or_name_or_a_second_one_are_refused_with_nothing_changed() {
    let mut sim = waiting_order();
    // Sim::apply asserts that a refusal leaves the instance exactly as it was.
    let other_key = sim.message("m-1", "payment_received", Some("o-7"), json!({}));
    assert_eq!(
        other_key.unwrap_err(),
        Refusal::NotWaiting {
            event: "payment_received".into(),
            key: Some("o-7".into())
        }
    );
    let other_name = sim.message("m-2", "refund", Some("o-42"), json!({}));
    assert_eq!(other_name.unwrap_err().kind(), "not_waiting");
    sim.message("m-3", "payment_received", Some("o-42"), json!({}))
        .unwrap();
    let again = sim.message("m-3", "payment_received", Some("o-42"), json!({}));
    assert_eq!(again.unwrap_err().kind(), "not_waiting");
    assert_eq!(sim.executed("wait_payment"), 1);
}

#[test]
fn a_message_before_the_step_is_refused_by_the_core_and_kept_by_the_driver() {
    let mut sim = Sim::start(PAYMENT, json!({ "order_id": "o-42" }));
    assert_eq!(sim.step_status("wait_payment"), StepStatus::Idle);
    let early = sim.message("m-1", "payment_received", Some("o-42"), json!({}));
    assert_eq!(early.unwrap_err().kind(), "not_waiting");
    // The driver keeps it and delivers it when the step subscribes.
    sim.succeed("reserve", json!({}));
    assert!(sim
        .last
        .iter()
        .any(|e| matches!(e, Effect::Subscribe { .. })));
    sim.message(
        "m-1",
        "payment_received",
        Some("o-42"),
        json!({ "ok": true }),
    )
    .unwrap();
    assert_eq!(sim.ctx()["payment"], json!({ "ok": true }));
}

#[test]
fn without_a_message_the_timeout_edge_is_followed() {
    let mut sim = waiting_order();
    sim.advance_ms(2 * 3_600_000);
    sim.fire("wait_payment", TimerKind::Timeout);
    assert_eq!(sim.step_status("wait_payment"), StepStatus::Failed);
    assert!(sim.waits.is_empty(), "the timeout unsubscribes the wait");
    assert_eq!(sim.running(), vec!["cancel_order".to_string()]);
    assert_eq!(sim.ctx()["error"]["kind"], "timeout");
    assert!(sim.types().contains(&"StepTimedOut"));
    // A message after the timeout is refused.
    let late = sim.message("m-1", "payment_received", Some("o-42"), json!({}));
    assert_eq!(late.unwrap_err().kind(), "not_waiting");
    // So is the timeout delivered again (stale).
    let fired = sim.fired.last().cloned().unwrap();
    let again = sim.apply(Input::Timer {
        step: fired.step,
        kind: fired.kind,
        token: fired.token,
    });
    assert!(again.unwrap_err().is_stale());
}

#[test]
fn a_timeout_without_timeout_or_failure_edges_fails_the_instance() {
    let yaml = r#"
name: w
version: "1.0.0"
steps:
  wait: { type: event, event: ping, correlation: "'k'", timeout: 1m }
"#;
    let mut sim = Sim::start(yaml, json!({}));
    sim.advance_ms(60_000);
    sim.fire("wait", TimerKind::Timeout);
    assert_eq!(sim.status(), InstanceStatus::Failed);
    assert_eq!(sim.inst.failed_step.as_deref(), Some("wait"));
}

#[test]
fn cancel_while_waiting_unsubscribes_and_drops_the_timeout() {
    let mut sim = waiting_order();
    let effects = sim.cancel("customer left").unwrap();
    assert_eq!(sim.status(), InstanceStatus::Canceled);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Unsubscribe { step, key, .. } if &**step == "wait_payment" && key.as_deref() == Some("o-42")
    )));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Unschedule { step, kind: TimerKind::Timeout } if &**step == "wait_payment"
    )));
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::CloseTask { .. })),
        "an event step has no task to close"
    );
    assert!(sim.waits.is_empty());
    assert_eq!(sim.step_status("wait_payment"), StepStatus::Interrupted);
    let late = sim.message("m-1", "payment_received", Some("o-42"), json!({}));
    assert_eq!(late.unwrap_err().kind(), "not_waiting");
}

#[test]
fn a_signal_reaches_the_step_by_name_whatever_its_key() {
    let mut sim = waiting_order();
    sim.message("s-1", "payment_received", None, json!({ "by": "signal" }))
        .unwrap();
    assert_eq!(sim.ctx()["payment"], json!({ "by": "signal" }));
    let received = sim.events.iter().find_map(|e| match &e.kind {
        EventKind::MessageReceived { key, .. } => Some(key.clone()),
        _ => None,
    });
    assert_eq!(received, Some(Some("o-42".into())), "the key waited on");
}

#[test]
fn without_output_the_data_is_merged_and_must_be_an_object() {
    let yaml = r#"
name: w
version: "1.0.0"
steps:
  wait: { type: event, event: approved }
"#;
    let mut sim = Sim::start(yaml, json!({}));
    assert_eq!(sim.waits["wait"], ("approved".to_string(), None));
    let refused = sim.message("s-1", "approved", None, json!(3));
    assert_eq!(refused.unwrap_err().kind(), "invalid_data");
    // A correlated message never reaches a step without a key.
    let keyed = sim.message("m-1", "approved", Some("x"), json!({}));
    assert_eq!(keyed.unwrap_err().kind(), "not_waiting");
    sim.message("s-2", "approved", None, json!({ "by": "ann" }))
        .unwrap();
    assert_eq!(sim.ctx()["by"], "ann");
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

#[test]
fn a_correlation_that_gives_no_key_fails_the_step() {
    let mut sim = Sim::start(PAYMENT, json!({ "order_id": { "nested": 1 } }));
    sim.succeed("reserve", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Failed);
    assert!(sim.waits.is_empty());
    let error = sim.inst.error.clone().unwrap();
    assert!(error.contains("correlation"), "{error}");
}

#[test]
fn integer_keys_are_their_json_text() {
    let mut sim = Sim::start(PAYMENT, json!({ "order_id": 42 }));
    sim.succeed("reserve", json!({}));
    assert_eq!(sim.waits["wait_payment"].1.as_deref(), Some("42"));
}

#[test]
fn two_parallel_steps_on_one_key_receive_in_the_order_they_started_waiting() {
    let yaml = r#"
name: w
version: "1.0.0"
steps:
  start: { type: gateway }
  first: { type: event, event: tick, correlation: "'k'", output: one }
  second: { type: event, event: tick, correlation: "'k'", output: two }
edges:
  - { from: start, to: first }
  - { from: start, to: second }
"#;
    let mut sim = Sim::start(yaml, json!({}));
    assert_eq!(sim.waits.len(), 2);
    sim.message("m-1", "tick", Some("k"), json!(1)).unwrap();
    assert_eq!(sim.ctx()["one"], 1);
    assert!(sim.ctx().get("two").is_none());
    sim.message("m-2", "tick", Some("k"), json!(2)).unwrap();
    assert_eq!(sim.ctx()["two"], 2);
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

#[test]
fn registration_refuses_an_event_step_without_event_or_with_a_bad_correlation() {
    let no_event = r#"
name: w
version: "1.0.0"
steps:
  wait: { type: event, correlation: context.id }
"#;
    let err = compile(parse_definition(no_event).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("wait") && err.contains("no `event`"), "{err}");
    let bad = r#"
name: w
version: "1.0.0"
steps:
  wait: { type: event, event: paid, correlation: "context.id ==" }
"#;
    let err = compile(parse_definition(bad).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("wait") && err.contains("`correlation` does not compile"),
        "{err}"
    );
    let timeout_edge = r#"
name: w
version: "1.0.0"
steps:
  wait: { type: event, event: paid }
  late: { type: gateway }
edges:
  - { from: wait, to: late, on: timeout }
"#;
    let err = compile(parse_definition(timeout_edge).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no `timeout`"), "{err}");
}

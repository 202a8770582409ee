//! The pure core's machine steps: dispatch, retry policy (backoff, jitter, non-retryable
//! kinds, max attempts), per-attempt timeouts, failure and timeout edges, a failing branch
//! in a parallel section, and stale or duplicated results.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{dispatches, event_types, schedules, Sim, T0};
use serde_json::json;
use weir::core::{Effect, Input, Refusal, TimerKind};
use weir::model::{AttemptStatus, EventKind, InstanceStatus, StepStatus, TaskOutcome};
use weir::{StepError, Timestamp};

fn at(ms: i64) -> Timestamp {
    Timestamp(T0.0 + ms)
}

const ONE: &str = r#"
name: one
version: "1.0.0"
steps:
  work:
    type: machine
    handler: charge
    queue: payments
    config: { amount: 12 }
    timeout: 30s
  after: { type: machine, handler: h }
edges:
  - { from: work, to: after }
"#;

#[test]
fn apply_into_appends_what_apply_returns_and_leaves_the_buffer_alone_on_a_refusal() {
    let mut by_apply = Sim::start(ONE, json!({ "order": "o-1" }));
    let mut by_into = Sim::start(ONE, json!({ "order": "o-1" }));
    let d = by_into.dispatch_of("work").unwrap().clone();
    let input = Input::StepSucceeded {
        step: d.step.clone(),
        token: d.token,
        output: common::obj(json!({ "paid": true })),
        worker: Some("w1".into()),
    };
    let expected = by_apply.succeed("work", json!({ "paid": true }));
    assert!(!expected.is_empty());

    // What the caller's buffer already holds stays in front.
    let held = by_into.last[0].clone();
    let mut buffer = vec![held.clone()];
    let env = by_into.env();
    weir::core::apply_into(
        &by_into.wf,
        &mut by_into.inst,
        input.clone(),
        env,
        &mut buffer,
    )
    .unwrap();
    assert_eq!(buffer[0], held);
    assert_eq!(buffer[1..], expected[..]);
    assert_eq!(by_into.inst, by_apply.inst);

    // The same result again is stale: refused, the instance and the buffer unchanged.
    let (inst, len) = (by_into.inst.clone(), buffer.len());
    let refused = weir::core::apply_into(&by_into.wf, &mut by_into.inst, input, env, &mut buffer);
    assert!(matches!(refused, Err(Refusal::Stale { .. })), "{refused:?}");
    assert_eq!(buffer.len(), len);
    assert_eq!(by_into.inst, inst);
}

#[test]
fn dispatch_carries_everything_a_worker_needs() {
    let sim = Sim::start(ONE, json!({ "order": "o-1" }));
    let ds = dispatches(&sim.last);
    assert_eq!(ds.len(), 1);
    let d = ds[0];
    assert_eq!(&*d.step, "work");
    assert_eq!(d.attempt, 1);
    assert_eq!(&*d.handler, "charge");
    assert_eq!(&*d.queue, "payments");
    assert_eq!(*d.config, json!({ "amount": 12 }));
    assert_eq!(d.context["order"], json!("o-1"));
    assert_eq!(d.timeout, Some(Duration::from_secs(30)));
    // The coordinator enforces the timeout too: a Timeout timer with the attempt's token.
    let timers = schedules(&sim.last);
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0].kind, TimerKind::Timeout);
    assert_eq!(timers[0].token, d.token);
    assert_eq!(timers[0].due_at, at(30_000));
    assert_eq!(sim.types(), vec!["WorkflowStarted", "StepStarted"]);
    assert_eq!(sim.step_status("work"), StepStatus::Running);
    assert_eq!(sim.status(), InstanceStatus::Running);
    // A step without a queue goes to `default`.
    let mut sim = sim;
    sim.succeed("work", json!({}));
    assert_eq!(&*sim.dispatch_of("after").unwrap().queue, "default");
}

#[test]
fn success_unschedules_the_timeout_and_records_the_attempt() {
    let mut sim = Sim::start(ONE, json!({}));
    sim.advance_ms(1500);
    let effects = sim.succeed("work", json!({ "charged": true }));
    assert!(effects.contains(&Effect::Unschedule {
        step: Arc::from("work"),
        kind: TimerKind::Timeout
    }));
    assert!(sim.timer("work", TimerKind::Timeout).is_none());
    let rec = &sim.history[0];
    assert_eq!(&*rec.step, "work");
    assert_eq!(rec.attempt, 1);
    assert_eq!(rec.status, AttemptStatus::Completed);
    assert_eq!(rec.started_at, Some(T0));
    assert_eq!(rec.finished_at, Some(at(1500)));
    assert_eq!(rec.worker.as_deref(), Some("w1"));
    assert_eq!(sim.ctx()["charged"], json!(true));
}

const RETRY: &str = r#"
name: retry
version: "1.0.0"
steps:
  flaky:
    type: machine
    handler: h
    retry: { max_attempts: 4, initial_interval: 200ms, backoff: 2.0, max_interval: 500ms, jitter: false }
"#;

#[test]
fn retries_back_off_exponentially_up_to_max_interval_then_fail() {
    let mut sim = Sim::start(RETRY, json!({}));
    let mut expected_due = Vec::new();
    for (attempt, delay) in [(1u32, 200i64), (2, 400), (3, 500)] {
        let d = sim.dispatch_of("flaky").unwrap().clone();
        assert_eq!(d.attempt, attempt);
        let now = sim.now;
        let effects = sim.fail("flaky", StepError::retryable("try again"));
        assert_eq!(event_types(&effects), vec!["StepRetrying"]);
        let timers = schedules(&effects);
        assert_eq!(timers.len(), 1);
        assert_eq!(timers[0].kind, TimerKind::Retry);
        assert_eq!(
            timers[0].due_at,
            Timestamp(now.0 + delay),
            "after attempt {attempt}"
        );
        assert_ne!(timers[0].token, d.token, "the retry has its own token");
        let retry_at = effects.iter().find_map(|e| match e {
            Effect::Emit(ev) => match &ev.kind {
                EventKind::StepRetrying { retry_at, .. } => Some(*retry_at),
                _ => None,
            },
            _ => None,
        });
        assert_eq!(retry_at, Some(timers[0].due_at));
        assert_eq!(sim.step_status("flaky"), StepStatus::Retrying);
        assert_eq!(sim.status(), InstanceStatus::Running);
        expected_due.push(timers[0].due_at);
        sim.fire("flaky", TimerKind::Retry);
        assert_eq!(sim.last_types(), vec!["StepStarted"]);
    }
    assert_eq!(expected_due, vec![at(200), at(600), at(1100)]);
    assert_eq!(sim.dispatch_of("flaky").unwrap().attempt, 4);
    sim.fail("flaky", StepError::retryable("still broken"));
    assert_eq!(sim.status(), InstanceStatus::Failed);
    assert_eq!(sim.last_types(), vec!["StepFailed", "WorkflowFailed"]);
    assert_eq!(sim.inst.failed_step.as_deref(), Some("flaky"));
    assert!(sim.inst.error.as_deref().unwrap().contains("still broken"));
    let statuses: Vec<AttemptStatus> = sim.history.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![
            AttemptStatus::Retrying,
            AttemptStatus::Retrying,
            AttemptStatus::Retrying,
            AttemptStatus::Failed
        ]
    );
    assert_eq!(sim.dispatch_count("flaky"), 4);
}

#[test]
fn a_retried_step_that_then_succeeds_continues() {
    let mut sim = Sim::start(RETRY, json!({}));
    sim.fail("flaky", StepError::retryable("once"));
    sim.fire("flaky", TimerKind::Retry);
    sim.succeed("flaky", json!({ "ok": true }));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    let statuses: Vec<AttemptStatus> = sim.history.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![AttemptStatus::Retrying, AttemptStatus::Completed]
    );
    assert_eq!(sim.history[1].attempt, 2);
}

const JITTER: &str = r#"
name: jitter
version: "1.0.0"
steps:
  flaky:
    type: machine
    handler: h
    retry: { max_attempts: 2, initial_interval: 10s, jitter: true }
"#;

fn first_retry_delay(seed: u64) -> i64 {
    let wf = Arc::new(common::workflow(JITTER));
    let spec = weir::core::StartSpec {
        id: "i-1".into(),
        ..Default::default()
    };
    let mut sim = Sim::start_spec(wf, spec, T0, seed);
    let effects = sim.fail("flaky", StepError::retryable("x"));
    schedules(&effects)[0].due_at.0 - T0.0
}

#[test]
fn jitter_spreads_delays_over_half_to_full_and_comes_from_the_seed() {
    let delays: Vec<i64> = (0..64u64).map(first_retry_delay).collect();
    for &d in &delays {
        assert!(
            (5_000..=10_000).contains(&d),
            "delay {d}ms outside [5s, 10s]"
        );
    }
    let distinct: std::collections::BTreeSet<i64> = delays.iter().copied().collect();
    assert!(distinct.len() > 16, "jitter barely varies: {distinct:?}");
    // Pure: the same seed gives the same delay.
    for seed in [0u64, 1, 99, u64::MAX] {
        assert_eq!(first_retry_delay(seed), first_retry_delay(seed));
    }
}

const NON_RETRYABLE: &str = r#"
name: nonretry
version: "1.0.0"
steps:
  work:
    type: machine
    handler: h
    retry: { max_attempts: 5, initial_interval: 1s, non_retryable: [validation] }
"#;

#[test]
fn non_retryable_kinds_fail_at_once() {
    let mut sim = Sim::start(NON_RETRYABLE, json!({}));
    let err = StepError::retryable("bad input").with_kind("validation");
    sim.fail("work", err);
    assert_eq!(sim.status(), InstanceStatus::Failed);
    assert_eq!(sim.dispatch_count("work"), 1);
    assert!(sim.timers.is_empty());
}

#[test]
fn errors_marked_not_retryable_fail_at_once() {
    let mut sim = Sim::start(NON_RETRYABLE, json!({}));
    sim.fail("work", StepError::fatal("http", "410 gone"));
    assert_eq!(sim.status(), InstanceStatus::Failed);
    assert_eq!(sim.dispatch_count("work"), 1);
}

#[test]
fn other_kinds_are_retried() {
    let mut sim = Sim::start(NON_RETRYABLE, json!({}));
    sim.fail("work", StepError::retryable("503").with_kind("http"));
    assert_eq!(sim.step_status("work"), StepStatus::Retrying);
}

#[test]
fn a_step_without_retry_policy_gets_one_attempt() {
    let mut sim = Sim::start(ONE, json!({}));
    sim.fail("work", StepError::retryable("network"));
    assert_eq!(sim.status(), InstanceStatus::Failed);
    assert_eq!(sim.dispatch_count("work"), 1);
}

const TIMEOUT_RETRY: &str = r#"
name: timeout_retry
version: "1.0.0"
steps:
  slow:
    type: machine
    handler: h
    timeout: 5s
    retry: { max_attempts: 2, initial_interval: 1s, jitter: false }
"#;

#[test]
fn per_attempt_timeout_fails_the_attempt_and_the_late_result_is_stale() {
    let mut sim = Sim::start(TIMEOUT_RETRY, json!({}));
    let first = sim.dispatch_of("slow").unwrap().clone();
    // The coordinator's deadline passes (the worker may be dead).
    sim.fire("slow", TimerKind::Timeout);
    assert_eq!(sim.now, at(5_000));
    assert_eq!(sim.last_types(), vec!["StepTimedOut", "StepRetrying"]);
    assert_eq!(sim.step_status("slow"), StepStatus::Retrying);
    assert_eq!(
        sim.timer("slow", TimerKind::Retry).unwrap().due_at,
        at(6_000)
    );
    // The slow worker answers late: stale, and nothing changes (the Sim checks that).
    let late = sim.apply(Input::StepSucceeded {
        step: first.step.clone(),
        token: first.token,
        output: common::obj(json!({ "late": true })),
        worker: None,
    });
    assert!(matches!(late, Err(Refusal::Stale { .. })), "{late:?}");
    sim.fire("slow", TimerKind::Retry);
    let second = sim.dispatch_of("slow").unwrap().clone();
    assert_eq!(second.attempt, 2);
    assert_eq!(
        sim.timer("slow", TimerKind::Timeout).unwrap().due_at,
        at(11_000),
        "each attempt has its own deadline"
    );
    sim.fire("slow", TimerKind::Timeout);
    assert_eq!(sim.status(), InstanceStatus::Failed);
    let statuses: Vec<AttemptStatus> = sim.history.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![AttemptStatus::Retrying, AttemptStatus::TimedOut]
    );
    assert!(sim.inst.error.as_deref().unwrap().contains("timeout"));
    assert!(sim.ctx().get("late").is_none());
}

const TIMEOUT_EDGE: &str = r#"
name: timeout_edge
version: "1.0.0"
steps:
  call: { type: machine, handler: h, timeout: 2s }
  next: { type: machine, handler: h }
  escalate: { type: machine, handler: h }
  on_error: { type: machine, handler: h }
edges:
  - { from: call, to: next }
  - { from: call, to: escalate, on: timeout }
  - { from: call, to: on_error, on: failure }
"#;

#[test]
fn a_step_that_times_out_takes_its_timeout_edge() {
    let mut sim = Sim::start(TIMEOUT_EDGE, json!({}));
    sim.fire("call", TimerKind::Timeout);
    assert_eq!(sim.running(), vec!["escalate"]);
    assert_eq!(sim.step_status("call"), StepStatus::Failed);
    assert_eq!(sim.step_status("next"), StepStatus::Skipped);
    assert_eq!(sim.step_status("on_error"), StepStatus::Skipped);
    assert_eq!(sim.status(), InstanceStatus::Running);
    assert_eq!(sim.ctx()["error"]["step"], json!("call"));
    assert_eq!(sim.ctx()["error"]["kind"], json!("timeout"));
    assert_eq!(sim.ctx()["error"]["attempt"], json!(1));
    assert_eq!(sim.history[0].status, AttemptStatus::TimedOut);
    sim.succeed("escalate", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

#[test]
fn a_timeout_reported_by_the_worker_also_takes_the_timeout_edge() {
    // The worker enforces the same limit and may report it first, as a `timeout` error.
    let mut sim = Sim::start(TIMEOUT_EDGE, json!({}));
    sim.advance_ms(2000);
    sim.fail(
        "call",
        StepError::retryable("attempt 1 exceeded its timeout of 2s").with_kind("timeout"),
    );
    assert_eq!(sim.running(), vec!["escalate"]);
    assert_eq!(sim.step_status("on_error"), StepStatus::Skipped);
    assert_eq!(sim.history[0].status, AttemptStatus::TimedOut);
    // And the coordinator's own timer for that attempt is now stale.
    assert!(sim.timer("call", TimerKind::Timeout).is_none());
}

#[test]
fn a_failure_of_a_step_with_a_timeout_edge_takes_the_failure_edge() {
    let mut sim = Sim::start(TIMEOUT_EDGE, json!({}));
    sim.fail("call", StepError::fatal("http", "500"));
    assert_eq!(sim.running(), vec!["on_error"]);
    assert_eq!(sim.step_status("escalate"), StepStatus::Skipped);
}

#[test]
fn a_timeout_without_timeout_edges_follows_the_failure_edges() {
    let yaml = r#"
name: timeout_to_failure
version: "1.0.0"
steps:
  call: { type: machine, handler: h, timeout: 2s }
  recover: { type: machine, handler: h }
edges:
  - { from: call, to: recover, on: failure }
"#;
    let mut sim = Sim::start(yaml, json!({}));
    sim.fire("call", TimerKind::Timeout);
    assert_eq!(sim.running(), vec!["recover"]);
    assert_eq!(sim.ctx()["error"]["kind"], json!("timeout"));
}

const PAY: &str = r#"
name: pay
version: "1.0.0"
steps:
  pay:
    type: machine
    handler: h
    retry: { max_attempts: 3, initial_interval: 1s, non_retryable: [card_declined] }
  ship: { type: machine, handler: h }
  refund: { type: machine, handler: h }
edges:
  - { from: pay, to: ship }
  - { from: pay, to: refund, on: failure }
"#;

#[test]
fn failure_edge_is_taken_with_the_error_in_the_context() {
    let mut sim = Sim::start(PAY, json!({ "order": 1 }));
    sim.fail(
        "pay",
        StepError::fatal("card_declined", "insufficient funds"),
    );
    assert_eq!(sim.running(), vec!["refund"]);
    assert_eq!(sim.step_status("ship"), StepStatus::Skipped);
    assert_eq!(sim.status(), InstanceStatus::Running);
    let error = json!({ "step": "pay", "kind": "card_declined", "message": "insufficient funds", "attempt": 1 });
    assert_eq!(sim.ctx()["error"], error);
    assert_eq!(sim.dispatch_of("refund").unwrap().context["error"], error);
    assert!(sim.types().contains(&"StepFailed"));
    assert!(!sim.types().contains(&"WorkflowFailed"));
    sim.succeed("refund", json!({ "refunded": true }));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.ctx()["order"], json!(1));
}

#[test]
fn failure_edge_is_taken_only_after_the_retries() {
    let mut sim = Sim::start(PAY, json!({}));
    sim.fail("pay", StepError::retryable("503"));
    assert!(sim.dispatch_of("refund").is_none());
    sim.fire("pay", TimerKind::Retry);
    sim.fail("pay", StepError::retryable("503"));
    sim.fire("pay", TimerKind::Retry);
    sim.fail("pay", StepError::retryable("still 503"));
    assert_eq!(sim.running(), vec!["refund"]);
    assert_eq!(sim.ctx()["error"]["attempt"], json!(3));
    assert_eq!(sim.ctx()["error"]["message"], json!("still 503"));
}

const PARALLEL_FAIL: &str = r#"
name: parallel_fail
version: "1.0.0"
steps:
  start: { type: machine, handler: h }
  a: { type: machine, handler: h }
  b: { type: machine, handler: h, timeout: 1m }
  c:
    type: machine
    handler: h
    retry: { max_attempts: 3, initial_interval: 10s }
  wait: { type: timer, duration: 1h }
  approve: { type: human, due: 24h }
  join: { type: machine, handler: h }
edges:
  - { from: start, to: a }
  - { from: start, to: b }
  - { from: start, to: c }
  - { from: start, to: wait }
  - { from: start, to: approve }
  - { from: a, to: join }
  - { from: b, to: join }
  - { from: c, to: join }
  - { from: wait, to: join }
  - { from: approve, to: join }
"#;

/// A failing branch in a parallel section fails the instance; everything else active is
/// stopped, and the other branches' late results are stale.
#[test]
fn a_failing_branch_in_a_parallel_section_fails_the_instance() {
    let mut sim = Sim::start(PARALLEL_FAIL, json!({}));
    sim.succeed("start", json!({}));
    sim.fail("c", StepError::retryable("flaky")); // c is now waiting for its retry
    let b = sim.dispatch_of("b").unwrap().clone();
    let effects = sim.fail("a", StepError::fatal("bug", "division by zero"));
    assert_eq!(sim.status(), InstanceStatus::Failed);
    assert_eq!(sim.inst.failed_step.as_deref(), Some("a"));
    assert!(effects.contains(&Effect::Unschedule {
        step: Arc::from("b"),
        kind: TimerKind::Timeout
    }));
    assert!(effects.contains(&Effect::Unschedule {
        step: Arc::from("c"),
        kind: TimerKind::Retry
    }));
    assert!(effects.contains(&Effect::Unschedule {
        step: Arc::from("wait"),
        kind: TimerKind::Wake
    }));
    assert!(effects.contains(&Effect::Unschedule {
        step: Arc::from("approve"),
        kind: TimerKind::TaskDue
    }));
    assert_eq!(
        sim.closed,
        vec![("approve".to_string(), TaskOutcome::Voided)]
    );
    assert!(sim.timers.is_empty(), "{:?}", sim.timers.keys());
    for s in ["b", "c", "wait", "approve"] {
        assert_eq!(sim.step_status(s), StepStatus::Interrupted, "{s}");
    }
    let b_record = sim.history.iter().find(|r| &*r.step == "b").unwrap();
    assert_eq!(b_record.status, AttemptStatus::Canceled);
    assert_eq!(event_types(&effects).last(), Some(&"WorkflowFailed"));

    // b's result arrives late: stale, nothing changes.
    let late = sim.apply(Input::StepSucceeded {
        step: b.step.clone(),
        token: b.token,
        output: common::obj(json!({ "b": 1 })),
        worker: None,
    });
    assert!(late.unwrap_err().is_stale());
    assert_eq!(sim.executed("join"), 0);
}

const TWO: &str = r#"
name: two
version: "1.0.0"
steps:
  a: { type: machine, handler: h, timeout: 10s }
  b: { type: machine, handler: h }
edges:
  - { from: a, to: b }
"#;

/// Late, duplicated and stale results and timers are refused and change nothing (the Sim
/// compares the instance before and after every refused input).
#[test]
fn stale_and_duplicate_inputs_are_refused_and_change_nothing() {
    let mut sim = Sim::start(TWO, json!({}));
    let a = sim.dispatch_of("a").unwrap().clone();
    let a_timeout = sim.timer("a", TimerKind::Timeout).unwrap().clone();
    let ok = Input::StepSucceeded {
        step: a.step.clone(),
        token: a.token,
        output: common::obj(json!({ "x": 1 })),
        worker: None,
    };
    sim.apply(ok.clone()).unwrap();
    let after_first = sim.inst.clone();

    let refusals = vec![
        // The same result again (a redelivered message).
        ok.clone(),
        // A failure for the same attempt.
        Input::StepFailed {
            step: a.step.clone(),
            token: a.token,
            error: StepError::retryable("late"),
            worker: None,
        },
        // A token that was never issued.
        Input::StepSucceeded {
            step: "b".into(),
            token: 9_999,
            output: common::obj(json!({ "evil": true })),
            worker: None,
        },
        // A step the workflow does not have.
        Input::StepSucceeded {
            step: "nope".into(),
            token: a.token,
            output: Default::default(),
            worker: None,
        },
        // The old timeout of a, after a succeeded.
        Input::Timer {
            step: a.step.clone(),
            kind: TimerKind::Timeout,
            token: a_timeout.token,
        },
        // A timer of the wrong kind for b's current attempt.
        Input::Timer {
            step: "b".into(),
            kind: TimerKind::Retry,
            token: sim.dispatch_of("b").unwrap().token,
        },
        Input::Timer {
            step: "b".into(),
            kind: TimerKind::Wake,
            token: sim.dispatch_of("b").unwrap().token,
        },
    ];
    for input in refusals {
        let r = sim.apply(input.clone());
        assert!(
            matches!(r, Err(Refusal::Stale { .. })),
            "{input:?} gave {r:?}"
        );
    }
    assert_eq!(sim.inst, after_first);
    assert_eq!(sim.ctx()["x"], json!(1));
    assert!(sim.ctx().get("evil").is_none());

    sim.succeed("b", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    // After the end, every result is stale.
    let r = sim.apply(ok);
    assert!(r.unwrap_err().is_stale());
    assert_eq!(sim.executed("a"), 1);
}

#[test]
fn tokens_are_fresh_for_every_attempt_and_activation() {
    let mut sim = Sim::start(RETRY, json!({}));
    let mut tokens = vec![sim.dispatch_of("flaky").unwrap().token];
    for _ in 0..3 {
        sim.fail("flaky", StepError::retryable("x"));
        tokens.push(sim.timer("flaky", TimerKind::Retry).unwrap().token);
        sim.fire("flaky", TimerKind::Retry);
        tokens.push(sim.dispatch_of("flaky").unwrap().token);
    }
    let distinct: std::collections::BTreeSet<u64> = tokens.iter().copied().collect();
    assert_eq!(distinct.len(), tokens.len(), "{tokens:?}");
}

const CONDITIONAL_FAILURE: &str = r#"
name: conditional_failure
version: "1.0.0"
steps:
  pay: { type: machine, handler: h }
  ship: { type: machine, handler: h }
  retry_card: { type: machine, handler: h }
edges:
  - { from: pay, to: ship }
  - { from: pay, to: retry_card, on: failure, condition: "context.error.kind == 'card_declined'" }
"#;

#[test]
fn a_conditional_failure_edge_reads_the_error_in_the_context() {
    let mut sim = Sim::start(CONDITIONAL_FAILURE, json!({}));
    sim.fail("pay", StepError::fatal("card_declined", "no funds"));
    assert_eq!(sim.running(), vec!["retry_card"]);
    assert_eq!(sim.status(), InstanceStatus::Running);
}

/// A failure that no failure edge takes is not handled: the instance fails, it does not
/// complete as if nothing had happened.
#[test]
fn a_failure_no_failure_edge_takes_fails_the_instance() {
    let mut sim = Sim::start(CONDITIONAL_FAILURE, json!({ "keep": 1 }));
    sim.fail("pay", StepError::fatal("network", "connection reset"));
    assert_eq!(sim.status(), InstanceStatus::Failed);
    assert_eq!(sim.inst.failed_step.as_deref(), Some("pay"));
    assert!(sim
        .inst
        .error
        .as_deref()
        .unwrap()
        .contains("connection reset"));
    assert!(sim.ctx().get("error").is_none(), "the context is as it was");
    assert_eq!(sim.ctx()["keep"], json!(1));
    assert!(!sim.types().contains(&"WorkflowCompleted"));
    assert_eq!(sim.types().last(), Some(&"WorkflowFailed"));
    // And it can be retried like any failed instance.
    sim.retry(None).unwrap();
    assert_eq!(sim.running(), vec!["pay"]);
}

/// A string of `bytes` bytes, for contexts over the limit.
fn big(bytes: usize) -> String {
    "x".repeat(bytes)
}

/// Issue 15, item 6: a step whose output would push the context past
/// `MAX_CONTEXT_BYTES` fails with the non-retryable kind `too_large` (its failure edge
/// runs), even with retries left; the output is not merged.
#[test]
fn an_output_that_makes_the_context_too_large_fails_the_step_for_good() {
    const TOO_LARGE: &str = r#"
name: too_large
version: "1.0.0"
steps:
  call:
    type: machine
    handler: h
    retry: { max_attempts: 5, initial_interval: 1s }
  next: { type: machine, handler: h }
  on_error: { type: machine, handler: h }
edges:
  - { from: call, to: next }
  - { from: call, to: on_error, on: failure }
"#;
    let mut sim = Sim::start(TOO_LARGE, json!({ "order": "o-1" }));
    sim.succeed("call", json!({ "blob": big(5_000_000) }));
    assert_eq!(sim.step_status("call"), StepStatus::Failed);
    assert_eq!(sim.running(), vec!["on_error"]);
    assert_eq!(sim.ctx()["error"]["kind"], json!("too_large"));
    assert!(sim.ctx().get("blob").is_none());
    assert!(weir::model::check_context_size(sim.ctx()).is_ok());
    assert_eq!(sim.dispatch_count("call"), 1, "not retried");

    // Just under the limit is fine; replacing a key counts the new value, not both.
    let mut sim = Sim::start(TOO_LARGE, json!({ "blob": big(900_000) }));
    sim.succeed("call", json!({ "blob": big(1_000_000) }));
    assert_eq!(sim.step_status("call"), StepStatus::Completed);
    // Without a failure edge the instance fails, with the reason.
    const NO_EDGE: &str = r#"
name: too_large_alone
version: "1.0.0"
steps:
  call: { type: machine, handler: h }
"#;
    let mut sim = Sim::start(NO_EDGE, json!({ "blob": big(600_000) }));
    sim.succeed("call", json!({ "more": big(600_000) }));
    assert_eq!(sim.status(), InstanceStatus::Failed);
    assert!(
        sim.inst
            .error
            .as_deref()
            .unwrap_or("")
            .contains("too_large"),
        "{:?}",
        sim.inst.error
    );
}

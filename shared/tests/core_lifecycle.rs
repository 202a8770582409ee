//! The pure core's instance lifecycle: start, cancel, retry of a failed instance, and the
//! events of a run.

mod common;

use std::sync::Arc;

use common::{scenario, Sim, T0};
use serde_json::json;
use weir::core::{Effect, Input, Refusal, StartSpec, TimerKind};
use weir::model::{AttemptStatus, EventKind, InstanceStatus, StepStatus, TaskOutcome};
use weir::{StepError, Timestamp};

#[test]
fn start_creates_a_running_instance_with_its_metadata() {
    let wf = Arc::new(common::workflow(&scenario::chain_of(2)));
    let spec = StartSpec {
        id: "order-17".into(),
        initial_data: common::obj(json!({ "k": "v" })),
        tenant_id: Some("acme".into()),
        created_by: Some("alice@example.com".into()),
    };
    let sim = Sim::start_spec(wf, spec, T0, 3);
    let inst = &sim.inst;
    assert_eq!(&*inst.id, "order-17");
    assert_eq!(&*inst.definition, "chain");
    assert_eq!(&*inst.version, "1.0.0");
    assert_eq!(inst.status, InstanceStatus::Running);
    assert_eq!(inst.context["k"], json!("v"));
    assert_eq!(inst.tenant_id.as_deref(), Some("acme"));
    assert_eq!(inst.created_by.as_deref(), Some("alice@example.com"));
    assert_eq!(inst.created_at, T0);
    assert_eq!(inst.updated_at, T0);
    assert_eq!(inst.finished_at, None);
    assert_eq!(inst.revision, 1);
    match &sim.events[0].kind {
        EventKind::WorkflowStarted {
            definition,
            version,
        } => {
            assert_eq!(&**definition, "chain");
            assert_eq!(&**version, "1.0.0");
        }
        other => panic!("first event {other:?}"),
    }
}

#[test]
fn a_simple_run_emits_the_expected_event_sequence() {
    let mut sim = scenario::running_chain_of(2);
    sim.advance_ms(10);
    sim.succeed("a", json!({}));
    sim.advance_ms(10);
    sim.succeed("b", json!({}));
    assert_eq!(
        sim.types(),
        vec![
            "WorkflowStarted",
            "StepStarted",
            "StepExecuted",
            "StepStarted",
            "StepExecuted",
            "WorkflowCompleted"
        ]
    );
    let steps: Vec<String> = sim
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StepStarted { step, attempt }
            | EventKind::StepExecuted { step, attempt } => Some(format!("{step}#{attempt}")),
            _ => None,
        })
        .collect();
    assert_eq!(steps, vec!["a#1", "a#1", "b#1", "b#1"]);
    assert_eq!(sim.inst.finished_at, Some(Timestamp(T0.0 + 20)));
    assert_eq!(sim.inst.updated_at, Timestamp(T0.0 + 20));
    assert_eq!(sim.inst.revision, 3);
    for e in &sim.events {
        assert_eq!(&*e.instance_id, "i-1");
    }
}

const EVERYTHING: &str = r#"
name: everything
version: "1.0.0"
steps:
  start:
    type: machine
    handler: h
    timeout: 1s
    retry: { max_attempts: 2, initial_interval: 1s }
  wait: { type: timer, duration: 1m }
  ask: { type: human, assignee: u, due: 1h }
  route: { type: gateway }
  yes: { type: machine, handler: h }
  no: { type: machine, handler: h }
  boom: { type: machine, handler: h }
  rescue: { type: machine, handler: h }
edges:
  - { from: start, to: wait }
  - { from: start, to: ask }
  - { from: wait, to: route }
  - { from: route, to: yes, condition: "context.n > 1" }
  - { from: route, to: no, condition: "context.n.size() > 1" }
  - { from: ask, to: boom }
  - { from: boom, to: rescue, on: failure }
"#;

/// Every event of a run that produces most kinds serializes with `type`, `instance_id` and
/// `timestamp`, and reads back equal.
#[test]
fn every_event_serializes_with_type_instance_id_and_timestamp() {
    let mut sim = Sim::start(EVERYTHING, json!({ "n": 2 }));
    sim.fire("start", TimerKind::Timeout);
    sim.fire("start", TimerKind::Retry);
    sim.succeed("start", json!({}));
    sim.fire("ask", TimerKind::TaskDue);
    sim.fire("wait", TimerKind::Wake);
    sim.succeed("yes", json!({}));
    sim.complete("ask", "u", json!({})).unwrap();
    sim.fail("boom", StepError::fatal("x", "y"));
    sim.succeed("rescue", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);

    let mut kinds = std::collections::BTreeSet::new();
    for e in &sim.events {
        let v = serde_json::to_value(e).unwrap();
        assert_eq!(v["type"], json!(e.type_name()), "{v}");
        assert_eq!(v["instance_id"], json!("i-1"), "{v}");
        let ts = v["timestamp"].as_str().unwrap_or_else(|| panic!("{v}"));
        assert_eq!(Timestamp::parse_rfc3339(ts).unwrap(), e.timestamp);
        let back: weir::Event = serde_json::from_value(v).unwrap();
        assert_eq!(&back, e);
        kinds.insert(e.type_name());
    }
    for k in [
        "WorkflowStarted",
        "WorkflowCompleted",
        "StepStarted",
        "StepExecuted",
        "StepFailed",
        "StepRetrying",
        "StepTimedOut",
        "StepSkipped",
        "HumanTaskCreated",
        "HumanTaskCompleted",
        "HumanTaskOverdue",
        "TimerScheduled",
        "TimerFired",
        "ConditionFailed",
    ] {
        assert!(kinds.contains(k), "{k} not seen: {kinds:?}");
    }
}

#[test]
fn failed_canceled_and_retried_events_serialize_too() {
    let mut sim = scenario::running_chain_of(2);
    sim.fail("a", StepError::fatal("x", "y"));
    sim.retry(None).unwrap();
    sim.cancel("no longer needed").unwrap();
    let types = sim.types();
    for k in ["WorkflowFailed", "WorkflowRetried", "WorkflowCanceled"] {
        assert!(types.contains(&k), "{types:?}");
    }
    for e in &sim.events {
        let v = serde_json::to_value(e).unwrap();
        assert!(
            v["type"].is_string() && v["instance_id"].is_string() && v["timestamp"].is_string()
        );
    }
    let canceled = sim.events.iter().find_map(|e| match &e.kind {
        EventKind::WorkflowCanceled { reason } => reason.clone(),
        _ => None,
    });
    assert_eq!(canceled.as_deref(), Some("no longer needed"));
}

const BUSY: &str = r#"
name: busy
version: "1.0.0"
steps:
  start: { type: gateway }
  work: { type: machine, handler: h, timeout: 1m }
  flaky:
    type: machine
    handler: h
    retry: { max_attempts: 3, initial_interval: 5s }
  nap: { type: timer, duration: 1h }
  ask: { type: human, due: 1d }
  ask2: { type: human }
edges:
  - { from: start, to: work }
  - { from: start, to: flaky }
  - { from: start, to: nap }
  - { from: start, to: ask }
  - { from: start, to: ask2 }
"#;

/// Cancel while steps are running: timers dropped, tasks voided, running attempts recorded
/// as canceled, late results stale.
#[test]
fn cancel_while_a_step_is_running() {
    let mut sim = Sim::start(BUSY, json!({}));
    sim.fail("flaky", StepError::retryable("x"));
    let work = sim.dispatch_of("work").unwrap().clone();
    let nap = sim.timer("nap", TimerKind::Wake).unwrap().clone();
    sim.advance_ms(500);
    let effects = sim.cancel("customer requested cancellation").unwrap();
    assert_eq!(sim.status(), InstanceStatus::Canceled);
    assert_eq!(
        sim.inst.error.as_deref(),
        Some("customer requested cancellation")
    );
    assert_eq!(sim.inst.finished_at, Some(Timestamp(T0.0 + 500)));
    for (step, kind) in [
        ("work", TimerKind::Timeout),
        ("flaky", TimerKind::Retry),
        ("nap", TimerKind::Wake),
        ("ask", TimerKind::TaskDue),
    ] {
        assert!(
            effects.contains(&Effect::Unschedule {
                step: Arc::from(step),
                kind
            }),
            "{step} {kind:?} not unscheduled"
        );
    }
    assert!(sim.timers.is_empty());
    let mut closed = sim.closed.clone();
    closed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        closed,
        vec![
            ("ask".to_string(), TaskOutcome::Voided),
            ("ask2".to_string(), TaskOutcome::Voided)
        ]
    );
    let rec = sim.history.iter().find(|r| &*r.step == "work").unwrap();
    assert_eq!(rec.status, AttemptStatus::Canceled);
    assert_eq!(common::event_types(&effects), vec!["WorkflowCanceled"]);
    assert!(!sim.types().contains(&"WorkflowCompleted"));

    // Late inputs: all stale, nothing changes.
    let late = [
        Input::StepSucceeded {
            step: work.step.clone(),
            token: work.token,
            output: common::obj(json!({ "late": 1 })),
            worker: None,
        },
        Input::Timer {
            step: nap.step.clone(),
            kind: TimerKind::Wake,
            token: nap.token,
        },
    ];
    for input in late {
        assert!(sim.apply(input).unwrap_err().is_stale());
    }
    let r = sim.complete("ask2", "u", json!({}));
    assert!(matches!(r, Err(Refusal::WrongStatus { .. })), "{r:?}");
    assert!(sim.ctx().get("late").is_none());
}

#[test]
fn cancel_of_a_finished_instance_is_refused() {
    let mut sim = scenario::running_chain_of(2);
    sim.cancel("first").unwrap();
    let r = sim.cancel("second").unwrap_err();
    assert!(matches!(
        r,
        Refusal::WrongStatus {
            status: InstanceStatus::Canceled,
            ..
        }
    ));
    assert_eq!(sim.inst.error.as_deref(), Some("first"));

    let mut sim = scenario::running_chain_of(2);
    sim.succeed("a", json!({}));
    sim.succeed("b", json!({}));
    let r = sim.cancel("too late").unwrap_err();
    assert!(matches!(
        r,
        Refusal::WrongStatus {
            status: InstanceStatus::Completed,
            ..
        }
    ));

    let mut sim = scenario::running_chain_of(2);
    sim.fail("a", StepError::fatal("x", "y"));
    let r = sim.cancel("failed already").unwrap_err();
    assert!(matches!(
        r,
        Refusal::WrongStatus {
            status: InstanceStatus::Failed,
            ..
        }
    ));
}

/// Retry after failure: from the failed step, keeping the context, with a fresh retry budget.
#[test]
fn retry_resumes_a_failed_instance_from_the_failed_step() {
    let mut sim = scenario::pipeline_failed_at_process();
    sim.advance_ms(60_000);
    let effects = sim.retry(None).unwrap();
    assert_eq!(sim.status(), InstanceStatus::Running);
    assert_eq!(sim.inst.error, None);
    assert_eq!(sim.inst.failed_step, None);
    assert_eq!(sim.inst.finished_at, None);
    assert_eq!(
        common::event_types(&effects),
        vec!["WorkflowRetried", "StepStarted"]
    );
    let d = sim.dispatch_of("process").unwrap();
    assert_eq!(d.attempt, 3, "attempt numbers never go back");
    assert_eq!(d.context["loaded"], json!(true), "the context is kept");
    assert_eq!(d.context["input"], json!(1));
    assert_eq!(sim.dispatch_count("load"), 1, "load is not run again");
    // The retry policy counts afresh: one more failure is retried, not final.
    sim.fail("process", StepError::retryable("flap"));
    assert_eq!(sim.step_status("process"), StepStatus::Retrying);
    sim.fire("process", TimerKind::Retry);
    sim.succeed("process", json!({ "processed": true }));
    sim.succeed("store", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.ctx()["loaded"], json!(true));
    assert_eq!(sim.ctx()["processed"], json!(true));
}

#[test]
fn retry_from_a_named_step_runs_it_and_what_follows_again() {
    let mut sim = scenario::pipeline_failed_at_process();
    sim.retry(Some("load")).unwrap();
    assert_eq!(sim.running(), vec!["load"]);
    assert_eq!(
        sim.dispatch_of("load").unwrap().context["loaded"],
        json!(true)
    );
    sim.succeed("load", json!({ "loaded": "again" }));
    sim.succeed("process", json!({}));
    sim.succeed("store", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.executed("load"), 2);
    assert_eq!(sim.executed("store"), 1);
    assert_eq!(sim.ctx()["loaded"], json!("again"));
}

#[test]
fn retry_from_a_step_after_the_failed_one_skips_it() {
    let mut sim = scenario::pipeline_failed_at_process();
    sim.retry(Some("store")).unwrap();
    assert_eq!(sim.running(), vec!["store"]);
    sim.succeed("store", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.dispatch_count("process"), 2);
}

#[test]
fn retry_is_refused_unless_the_instance_failed() {
    let mut sim = Sim::start(scenario::PIPELINE, json!({}));
    let r = sim.retry(None).unwrap_err();
    assert!(matches!(
        r,
        Refusal::WrongStatus {
            status: InstanceStatus::Running,
            ..
        }
    ));
    sim.cancel("x").unwrap();
    let r = sim.retry(None).unwrap_err();
    assert!(matches!(
        r,
        Refusal::WrongStatus {
            status: InstanceStatus::Canceled,
            ..
        }
    ));

    let mut sim = Sim::start(scenario::PIPELINE, json!({}));
    sim.succeed("load", json!({}));
    sim.succeed("process", json!({}));
    sim.succeed("store", json!({}));
    let r = sim.retry(Some("load")).unwrap_err();
    assert!(matches!(
        r,
        Refusal::WrongStatus {
            status: InstanceStatus::Completed,
            ..
        }
    ));
}

#[test]
fn retry_from_an_unknown_step_is_refused_and_changes_nothing() {
    let mut sim = scenario::pipeline_failed_at_process();
    let r = sim.retry(Some("nope")).unwrap_err();
    assert_eq!(r, Refusal::UnknownStep("nope".into()));
    assert_eq!(sim.status(), InstanceStatus::Failed);
    // The instance is still retryable.
    sim.retry(None).unwrap();
    assert_eq!(sim.status(), InstanceStatus::Running);
}

const SPLIT: &str = r#"
name: split
version: "1.0.0"
steps:
  start: { type: machine, handler: h }
  a: { type: machine, handler: h }
  b: { type: machine, handler: h }
  join: { type: machine, handler: h }
edges:
  - { from: start, to: a }
  - { from: start, to: b }
  - { from: a, to: join }
  - { from: b, to: join }
"#;

#[test]
fn retry_restarts_branches_the_failure_interrupted_and_the_join_runs_once() {
    let mut sim = Sim::start(SPLIT, json!({}));
    sim.succeed("start", json!({}));
    let b_old = sim.dispatch_of("b").unwrap().clone();
    sim.fail("a", StepError::fatal("bug", "x"));
    assert_eq!(sim.step_status("b"), StepStatus::Interrupted);
    sim.retry(None).unwrap();
    let mut running = sim.running();
    running.sort();
    assert_eq!(running, vec!["a", "b"]);
    // The old attempt of b is stale now.
    let r = sim.apply(Input::StepSucceeded {
        step: b_old.step.clone(),
        token: b_old.token,
        output: Default::default(),
        worker: None,
    });
    assert!(r.unwrap_err().is_stale());
    sim.succeed("b", json!({}));
    assert!(sim.dispatch_of("join").is_none());
    sim.succeed("a", json!({}));
    sim.succeed("join", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.executed("join"), 1);
}

#[test]
fn retry_keeps_what_a_finished_branch_gave_the_join() {
    let mut sim = Sim::start(SPLIT, json!({}));
    sim.succeed("start", json!({}));
    sim.succeed("b", json!({ "b": 1 }));
    sim.fail("a", StepError::fatal("bug", "x"));
    sim.retry(None).unwrap();
    assert_eq!(
        sim.running(),
        vec!["a"],
        "b finished: it does not run again"
    );
    sim.succeed("a", json!({ "a": 1 }));
    assert_eq!(sim.running(), vec!["join"]);
    sim.succeed("join", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.executed("b"), 1);
    assert_eq!(sim.executed("join"), 1);
    assert_eq!(sim.ctx()["b"], json!(1));
}

/// Retrying from a named step beside the failed one (not leading to it) must not leave the
/// failed branch dead: the join after them still runs once and the instance does not
/// complete without it.
#[test]
fn retry_from_a_sibling_of_the_failed_step_still_runs_the_join() {
    let mut sim = Sim::start(SPLIT, json!({}));
    sim.succeed("start", json!({}));
    sim.succeed("a", json!({}));
    sim.fail("b", StepError::fatal("bug", "x"));
    sim.retry(Some("a")).unwrap();
    while let Some(step) = sim.running().first().cloned() {
        sim.succeed(&step, json!({}));
    }
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.executed("join"), 1, "events: {:?}", sim.types());
}

const LOOP: &str = r#"
name: loop
version: "1.0.0"
steps:
  start: { type: machine, handler: h }
  side: { type: machine, handler: h }
  review: { type: machine, handler: h }
  revise: { type: machine, handler: h }
  join: { type: machine, handler: h }
edges:
  - { from: start, to: side }
  - { from: start, to: review }
  - { from: review, to: revise, condition: "context.approved == false" }
  - { from: revise, to: review }
  - { from: review, to: join, condition: "context.approved == true" }
  - { from: side, to: join }
"#;

#[test]
fn retry_of_a_step_that_failed_inside_a_loop_goes_on_with_the_loop() {
    let mut sim = Sim::start(LOOP, json!({}));
    sim.succeed("start", json!({}));
    sim.succeed("side", json!({}));
    sim.succeed("review", json!({ "approved": false }));
    sim.fail("revise", StepError::fatal("bug", "x"));
    assert_eq!(sim.status(), InstanceStatus::Failed);
    sim.retry(None).unwrap();
    assert_eq!(sim.running(), vec!["revise"]);
    sim.succeed("revise", json!({}));
    assert!(sim.dispatch_of("join").is_none());
    sim.succeed("review", json!({ "approved": true }));
    sim.succeed("join", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.executed("join"), 1);
    assert_eq!(sim.executed("review"), 2);
}

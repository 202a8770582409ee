//! The pure core's routing: parallel fan-out, conditional and default edges, gateways, joins
//! with dead-path elimination, loops, and completion when nothing is active.

mod common;

use common::{dispatches, scenario, Sim};
use serde_json::json;
use weir::model::{InstanceStatus, StepStatus};

/// The branches of the fan-out tests; `complete` joins them.
const NOTIFY: [&str; 3] = ["notify_email", "notify_slack", "notify_sms"];

fn names(sim: &Sim) -> Vec<String> {
    let mut v: Vec<String> = dispatches(&sim.last)
        .iter()
        .map(|d| d.step.to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn unconditional_edges_fan_out_in_parallel() {
    let mut sim = Sim::start(&scenario::fan_out(&NOTIFY, Some("complete")), json!({}));
    assert_eq!(sim.running(), vec!["start"]);
    sim.succeed("start", json!({}));
    assert_eq!(
        names(&sim),
        vec!["notify_email", "notify_slack", "notify_sms"],
        "one transition dispatches every branch"
    );
    assert_eq!(sim.status(), InstanceStatus::Running);
}

/// Python regression: a join after a parallel fan-out runs, once, before the instance
/// completes, whatever order the branches finish in.
#[test]
fn a_fan_out_wider_than_the_inline_lists_dispatches_every_branch_and_joins_once() {
    // 24 ways out of one step and 24 ways into the join: more than a transition keeps
    // inline (16 taken edges, 4 queued steps), so its lists move to the heap midway.
    let branches: Vec<String> = (0..24).map(|i| format!("b{i:02}")).collect();
    let refs: Vec<&str> = branches.iter().map(String::as_str).collect();
    let mut sim = Sim::start(&scenario::fan_out(&refs, Some("join")), json!({}));
    sim.succeed("start", json!({}));
    assert_eq!(names(&sim), branches, "one transition dispatches all 24");
    for b in branches.iter().rev() {
        assert!(sim.dispatch_of("join").is_none(), "join started before {b}");
        sim.succeed(b, json!({}));
    }
    assert_eq!(
        names(&sim),
        vec!["join"],
        "the join starts once, after the last"
    );
    sim.succeed("join", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

#[test]
fn join_after_fan_out_runs_once_before_completion_in_every_order() {
    let branches = NOTIFY;
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let mut sim = scenario::fanned_out_to(&NOTIFY, Some("complete"));
        for (n, &i) in order.iter().enumerate() {
            assert!(
                sim.dispatch_of("complete").is_none(),
                "join started after {n} of 3 branches ({order:?})"
            );
            sim.succeed(branches[i], json!({ branches[i]: true }));
        }
        assert_eq!(sim.dispatch_count("complete"), 1, "order {order:?}");
        assert_eq!(
            sim.status(),
            InstanceStatus::Running,
            "completed before the join ran"
        );
        assert!(!sim.types().contains(&"WorkflowCompleted"));
        sim.succeed("complete", json!({ "done": true }));
        assert_eq!(sim.status(), InstanceStatus::Completed);
        assert_eq!(sim.executed("complete"), 1);
        let types = sim.types();
        assert_eq!(types.last(), Some(&"WorkflowCompleted"));
        assert_eq!(
            types.iter().filter(|t| **t == "WorkflowCompleted").count(),
            1
        );
        for b in branches {
            assert_eq!(sim.ctx()[b], json!(true));
        }
    }
}

const SCORE: &str = r#"
name: score
version: "1.0.0"
steps:
  route: { type: gateway }
  high: { type: machine, handler: h }
  mid: { type: machine, handler: h }
  low: { type: machine, handler: h }
edges:
  - { from: route, to: high, condition: "context.score >= 80" }
  - { from: route, to: mid, condition: "context.score >= 50" }
  - { from: route, to: low, condition: "context.score < 50" }
"#;

#[test]
fn every_matching_conditional_edge_is_taken() {
    let sim = Sim::start(SCORE, json!({ "score": 90 }));
    assert_eq!(names(&sim), vec!["high", "mid"]);
    assert_eq!(sim.step_status("low"), StepStatus::Skipped);
    assert!(sim.types().contains(&"StepSkipped"));
}

/// Python regression: a gateway takes only the matching edges.
#[test]
fn gateway_takes_only_the_matching_edges() {
    let sim = Sim::start(SCORE, json!({ "score": 60 }));
    assert_eq!(names(&sim), vec!["mid"]);
    assert_eq!(sim.step_status("high"), StepStatus::Skipped);
    assert_eq!(sim.step_status("low"), StepStatus::Skipped);
    let sim = Sim::start(SCORE, json!({ "score": 10 }));
    assert_eq!(names(&sim), vec!["low"]);
}

/// A gateway exists to choose a way on: choosing none is a modelling gap, so it fails the
/// gateway (and, with no failure edge, the instance) instead of quietly completing.
#[test]
fn a_gateway_that_matches_nothing_and_has_no_default_fails() {
    let sim = Sim::start(SCORE, json!({ "score": "not a number" }));
    assert!(sim.dispatched.is_empty());
    assert_eq!(sim.status(), InstanceStatus::Failed);
    assert_eq!(sim.inst.failed_step.as_deref(), Some("route"));
    assert_eq!(sim.step_status("route"), StepStatus::Failed);
    let error = sim.inst.error.as_deref().unwrap_or_default();
    assert!(error.contains("no_route"), "{error}");
    // Every branch it did not take is dead: nothing waits on it.
    assert_eq!(sim.step_status("high"), StepStatus::Idle);
}

/// With a failure edge, the gateway's failure is handled like any step's.
#[test]
fn a_gateway_that_matches_nothing_follows_its_failure_edge() {
    let yaml = r#"
name: score_handled
version: "1.0.0"
steps:
  route: { type: gateway }
  high: { type: machine, handler: h }
  triage: { type: machine, handler: h }
edges:
  - { from: route, to: high, condition: "context.score >= 80" }
  - { from: route, to: triage, on: failure }
"#;
    let sim = Sim::start(yaml, json!({ "score": 10 }));
    assert_eq!(names(&sim), vec!["triage"]);
    assert_eq!(sim.ctx()["error"]["kind"], json!("no_route"));
}

/// A step other than a gateway whose conditional edges all are false ends its path there
/// (an optional follow-up, like "notify when over budget"); the instance completes.
#[test]
fn a_machine_step_whose_conditions_all_fail_ends_its_path() {
    let yaml = r#"
name: optional
version: "1.0.0"
steps:
  spend: { type: machine, handler: h }
  notify: { type: machine, handler: h }
edges:
  - { from: spend, to: notify, condition: "context.amount > 100" }
"#;
    let mut sim = Sim::start(yaml, json!({}));
    sim.succeed("spend", json!({ "amount": 5 }));
    assert_eq!(sim.step_status("notify"), StepStatus::Skipped);
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

const APPROVAL: &str = r#"
name: approval
version: "1.0.0"
steps:
  review: { type: machine, handler: h }
  approve: { type: machine, handler: h }
  reject: { type: machine, handler: h }
edges:
  - { from: review, to: approve, condition: "context.get('score') >= 80" }
  - { from: review, to: reject, condition: "context.get('score') < 80" }
"#;

/// Python regression: a condition written as a string is really evaluated; a false one is
/// not taken. Both the CEL form and the Python engine's `context.get('key')` form work.
#[test]
fn condition_strings_are_really_evaluated() {
    let mut sim = Sim::start(APPROVAL, json!({}));
    sim.succeed("review", json!({ "score": 85 }));
    assert_eq!(names(&sim), vec!["approve"]);
    assert_eq!(sim.step_status("reject"), StepStatus::Skipped);

    let mut sim = Sim::start(APPROVAL, json!({}));
    sim.succeed("review", json!({ "score": 20 }));
    assert_eq!(names(&sim), vec!["reject"]);
    assert_eq!(sim.step_status("approve"), StepStatus::Skipped);
}

#[test]
fn a_false_condition_is_not_taken() {
    let yaml = r#"
name: pay
version: "1.0.0"
steps:
  check: { type: machine, handler: h }
  pay: { type: machine, handler: h }
  never: { type: machine, handler: h }
edges:
  - { from: check, to: pay, condition: "context.approved == true" }
  - { from: check, to: never, condition: "false" }
"#;
    let mut sim = Sim::start(yaml, json!({}));
    sim.succeed("check", json!({ "approved": false }));
    assert!(sim.dispatched.is_empty(), "{:?}", sim.running());
    assert_eq!(sim.step_status("pay"), StepStatus::Skipped);
    assert_eq!(sim.step_status("never"), StepStatus::Skipped);
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.executed("pay"), 0);
}

const DEFAULTED: &str = r#"
name: defaulted
version: "1.0.0"
steps:
  route: { type: gateway }
  pay: { type: machine, handler: h }
  review: { type: machine, handler: h }
  reject: { type: machine, handler: h }
edges:
  - { from: route, to: pay, condition: "context.amount < 100" }
  - { from: route, to: review, condition: "context.amount >= 100 && context.amount < 1000" }
  - { from: route, to: reject, default: true }
"#;

#[test]
fn default_edge_is_taken_only_when_no_condition_matched() {
    let sim = Sim::start(DEFAULTED, json!({ "amount": 5000 }));
    assert_eq!(names(&sim), vec!["reject"]);
    assert_eq!(sim.step_status("pay"), StepStatus::Skipped);
    assert_eq!(sim.step_status("review"), StepStatus::Skipped);

    let sim = Sim::start(DEFAULTED, json!({ "amount": 50 }));
    assert_eq!(names(&sim), vec!["pay"]);
    assert_eq!(sim.step_status("reject"), StepStatus::Skipped);

    let sim = Sim::start(DEFAULTED, json!({ "amount": 500 }));
    assert_eq!(names(&sim), vec!["review"]);
}

#[test]
fn unconditional_edges_are_taken_beside_conditional_ones() {
    let yaml = r#"
name: mixed
version: "1.0.0"
steps:
  route: { type: gateway }
  audit: { type: machine, handler: h }
  pay: { type: machine, handler: h }
  reject: { type: machine, handler: h }
edges:
  - { from: route, to: audit }
  - { from: route, to: pay, condition: "context.ok" }
  - { from: route, to: reject, default: true }
"#;
    let sim = Sim::start(yaml, json!({ "ok": true }));
    assert_eq!(names(&sim), vec!["audit", "pay"]);
    let sim = Sim::start(yaml, json!({ "ok": false }));
    assert_eq!(
        names(&sim),
        vec!["audit", "reject"],
        "an unconditional edge is not a matched condition: the default still applies"
    );
}

const SKIP_JOIN: &str = r#"
name: skip_join
version: "1.0.0"
steps:
  route: { type: gateway }
  a: { type: machine, handler: h }
  b: { type: machine, handler: h }
  b2: { type: machine, handler: h }
  join: { type: machine, handler: h }
edges:
  - { from: route, to: a, condition: "context.take_a" }
  - { from: route, to: b, condition: "context.take_b" }
  - { from: b, to: b2 }
  - { from: a, to: join }
  - { from: b2, to: join }
"#;

/// Dead-path elimination: the join after a skipped conditional branch (through a chain of
/// skipped steps) still runs, once.
#[test]
fn join_after_a_skipped_conditional_branch_runs_once() {
    let mut sim = Sim::start(SKIP_JOIN, json!({ "take_a": true, "take_b": false }));
    assert_eq!(sim.running(), vec!["a"]);
    assert_eq!(sim.step_status("b"), StepStatus::Skipped);
    assert_eq!(sim.step_status("b2"), StepStatus::Skipped);
    assert_eq!(
        sim.step_status("join"),
        StepStatus::Idle,
        "join must wait for a"
    );
    sim.succeed("a", json!({}));
    assert_eq!(sim.running(), vec!["join"]);
    sim.succeed("join", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.executed("join"), 1);
    assert_eq!(sim.executed("b"), 0);
}

#[test]
fn join_waits_for_both_live_branches() {
    let mut sim = Sim::start(SKIP_JOIN, json!({ "take_a": true, "take_b": true }));
    sim.succeed("b", json!({}));
    sim.succeed("a", json!({}));
    assert!(sim.dispatch_of("join").is_none(), "join started before b2");
    sim.succeed("b2", json!({}));
    assert_eq!(sim.running(), vec!["join"]);
    sim.succeed("join", json!({}));
    assert_eq!(sim.executed("join"), 1);
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

#[test]
fn join_with_every_incoming_edge_dead_is_skipped_and_the_instance_completes() {
    // Conditional edges out of a machine step (a gateway choosing nothing fails instead).
    let yaml = SKIP_JOIN.replace(
        "route: { type: gateway }",
        "route: { type: machine, handler: h }",
    );
    let mut sim = Sim::start(&yaml, json!({ "take_a": false, "take_b": false }));
    sim.succeed("route", json!({}));
    assert_eq!(sim.step_status("join"), StepStatus::Skipped);
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert!(sim.dispatched.is_empty());
}

#[test]
fn gateway_only_workflow_completes_in_its_first_transition() {
    let yaml = r#"
name: gw
version: "1.0.0"
steps:
  only: { type: gateway }
"#;
    let sim = Sim::start(yaml, json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(
        sim.types(),
        vec!["WorkflowStarted", "StepExecuted", "WorkflowCompleted"]
    );
    assert_eq!(sim.inst.finished_at, Some(common::T0));
}

/// Python regression: what a step writes stays in the context; later steps see it.
#[test]
fn what_a_step_writes_stays_in_the_context() {
    let mut sim = Sim::start(
        &scenario::chain_of(3),
        json!({ "order": 7, "note": "initial" }),
    );
    sim.succeed("a", json!({ "x": 1, "nested": { "deep": [1, 2] } }));
    let d = sim.dispatch_of("b").unwrap();
    assert_eq!(d.context["x"], json!(1), "the next step sees what a wrote");
    assert_eq!(d.context["order"], json!(7));
    sim.succeed("b", json!({ "y": 2, "note": "b wrote" }));
    sim.succeed("c", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(
        serde_json::Value::Object(sim.ctx().clone()),
        json!({ "order": 7, "note": "b wrote", "x": 1, "y": 2, "nested": { "deep": [1, 2] } })
    );
}

#[test]
fn parallel_writes_of_one_key_resolve_to_the_result_applied_last() {
    for (first, second) in [("a", "b"), ("b", "a")] {
        let mut sim = scenario::fanned_out_to(&["a", "b"], None);
        sim.succeed(first, json!({ "k": first, first: 1 }));
        sim.succeed(second, json!({ "k": second, second: 1 }));
        assert_eq!(sim.ctx()["k"], json!(second));
        assert_eq!(sim.ctx()["a"], json!(1));
        assert_eq!(sim.ctx()["b"], json!(1));
    }
}

const REVIEW_LOOP: &str = r#"
name: review_loop
version: "1.0.0"
initial_step: write
steps:
  write: { type: machine, handler: h }
  review: { type: human, assignee: editor }
  route: { type: gateway }
  revise: { type: machine, handler: h }
  publish: { type: machine, handler: h }
edges:
  - { from: write, to: review }
  - { from: review, to: route }
  - { from: route, to: revise, condition: "context.approved == false" }
  - { from: route, to: publish, default: true }
  - { from: revise, to: review }
"#;

/// A review -> revise -> review loop with a condition runs until the exit is taken.
#[test]
fn review_revise_loop_runs_until_approved() {
    let mut sim = Sim::start(REVIEW_LOOP, json!({}));
    sim.succeed("write", json!({ "draft": 1 }));
    for round in 1..=3 {
        assert_eq!(sim.status(), InstanceStatus::Waiting, "round {round}");
        assert!(sim.tasks.contains_key("review"));
        sim.complete("review", "editor", json!({ "approved": false }))
            .unwrap();
        assert_eq!(sim.running(), vec!["revise"], "round {round}");
        assert_ne!(
            sim.step_status("publish"),
            StepStatus::Skipped,
            "the loop's exit is not dead while the loop goes on"
        );
        sim.succeed("revise", json!({ "draft": round + 1 }));
    }
    sim.complete("review", "editor", json!({ "approved": true }))
        .unwrap();
    assert_eq!(sim.running(), vec!["publish"]);
    sim.succeed("publish", json!({ "published": true }));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.executed("review"), 4);
    assert_eq!(sim.executed("revise"), 3);
    assert_eq!(sim.executed("publish"), 1);
    assert_eq!(sim.ctx()["draft"], json!(4));
    // Attempt numbers never go back, so (instance, step, attempt) names one attempt for good.
    assert_eq!(sim.step("review").attempt, 4);
    assert_eq!(sim.step("revise").attempt, 3);
}

const MACHINE_LOOP: &str = r#"
name: machine_loop
version: "1.0.0"
initial_step: review
steps:
  review: { type: machine, handler: h }
  revise: { type: machine, handler: h }
  done: { type: machine, handler: h }
edges:
  - { from: review, to: revise, condition: "context.approved == false" }
  - { from: revise, to: review }
  - { from: review, to: done, condition: "context.approved == true" }
"#;

#[test]
fn loop_of_machine_steps_exits_and_completes() {
    let mut sim = Sim::start(MACHINE_LOOP, json!({}));
    sim.succeed("review", json!({ "approved": false }));
    sim.succeed("revise", json!({}));
    sim.succeed("review", json!({ "approved": true }));
    assert_eq!(sim.running(), vec!["done"]);
    sim.succeed("done", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.executed("review"), 2);
    assert_eq!(sim.executed("done"), 1);
    // Only the loop body is skipped, once the loop is left; never its exit.
    assert_eq!(skipped(&sim), vec!["revise"]);
}

fn skipped(sim: &Sim) -> Vec<String> {
    sim.events
        .iter()
        .filter_map(|e| match &e.kind {
            weir::model::EventKind::StepSkipped { step } => Some(step.to_string()),
            _ => None,
        })
        .collect()
}

const LOOP_IN_PARALLEL: &str = r#"
name: loop_in_parallel
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

/// A join fed by a loop's exit and by a parallel branch waits for the loop to exit: the
/// exit edge is not dead while the loop goes round.
#[test]
fn join_after_a_loop_in_a_parallel_section_waits_for_the_loop() {
    let mut sim = Sim::start(LOOP_IN_PARALLEL, json!({}));
    sim.succeed("start", json!({}));
    sim.succeed("side", json!({}));
    sim.succeed("review", json!({ "approved": false }));
    assert!(
        sim.dispatch_of("join").is_none(),
        "join started while the loop was still going: {:?}",
        sim.running()
    );
    sim.succeed("revise", json!({}));
    sim.succeed("review", json!({ "approved": true }));
    assert_eq!(sim.running(), vec!["join"]);
    sim.succeed("join", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.executed("join"), 1);
}

#[test]
fn a_loop_of_gateways_that_never_waits_fails_the_instance_instead_of_spinning() {
    let yaml = r#"
name: spin
version: "1.0.0"
initial_step: a
steps:
  a: { type: gateway }
  b: { type: gateway }
  out: { type: machine, handler: h }
edges:
  - { from: a, to: b }
  - { from: b, to: a, condition: "context.go" }
  - { from: b, to: out, default: true }
"#;
    let sim = Sim::start(yaml, json!({ "go": true }));
    assert_eq!(sim.status(), InstanceStatus::Failed);
    assert!(sim.inst.error.as_deref().unwrap().contains("loop"));
}

#[test]
fn condition_that_cannot_be_evaluated_counts_as_false_and_is_reported() {
    let yaml = r#"
name: bad_eval
version: "1.0.0"
steps:
  route: { type: gateway }
  yes: { type: machine, handler: h }
  fallback: { type: machine, handler: h }
edges:
  - { from: route, to: yes, condition: "context.n / context.d > 1" }
  - { from: route, to: fallback, default: true }
"#;
    // Dividing a string by a number cannot be evaluated.
    let sim = Sim::start(yaml, json!({ "n": "ten", "d": 2 }));
    assert_eq!(sim.running(), vec!["fallback"]);
    assert!(
        sim.types().contains(&"ConditionFailed"),
        "{:?}",
        sim.types()
    );
}

/// Issue 15, item 11: a condition over hostile user data goes over its evaluation budget
/// quickly: the edge is not taken, `ConditionFailed` says why, and the instance goes on.
#[test]
fn a_condition_over_its_budget_counts_as_false_and_is_reported() {
    let yaml = r#"
name: hostile
version: "1.0.0"
steps:
  route: { type: gateway }
  yes: { type: machine, handler: h }
  fallback: { type: machine, handler: h }
edges:
  - { from: route, to: yes, condition: "context.items.all(x, context.items.all(y, x == y || true))" }
  - { from: route, to: fallback, default: true }
"#;
    let items: Vec<i64> = (0..4_000).collect();
    let started = std::time::Instant::now();
    let sim = Sim::start(yaml, json!({ "items": items }));
    let took = started.elapsed();
    assert_eq!(sim.running(), vec!["fallback"]);
    let reported = sim.last.iter().any(|e| {
        matches!(e, weir::core::Effect::Emit(ev)
            if matches!(&ev.kind, weir::model::EventKind::ConditionFailed { error, .. } if error.contains("budget")))
    });
    assert!(reported, "{:?}", sim.types());
    // 100 ms in a release build; a debug build is about ten times slower.
    let limit = if cfg!(debug_assertions) { 1_000 } else { 100 };
    assert!(
        took < std::time::Duration::from_millis(limit),
        "took {took:?}"
    );
}

const LOOP_WITH_SIDE_EXIT: &str = r#"
name: loop_side_exit
version: "1.0.0"
steps:
  start: { type: machine, handler: h }
  other: { type: machine, handler: h }
  a: { type: machine, handler: h }
  b: { type: machine, handler: h }
  c: { type: machine, handler: h }
  side: { type: machine, handler: h }
  out: { type: machine, handler: h }
  join: { type: machine, handler: h }
edges:
  - { from: start, to: other }
  - { from: start, to: a }
  - { from: a, to: b }
  - { from: b, to: side, condition: "context.side == true" }
  - { from: b, to: c }
  - { from: c, to: a, condition: "context.again == true" }
  - { from: c, to: out, default: true }
  - { from: side, to: join }
  - { from: other, to: join }
  - { from: out, to: join }
"#;

/// An exit of a loop body that is never taken is dead once the loop is over, so the join it
/// feeds neither hangs nor runs early.
#[test]
fn a_loop_exit_never_taken_dies_when_the_loop_is_over() {
    let mut sim = Sim::start(LOOP_WITH_SIDE_EXIT, json!({ "side": false }));
    sim.succeed("start", json!({}));
    sim.succeed("other", json!({}));
    for again in [true, true, false] {
        sim.succeed("a", json!({}));
        sim.succeed("b", json!({}));
        assert!(sim.dispatch_of("join").is_none());
        sim.succeed("c", json!({ "again": again }));
    }
    assert_eq!(sim.executed("a"), 3);
    assert_eq!(sim.running(), vec!["out"]);
    sim.succeed("out", json!({}));
    assert_eq!(sim.running(), vec!["join"]);
    assert_eq!(sim.step_status("side"), StepStatus::Skipped);
    sim.succeed("join", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.executed("join"), 1);
}

#[test]
fn a_loop_exit_taken_on_a_later_turn_feeds_the_join() {
    let mut sim = Sim::start(LOOP_WITH_SIDE_EXIT, json!({ "side": false }));
    sim.succeed("start", json!({}));
    sim.succeed("a", json!({}));
    sim.succeed("b", json!({ "side": false }));
    sim.succeed("c", json!({ "again": true }));
    sim.succeed("a", json!({}));
    sim.succeed("b", json!({ "side": true })); // the side exit, on the second turn
    sim.succeed("side", json!({}));
    sim.succeed("other", json!({}));
    assert!(sim.dispatch_of("join").is_none(), "join ran before out");
    sim.succeed("c", json!({ "again": false }));
    sim.succeed("out", json!({}));
    assert_eq!(sim.running(), vec!["join"]);
    sim.succeed("join", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.executed("join"), 1);
    assert_eq!(sim.executed("side"), 1);
}

#[test]
fn a_loop_on_a_path_not_taken_is_skipped_with_its_exits() {
    let yaml = r#"
name: dead_loop
version: "1.0.0"
steps:
  route: { type: gateway }
  l1: { type: machine, handler: h }
  l2: { type: machine, handler: h }
  exit: { type: machine, handler: h }
  other: { type: machine, handler: h }
  join: { type: machine, handler: h }
edges:
  - { from: route, to: l1, condition: "context.loop == true" }
  - { from: route, to: other, default: true }
  - { from: l1, to: l2 }
  - { from: l2, to: l1, condition: "context.again == true" }
  - { from: l2, to: exit, default: true }
  - { from: exit, to: join }
  - { from: other, to: join }
"#;
    let mut sim = Sim::start(yaml, json!({ "loop": false }));
    assert_eq!(sim.running(), vec!["other"]);
    assert_eq!(sim.step_status("exit"), StepStatus::Skipped);
    sim.succeed("other", json!({}));
    assert_eq!(sim.running(), vec!["join"]);
    sim.succeed("join", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

#[test]
fn a_step_looping_on_itself_polls_until_done() {
    let yaml = r#"
name: poll
version: "1.0.0"
initial_step: poll
steps:
  poll: { type: machine, handler: h }
  done: { type: machine, handler: h }
edges:
  - { from: poll, to: poll, condition: "context.pending == true" }
  - { from: poll, to: done, default: true }
"#;
    let mut sim = Sim::start(yaml, json!({}));
    for _ in 0..4 {
        sim.succeed("poll", json!({ "pending": true }));
        assert_eq!(sim.running(), vec!["poll"]);
    }
    sim.succeed("poll", json!({ "pending": false }));
    assert_eq!(sim.running(), vec!["done"]);
    sim.succeed("done", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.executed("poll"), 5);
    assert_eq!(sim.executed("done"), 1);
}

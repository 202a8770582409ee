//! The pure core's human tasks and timer steps: opening, completing, refusals that change
//! nothing, due times with and without a timeout edge, and timers beside tasks.

mod common;

use std::sync::Arc;

use common::{scenario, schedules, Sim, T0};
use serde_json::json;
use weir::core::{Effect, Input, Refusal, TimerKind};
use weir::model::{Actor, AttemptStatus, EventKind, InstanceStatus, StepStatus, TaskOutcome};
use weir::Timestamp;

const HOURS: i64 = 3_600_000;

/// The approver of the tasks in these tests (a candidate, `deputy@example.com`, may
/// complete them too).
const MANAGER: &str = "manager@example.com";

#[test]
fn a_human_step_opens_a_task_and_the_instance_waits() {
    let sim = scenario::approval_waiting_on(MANAGER);
    assert_eq!(sim.status(), InstanceStatus::Waiting);
    assert_eq!(sim.step_status("approve"), StepStatus::Waiting);
    let task = &sim.tasks["approve"];
    assert_eq!(&*task.instance_id, "exp-1");
    assert_eq!(task.title.as_deref(), Some("Approve the expense"));
    assert_eq!(task.description.as_deref(), Some("Check the receipt"));
    assert_eq!(task.assignee.as_deref(), Some("manager@example.com"));
    assert_eq!(task.candidates, vec!["deputy@example.com".to_string()]);
    assert_eq!(task.form.as_ref().unwrap()["required"], json!(["approved"]));
    assert_eq!(task.created_at, T0);
    assert_eq!(task.due_at, Some(Timestamp(T0.0 + 48 * HOURS)));
    assert_eq!(task.tenant_id.as_deref(), Some("acme"));
    let due = sim.timer("approve", TimerKind::TaskDue).unwrap();
    assert_eq!(due.due_at, Timestamp(T0.0 + 48 * HOURS));
    assert_eq!(due.token, task.token);
    assert_eq!(sim.last_types().last(), Some(&"HumanTaskCreated"));
    let created = sim.events.iter().find_map(|e| match &e.kind {
        EventKind::HumanTaskCreated {
            assignee,
            candidates,
            ..
        } => Some((assignee.clone(), candidates.clone())),
        _ => None,
    });
    assert_eq!(
        created,
        Some((
            Some("manager@example.com".into()),
            vec!["deputy@example.com".into()]
        ))
    );
}

/// Python regression: completing a human task resumes the instance.
#[test]
fn completing_the_task_resumes_the_instance() {
    let mut sim = scenario::approval_waiting_on(MANAGER);
    sim.advance_ms(60_000);
    let effects = sim
        .complete(
            "approve",
            "manager@example.com",
            json!({ "approved": true, "comments": "ok" }),
        )
        .unwrap();
    assert!(effects.contains(&Effect::CloseTask {
        step: Arc::from("approve"),
        outcome: TaskOutcome::Completed
    }));
    assert!(effects.contains(&Effect::Unschedule {
        step: Arc::from("approve"),
        kind: TimerKind::TaskDue
    }));
    assert_eq!(
        sim.last_types(),
        vec!["HumanTaskCompleted", "StepExecuted", "StepStarted"]
    );
    assert_eq!(sim.status(), InstanceStatus::Running);
    assert_eq!(sim.running(), vec!["pay"]);
    assert_eq!(sim.ctx()["approved"], json!(true));
    assert_eq!(sim.ctx()["comments"], json!("ok"));
    assert_eq!(
        sim.dispatch_of("pay").unwrap().context["approved"],
        json!(true)
    );
    let rec = sim.history.iter().find(|r| &*r.step == "approve").unwrap();
    assert_eq!(rec.status, AttemptStatus::Completed);
    assert_eq!(rec.worker.as_deref(), Some("manager@example.com"));
    assert_eq!(rec.started_at, Some(T0));
    assert_eq!(rec.finished_at, Some(Timestamp(T0.0 + 60_000)));
    assert!(sim.tasks.is_empty());
    sim.succeed("pay", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

#[test]
fn a_candidate_may_complete_the_task() {
    let mut sim = scenario::approval_waiting_on(MANAGER);
    sim.complete(
        "approve",
        "deputy@example.com",
        json!({ "approved": false }),
    )
    .unwrap();
    assert_eq!(sim.running(), vec!["pay"]);
}

#[test]
fn anyone_may_complete_a_task_with_no_assignee_or_candidates() {
    let yaml = r#"
name: open
version: "1.0.0"
steps:
  ask: { type: human }
"#;
    let mut sim = Sim::start(yaml, json!({}));
    sim.complete("ask", "whoever", json!({ "answer": 42 }))
        .unwrap();
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.ctx()["answer"], json!(42));
}

/// Every refused completion changes nothing: the Sim compares the whole instance, and no
/// effect is produced.
fn refused(sim: &mut Sim, step: &str, user: &str, data: serde_json::Value) -> Refusal {
    let tasks_before = sim.tasks.clone();
    let events_before = sim.events.len();
    let r = sim
        .complete(step, user, data)
        .expect_err("the completion should be refused");
    assert_eq!(sim.tasks, tasks_before);
    assert_eq!(sim.events.len(), events_before);
    r
}

#[test]
fn a_user_the_task_does_not_allow_is_refused() {
    let mut sim = scenario::approval_waiting_on(MANAGER);
    let r = refused(
        &mut sim,
        "approve",
        "mallory@example.com",
        json!({ "approved": true }),
    );
    assert!(matches!(r, Refusal::Forbidden { ref user, .. } if user == "mallory@example.com"));
    assert_eq!(sim.status(), InstanceStatus::Waiting);
}

#[test]
fn data_failing_the_form_is_refused() {
    let mut sim = scenario::approval_waiting_on(MANAGER);
    for bad in [
        json!({}),
        json!({ "approved": "yes" }),
        json!({ "approved": true, "comments": 5 }),
        json!("approved"),
    ] {
        let r = refused(&mut sim, "approve", "manager@example.com", bad.clone());
        match r {
            Refusal::InvalidData { step, form, .. } => {
                assert_eq!(step, "approve");
                assert!(form.is_some(), "{bad}: the form's errors should be kept");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn data_that_is_not_an_object_is_refused_even_without_a_form() {
    let yaml = r#"
name: open
version: "1.0.0"
steps:
  ask: { type: human }
"#;
    let mut sim = Sim::start(yaml, json!({}));
    for bad in [json!([1, 2]), json!("text"), json!(null), json!(3)] {
        let r = refused(&mut sim, "ask", "u", bad);
        assert!(
            matches!(r, Refusal::InvalidData { form: None, .. }),
            "{r:?}"
        );
    }
}

#[test]
fn a_task_already_completed_is_refused() {
    let mut sim = scenario::approval_waiting_on(MANAGER);
    sim.complete(
        "approve",
        "manager@example.com",
        json!({ "approved": true }),
    )
    .unwrap();
    let r = refused(
        &mut sim,
        "approve",
        "manager@example.com",
        json!({ "approved": false }),
    );
    assert_eq!(r, Refusal::TaskNotOpen("approve".into()));
    assert_eq!(sim.ctx()["approved"], json!(true));
    assert_eq!(sim.executed("approve"), 1);
}

#[test]
fn a_task_not_reached_yet_is_refused() {
    let mut sim = Sim::start(&scenario::expense_approved_by(MANAGER), json!({}));
    let r = refused(
        &mut sim,
        "approve",
        "manager@example.com",
        json!({ "approved": true }),
    );
    assert_eq!(r, Refusal::TaskNotOpen("approve".into()));
}

#[test]
fn an_unknown_step_is_refused() {
    let mut sim = scenario::approval_waiting_on(MANAGER);
    let r = refused(
        &mut sim,
        "aprove",
        "manager@example.com",
        json!({ "approved": true }),
    );
    assert_eq!(r, Refusal::UnknownStep("aprove".into()));
}

#[test]
fn a_step_that_is_not_human_is_refused() {
    let mut sim = scenario::approval_waiting_on(MANAGER);
    let r = refused(&mut sim, "pay", "manager@example.com", json!({}));
    assert_eq!(r, Refusal::NotAHumanStep("pay".into()));
    let r = refused(&mut sim, "submit", "manager@example.com", json!({}));
    assert_eq!(r, Refusal::NotAHumanStep("submit".into()));
}

#[test]
fn completing_a_task_of_a_canceled_instance_is_refused() {
    let mut sim = scenario::approval_waiting_on(MANAGER);
    sim.cancel("customer asked").unwrap();
    let r = refused(
        &mut sim,
        "approve",
        "manager@example.com",
        json!({ "approved": true }),
    );
    assert!(
        matches!(
            r,
            Refusal::WrongStatus {
                status: InstanceStatus::Canceled,
                ..
            }
        ),
        "{r:?}"
    );
}

#[test]
fn task_due_without_a_timeout_edge_only_says_it_is_overdue() {
    let mut sim = scenario::approval_waiting_on(MANAGER);
    let effects = sim.fire("approve", TimerKind::TaskDue);
    assert_eq!(sim.now, Timestamp(T0.0 + 48 * HOURS));
    assert_eq!(common::event_types(&effects), vec!["HumanTaskOverdue"]);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::CloseTask { .. })),
        "the task must stay open"
    );
    assert!(sim.tasks.contains_key("approve"));
    assert_eq!(sim.step_status("approve"), StepStatus::Waiting);
    assert_eq!(sim.status(), InstanceStatus::Waiting);
    // Still completable, and the instance goes on.
    sim.complete(
        "approve",
        "manager@example.com",
        json!({ "approved": true }),
    )
    .unwrap();
    assert_eq!(sim.running(), vec!["pay"]);
}

const ESCALATE: &str = r#"
name: escalate
version: "1.0.0"
steps:
  approve: { type: human, assignee: boss, due: 1h }
  pay: { type: machine, handler: h }
  escalate: { type: machine, handler: h }
edges:
  - { from: approve, to: pay }
  - { from: approve, to: escalate, on: timeout }
"#;

#[test]
fn task_due_with_a_timeout_edge_expires_the_task_and_takes_the_edge() {
    let mut sim = Sim::start(ESCALATE, json!({}));
    assert_eq!(sim.status(), InstanceStatus::Waiting);
    let effects = sim.fire("approve", TimerKind::TaskDue);
    assert!(effects.contains(&Effect::CloseTask {
        step: Arc::from("approve"),
        outcome: TaskOutcome::Expired
    }));
    assert!(sim.last_types().contains(&"HumanTaskOverdue"));
    assert_eq!(sim.running(), vec!["escalate"]);
    assert_eq!(sim.step_status("pay"), StepStatus::Skipped);
    assert_eq!(sim.step_status("approve"), StepStatus::Failed);
    assert_eq!(sim.status(), InstanceStatus::Running);
    assert_eq!(sim.ctx()["error"]["step"], json!("approve"));
    assert_eq!(sim.ctx()["error"]["kind"], json!("timeout"));
    let rec = sim.history.iter().find(|r| &*r.step == "approve").unwrap();
    assert_eq!(rec.status, AttemptStatus::TimedOut);
    // The expired task can no longer be completed.
    let r = refused(&mut sim, "approve", "boss", json!({ "approved": true }));
    assert_eq!(r, Refusal::TaskNotOpen("approve".into()));
    sim.succeed("escalate", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

#[test]
fn a_due_timer_after_the_task_was_completed_is_stale() {
    let mut sim = Sim::start(ESCALATE, json!({}));
    let due = sim.timer("approve", TimerKind::TaskDue).unwrap().clone();
    sim.complete("approve", "boss", json!({})).unwrap();
    let r = sim.apply(Input::Timer {
        step: due.step,
        kind: TimerKind::TaskDue,
        token: due.token,
    });
    assert!(r.unwrap_err().is_stale());
    assert_eq!(sim.running(), vec!["pay"]);
}

const TIMER: &str = r#"
name: timer
version: "1.0.0"
steps:
  cool_off: { type: timer, duration: 2s }
  after: { type: machine, handler: h }
edges:
  - { from: cool_off, to: after }
"#;

#[test]
fn a_timer_step_sleeps_then_fires() {
    let mut sim = Sim::start(TIMER, json!({}));
    assert_eq!(sim.step_status("cool_off"), StepStatus::Sleeping);
    assert_eq!(
        sim.status(),
        InstanceStatus::Running,
        "a pending timer keeps it running"
    );
    let t = schedules(&sim.last)[0].clone();
    assert_eq!(t.kind, TimerKind::Wake);
    assert_eq!(t.due_at, Timestamp(T0.0 + 2000));
    let scheduled = sim.events.iter().find_map(|e| match &e.kind {
        EventKind::TimerScheduled { fire_at, .. } => Some(*fire_at),
        _ => None,
    });
    assert_eq!(scheduled, Some(t.due_at));
    // A wake with another token is stale.
    let r = sim.apply(Input::Timer {
        step: "cool_off".into(),
        kind: TimerKind::Wake,
        token: t.token + 100,
    });
    assert!(r.unwrap_err().is_stale());
    sim.fire("cool_off", TimerKind::Wake);
    assert_eq!(
        sim.last_types(),
        vec!["TimerFired", "StepExecuted", "StepStarted"]
    );
    assert_eq!(sim.running(), vec!["after"]);
    // Firing twice: the second is stale.
    let r = sim.apply(Input::Timer {
        step: "cool_off".into(),
        kind: TimerKind::Wake,
        token: t.token,
    });
    assert!(r.unwrap_err().is_stale());
}

#[test]
fn a_timer_until_an_absolute_time_fires_then() {
    let yaml = r#"
name: until
version: "1.0.0"
steps:
  wait: { type: timer, until: "2026-11-26T12:00:00Z" }
"#;
    let sim = Sim::start(yaml, json!({}));
    let t = sim.timer("wait", TimerKind::Wake).unwrap();
    assert_eq!(
        t.due_at,
        Timestamp::parse_rfc3339("2026-11-26T12:00:00Z").unwrap()
    );
}

#[test]
fn a_timer_until_an_expression_fires_at_the_time_it_gives() {
    let yaml = r#"
name: until_expr
version: "1.0.0"
steps:
  wait: { type: timer, until_expr: "context.deadline" }
"#;
    let sim = Sim::start(yaml, json!({ "deadline": "2026-03-01T08:30:00Z" }));
    let t = sim.timer("wait", TimerKind::Wake).unwrap();
    assert_eq!(
        t.due_at,
        Timestamp::parse_rfc3339("2026-03-01T08:30:00Z").unwrap()
    );
}

#[test]
fn a_timer_whose_expression_gives_no_time_fails_along_its_failure_edge() {
    let yaml = r#"
name: until_bad
version: "1.0.0"
steps:
  wait: { type: timer, until_expr: "context.deadline" }
  after: { type: machine, handler: h }
  fix: { type: machine, handler: h }
edges:
  - { from: wait, to: after }
  - { from: wait, to: fix, on: failure }
"#;
    let sim = Sim::start(yaml, json!({ "deadline": "next tuesday" }));
    assert_eq!(sim.running(), vec!["fix"]);
    assert_eq!(sim.ctx()["error"]["step"], json!("wait"));
    assert_eq!(sim.ctx()["error"]["kind"], json!("timer"));
}

const TIMER_AND_TASK: &str = r#"
name: timer_and_task
version: "1.0.0"
steps:
  start: { type: machine, handler: h }
  remind: { type: timer, duration: 10m }
  approve: { type: human, assignee: boss }
edges:
  - { from: start, to: remind }
  - { from: start, to: approve }
"#;

/// A timer and a human task active at once: RUNNING while the timer is pending, WAITING once
/// it fired and only the task is left.
#[test]
fn a_timer_and_a_task_at_once_are_running_then_waiting() {
    let mut sim = Sim::start(TIMER_AND_TASK, json!({}));
    sim.succeed("start", json!({}));
    assert_eq!(sim.step_status("remind"), StepStatus::Sleeping);
    assert_eq!(sim.step_status("approve"), StepStatus::Waiting);
    assert_eq!(sim.status(), InstanceStatus::Running);
    sim.fire("remind", TimerKind::Wake);
    assert_eq!(sim.status(), InstanceStatus::Waiting);
    sim.complete("approve", "boss", json!({ "ok": true }))
        .unwrap();
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

#[test]
fn the_task_done_before_the_timer_keeps_the_instance_running() {
    let mut sim = Sim::start(TIMER_AND_TASK, json!({}));
    sim.succeed("start", json!({}));
    sim.complete("approve", "boss", json!({})).unwrap();
    assert_eq!(sim.status(), InstanceStatus::Running);
    sim.fire("remind", TimerKind::Wake);
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

#[test]
fn a_task_beside_a_running_machine_step_is_running_not_waiting() {
    let yaml = r#"
name: task_and_step
version: "1.0.0"
steps:
  start: { type: gateway }
  work: { type: machine, handler: h }
  approve: { type: human }
edges:
  - { from: start, to: work }
  - { from: start, to: approve }
"#;
    let mut sim = Sim::start(yaml, json!({}));
    assert_eq!(sim.status(), InstanceStatus::Running);
    sim.succeed("work", json!({}));
    assert_eq!(sim.status(), InstanceStatus::Waiting);
}

#[test]
fn an_overdue_task_whose_timeout_edge_does_not_match_stays_open() {
    let yaml = r#"
name: conditional_escalation
version: "1.0.0"
steps:
  approve: { type: human, assignee: boss, due: 1h }
  pay: { type: machine, handler: h }
  escalate: { type: machine, handler: h }
edges:
  - { from: approve, to: pay }
  - { from: approve, to: escalate, on: timeout, condition: "context.amount > 1000" }
"#;
    let mut sim = Sim::start(yaml, json!({ "amount": 10 }));
    let effects = sim.fire("approve", TimerKind::TaskDue);
    assert_eq!(common::event_types(&effects), vec!["HumanTaskOverdue"]);
    assert!(sim.tasks.contains_key("approve"));
    assert_eq!(sim.status(), InstanceStatus::Waiting);
    assert!(sim.ctx().get("error").is_none());
    sim.complete("approve", "boss", json!({})).unwrap();
    assert_eq!(sim.running(), vec!["pay"]);

    let mut sim = Sim::start(yaml, json!({ "amount": 5000 }));
    sim.fire("approve", TimerKind::TaskDue);
    assert_eq!(sim.running(), vec!["escalate"]);
    assert_eq!(
        sim.closed,
        vec![("approve".to_string(), TaskOutcome::Expired)]
    );
}

/// A reassignment of `approve` by an admin.
fn reassign(
    sim: &mut Sim,
    by: &str,
    assignee: Option<&str>,
    candidates: &[&str],
) -> Result<Vec<Effect>, Refusal> {
    reassign_as(sim, Actor::admin(by), assignee, candidates)
}

fn reassign_as(
    sim: &mut Sim,
    by: Actor,
    assignee: Option<&str>,
    candidates: &[&str],
) -> Result<Vec<Effect>, Refusal> {
    sim.apply(Input::ReassignTask {
        step: Arc::from("approve"),
        by,
        assignee: assignee.map(str::to_string),
        candidates: candidates.iter().map(|c| c.to_string()).collect(),
    })
}

#[test]
fn a_reassigned_task_is_completed_by_the_new_people_only() {
    let mut sim = scenario::approval_waiting_on(MANAGER);
    let token = sim.tasks["approve"].token;
    sim.advance_ms(1_000);
    reassign(
        &mut sim,
        "ops@example.com",
        Some("bob@example.com"),
        &["carol@example.com"],
    )
    .unwrap();

    // The stored task follows, keeping its token, creation time and deadline.
    let task = &sim.tasks["approve"];
    assert_eq!(task.assignee.as_deref(), Some("bob@example.com"));
    assert_eq!(task.candidates, vec!["carol@example.com".to_string()]);
    assert_eq!(task.token, token);
    assert_eq!(task.created_at, T0);
    assert_eq!(task.due_at, Some(Timestamp(T0.0 + 48 * HOURS)));
    assert_eq!(sim.status(), InstanceStatus::Waiting);
    assert_eq!(sim.last_types(), vec!["HumanTaskReassigned"]);
    let record = sim.history.last().unwrap();
    assert_eq!(record.status, AttemptStatus::Reassigned);
    assert_eq!(record.worker.as_deref(), Some("ops@example.com"));
    assert_eq!(
        record.note.as_deref(),
        Some("assigned to bob@example.com; candidates: carol@example.com")
    );

    // The people the definition named may not complete it any more.
    for user in ["manager@example.com", "deputy@example.com"] {
        let refused = sim.complete("approve", user, json!({ "approved": true }));
        assert!(
            matches!(refused, Err(Refusal::Forbidden { .. })),
            "{user}: {refused:?}"
        );
    }
    sim.complete("approve", "carol@example.com", json!({ "approved": true }))
        .unwrap();
    assert_eq!(sim.running(), vec!["pay"]);
}

#[test]
fn only_an_admin_or_a_user_the_task_allows_now_may_reassign() {
    // Assignee manager@example.com, candidate deputy@example.com.
    let mut sim = scenario::approval_waiting_on(MANAGER);
    let before = sim.tasks["approve"].clone();
    let history = sim.history.len();
    for stranger in ["mallory@example.com", "", "MANAGER@example.com"] {
        let refused = reassign_as(&mut sim, Actor::user(stranger), Some(stranger), &[]);
        assert!(
            matches!(refused, Err(Refusal::ReassignForbidden { ref user, .. }) if user == stranger),
            "{stranger:?}: {refused:?}"
        );
        assert_eq!(refused.unwrap_err().kind(), "forbidden");
    }
    // Refused means unchanged.
    assert_eq!(sim.tasks["approve"], before);
    assert_eq!(sim.history.len(), history);

    // A candidate may hand the task on; then it is the new assignment that decides, so
    // the candidate, no longer named, may not take it back.
    reassign_as(
        &mut sim,
        Actor::user("deputy@example.com"),
        Some("bob@example.com"),
        &[],
    )
    .unwrap();
    assert_eq!(
        sim.tasks["approve"].assignee.as_deref(),
        Some("bob@example.com")
    );
    for former in ["deputy@example.com", "manager@example.com"] {
        let refused = reassign_as(&mut sim, Actor::user(former), Some(former), &[]);
        assert!(
            matches!(refused, Err(Refusal::ReassignForbidden { .. })),
            "{former}: {refused:?}"
        );
    }
    reassign_as(
        &mut sim,
        Actor::user("bob@example.com"),
        None,
        &["carol@example.com"],
    )
    .unwrap();
    // An admin may reassign whoever holds it.
    reassign_as(
        &mut sim,
        Actor::admin("ops@example.com"),
        Some("manager@example.com"),
        &[],
    )
    .unwrap();
    assert_eq!(
        sim.tasks["approve"].assignee.as_deref(),
        Some("manager@example.com")
    );
}

#[test]
fn reassigning_refuses_no_one_a_closed_task_and_a_machine_step() {
    let mut sim = scenario::approval_waiting_on(MANAGER);
    let refused = reassign(&mut sim, "ops", None, &[" "]);
    assert!(
        matches!(refused, Err(Refusal::InvalidData { .. })),
        "{refused:?}"
    );
    let refused = sim.apply(Input::ReassignTask {
        step: Arc::from("pay"),
        by: Actor::admin("ops"),
        assignee: Some("bob".into()),
        candidates: vec![],
    });
    assert!(
        matches!(refused, Err(Refusal::NotAHumanStep(_))),
        "{refused:?}"
    );
    sim.complete(
        "approve",
        "manager@example.com",
        json!({ "approved": true }),
    )
    .unwrap();
    let refused = reassign(&mut sim, "ops", Some("bob"), &[]);
    assert!(
        matches!(refused, Err(Refusal::TaskNotOpen(_))),
        "{refused:?}"
    );
}

#[test]
fn a_reassignment_lasts_for_one_activation_of_the_step() {
    // The same human step reached again by a loop is for the people its definition names.
    let wf = Arc::new(common::workflow(
        r#"
name: review_loop
version: "1.0.0"
initial_step: approve
steps:
  approve: { type: human, assignee: manager@example.com }
  check: { type: gateway }
  done: { type: machine, handler: h }
edges:
  - { from: approve, to: check }
  - { from: check, to: approve, condition: "context.again == true" }
  - { from: check, to: done, default: true }
"#,
    ));
    let mut sim = Sim::start_wf(wf, json!({}));
    reassign(&mut sim, "ops", Some("bob"), &[]).unwrap();
    sim.complete("approve", "bob", json!({ "again": true }))
        .unwrap();
    assert_eq!(sim.step_status("approve"), StepStatus::Waiting);
    assert_eq!(
        sim.tasks["approve"].assignee.as_deref(),
        Some("manager@example.com")
    );
    let refused = sim.complete("approve", "bob", json!({ "again": false }));
    assert!(
        matches!(refused, Err(Refusal::Forbidden { .. })),
        "{refused:?}"
    );
    sim.complete("approve", "manager@example.com", json!({ "again": false }))
        .unwrap();
    assert_eq!(sim.running(), vec!["done"]);
}

/// Issue 15, item 6: completing a task with data that would make the context larger than
/// `MAX_CONTEXT_BYTES` is refused (kind `too_large`) and changes nothing.
#[test]
fn a_completion_that_makes_the_context_too_large_is_refused() {
    let mut sim = scenario::approval_waiting_on(MANAGER);
    let before = sim.ctx().clone();
    let refused = sim.complete(
        "approve",
        "manager@example.com",
        json!({ "approved": true, "comments": "x".repeat(5_000_000) }),
    );
    assert!(
        matches!(&refused, Err(Refusal::TooLarge(e)) if e.size > 5_000_000),
        "{refused:?}"
    );
    assert_eq!(refused.unwrap_err().kind(), "too_large");
    assert_eq!(sim.ctx(), &before);
    assert_eq!(sim.step_status("approve"), StepStatus::Waiting);
    sim.complete(
        "approve",
        "manager@example.com",
        json!({ "approved": true }),
    )
    .unwrap();
    assert_eq!(sim.running(), vec!["pay"]);
}

//! The pure core's claims, candidate groups, computed assignees and reminders: who may act
//! on a task is decided against the task as it is at the transition, and every refusal
//! changes nothing.

mod common;

use common::{Sim, T0};
use serde_json::json;
use weir::core::{Effect, Refusal, TimerKind};
use weir::model::{Actor, AttemptStatus, EventKind, InstanceStatus, StepStatus};
use weir::Timestamp;

const REVIEW: &str = r#"
name: review
version: "1.0.0"
initial_step: review
steps:
  review:
    type: human
    candidates: [ann, bob]
    candidate_groups: [finance]
    remind_every: 1d
    due: 2d
    form:
      type: object
      properties: { ok: { type: boolean } }
      required: [ok]
edges: []
"#;

const DAY: i64 = 86_400_000;

fn review() -> Sim {
    Sim::start(REVIEW, json!({}))
}

#[test]
fn two_candidates_claim_at_once_one_wins_and_the_other_is_refused_with_nothing_changed() {
    let mut sim = review();
    sim.claim("review", &Actor::user("ann")).unwrap();
    assert_eq!(sim.tasks["review"].claimed_by.as_deref(), Some("ann"));
    assert_eq!(sim.last_types(), vec!["HumanTaskClaimed"]);
    let before = sim.inst.clone();
    let refused = sim.claim("review", &Actor::user("bob")).unwrap_err();
    assert_eq!(
        refused,
        Refusal::Claimed {
            step: "review".into(),
            claimed_by: "ann".into()
        }
    );
    assert_eq!(refused.kind(), "claimed");
    assert_eq!(sim.inst, before, "a refused claim changes nothing");
    // Claiming one's own claim again changes nothing either.
    assert!(matches!(
        sim.claim("review", &Actor::user("ann")).unwrap_err(),
        Refusal::Claimed { .. }
    ));
    assert_eq!(sim.inst, before);
    let claimed = sim
        .history
        .iter()
        .find(|r| r.status == AttemptStatus::Claimed)
        .unwrap();
    assert_eq!(claimed.worker.as_deref(), Some("ann"));
}

#[test]
fn completing_a_task_claimed_by_someone_else_is_refused_and_the_claimer_completes_it() {
    let mut sim = review();
    sim.claim("review", &Actor::user("ann")).unwrap();
    let before = sim.inst.clone();
    let refused = sim
        .complete("review", "bob", json!({ "ok": true }))
        .unwrap_err();
    assert!(matches!(refused, Refusal::Claimed { ref claimed_by, .. } if claimed_by == "ann"));
    assert_eq!(sim.inst, before);
    sim.complete("review", "ann", json!({ "ok": true }))
        .unwrap();
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert!(sim.tasks.is_empty());
}

#[test]
fn the_claimer_or_an_admin_releases_and_no_one_else() {
    let mut sim = review();
    assert_eq!(
        sim.release("review", &Actor::user("ann")).unwrap_err(),
        Refusal::NotClaimed("review".into())
    );
    sim.claim("review", &Actor::user("ann")).unwrap();
    let before = sim.inst.clone();
    let refused = sim.release("review", &Actor::user("bob")).unwrap_err();
    assert!(matches!(refused, Refusal::ReleaseForbidden { .. }));
    assert_eq!(refused.kind(), "forbidden");
    assert_eq!(sim.inst, before);
    sim.release("review", &Actor::admin("root")).unwrap();
    assert_eq!(sim.tasks["review"].claimed_by, None);
    let released = sim.events.iter().find_map(|e| match &e.kind {
        EventKind::HumanTaskReleased { by, claimed_by, .. } => {
            Some((by.clone(), claimed_by.clone()))
        }
        _ => None,
    });
    assert_eq!(released, Some(("root".into(), "ann".into())));
    // Released: bob may claim and complete now.
    sim.claim("review", &Actor::user("bob")).unwrap();
    sim.release("review", &Actor::user("bob")).unwrap();
    sim.complete("review", "bob", json!({ "ok": true }))
        .unwrap();
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

#[test]
fn a_task_refuses_a_stranger_and_takes_a_member_of_a_candidate_group() {
    let mut sim = review();
    let before = sim.inst.clone();
    let stranger = Actor::user("eve").in_groups(vec!["sales".into()]);
    assert!(matches!(
        sim.claim("review", &stranger).unwrap_err(),
        Refusal::ClaimForbidden { .. }
    ));
    assert!(matches!(
        sim.complete_as("review", &stranger, json!({ "ok": true }))
            .unwrap_err(),
        Refusal::Forbidden { .. }
    ));
    assert_eq!(sim.inst, before);
    assert_eq!(
        sim.tasks["review"].candidate_groups,
        vec!["finance".to_string()]
    );
    let member = Actor::user("carl").in_groups(vec!["finance".into()]);
    sim.claim("review", &member).unwrap();
    sim.complete_as("review", &member, json!({ "ok": true }))
        .unwrap();
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

#[test]
fn reminders_fire_every_period_and_are_counted_on_the_task() {
    let mut sim = review();
    let first = sim.timer("review", TimerKind::TaskReminder).unwrap();
    assert_eq!(first.due_at, Timestamp(T0.0 + DAY));
    sim.advance_ms(DAY);
    sim.fire("review", TimerKind::TaskReminder);
    assert_eq!(sim.tasks["review"].reminders, 1);
    assert_eq!(sim.last_types(), vec!["HumanTaskReminder"]);
    let next = sim.timer("review", TimerKind::TaskReminder).unwrap();
    assert_eq!(next.due_at, Timestamp(T0.0 + 2 * DAY));
    sim.advance_ms(DAY);
    sim.fire("review", TimerKind::TaskReminder);
    assert_eq!(sim.tasks["review"].reminders, 2);
    // Completing the task drops the next reminder.
    let effects = sim
        .complete("review", "ann", json!({ "ok": true }))
        .unwrap();
    assert!(effects.contains(&Effect::Unschedule {
        step: "review".into(),
        kind: TimerKind::TaskReminder
    }));
}

const COMPUTED: &str = r#"
name: computed
version: "1.0.0"
initial_step: approve
steps:
  approve:
    type: human
    assignee_expr: context.manager
    candidates_expr: context.deputies
edges: []
"#;

#[test]
fn computed_assignees_are_evaluated_when_the_task_opens() {
    let mut sim = Sim::start(
        COMPUTED,
        json!({ "manager": "mia", "deputies": ["dan", "dora"] }),
    );
    let task = &sim.tasks["approve"];
    assert_eq!(task.assignee.as_deref(), Some("mia"));
    assert_eq!(task.candidates, vec!["dan".to_string(), "dora".to_string()]);
    assert!(matches!(
        sim.complete("approve", "eve", json!({})).unwrap_err(),
        Refusal::Forbidden { .. }
    ));
    sim.complete("approve", "dora", json!({})).unwrap();
    assert_eq!(sim.status(), InstanceStatus::Completed);
}

#[test]
fn a_failing_assignee_expr_opens_the_task_for_no_one_and_fails_the_instance_with_the_reason() {
    let sim = Sim::start(COMPUTED, json!({ "deputies": ["dan"] }));
    assert!(sim.tasks.is_empty(), "no task opens");
    assert_eq!(sim.status(), InstanceStatus::Failed);
    assert_eq!(sim.step_status("approve"), StepStatus::Failed);
    let error = sim.step("approve").error.clone().unwrap_or_default();
    assert!(error.contains("assignee_expr"), "{error}");
    let failed = sim.events.iter().any(|e| {
        matches!(&e.kind, EventKind::WorkflowFailed { error, .. } if error.contains("assignee_expr"))
    });
    assert!(failed, "{:?}", sim.types());
    // A wrong type, and an empty computed assignment, fail the same way.
    let wrong = Sim::start(COMPUTED, json!({ "manager": 7, "deputies": [] }));
    assert_eq!(wrong.status(), InstanceStatus::Failed);
    let none = Sim::start(
        r#"
name: computed
version: "1.0.0"
initial_step: approve
steps:
  approve: { type: human, candidates_expr: context.deputies }
edges: []
"#,
        json!({ "deputies": [] }),
    );
    assert_eq!(none.status(), InstanceStatus::Failed);
    assert!(none.tasks.is_empty(), "never open to anyone by accident");
}

#[test]
fn a_step_with_a_fixed_and_a_computed_assignee_is_refused() {
    let yaml = r#"
name: both
version: "1.0.0"
initial_step: approve
steps:
  approve: { type: human, assignee: mia, assignee_expr: context.manager }
edges: []
"#;
    let def = weir::parse_definition(yaml).unwrap();
    let err = weir::compile(def).unwrap_err().to_string();
    assert!(err.contains("not both"), "{err}");
}

//! What a human task says it is about, and the choices it offers: templated titles and
//! descriptions rendered when the task opens, the context fields a step shows, and outcome
//! buttons, with the refusals at registration that keep them well formed.

mod common;

use std::sync::Arc;

use common::Sim;
use serde_json::{json, Value};
use weir::core::{Input, MAX_SHOWN_VALUE_BYTES};
use weir::model::{Actor, InstanceStatus, ShownField, Task};
use weir::{compile, parse_definition, DefinitionError, LocalEngine};

/// An expense approval whose task names the employee and amount, shows three fields and
/// offers approve / reject buttons.
const EXPENSE: &str = r#"
name: expense_approval
version: "1.0.0"
steps:
  approve:
    type: human
    title: "Approve {employee}'s expense of {amount}"
    description: "Receipt {receipt.number}, filed {{by the employee}}"
    assignee: manager
    show: [employee, amount, receipt.number]
    form:
      type: object
      required: [approved]
      properties:
        approved: { type: boolean, title: Approved }
        amount: { type: number, title: Amount (EUR), minimum: 0 }
        comment: { type: string, maxLength: 200 }
    outcomes:
      approve: { approved: true }
      reject: { approved: false }
  done: { type: gateway }
edges:
  - { from: approve, to: done }
"#;

fn task_of(data: Value) -> Task {
    let sim = Sim::start(EXPENSE, data);
    assert_eq!(sim.status(), InstanceStatus::Waiting);
    sim.tasks["approve"].clone()
}

fn refusal(yaml: &str) -> String {
    let def = parse_definition(yaml).unwrap_or_else(|e| panic!("parse: {e}"));
    match compile(def) {
        Err(e @ DefinitionError::Invalid { .. }) => e.to_string(),
        Err(e) => panic!("expected an invalid definition, got {e}"),
        Ok(_) => panic!("expected a refusal of\n{yaml}"),
    }
}

/// EXPENSE with the approve step's lines replaced.
fn expense_with(from: &str, to: &str) -> String {
    assert!(EXPENSE.contains(from), "{from}");
    EXPENSE.replace(from, to)
}

#[test]
fn the_title_and_description_name_the_context_values_when_the_task_opens() {
    let task = task_of(json!({"employee": "Ann", "amount": 50, "receipt": {"number": "R-1"}}));
    assert_eq!(task.title.as_deref(), Some("Approve Ann's expense of 50"));
    assert_eq!(
        task.description.as_deref(),
        Some("Receipt R-1, filed {by the employee}")
    );
    // Three instances, three different tasks: the inbox can tell them apart.
    let bob = task_of(json!({"employee": "Bob", "amount": 150.5, "receipt": {"number": "R-2"}}));
    assert_eq!(bob.title.as_deref(), Some("Approve Bob's expense of 150.5"));
}

#[test]
fn a_missing_value_keeps_its_placeholder_visible() {
    let task = task_of(json!({"amount": 50}));
    assert_eq!(
        task.title.as_deref(),
        Some("Approve {employee}'s expense of 50")
    );
    assert_eq!(
        task.description.as_deref(),
        Some("Receipt {receipt.number}, filed {by the employee}")
    );
}

#[test]
fn hostile_values_are_stored_as_text_and_never_read_as_templates() {
    let task = task_of(json!({
        "employee": "<script>alert('x')</script>",
        "amount": "{{amount}} {employee}",
        "receipt": {"number": "\u{1b}[2J\u{1b}[31mR-9\r\nfake"},
    }));
    assert_eq!(
        task.title.as_deref(),
        Some("Approve <script>alert('x')</script>'s expense of {{amount}} {employee}")
    );
    assert_eq!(
        task.description.as_deref(),
        Some("Receipt \u{1b}[2J\u{1b}[31mR-9\r\nfake, filed {by the employee}")
    );
    assert_eq!(
        task.fields[0].value,
        Some(json!("<script>alert('x')</script>"))
    );
}

#[test]
fn the_shown_fields_carry_their_values_and_the_form_titles() {
    let task = task_of(json!({"employee": "Ann", "amount": 50, "receipt": {"number": "R-1"}}));
    assert_eq!(
        task.fields,
        vec![
            ShownField {
                path: "employee".into(),
                title: None,
                value: Some(json!("Ann")),
            },
            ShownField {
                path: "amount".into(),
                title: Some("Amount (EUR)".into()),
                value: Some(json!(50)),
            },
            ShownField {
                path: "receipt.number".into(),
                title: None,
                value: Some(json!("R-1")),
            },
        ]
    );
    assert_eq!(task.fields[1].label(), "Amount (EUR)");
    assert_eq!(task.fields[0].label(), "employee");
    // A field the context lacks is there, without a value.
    let task = task_of(json!({"employee": "Ann"}));
    assert_eq!(task.fields[1].value, None);
    assert_eq!(task.fields[2].value, None);
}

#[test]
fn a_large_shown_value_is_cut_so_the_task_stays_small() {
    let big: Vec<u32> = (0..5_000).collect();
    let task = task_of(json!({"employee": "é".repeat(5_000), "amount": big}));
    for field in &task.fields[..2] {
        let Some(Value::String(text)) = &field.value else {
            panic!("a cut value is text: {field:?}");
        };
        assert!(
            text.len() <= MAX_SHOWN_VALUE_BYTES + '…'.len_utf8(),
            "{}",
            text.len()
        );
        assert!(text.ends_with('…'));
    }
    // The title cuts long values too.
    assert!(task.title.as_ref().is_some_and(|t| t.chars().count() < 500));
}

#[test]
fn the_task_carries_its_outcomes_and_a_submission_merges_one() {
    let task = task_of(json!({"employee": "Ann", "amount": 50}));
    let names: Vec<&str> = task.outcomes.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["approve", "reject"]);
    assert_eq!(
        task.submission(
            Some("reject"),
            json!({"comment": "no receipt", "approved": true})
        ),
        Ok(json!({"comment": "no receipt", "approved": false}))
    );
    assert_eq!(
        task.submission(None, json!({"approved": true})),
        Ok(json!({"approved": true}))
    );
    let unknown = task.submission(Some("escalate"), json!({})).unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "the task has no outcome \"escalate\"; it offers: approve, reject"
    );
}

#[test]
fn an_outcome_completes_the_task_and_the_form_stays_the_authority() {
    let mut sim = Sim::start(EXPENSE, json!({"employee": "Ann", "amount": 50}));
    let task = sim.tasks["approve"].clone();
    // Outcome data merged with a comment that breaks the form: refused, nothing changed.
    let bad = task
        .submission(Some("approve"), json!({"comment": "x".repeat(300)}))
        .unwrap();
    assert!(sim.complete("approve", "manager", bad).is_err());
    assert_eq!(sim.status(), InstanceStatus::Waiting);
    let good = task.submission(Some("reject"), json!({})).unwrap();
    sim.complete("approve", "manager", good).unwrap();
    assert_eq!(sim.status(), InstanceStatus::Completed);
    assert_eq!(sim.ctx()["approved"], json!(false));
}

#[test]
fn a_reassignment_opens_the_task_again_rendered_from_the_context_then() {
    let mut sim = Sim::start(EXPENSE, json!({"employee": "Ann", "amount": 50}));
    Arc::make_mut(&mut sim.inst.context).insert("amount".into(), json!(60));
    sim.apply(Input::ReassignTask {
        step: Arc::from("approve"),
        by: Actor::admin("ops"),
        assignee: Some("carol".into()),
        candidates: vec![],
    })
    .unwrap();
    let task = &sim.tasks["approve"];
    assert_eq!(task.assignee.as_deref(), Some("carol"));
    assert_eq!(task.title.as_deref(), Some("Approve Ann's expense of 60"));
    assert_eq!(task.fields[1].value, Some(json!(60)));
}

#[test]
fn malformed_templates_refuse_the_definition_with_the_place_and_the_fix() {
    let err = refusal(&expense_with(
        "title: \"Approve {employee}'s expense of {amount}\"",
        "title: \"Approve {employee's} expense\"",
    ));
    assert!(
        err.contains("step \"approve\": `title`: {employee's} at character 9"),
        "{err}"
    );
    assert!(err.contains("is not a context path"), "{err}");
    let err = refusal(&expense_with(
        "description: \"Receipt {receipt.number}, filed {{by the employee}}\"",
        "description: \"Receipt {receipt.number\"",
    ));
    assert!(
        err.contains("`description`: the '{' at character 9 is never closed"),
        "{err}"
    );
    let err = refusal(&expense_with(
        "title: \"Approve {employee}'s expense of {amount}\"",
        "title: \"Approve } now\"",
    ));
    assert!(
        err.contains("closes nothing: write }} for a brace"),
        "{err}"
    );
}

#[test]
fn show_lists_context_paths_once_each() {
    let err = refusal(&expense_with(
        "show: [employee, amount, receipt.number]",
        "show: [employee, \"receipt..number\", employee]",
    ));
    assert!(
        err.contains("`show`: \"receipt..number\" is not a context path"),
        "{err}"
    );
    assert!(err.contains("`show` lists \"employee\" twice"), "{err}");
}

#[test]
fn outcomes_are_checked_against_the_form_at_registration() {
    let err = refusal(&expense_with(
        "reject: { approved: false }",
        "reject: { approved: \"no\" }",
    ));
    assert!(
        err.contains("outcome \"reject\": data does not fit the form"),
        "{err}"
    );
    assert!(err.contains("/approved"), "{err}");
    let err = refusal(&expense_with(
        "reject: { approved: false }",
        "reject: { amount: -1 }\n      \"bad name\": {}\n      later: true",
    ));
    assert!(
        err.contains("outcome \"reject\": data does not fit the form: /amount"),
        "{err}"
    );
    assert!(err.contains("outcome \"bad name\": name it with"), "{err}");
    assert!(
        err.contains("outcome \"later\": its data must be an object"),
        "{err}"
    );
    // Data that leaves out what the person fills in is fine: `approved` is required, yet an
    // outcome may set only the comment.
    compile(
        parse_definition(&expense_with(
            "reject: { approved: false }",
            "reject: { approved: false }\n      note: { comment: \"see mail\" }",
        ))
        .unwrap(),
    )
    .unwrap();
}

#[tokio::test]
async fn the_local_engine_lists_the_rendered_task() {
    use weir::api::{StartOptions, TaskFilter};
    use weir::Engine;
    let engine = LocalEngine::builder().build();
    engine
        .register_definition(parse_definition(EXPENSE).unwrap())
        .await
        .unwrap();
    let data = json!({"employee": "Ann", "amount": 50, "receipt": {"number": "R-1"}});
    let inst = engine
        .start_workflow(
            "expense_approval",
            StartOptions::with_data(data.as_object().cloned().unwrap()),
        )
        .await
        .unwrap();
    let inst = engine
        .wait(&inst.id, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(inst.status, InstanceStatus::Waiting);
    let tasks = engine.list_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0].title.as_deref(),
        Some("Approve Ann's expense of 50")
    );
    assert_eq!(tasks[0].fields[2].value, Some(json!("R-1")));
    let data = tasks[0].submission(Some("approve"), json!({})).unwrap();
    engine
        .complete_human_task(&inst.id, "approve", "manager", data)
        .await
        .unwrap();
    let done = engine.get_instance(&inst.id).await.unwrap();
    assert_eq!(done.context["approved"], json!(true));
}

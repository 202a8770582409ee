//! Named starting points of the core tests: the definitions and instance states that several
//! tests begin from, so that a test reads as "given this situation, this input does that".
//!
//! A function returning a `String` is a definition (YAML) to start or to vary; one returning
//! a [`Sim`] is an instance already brought into the named situation.

use serde_json::json;
use weir::core::{StartSpec, StepError, TimerKind};
use weir::model::InstanceStatus;

use super::{obj, workflow, Sim, T0};

/// The name of the `i`-th step of a [`chain_of`]: `a`, `b`, `c`, ...
pub fn chain_step(i: usize) -> String {
    assert!(i < 26, "a chain has at most 26 steps");
    char::from(b'a' + i as u8).to_string()
}

/// Definition `chain` 1.0.0: `n` machine steps `a`, `b`, `c`, ... (handler `h`), each
/// starting when the one before it succeeds.
pub fn chain_of(n: usize) -> String {
    let mut yaml = String::from("name: chain\nversion: \"1.0.0\"\nsteps:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  {}: {{ type: machine, handler: h }}\n",
            chain_step(i)
        ));
    }
    if n > 1 {
        yaml.push_str("edges:\n");
        for i in 1..n {
            yaml.push_str(&format!(
                "  - {{ from: {}, to: {} }}\n",
                chain_step(i - 1),
                chain_step(i)
            ));
        }
    }
    yaml
}

/// A new instance of [`chain_of`]`(n)` with an empty context: its first step running.
pub fn running_chain_of(n: usize) -> Sim {
    Sim::start(&chain_of(n), json!({}))
}

/// Definition `fan` 1.0.0: machine step `start` fans out to every one of `branches` at
/// once; when `join` names a step, it runs after all of them.
pub fn fan_out(branches: &[&str], join: Option<&str>) -> String {
    let mut yaml = String::from(
        "name: fan\nversion: \"1.0.0\"\nsteps:\n  start: { type: machine, handler: h }\n",
    );
    for step in branches.iter().chain(join.iter()) {
        yaml.push_str(&format!("  {step}: {{ type: machine, handler: h }}\n"));
    }
    yaml.push_str("edges:\n");
    for b in branches {
        yaml.push_str(&format!("  - {{ from: start, to: {b} }}\n"));
    }
    if let Some(join) = join {
        for b in branches {
            yaml.push_str(&format!("  - {{ from: {b}, to: {join} }}\n"));
        }
    }
    yaml
}

/// An instance of [`fan_out`]`(branches, join)` whose `start` succeeded: every branch is
/// running.
pub fn fanned_out_to(branches: &[&str], join: Option<&str>) -> Sim {
    let mut sim = Sim::start(&fan_out(branches, join), json!({}));
    sim.succeed("start", json!({}));
    sim
}

/// Definition `expense` 1.0.0: machine step `submit`, then human step `approve` (titled,
/// described, for `user` with candidate `deputy@example.com`, a form that requires
/// `approved` (a boolean) and allows `comments` (a string), due after 48 hours), then
/// machine step `pay`.
pub fn expense_approved_by(user: &str) -> String {
    format!(
        r#"
name: expense
version: "1.0.0"
steps:
  submit: {{ type: machine, handler: h }}
  approve:
    type: human
    title: Approve the expense
    description: Check the receipt
    assignee: {user}
    candidates: [deputy@example.com]
    form:
      type: object
      required: [approved]
      properties:
        approved: {{ type: boolean }}
        comments: {{ type: string }}
    due: 48h
  pay: {{ type: machine, handler: h }}
edges:
  - {{ from: submit, to: approve }}
  - {{ from: approve, to: pay }}
"#
    )
}

/// Instance `exp-1` of [`expense_approved_by`]`(user)` (tenant `acme`, started by `alice`
/// at [`T0`] with `amount` 40), whose `submit` succeeded at [`T0`]: its approval task is
/// open for `user` and the instance waits on it.
pub fn approval_waiting_on(user: &str) -> Sim {
    let spec = StartSpec {
        id: "exp-1".into(),
        initial_data: obj(json!({ "amount": 40 })),
        tenant_id: Some("acme".into()),
        created_by: Some("alice".into()),
    };
    let wf = std::sync::Arc::new(workflow(&expense_approved_by(user)));
    let mut sim = Sim::start_spec(wf, spec, T0, 1);
    sim.succeed("submit", json!({ "submitted": true }));
    sim
}

/// Definition `pipeline` 1.0.0: `load`, then `process` (two attempts, one second apart),
/// then `store`.
pub const PIPELINE: &str = r#"
name: pipeline
version: "1.0.0"
steps:
  load: { type: machine, handler: h }
  process:
    type: machine
    handler: h
    retry: { max_attempts: 2, initial_interval: 1s }
  store: { type: machine, handler: h }
edges:
  - { from: load, to: process }
  - { from: process, to: store }
"#;

/// An instance of [`PIPELINE`] (context `input: 1`) that failed for good at `process`:
/// `load` wrote `loaded: true`, then both attempts of `process` failed ("db down", "db
/// still down").
pub fn pipeline_failed_at_process() -> Sim {
    let mut sim = Sim::start(PIPELINE, json!({ "input": 1 }));
    sim.succeed("load", json!({ "loaded": true }));
    sim.fail("process", StepError::retryable("db down"));
    sim.fire("process", TimerKind::Retry);
    sim.fail("process", StepError::retryable("db still down"));
    assert_eq!(sim.status(), InstanceStatus::Failed);
    sim
}

//! Definitions: YAML and JSON files, the builder, every validation rule (each error names
//! the step or edge at fault), and the registry (immutable versions, latest by semver).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use weir::definition::{parse_definition_file, DefinitionError, Problem};
use weir::model::{
    Definition, EdgeDef, EdgeOn, GatewayStep, HumanStep, MachineStep, RetryPolicy, StepDef,
};
use weir::registry::{Registry, RegistryError};
use weir::{compile, parse_definition};

/// The problems of a definition that parses but is invalid.
fn problems(yaml: &str) -> Vec<Problem> {
    let def = parse_definition(yaml).unwrap_or_else(|e| panic!("should parse: {e}"));
    match compile(def) {
        Ok(_) => panic!("should be invalid:\n{yaml}"),
        Err(DefinitionError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected Invalid, got {other}"),
    }
}

/// Asserts one problem is at `at` and its message contains `says`.
#[track_caller]
fn assert_problem(problems: &[Problem], at: &str, says: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.at == at && p.message.to_lowercase().contains(&says.to_lowercase())),
        "no problem at {at:?} saying {says:?} in {problems:#?}"
    );
}

fn parse_error(yaml: &str) -> String {
    match parse_definition(yaml) {
        Err(DefinitionError::Parse(m)) => m,
        Err(other) => panic!("expected a parse error, got {other}"),
        Ok(def) => panic!("expected a parse error, got {def:?}"),
    }
}

const EXPENSE_YAML: &str = r#"
name: expense_approval
version: "1.2.0"
description: Approve and pay an expense
initial_step: submit
steps:
  submit:
    type: machine
    handler: set
    config: { submitted: true }
    queue: default
    retry: { max_attempts: 5, initial_interval: 200ms, backoff: 2.0, max_interval: 30s,
             jitter: true, non_retryable: [validation] }
    timeout: 30s
  manager_approval:
    type: human
    title: Approve the expense
    assignee: manager@example.com
    candidates: [a@example.com, b@example.com]
    form: { type: object, required: [approved], properties: { approved: { type: boolean } } }
    due: 48h
  route: { type: gateway }
  cool_off: { type: timer, duration: 2s }
  pay: { type: machine, handler: pay }
  reject: { type: machine, handler: set }
  refund: { type: machine, handler: set }
  escalate: { type: machine, handler: set }
edges:
  - { from: submit, to: manager_approval }
  - { from: manager_approval, to: cool_off }
  - { from: cool_off, to: route }
  - { from: route, to: pay, condition: "context.approved == true" }
  - { from: route, to: reject, default: true }
  - { from: pay, to: refund, on: failure }
  - { from: manager_approval, to: escalate, on: timeout }
"#;

const EXPENSE_JSON: &str = r#"{
  "name": "expense_approval",
  "version": "1.2.0",
  "description": "Approve and pay an expense",
  "initial_step": "submit",
  "steps": {
    "submit": {
      "type": "machine", "handler": "set", "config": {"submitted": true}, "queue": "default",
      "retry": {"max_attempts": 5, "initial_interval": "200ms", "backoff": 2.0,
                "max_interval": "30s", "jitter": true, "non_retryable": ["validation"]},
      "timeout": "30s"
    },
    "manager_approval": {
      "type": "human", "title": "Approve the expense", "assignee": "manager@example.com",
      "candidates": ["a@example.com", "b@example.com"],
      "form": {"type": "object", "required": ["approved"],
               "properties": {"approved": {"type": "boolean"}}},
      "due": "48h"
    },
    "route": {"type": "gateway"},
    "cool_off": {"type": "timer", "duration": "2s"},
    "pay": {"type": "machine", "handler": "pay"},
    "reject": {"type": "machine", "handler": "set"},
    "refund": {"type": "machine", "handler": "set"},
    "escalate": {"type": "machine", "handler": "set"}
  },
  "edges": [
    {"from": "submit", "to": "manager_approval"},
    {"from": "manager_approval", "to": "cool_off"},
    {"from": "cool_off", "to": "route"},
    {"from": "route", "to": "pay", "condition": "context.approved == true"},
    {"from": "route", "to": "reject", "default": true},
    {"from": "pay", "to": "refund", "on": "failure"},
    {"from": "manager_approval", "to": "escalate", "on": "timeout"}
  ]
}"#;

#[test]
fn the_documented_file_format_loads_from_yaml_and_json_alike() {
    let yaml = parse_definition(EXPENSE_YAML).unwrap();
    let json = parse_definition(EXPENSE_JSON).unwrap();
    assert_eq!(yaml, json);
    let StepDef::Machine(submit) = &yaml.steps["submit"] else {
        panic!("submit is a machine step");
    };
    assert_eq!(submit.timeout, Some(Duration::from_secs(30)));
    let retry = submit.retry.as_ref().unwrap();
    assert_eq!(retry.max_attempts, 5);
    assert_eq!(retry.initial_interval, Duration::from_millis(200));
    assert_eq!(retry.max_interval, Duration::from_secs(30));
    assert_eq!(retry.non_retryable, vec!["validation".to_string()]);
    let StepDef::Human(h) = &yaml.steps["manager_approval"] else {
        panic!("human");
    };
    assert_eq!(h.due, Some(Duration::from_secs(48 * 3600)));
    assert_eq!(yaml.edges[5].on, EdgeOn::Failure);
    assert!(yaml.edges[4].default);
    let wf = compile(yaml).unwrap();
    assert_eq!(wf.key(), "expense_approval@1.2.0");
    assert_eq!(wf.step(wf.initial).name.as_ref(), "submit");

    // Registering the JSON file after the YAML one is a no-op: same content.
    let reg = Registry::new();
    let a = reg.register_definition(json.clone()).unwrap();
    let b = reg
        .register_definition(parse_definition(EXPENSE_YAML).unwrap())
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b));
}

#[test]
fn definition_files_load_by_path_and_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("weir-defs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let y = dir.join("expense.yaml");
    let j = dir.join("expense.json");
    let bad = dir.join("bad.yaml");
    std::fs::write(&y, EXPENSE_YAML).unwrap();
    std::fs::write(&j, EXPENSE_JSON).unwrap();
    std::fs::write(&bad, "name: [unclosed").unwrap();
    let a = parse_definition_file(&y).unwrap();
    let b = parse_definition_file(&j).unwrap();
    assert_eq!(a, b);
    let err = parse_definition_file(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.yaml"), "{err}");
    let err = parse_definition_file(&dir.join("missing.yaml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.yaml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_definition_built_in_rust_compiles_and_equals_its_file() {
    let machine = |handler: &str| {
        StepDef::Machine(MachineStep {
            handler: handler.into(),
            config: json!(null),
            queue: None,
            retry: None,
            timeout: None,
            description: None,
        })
    };
    let edge = |from: &str, to: &str| EdgeDef {
        from: from.into(),
        to: to.into(),
        condition: None,
        default: false,
        on: EdgeOn::Success,
    };
    let mut steps = BTreeMap::new();
    steps.insert("a".to_string(), machine("h"));
    steps.insert(
        "ask".to_string(),
        StepDef::Human(HumanStep {
            title: Some("Ask".into()),
            description: None,
            assignee: Some("u".into()),
            candidates: vec![],
            candidate_groups: vec![],
            assignee_expr: None,
            candidates_expr: None,
            form: None,
            due: None,
            ..HumanStep::default()
        }),
    );
    steps.insert("gw".to_string(), StepDef::Gateway(GatewayStep::default()));
    let def = Definition {
        name: "built".into(),
        version: "0.1.0".into(),
        description: None,
        initial_step: None,
        steps,
        edges: vec![edge("a", "ask"), edge("ask", "gw")],
        tenants: vec![],
    };
    let wf = compile(def.clone()).unwrap();
    assert_eq!(wf.step(wf.initial).name.as_ref(), "a");
    let yaml = r#"
name: built
version: "0.1.0"
steps:
  a: { type: machine, handler: h }
  ask: { type: human, title: Ask, assignee: u }
  gw: { type: gateway }
edges:
  - { from: a, to: ask }
  - { from: ask, to: gw }
"#;
    assert_eq!(parse_definition(yaml).unwrap(), def);
    // A definition serializes back to a file that reads the same.
    let text = serde_json::to_string(&def).unwrap();
    assert_eq!(parse_definition(&text).unwrap(), def);
}

#[test]
fn an_edge_to_or_from_an_unknown_step_names_the_edge() {
    let p = problems(
        r#"
name: w
version: "1.0.0"
steps:
  a: { type: machine, handler: h }
  b: { type: machine, handler: h }
edges:
  - { from: a, to: b }
  - { from: b, to: nowhere }
  - { from: ghost, to: b }
"#,
    );
    assert_problem(&p, "edge 1 (b -> nowhere)", "unknown step \"nowhere\"");
    assert_problem(&p, "edge 2 (ghost -> b)", "unknown step \"ghost\"");
}

#[test]
fn no_initial_step_is_an_error() {
    let p = problems(
        r#"
name: w
version: "1.0.0"
steps:
  a: { type: machine, handler: h }
  b: { type: machine, handler: h }
edges:
  - { from: a, to: b }
  - { from: b, to: a }
"#,
    );
    assert_problem(&p, "initial_step", "set `initial_step`");
}

#[test]
fn an_ambiguous_initial_step_names_the_candidates() {
    let p = problems(
        r#"
name: w
version: "1.0.0"
steps:
  a: { type: machine, handler: h }
  b: { type: machine, handler: h }
  c: { type: machine, handler: h }
edges:
  - { from: a, to: c }
  - { from: b, to: c }
"#,
    );
    assert_problem(&p, "initial_step", "ambiguous");
    let msg = &p.iter().find(|p| p.at == "initial_step").unwrap().message;
    assert!(msg.contains('a') && msg.contains('b'), "{msg}");
}

#[test]
fn an_unknown_initial_step_is_an_error() {
    let p = problems(
        r#"
name: w
version: "1.0.0"
initial_step: strat
steps:
  start: { type: machine, handler: h }
"#,
    );
    assert_problem(&p, "initial_step", "unknown step \"strat\"");
}

#[test]
fn an_unreachable_step_is_named() {
    let p = problems(
        r#"
name: w
version: "1.0.0"
initial_step: a
steps:
  a: { type: machine, handler: h }
  b: { type: machine, handler: h }
  orphan: { type: machine, handler: h }
edges:
  - { from: a, to: b }
"#,
    );
    assert_problem(&p, "step \"orphan\"", "unreachable");
    assert_eq!(p.len(), 1, "{p:#?}");
}

#[test]
fn a_cycle_with_no_exit_names_its_steps() {
    let p = problems(
        r#"
name: w
version: "1.0.0"
steps:
  a: { type: machine, handler: h }
  b: { type: machine, handler: h }
  c: { type: machine, handler: h }
edges:
  - { from: a, to: b }
  - { from: b, to: c }
  - { from: c, to: b }
"#,
    );
    assert_problem(&p, "step \"b\"", "no end can be reached");
    assert_problem(&p, "step \"c\"", "no end can be reached");
    assert_problem(&p, "step \"a\"", "no end can be reached");
}

#[test]
fn a_loop_with_an_exit_is_valid() {
    let def = parse_definition(
        r#"
name: w
version: "1.0.0"
initial_step: review
steps:
  review: { type: human }
  route: { type: gateway }
  revise: { type: machine, handler: h }
  publish: { type: machine, handler: h }
edges:
  - { from: review, to: route }
  - { from: route, to: revise, condition: "context.approved == false" }
  - { from: route, to: publish, default: true }
  - { from: revise, to: review }
"#,
    )
    .unwrap();
    let wf = compile(def).unwrap();
    let back: Vec<bool> = wf.edges.iter().map(|e| e.back).collect();
    assert_eq!(
        back,
        vec![false, false, false, true],
        "revise -> review closes the loop"
    );
    let exit: Vec<bool> = wf.edges.iter().map(|e| e.exit).collect();
    assert_eq!(
        exit,
        vec![false, false, true, false],
        "route -> publish leaves it"
    );
}

#[test]
fn a_condition_that_does_not_compile_names_the_edge() {
    let p = problems(
        r#"
name: w
version: "1.0.0"
steps:
  a: { type: gateway }
  b: { type: machine, handler: h }
  c: { type: machine, handler: h }
edges:
  - { from: a, to: b, condition: "context.score >= " }
  - { from: a, to: c, condition: "ctx.score > 1" }
"#,
    );
    assert_problem(&p, "edge 0 (a -> b)", "does not compile");
    assert_problem(&p, "edge 1 (a -> c)", "does not compile");
}

#[test]
fn a_machine_step_without_a_handler_is_named() {
    let p = problems(
        r#"
name: w
version: "1.0.0"
steps:
  work: { type: machine }
"#,
    );
    assert_problem(&p, "step \"work\"", "no handler");
    let p = problems(
        r#"
name: w
version: "1.0.0"
steps:
  work: { type: machine, handler: "  " }
"#,
    );
    assert_problem(&p, "step \"work\"", "no handler");
}

#[test]
fn an_invalid_form_schema_is_named() {
    let p = problems(
        r#"
name: w
version: "1.0.0"
steps:
  ask:
    type: human
    form: { type: 12, properties: { x: { minimum: "ten" } } }
"#,
    );
    assert_problem(&p, "step \"ask\"", "invalid form schema");
}

#[test]
fn invalid_durations_are_refused_with_how_to_write_them() {
    for bad in ["timeout: soon", "timeout: \"10\"", "timeout: -5s"] {
        let yaml = format!(
            "name: w\nversion: \"1.0.0\"\nsteps:\n  work:\n    type: machine\n    handler: h\n    {bad}\n"
        );
        let err = parse_error(&yaml);
        assert!(err.contains("250ms"), "{bad}: {err}");
        assert!(err.contains("line") || err.contains("work"), "{bad}: {err}");
    }
    let err = parse_error(
        "name: w\nversion: \"1.0.0\"\nsteps:\n  nap: { type: timer, duration: forever }\n",
    );
    assert!(err.contains("forever"), "{err}");
    // Zero durations parse but are refused, naming the step.
    let p = problems(
        r#"
name: w
version: "1.0.0"
steps:
  work: { type: machine, handler: h, timeout: 0s, retry: { initial_interval: 0s } }
  ask: { type: human, due: 0s }
edges:
  - { from: work, to: ask }
"#,
    );
    assert_problem(&p, "step \"work\"", "timeout must be longer than zero");
    assert_problem(
        &p,
        "step \"work\"",
        "initial_interval must be longer than zero",
    );
    assert_problem(&p, "step \"ask\"", "due must be longer than zero");
}

#[test]
fn an_invalid_version_is_refused() {
    for bad in ["1.0", "latest", "v1.0.0", "1.0.0.0", ""] {
        let yaml =
            format!("name: w\nversion: \"{bad}\"\nsteps:\n  a: {{ type: machine, handler: h }}\n");
        let p = problems(&yaml);
        assert_problem(&p, "version", "not a semantic version");
    }
    for good in ["1.0.0", "10.0.0", "1.0.0-rc.1", "2.3.4+build.5"] {
        let yaml =
            format!("name: w\nversion: \"{good}\"\nsteps:\n  a: {{ type: machine, handler: h }}\n");
        compile(parse_definition(&yaml).unwrap()).unwrap();
    }
}

#[test]
fn invalid_names_are_refused() {
    let p = problems(
        r#"
name: "has space"
version: "1.0.0"
steps:
  "bad/step": { type: machine, handler: h }
"#,
    );
    assert_problem(&p, "name", "not a valid workflow name");
    assert_problem(&p, "step \"bad/step\"", "invalid step name");
}

#[test]
fn edge_rules_each_name_the_edge() {
    let p = problems(
        r#"
name: w
version: "1.0.0"
steps:
  a: { type: machine, handler: h }
  ask: { type: human }
  gw: { type: gateway }
  b: { type: machine, handler: h }
  c: { type: machine, handler: h }
edges:
  - { from: a, to: ask }
  - { from: a, to: ask }
  - { from: ask, to: gw }
  - { from: gw, to: b, condition: "true", default: true }
  - { from: gw, to: c, default: true }
  - { from: ask, to: c, on: failure }
  - { from: a, to: c, on: timeout }
  - { from: ask, to: b, on: timeout }
  - { from: gw, to: a, on: timeout }
"#,
    );
    assert_problem(&p, "edge 1 (a -> ask)", "duplicate edge");
    assert_problem(
        &p,
        "edge 3 (gw -> b)",
        "either `default` or has a `condition`",
    );
    assert_problem(&p, "edge 4", "more than one default edge");
    assert_problem(&p, "edge 5 (ask -> c)", "cannot fail");
    assert_problem(&p, "edge 6 (a -> c)", "has no `timeout`");
    assert_problem(&p, "edge 7 (ask -> b)", "has no `due`");
    assert_problem(&p, "edge 8 (gw -> a)", "cannot time out");
}

#[test]
fn timer_rules_name_the_step() {
    let p = problems(
        r#"
name: w
version: "1.0.0"
steps:
  start: { type: gateway }
  none: { type: timer }
  both: { type: timer, duration: 1s, until: "2030-01-01T00:00:00Z" }
  bad_until: { type: timer, until: "tomorrow" }
  bad_expr: { type: timer, until_expr: "context.when +" }
edges:
  - { from: start, to: none }
  - { from: start, to: both }
  - { from: start, to: bad_until }
  - { from: start, to: bad_expr }
"#,
    );
    assert_problem(&p, "step \"none\"", "exactly one of");
    assert_problem(&p, "step \"both\"", "exactly one of");
    assert_problem(&p, "step \"bad_until\"", "not an RFC 3339 time");
    assert_problem(&p, "step \"bad_expr\"", "does not compile");
}

#[test]
fn retry_policy_rules_name_the_step() {
    let p = problems(
        r#"
name: w
version: "1.0.0"
steps:
  work:
    type: machine
    handler: h
    retry: { max_attempts: 0, backoff: 0.5, initial_interval: 10s, max_interval: 1s }
"#,
    );
    assert_problem(&p, "step \"work\"", "max_attempts must be at least 1");
    assert_problem(&p, "step \"work\"", "backoff must be a number >= 1.0");
    assert_problem(&p, "step \"work\"", "max_interval must not be shorter");
}

#[test]
fn every_problem_is_reported_at_once_and_the_message_names_the_workflow() {
    let def = parse_definition(
        r#"
name: many
version: "one"
steps:
  a: { type: machine }
  b: { type: machine, handler: h }
edges:
  - { from: a, to: c }
"#,
    )
    .unwrap();
    let err = compile(def).unwrap_err();
    let DefinitionError::Invalid { problems, name } = &err else {
        panic!("{err}");
    };
    assert_eq!(name, "many@one");
    assert!(problems.len() >= 3, "{problems:#?}");
    let text = err.to_string();
    assert!(text.contains("many@one"), "{text}");
    assert!(text.contains("step \"a\""), "{text}");
    assert!(text.contains("edge 0 (a -> c)"), "{text}");
    assert!(text.contains("version"), "{text}");
}

#[test]
fn unknown_fields_and_kinds_are_parse_errors() {
    let err =
        parse_error("name: w\nversion: \"1.0.0\"\nsteps:\n  a: { type: machine, handlr: h }\n");
    assert!(err.contains("handlr"), "{err}");
    let err = parse_error("name: w\nversion: \"1.0.0\"\nsteps:\n  a: { type: robot }\n");
    assert!(err.contains("robot"), "{err}");
    let err = parse_error("name: w\nversion: \"1.0.0\"\nstepz: {}\n");
    assert!(err.contains("stepz"), "{err}");
    let err = parse_error("version: \"1.0.0\"\nsteps: {}\n");
    assert!(err.contains("name"), "{err}");
    let err = parse_error(&format!("name: {}\n", "x".repeat(1 << 20)));
    assert!(err.contains("limit"), "{err}");
}

#[test]
fn empty_definitions_are_refused() {
    let p = problems("name: w\nversion: \"1.0.0\"\nsteps: {}\n");
    assert_problem(&p, "steps", "at least one step");
}

// ----------------------------------------------------------------------------------------
// Registry

fn def(version: &str, handler: &str) -> Definition {
    parse_definition(&format!(
        "name: flow\nversion: \"{version}\"\nsteps:\n  a: {{ type: machine, handler: {handler} }}\n"
    ))
    .unwrap()
}

#[test]
fn registering_the_same_version_again_is_a_no_op_and_other_content_is_refused() {
    let reg = Registry::new();
    let first = reg.register_definition(def("1.0.0", "h")).unwrap();
    let again = reg.register_definition(def("1.0.0", "h")).unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "identical content returns the registered one"
    );
    let err = reg.register_definition(def("1.0.0", "other")).unwrap_err();
    assert_eq!(
        err,
        RegistryError::Conflict {
            name: "flow".into(),
            version: "1.0.0".into()
        }
    );
    assert!(err.to_string().contains("register a new version"), "{err}");
    // The registered one is unchanged.
    let got = reg.get_definition("flow", Some("1.0.0")).unwrap();
    assert!(Arc::ptr_eq(&got, &first));
    assert_eq!(reg.list_definitions().len(), 1);
}

#[test]
fn an_invalid_definition_is_not_registered() {
    let reg = Registry::new();
    let bad = parse_definition("name: flow\nversion: \"1.0.0\"\nsteps:\n  a: { type: machine }\n")
        .unwrap();
    let err = reg.register_definition(bad).unwrap_err();
    assert!(matches!(err, RegistryError::Invalid(_)), "{err}");
    assert!(!reg.has_definition("flow", None));
    assert!(reg.list_definitions().is_empty());
}

/// Python regression: the latest of 9.0.0 and 10.0.0 is 10.0.0 (not by string order).
#[test]
fn latest_is_the_highest_semantic_version() {
    let reg = Registry::new();
    for v in ["9.0.0", "10.0.0", "2.0.0", "10.0.0-rc.1", "9.10.0"] {
        reg.register_definition(def(v, "h")).unwrap();
    }
    assert_eq!(
        &*reg.get_definition("flow", None).unwrap().version,
        "10.0.0"
    );
    assert_eq!(
        &*reg.get_definition("flow", Some("9.0.0")).unwrap().version,
        "9.0.0"
    );
    assert_eq!(
        &*reg
            .get_definition("flow", Some("10.0.0-rc.1"))
            .unwrap()
            .version,
        "10.0.0-rc.1"
    );
    let versions: Vec<String> = reg
        .list_definitions()
        .iter()
        .map(|w| w.version.to_string())
        .collect();
    assert_eq!(
        versions,
        vec!["2.0.0", "9.0.0", "9.10.0", "10.0.0-rc.1", "10.0.0"]
    );
}

#[test]
fn a_prerelease_is_latest_only_when_there_is_no_release() {
    let reg = Registry::new();
    reg.register_definition(def("1.0.0-beta.2", "h")).unwrap();
    reg.register_definition(def("1.0.0-beta.10", "h")).unwrap();
    assert_eq!(
        &*reg.get_definition("flow", None).unwrap().version,
        "1.0.0-beta.10"
    );
    reg.register_definition(def("0.9.0", "h")).unwrap();
    assert_eq!(&*reg.get_definition("flow", None).unwrap().version, "0.9.0");
}

#[test]
fn unknown_workflows_and_versions_are_errors() {
    let reg = Registry::new();
    reg.register_definition(def("1.0.0", "h")).unwrap();
    assert!(reg.has_definition("flow", None));
    assert!(reg.has_definition("flow", Some("1.0.0")));
    assert!(!reg.has_definition("flow", Some("2.0.0")));
    assert!(!reg.has_definition("other", None));
    let err = reg.get_definition("flow", Some("2.0.0")).unwrap_err();
    assert_eq!(err.to_string(), "unknown workflow flow@2.0.0");
    let err = reg.get_definition("nope", None).unwrap_err();
    assert_eq!(err.to_string(), "unknown workflow nope");
    assert!(reg.get_definition("flow", Some("not.a.version")).is_err());
}

#[test]
fn list_definitions_is_by_name_then_version() {
    let reg = Registry::new();
    for (name, v) in [("zeta", "1.0.0"), ("alpha", "2.0.0"), ("alpha", "1.0.0")] {
        let d = parse_definition(&format!(
            "name: {name}\nversion: \"{v}\"\nsteps:\n  a: {{ type: gateway }}\n"
        ))
        .unwrap();
        reg.register_definition(d).unwrap();
    }
    let keys: Vec<String> = reg.list_definitions().iter().map(|w| w.key()).collect();
    assert_eq!(keys, vec!["alpha@1.0.0", "alpha@2.0.0", "zeta@1.0.0"]);
}

#[test]
fn the_default_retry_policy_is_documented_values() {
    let p = RetryPolicy::default();
    assert_eq!(p.max_attempts, 3);
    assert_eq!(p.initial_interval, Duration::from_secs(1));
    assert_eq!(p.backoff, 2.0);
    assert_eq!(p.max_interval, Duration::from_secs(300));
    assert!(p.jitter);
    let parsed = parse_definition(
        "name: w\nversion: \"1.0.0\"\nsteps:\n  a: { type: machine, handler: h, retry: {} }\n",
    )
    .unwrap();
    let StepDef::Machine(m) = &parsed.steps["a"] else {
        panic!()
    };
    assert_eq!(m.retry.as_ref().unwrap(), &p);
}

/// A form's fields keep the order its author wrote them in (the dashboard draws them in
/// that order), and so does the context: JSON objects keep insertion order throughout.
#[test]
fn a_form_keeps_the_order_of_its_fields() {
    let def = parse_definition(
        r#"
name: ordered
version: "1.0.0"
steps:
  ask:
    type: human
    form:
      type: object
      properties:
        zeta: { type: string }
        alpha: { type: number }
        mid: { type: boolean }
"#,
    )
    .unwrap();
    let wf = compile(def).unwrap();
    let weir::definition::CompiledKind::Human {
        form: Some(form), ..
    } = &wf.steps[0].kind
    else {
        panic!("a human step with a form");
    };
    let keys: Vec<&String> = form.schema()["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys, ["zeta", "alpha", "mid"]);
}

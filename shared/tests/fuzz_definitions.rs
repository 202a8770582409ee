//! Fuzzing the definition loader: text (YAML or JSON) -> `parse_definition` -> `compile`
//! (every validation rule) -> the Mermaid chart, and for a definition that compiles, what
//! Redis stores of it (its canonical JSON, `Workflow::fingerprint`) must load and compile
//! again to the same definition: a definition accepted at registration that cannot be read
//! back would stop every partition holding one of its instances. No input may panic or
//! take 100 ms or more (see `fuzz_support`).
//!
//! Inputs: random bytes; definitions generated from a grammar of the format (steps of
//! every kind with right and wrong fields, edges between known and unknown steps,
//! conditions from the CEL grammar, forms from the schema grammar, durations, versions),
//! written as JSON or YAML; definitions built to pass validation (so that the graph rules,
//! the Mermaid chart and the stored form see many valid shapes, which the grammar reaches
//! rarely); and the example definitions, parsed and mutated as trees (values replaced, keys
//! removed or added) and as bytes.
//!
//! `PROPTEST_CASES=1000000 cargo test --release -p weir --test fuzz_definitions -- --nocapture`

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::sync::OnceLock;

use fuzz_support::{any_bytes, any_number, any_string, apply_edit, byte_edit, fuzz, json_value};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use weir::model::Definition;

/// Step names the generated edges refer to.
const NAMES: &[&str] = &["a", "b", "c", "d", "e", "f"];

/// Keys and values a definition holds, for the tree mutations.
const WORDS: &[&str] = &[
    "name",
    "version",
    "steps",
    "edges",
    "type",
    "machine",
    "human",
    "gateway",
    "timer",
    "handler",
    "config",
    "retry",
    "timeout",
    "from",
    "to",
    "condition",
    "default",
    "on",
    "failure",
    "timeout",
    "form",
    "due",
    "duration",
    "until",
    "until_expr",
    "assignee",
    "candidates",
    "initial_step",
    "max_attempts",
    "backoff",
    "jitter",
    "queue",
];

/// YAML and JSON fragments a byte mutation inserts.
const TOKENS: &[&[u8]] = &[
    b": ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\n- ",
    b",",
    b"\"",
    b"'",
    b"#",
    b"&a ",
    b"*a",
    b"<<: *a\n",
    b"!!binary ",
    b"!!str ",
    b"? ",
    b"|\n",
    b"---\n",
    b"%YAML 1.2\n",
    b"\t",
    b"\xef\xbb\xbf",
    b"\0",
    b"~",
    b".inf",
    b".nan",
    b"-.inf",
    b"1e400",
    b"99999999999999999999",
    b"0x1F",
    b"0o17",
    b"999999999h",
    b"0s",
];

fn duration() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "0s", "1ms", "150ms", "2s", "5m", "48h", "7d", "1.5s", "999999999h",
            "18446744073709551615ms", "-1s", "", "forever", "1 s", "2h30m",
        ])
        .prop_map(Value::from),
        1 => any_number(),
        1 => any_string().prop_map(Value::from),
    ]
    .boxed()
}

fn step_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(NAMES).prop_map(str::to_owned),
        1 => any_string(),
    ]
}

fn condition() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "context.approved == true",
            "context.get('score', 0) >= 80",
            "has(context.x)",
            "true",
            "context.x >",
            "ctx.x == 1",
        ])
        .prop_map(str::to_owned),
        2 => fuzz_support::cel::expression(),
    ]
    .boxed()
}

/// Sets `key` to the value when there is one.
fn put(m: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(key.to_owned(), v);
    }
}

fn retry() -> BoxedStrategy<Value> {
    (
        proptest::option::of(prop_oneof![(0u64..6).prop_map(Value::from), any_number()]),
        proptest::option::of(duration()),
        proptest::option::of(prop_oneof![
            prop::sample::select(vec![1.0, 2.0, 0.0, -1.0, 1e308]).prop_map(Value::from),
            any_number()
        ]),
        proptest::option::of(duration()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(proptest::collection::vec(any_string(), 0..3)),
    )
        .prop_map(|(max, initial, backoff, max_interval, jitter, non)| {
            let mut m = Map::new();
            put(&mut m, "max_attempts", max);
            put(&mut m, "initial_interval", initial);
            put(&mut m, "backoff", backoff);
            put(&mut m, "max_interval", max_interval);
            put(&mut m, "jitter", jitter.map(Value::from));
            put(&mut m, "non_retryable", non.map(|v| json!(v)));
            Value::Object(m)
        })
        .boxed()
}

/// One step, of any kind (or an unknown one), with fields right and wrong for its kind.
fn step() -> BoxedStrategy<Value> {
    let machine = (
        prop_oneof![
            prop::sample::select(vec!["set", "noop", "http", "sleep", "fail", "log", ""])
                .prop_map(str::to_owned),
            any_string()
        ],
        proptest::option::of(json_value(&["x", "url", "duration", "times"], 2)),
        proptest::option::of(any_string()),
        proptest::option::of(retry()),
        proptest::option::of(duration()),
    )
        .prop_map(|(handler, config, queue, retry, timeout)| {
            let mut m = Map::new();
            m.insert("type".into(), json!("machine"));
            m.insert("handler".into(), json!(handler));
            put(&mut m, "config", config);
            put(&mut m, "queue", queue.map(Value::from));
            put(&mut m, "retry", retry);
            put(&mut m, "timeout", timeout);
            m
        });
    let human = (
        proptest::option::of(any_string()),
        proptest::option::of(any_string()),
        proptest::option::of(proptest::collection::vec(any_string(), 0..3)),
        proptest::option::of(fuzz_support::schema::schema()),
        proptest::option::of(duration()),
    )
        .prop_map(|(title, assignee, candidates, form, due)| {
            let mut m = Map::new();
            m.insert("type".into(), json!("human"));
            put(&mut m, "title", title.map(Value::from));
            put(&mut m, "assignee", assignee.map(Value::from));
            put(&mut m, "candidates", candidates.map(|c| json!(c)));
            put(&mut m, "form", form);
            put(&mut m, "due", due);
            m
        });
    let timer = (
        proptest::option::of(duration()),
        proptest::option::of(prop_oneof![
            prop::sample::select(vec![
                "2030-01-01T00:00:00Z",
                "1970-01-01T00:00:00Z",
                "9999-12-31T23:59:59Z",
                "2030-02-30T00:00:00Z",
                "tomorrow",
            ])
            .prop_map(Value::from),
            any_string().prop_map(Value::from),
        ]),
        proptest::option::of(condition()),
    )
        .prop_map(|(duration, until, until_expr)| {
            let mut m = Map::new();
            m.insert("type".into(), json!("timer"));
            put(&mut m, "duration", duration);
            put(&mut m, "until", until);
            put(&mut m, "until_expr", until_expr.map(Value::from));
            m
        });
    let gateway = Just({
        let mut m = Map::new();
        m.insert("type".into(), json!("gateway"));
        m
    });
    (
        prop_oneof![
            4 => machine.boxed(),
            2 => human.boxed(),
            2 => gateway.boxed(),
            2 => timer.boxed(),
            1 => any_string().prop_map(|t| {
                let mut m = Map::new();
                m.insert("type".into(), json!(t));
                m
            }).boxed(),
        ],
        proptest::option::of((prop::sample::select(WORDS), json_value(&["x"], 1))),
        proptest::option::of(any_string()),
    )
        .prop_map(|(mut m, extra, description)| {
            if let Some((k, v)) = extra {
                m.entry(k.to_owned()).or_insert(v);
            }
            put(&mut m, "description", description.map(Value::from));
            Value::Object(m)
        })
        .boxed()
}

fn edge() -> BoxedStrategy<Value> {
    (
        step_name(),
        step_name(),
        proptest::option::of(condition()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(prop_oneof![
            prop::sample::select(vec!["success", "failure", "timeout"]).prop_map(str::to_owned),
            any_string()
        ]),
    )
        .prop_map(|(from, to, condition, default, on)| {
            let mut m = Map::new();
            m.insert("from".into(), json!(from));
            m.insert("to".into(), json!(to));
            put(&mut m, "condition", condition.map(Value::from));
            put(&mut m, "default", default.map(Value::from));
            put(&mut m, "on", on.map(Value::from));
            Value::Object(m)
        })
        .boxed()
}

/// A definition from the grammar, as a JSON value.
fn definition() -> BoxedStrategy<Value> {
    (
        prop_oneof![
            4 => Just("w".to_owned()),
            1 => any_string(),
        ],
        prop_oneof![
            4 => prop::sample::select(vec!["1.0.0", "0.1.0-rc.1", "1.0", "v1", ""]).prop_map(str::to_owned),
            1 => any_string(),
        ],
        proptest::collection::vec((step_name(), step()), 1..7),
        proptest::collection::vec(edge(), 0..9),
        proptest::option::of(step_name()),
    )
        .prop_map(|(name, version, steps, edges, initial)| {
            let mut m = Map::new();
            m.insert("name".into(), json!(name));
            m.insert("version".into(), json!(version));
            m.insert(
                "steps".into(),
                Value::Object(steps.into_iter().collect()),
            );
            m.insert("edges".into(), Value::Array(edges));
            put(&mut m, "initial_step", initial.map(Value::from));
            Value::Object(m)
        })
        .boxed()
}

/// The kinds of step [`well_formed`] draws, with what each allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A machine step; `true` when it has a timeout (so it may take timeout edges).
    Machine(bool),
    /// A human step; `true` when it has a due time.
    Human(bool),
    Gateway,
    Timer,
}

impl Kind {
    fn step(self, retry: Option<u64>) -> Value {
        match self {
            Kind::Machine(timeout) => {
                let mut m = Map::new();
                m.insert("type".into(), json!("machine"));
                m.insert("handler".into(), json!("noop"));
                if timeout {
                    m.insert("timeout".into(), json!("30s"));
                }
                if let Some(max) = retry {
                    m.insert(
                        "retry".into(),
                        json!({ "max_attempts": max, "initial_interval": "1s", "backoff": 2.0 }),
                    );
                }
                Value::Object(m)
            }
            Kind::Human(due) => {
                let mut m = Map::new();
                m.insert("type".into(), json!("human"));
                m.insert("title".into(), json!("Approve"));
                m.insert("assignee".into(), json!("alice"));
                if due {
                    m.insert("due".into(), json!("48h"));
                }
                Value::Object(m)
            }
            Kind::Gateway => json!({ "type": "gateway" }),
            Kind::Timer => json!({ "type": "timer", "duration": "5m" }),
        }
    }

    /// The edge groups a step of this kind may take.
    fn allows(self, on: &str) -> bool {
        match (self, on) {
            (_, "success") => true,
            (Kind::Machine(_), "failure") => true,
            (Kind::Machine(timeout) | Kind::Human(timeout), "timeout") => timeout,
            _ => false,
        }
    }
}

/// A definition built to pass validation, most of the time: distinct steps of every kind
/// with right fields, every step after the first reached by a forward edge from an earlier
/// one, more forward edges of the groups their source allows (conditions from a list of
/// valid ones and from the CEL grammar, at most one default per source and group), and
/// now and then a conditional edge back to an earlier step (a loop, which validation
/// refuses when nothing leads out of it). The grammar of [`definition`] mixes right and
/// wrong fields everywhere, so few of its definitions get past validation to the
/// compiler's graph rules and the stored form; these do.
fn well_formed() -> BoxedStrategy<Value> {
    let kind = prop_oneof![
        4 => any::<bool>().prop_map(Kind::Machine),
        2 => any::<bool>().prop_map(Kind::Human),
        2 => Just(Kind::Gateway),
        1 => Just(Kind::Timer),
    ];
    let condition = prop_oneof![
        3 => prop::sample::select(vec![
            "context.approved == true",
            "context.get('score', 0) >= 80",
            "has(context.x)",
            "true",
        ])
        .prop_map(str::to_owned),
        1 => fuzz_support::cel::expression(),
    ];
    let extra = (
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        prop::sample::select(vec!["success", "success", "failure", "timeout"]),
        proptest::option::of(condition.clone()),
        any::<bool>(),
    );
    (
        proptest::collection::vec((kind, proptest::option::of(1u64..5)), 1..8),
        proptest::collection::vec(any::<prop::sample::Index>(), 7),
        proptest::collection::vec(proptest::option::of(condition.clone()), 7),
        proptest::collection::vec(extra, 0..6),
        proptest::option::of((
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            condition,
        )),
    )
        .prop_map(|(kinds, parents, conditions, extras, back)| {
            let n = kinds.len();
            let name = |i: usize| format!("s{i}");
            let steps: Map<String, Value> = kinds
                .iter()
                .enumerate()
                .map(|(i, (k, retry))| (name(i), k.step(*retry)))
                .collect();
            let mut edges = Vec::new();
            let mut seen = std::collections::HashSet::new();
            let mut defaults = std::collections::HashSet::new();
            let mut push =
                |from: usize, to: usize, on: &str, condition: Option<String>, default: bool| {
                    if !seen.insert((from, to, on.to_owned())) {
                        return;
                    }
                    let mut e = Map::new();
                    e.insert("from".into(), json!(name(from)));
                    e.insert("to".into(), json!(name(to)));
                    if on != "success" {
                        e.insert("on".into(), json!(on));
                    }
                    if default && defaults.insert((from, on.to_owned())) {
                        e.insert("default".into(), json!(true));
                    } else if let Some(c) = condition {
                        e.insert("condition".into(), json!(c));
                    }
                    edges.push(Value::Object(e));
                };
            // Step j (after the first) is reached from an earlier step on success.
            for j in 1..n {
                let from = parents[j - 1].index(j);
                push(from, j, "success", conditions[j - 1].clone(), false);
            }
            for (from, to, on, condition, default) in extras {
                if n < 2 {
                    break;
                }
                let to = 1 + to.index(n - 1);
                let from = from.index(to);
                if kinds[from].0.allows(on) {
                    push(from, to, on, condition, default);
                }
            }
            if let Some((from, to, condition)) = back {
                if n >= 2 {
                    let from = 1 + from.index(n - 1);
                    push(from, to.index(from), "success", Some(condition), false);
                }
            }
            json!({
                "name": "w",
                "version": "1.0.0",
                "initial_step": name(0),
                "steps": steps,
                "edges": edges,
            })
        })
        .boxed()
}

/// The value as JSON or as YAML text.
fn render(v: &Value, yaml: bool) -> String {
    if yaml {
        serde_saphyr::to_string(v).unwrap_or_default()
    } else {
        v.to_string()
    }
}

/// Parses, compiles, draws; for a definition that compiles, its stored form loads again.
/// Whether it compiled.
fn load(text: &str) -> bool {
    let Ok(def) = weir::parse_definition(text) else {
        return false;
    };
    let Ok(wf) = weir::compile(def) else {
        return false;
    };
    let _ = weir::definition::to_mermaid(&wf);
    let stored = &wf.fingerprint;
    let again: Definition = serde_json::from_str(stored).unwrap_or_else(|e| {
        panic!("a compiled definition's stored JSON does not parse ({e}): {stored}")
    });
    let wf2 = weir::compile(again).unwrap_or_else(|e| {
        panic!("a compiled definition's stored JSON does not compile ({e}): {stored}")
    });
    assert_eq!(
        &wf2.fingerprint, stored,
        "the stored JSON changes on reload"
    );
    true
}

#[test]
fn random_bytes() {
    fuzz("definitions-bytes", 3000, any_bytes(2048), |bytes| {
        load(&String::from_utf8_lossy(bytes))
    });
}

#[test]
fn definitions_from_the_grammar_as_json_and_yaml() {
    fuzz(
        "definitions-grammar",
        2000,
        (definition(), any::<bool>()),
        |(def, yaml)| load(&render(def, *yaml)),
    );
}

#[test]
fn well_formed_definitions_compile_and_load_again_from_what_is_stored() {
    let figures = fuzz(
        "definitions-well-formed",
        2000,
        (well_formed(), any::<bool>()),
        |(def, yaml)| load(&render(def, *yaml)),
    );
    // The generator stays within the rules but for loops without a way out and conditions
    // of the CEL grammar that do not compile: most of what it writes must be accepted, or
    // validation has started refusing valid definitions (or the generator drifted).
    assert!(
        figures.accepted * 2 >= figures.inputs,
        "only {} of {} well-formed definitions compiled",
        figures.accepted,
        figures.inputs
    );
}

/// The example definitions and a few richer ones, as text.
fn corpus() -> &'static [String] {
    static CORPUS: OnceLock<Vec<String>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut files = vec![r#"
name: rich
version: "2.1.0-beta.1"
initial_step: submit
steps:
  submit: { type: machine, handler: http, queue: payments, timeout: 30s,
            config: { url: "http://127.0.0.1:1/{id}", headers: { K: "{idempotency_key}" } },
            retry: { max_attempts: 5, initial_interval: 200ms, backoff: 2.0, max_interval: 30s, jitter: true, non_retryable: [validation] } }
  review:
    type: human
    title: Review
    assignee: manager@example.com
    candidates: [a@example.com]
    form: { type: object, required: [approved], properties: { approved: { type: boolean }, amount: { type: number, minimum: 0 }, email: { type: string, format: email } } }
    due: 48h
  route: { type: gateway }
  revise: { type: machine, handler: set, config: { revised: true } }
  later: { type: timer, until_expr: "context.when" }
  fixed: { type: timer, until: "2030-01-01T00:00:00Z" }
  done: { type: machine, handler: noop }
  escalate: { type: machine, handler: log, config: { message: "late {id}" } }
edges:
  - { from: submit, to: review }
  - { from: review, to: route }
  - { from: route, to: revise, condition: "context.approved == false" }
  - { from: route, to: later, condition: "context.get('score', 0) >= 80 && has(context.when)" }
  - { from: route, to: done, default: true }
  - { from: revise, to: review }
  - { from: later, to: fixed }
  - { from: fixed, to: done }
  - { from: submit, to: escalate, on: failure }
  - { from: review, to: escalate, on: timeout }
"#
        .to_owned()];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        paths.sort();
        for p in paths {
            files.push(std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())));
        }
        for text in &files {
            let def = weir::parse_definition(text).unwrap_or_else(|e| panic!("corpus: {e}"));
            weir::compile(def).unwrap_or_else(|e| panic!("corpus: {e}"));
        }
        files
    })
}

/// A change to a definition's tree: the n-th node in pre-order (modulo the node count).
#[derive(Debug, Clone)]
enum TreeEdit {
    Replace(usize, Value),
    Remove(usize),
    AddKey(usize, String, Value),
    Swap(usize, usize),
}

fn tree_edit() -> impl Strategy<Value = TreeEdit> {
    let value = prop_oneof![
        2 => prop::sample::select(WORDS).prop_map(Value::from),
        2 => prop::sample::select(NAMES).prop_map(Value::from),
        1 => duration(),
        1 => condition().prop_map(Value::from),
        2 => json_value(WORDS, 2),
    ];
    prop_oneof![
        3 => (any::<usize>(), value.clone()).prop_map(|(i, v)| TreeEdit::Replace(i, v)),
        2 => any::<usize>().prop_map(TreeEdit::Remove),
        2 => (any::<usize>(), prop::sample::select(WORDS).prop_map(str::to_owned), value)
            .prop_map(|(i, k, v)| TreeEdit::AddKey(i, k, v)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| TreeEdit::Swap(i, j)),
    ]
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(m) => m.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// The n-th node in pre-order (n < count_nodes(v)).
fn node_mut(v: &mut Value, mut n: usize) -> &mut Value {
    if n == 0 {
        return v;
    }
    n -= 1;
    let children: Vec<&mut Value> = match v {
        Value::Array(a) => a.iter_mut().collect(),
        Value::Object(m) => m.values_mut().collect(),
        _ => Vec::new(),
    };
    for child in children {
        let size = count_nodes(child);
        if n < size {
            return node_mut(child, n);
        }
        n -= size;
    }
    unreachable!("node index within the count")
}

fn apply_tree_edit(root: &mut Value, edit: &TreeEdit) {
    let count = count_nodes(root);
    match edit {
        TreeEdit::Replace(i, v) => *node_mut(root, i % count) = v.clone(),
        TreeEdit::Remove(i) => {
            // Removes a child of the chosen container (its first), if it has any.
            match node_mut(root, i % count) {
                Value::Object(m) => {
                    if let Some(k) = m.keys().nth(i % m.len().max(1)).cloned() {
                        m.remove(&k);
                    }
                }
                Value::Array(a) if !a.is_empty() => {
                    let at = i % a.len();
                    a.remove(at);
                }
                other => *other = Value::Null,
            }
        }
        TreeEdit::AddKey(i, k, v) => match node_mut(root, i % count) {
            Value::Object(m) => {
                m.insert(k.clone(), v.clone());
            }
            Value::Array(a) => a.push(v.clone()),
            _ => {}
        },
        TreeEdit::Swap(i, j) => {
            let a = node_mut(root, i % count).clone();
            let b = node_mut(root, j % count).clone();
            // Swapping a node with one inside it would duplicate a subtree: fine, still a
            // definition to load.
            *node_mut(root, i % count) = b;
            let count = count_nodes(root);
            *node_mut(root, j % count) = a;
        }
    }
}

#[test]
fn mutated_definitions() {
    fuzz(
        "definitions-mutated",
        2000,
        (
            any::<prop::sample::Index>(),
            proptest::collection::vec(tree_edit(), 0..4),
            any::<bool>(),
            proptest::collection::vec(byte_edit(TOKENS), 0..4),
        ),
        |(which, tree_edits, yaml, byte_edits)| {
            let text = which.get(corpus());
            let mut tree: Value =
                serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("corpus: {e}"));
            for e in tree_edits {
                apply_tree_edit(&mut tree, e);
            }
            let mut bytes = render(&tree, *yaml).into_bytes();
            for e in byte_edits {
                apply_edit(&mut bytes, e);
            }
            load(&String::from_utf8_lossy(&bytes))
        },
    );
}

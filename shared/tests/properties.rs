//! Property tests over the pure core and the definition loader.
//!
//! - Random valid DAGs (layered graphs of machine, gateway, timer and human steps, with
//!   fan-out, fan-in and conditional gateways on disjoint keys) are driven through the pure
//!   core in a random order of completions, with transient failures, lost attempts (a crashed
//!   worker: the timeout fires), slow attempts (the timeout fires, then the late result
//!   arrives), duplicated and stale deliveries. Every run must end COMPLETED, FAILED or
//!   WAITING on a task; no step runs twice; and a run without fatal failures gives exactly
//!   what an independent evaluation of the graph predicts, whatever the order.
//! - Arbitrary and mutated definition files, and arbitrary conditions, never panic.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::Sim;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use weir::core::{Input, TimerKind};
use weir::model::{InstanceStatus, StepStatus};
use weir::StepError;

// ----------------------------------------------------------------------------------------
// Random workflows

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Machine,
    Gateway,
    Timer,
    Human,
}

/// What happens to one attempt that does not succeed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    /// Fails with a retryable error.
    Fail,
    /// The worker dies: no result, the timeout fires.
    Crash,
    /// The timeout fires, then the result arrives late (and must be stale).
    Slow,
}

#[derive(Debug, Clone)]
struct GenStep {
    kind: Kind,
    /// Parents (indexes of earlier steps).
    parents: Vec<usize>,
    /// Machine: the attempts that go wrong before one succeeds (fewer than max_attempts).
    fates: Vec<Fate>,
    /// Machine: fails for good on its first attempt.
    doomed: bool,
    /// Human: the driver completes the task (else it stays open).
    completes: bool,
}

#[derive(Debug, Clone)]
struct GenEdge {
    from: usize,
    to: usize,
    /// `Some(key)`: `context.key == true`; the key is in the initial data.
    condition: Option<String>,
    default: bool,
}

#[derive(Debug, Clone)]
struct Graph {
    steps: Vec<GenStep>,
    edges: Vec<GenEdge>,
    /// Initial data: the gateway condition keys.
    data: Map<String, Value>,
}

fn name(i: usize) -> String {
    format!("s{i}")
}

impl Graph {
    fn yaml(&self) -> String {
        let mut y = String::from("name: prop\nversion: \"1.0.0\"\ninitial_step: s0\nsteps:\n");
        for (i, s) in self.steps.iter().enumerate() {
            let body = match s.kind {
                Kind::Machine => "{ type: machine, handler: h, timeout: 10s, \
                     retry: { max_attempts: 3, initial_interval: 1s, max_interval: 2s } }"
                    .to_string(),
                Kind::Gateway => "{ type: gateway }".to_string(),
                Kind::Timer => "{ type: timer, duration: 5s }".to_string(),
                Kind::Human => "{ type: human }".to_string(),
            };
            y.push_str(&format!("  {}: {body}\n", name(i)));
        }
        y.push_str("edges:\n");
        for e in &self.edges {
            let mut extra = String::new();
            if let Some(c) = &e.condition {
                extra = format!(", condition: \"context.{c} == true\"");
            }
            if e.default {
                extra = ", default: true".into();
            }
            y.push_str(&format!(
                "  - {{ from: {}, to: {}{extra} }}\n",
                name(e.from),
                name(e.to)
            ));
        }
        y
    }

    fn has_doomed(&self) -> bool {
        self.steps.iter().any(|s| s.doomed)
    }

    /// An independent evaluation of the graph: which steps finish, which stay open.
    fn oracle(&self) -> Oracle {
        #[derive(Clone, Copy, PartialEq, Debug)]
        enum St {
            Executed,
            Skipped,
            Open,
            Blocked,
        }
        let n = self.steps.len();
        let mut state = vec![St::Blocked; n];
        let mut outgoing: Vec<Vec<&GenEdge>> = vec![Vec::new(); n];
        let mut incoming: Vec<Vec<&GenEdge>> = vec![Vec::new(); n];
        for e in &self.edges {
            outgoing[e.from].push(e);
            incoming[e.to].push(e);
        }
        let cond = |c: &str| self.data.get(c) == Some(&Value::Bool(true));
        // Whether an edge from an executed step is taken.
        let taken = |e: &GenEdge| -> bool {
            if e.default {
                !outgoing[e.from]
                    .iter()
                    .any(|x| x.condition.as_deref().is_some_and(cond))
            } else {
                e.condition.as_deref().is_none_or(cond)
            }
        };
        let runs = |s: &GenStep| {
            if s.kind == Kind::Human && !s.completes {
                St::Open
            } else {
                St::Executed
            }
        };
        // Steps are generated in topological order (parents come first).
        for i in 0..n {
            if i == 0 {
                state[0] = runs(&self.steps[0]);
                continue;
            }
            let mut any_taken = false;
            let mut unresolved = false;
            for e in &incoming[i] {
                match state[e.from] {
                    St::Executed => any_taken |= taken(e),
                    St::Skipped => {}
                    St::Open | St::Blocked => unresolved = true,
                }
            }
            state[i] = if unresolved {
                St::Blocked
            } else if any_taken {
                runs(&self.steps[i])
            } else {
                St::Skipped
            };
        }
        let mut context = self.data.clone();
        for (i, s) in self.steps.iter().enumerate() {
            if state[i] == St::Executed {
                match s.kind {
                    Kind::Machine => {
                        context.insert(format!("out_{}", name(i)), json!(name(i)));
                    }
                    Kind::Human => {
                        context.insert(format!("h_{}", name(i)), json!("done"));
                    }
                    _ => {}
                }
            }
        }
        let open: BTreeSet<String> = (0..n).filter(|&i| state[i] == St::Open).map(name).collect();
        Oracle {
            executed: (0..n)
                .filter(|&i| state[i] == St::Executed)
                .map(name)
                .collect(),
            status: if open.is_empty() {
                InstanceStatus::Completed
            } else {
                InstanceStatus::Waiting
            },
            open,
            context,
        }
    }
}

#[derive(Debug, PartialEq)]
struct Oracle {
    executed: BTreeSet<String>,
    open: BTreeSet<String>,
    status: InstanceStatus,
    context: Map<String, Value>,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![Just(Fate::Fail), Just(Fate::Crash), Just(Fate::Slow)]
}

fn kind(allow_human: bool) -> impl Strategy<Value = Kind> {
    let human = if allow_human { 1 } else { 0 };
    prop_oneof![
        12 => Just(Kind::Machine),
        3 => Just(Kind::Gateway),
        1 => Just(Kind::Timer),
        human => Just(Kind::Human),
    ]
}

/// A random layered DAG: layer 0 is the single root; every later step has 1 or 2 parents
/// among all earlier steps, so every step is reachable and every path ends.
fn graph(allow_human: bool, allow_doomed: bool) -> impl Strategy<Value = Graph> {
    let layers = prop::collection::vec(1usize..=3, 1..=4);
    layers
        .prop_flat_map(move |sizes| {
            let n = 1 + sizes.iter().sum::<usize>();
            let mut first_of_layer = vec![1usize];
            for s in &sizes {
                first_of_layer.push(first_of_layer.last().unwrap() + s);
            }
            // For step i (>= 1), the number of steps before its layer.
            let mut before = vec![0usize; n];
            for (l, s) in sizes.iter().enumerate() {
                for k in 0..*s {
                    before[first_of_layer[l] + k] = first_of_layer[l];
                }
            }
            let per_step = (0..n)
                .map(|i| {
                    let pool = before[i].max(1);
                    (
                        kind(allow_human && i > 0),
                        prop::collection::vec(0..pool, 1..=2),
                        prop::collection::vec(fate(), 0..=2),
                        prop::bool::weighted(if allow_doomed { 0.08 } else { 0.0 }),
                        prop::bool::weighted(0.8),
                        any::<bool>(),
                    )
                })
                .collect::<Vec<_>>();
            (per_step, prop::collection::vec(any::<bool>(), 32))
        })
        .prop_map(|(per_step, values)| {
            let mut steps = Vec::new();
            for (i, (kind, mut parents, fates, doomed, completes, _)) in
                per_step.iter().cloned().enumerate()
            {
                let kind = if i == 0 && kind == Kind::Human {
                    Kind::Machine
                } else {
                    kind
                };
                parents.sort_unstable();
                parents.dedup();
                if i == 0 {
                    parents.clear();
                }
                steps.push(GenStep {
                    kind,
                    parents,
                    fates: if kind == Kind::Machine {
                        fates
                    } else {
                        Vec::new()
                    },
                    doomed: kind == Kind::Machine && doomed,
                    completes,
                });
            }
            // Edges, grouped by source. A gateway's edges are conditional on its own keys
            // and end with a default edge (a gateway that chooses no way fails, which is
            // tested on its own); some machine steps' edges are all conditional, so that
            // every branch may be dead.
            let mut by_source: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for (i, s) in steps.iter().enumerate() {
                for &p in &s.parents {
                    by_source.entry(p).or_default().push(i);
                }
            }
            let mut edges = Vec::new();
            let mut data = Map::new();
            let mut v = values.into_iter().cycle();
            for (from, targets) in by_source {
                let gateway = steps[from].kind == Kind::Gateway;
                let conditional =
                    gateway || (steps[from].kind == Kind::Machine && per_step[from].5);
                for (j, &to) in targets.iter().enumerate() {
                    let last = j + 1 == targets.len();
                    if gateway && last {
                        edges.push(GenEdge {
                            from,
                            to,
                            condition: None,
                            default: true,
                        });
                    } else if conditional {
                        let key = format!("c{from}_{to}");
                        data.insert(key.clone(), Value::Bool(v.next().unwrap()));
                        edges.push(GenEdge {
                            from,
                            to,
                            condition: Some(key),
                            default: false,
                        });
                    } else {
                        edges.push(GenEdge {
                            from,
                            to,
                            condition: None,
                            default: false,
                        });
                    }
                }
            }
            Graph { steps, edges, data }
        })
}

// ----------------------------------------------------------------------------------------
// The random driver

/// A small deterministic generator for the driver's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug)]
enum Action {
    /// Answer an outstanding dispatch as its plan says.
    Answer(String),
    /// Fire a scheduled timer.
    Fire(String, TimerKind),
    /// Complete an open task.
    Complete(String),
    /// Deliver a late result (stale by now).
    Late(usize),
    /// Deliver an applied input again (a duplicate).
    Duplicate(usize),
}

struct Run {
    sim: Sim,
    /// How many attempts of each step were answered or lost so far.
    attempts: BTreeMap<String, usize>,
    /// Late results waiting to be delivered.
    late: Vec<Input>,
    /// Inputs applied so far (for duplicates).
    applied: Vec<Input>,
    refused: usize,
}

fn drive(g: &Graph, seed: u64) -> Run {
    let wf = Arc::new(common::workflow(&g.yaml()));
    let mut run = Run {
        sim: Sim::start_wf(wf, Value::Object(g.data.clone())),
        attempts: BTreeMap::new(),
        late: Vec::new(),
        applied: Vec::new(),
        refused: 0,
    };
    let mut rng = Rng(seed);
    let plan = |step: &str| -> &GenStep { &g.steps[step[1..].parse::<usize>().unwrap()] };
    for _ in 0..5_000 {
        // What may happen now.
        let mut actions = Vec::new();
        for d in &run.sim.dispatched {
            let tried = run.attempts.get(&*d.step).copied().unwrap_or(0);
            let p = plan(&d.step);
            match p.fates.get(tried) {
                Some(Fate::Crash) | Some(Fate::Slow) if !p.doomed => {} // only its timeout
                _ => actions.push(Action::Answer(d.step.to_string())),
            }
        }
        for ((step, _), t) in &run.sim.timers {
            match t.kind {
                TimerKind::Timeout => {
                    let tried = run.attempts.get(step).copied().unwrap_or(0);
                    let p = plan(step);
                    if !p.doomed && matches!(p.fates.get(tried), Some(Fate::Crash | Fate::Slow)) {
                        actions.push(Action::Fire(step.clone(), TimerKind::Timeout));
                    }
                }
                kind => actions.push(Action::Fire(step.clone(), kind)),
            }
        }
        for step in run.sim.tasks.keys() {
            if plan(step).completes {
                actions.push(Action::Complete(step.clone()));
            }
        }
        let real = actions.len();
        if real == 0 && run.late.is_empty() {
            break;
        }
        for i in 0..run.late.len() {
            actions.push(Action::Late(i));
        }
        if !run.applied.is_empty() && rng.below(4) == 0 {
            actions.push(Action::Duplicate(rng.below(run.applied.len())));
        }
        let action = actions.swap_remove(rng.below(actions.len()));
        perform(&mut run, g, action);
    }
    run
}

fn perform(run: &mut Run, g: &Graph, action: Action) {
    let plan = |step: &str| -> &GenStep { &g.steps[step[1..].parse::<usize>().unwrap()] };
    match action {
        Action::Answer(step) => {
            let d = run.sim.dispatch_of(&step).unwrap().clone();
            let tried = run.attempts.entry(step.clone()).or_default();
            let fate = plan(&step).fates.get(*tried).copied();
            *tried += 1;
            let input = if plan(&step).doomed {
                Input::StepFailed {
                    step: d.step.clone(),
                    token: d.token,
                    error: StepError::fatal("doomed", "this step always fails"),
                    worker: None,
                }
            } else if fate == Some(Fate::Fail) {
                Input::StepFailed {
                    step: d.step.clone(),
                    token: d.token,
                    error: StepError::retryable("transient"),
                    worker: None,
                }
            } else {
                Input::StepSucceeded {
                    step: d.step.clone(),
                    token: d.token,
                    output: common::obj(json!({ format!("out_{step}"): step })),
                    worker: None,
                }
            };
            run.sim
                .apply(input.clone())
                .unwrap_or_else(|r| panic!("answer of {step} refused: {r}"));
            run.applied.push(input);
        }
        Action::Fire(step, kind) => {
            if kind == TimerKind::Timeout {
                // The attempt was lost or is slow: its result, if any, comes later.
                let d = run.sim.dispatch_of(&step).unwrap().clone();
                let tried = run.attempts.entry(step.clone()).or_default();
                let fate = plan(&step).fates[*tried];
                *tried += 1;
                if fate == Fate::Slow {
                    run.late.push(Input::StepSucceeded {
                        step: d.step.clone(),
                        token: d.token,
                        output: common::obj(json!({ "late": step })),
                        worker: None,
                    });
                }
            }
            let t = run.sim.timer(&step, kind).unwrap().clone();
            run.sim.fire(&step, kind);
            run.applied.push(Input::Timer {
                step: t.step,
                kind,
                token: t.token,
            });
        }
        Action::Complete(step) => {
            let data = json!({ format!("h_{step}"): "done" });
            run.sim
                .complete(&step, "anyone", data)
                .unwrap_or_else(|r| panic!("completion of {step} refused: {r}"));
        }
        Action::Late(i) => {
            let input = run.late.swap_remove(i);
            let r = run.sim.apply(input.clone());
            assert!(
                matches!(&r, Err(e) if e.is_stale()),
                "a late result was not stale: {input:?} -> {r:?}"
            );
            run.refused += 1;
        }
        Action::Duplicate(i) => {
            let input = run.applied[i].clone();
            let r = run.sim.apply(input.clone());
            assert!(
                matches!(&r, Err(e) if e.is_stale()),
                "a duplicate was applied: {input:?} -> {r:?}"
            );
            run.refused += 1;
        }
    }
}

/// What every run must satisfy, with or without fatal failures.
fn check_common(g: &Graph, run: &Run) -> Result<(), TestCaseError> {
    let sim = &run.sim;
    let status = sim.status();
    prop_assert!(
        matches!(
            status,
            InstanceStatus::Completed | InstanceStatus::Failed | InstanceStatus::Waiting
        ),
        "run ended {status:?}; running {:?}, timers {:?}\n{}",
        sim.running(),
        sim.timers.keys().collect::<Vec<_>>(),
        g.yaml()
    );
    if status == InstanceStatus::Waiting {
        prop_assert!(!sim.tasks.is_empty(), "WAITING with no open task");
        prop_assert!(sim.dispatched.is_empty() && sim.timers.is_empty());
        for t in sim.tasks.keys() {
            prop_assert!(!g.steps[t[1..].parse::<usize>().unwrap()].completes);
        }
    }
    if status.is_terminal() {
        prop_assert!(
            sim.timers.is_empty(),
            "timers left: {:?}",
            sim.timers.keys()
        );
        prop_assert!(sim.tasks.is_empty(), "tasks left: {:?}", sim.tasks.keys());
        prop_assert_eq!(
            sim.types()
                .iter()
                .filter(|t| t.starts_with("Workflow") && **t != "WorkflowStarted")
                .count(),
            1
        );
    }
    for i in 0..g.steps.len() {
        let n = sim.executed(&name(i));
        prop_assert!(n <= 1, "step {} executed {n} times\n{}", name(i), g.yaml());
    }
    if status == InstanceStatus::Failed {
        let failed = sim.inst.failed_step.as_deref().unwrap();
        prop_assert!(g.steps[failed[1..].parse::<usize>().unwrap()].doomed);
    }
    Ok(())
}

fn proptest_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config(200))]

    /// Without fatal failures, a run gives exactly what the graph says, whatever the order of
    /// completions, lost and slow attempts, duplicates and stale deliveries; joins run once.
    #[test]
    fn random_dags_end_as_the_graph_predicts_in_any_order(
        g in graph(true, false),
        seed_a in any::<u64>(),
        seed_b in any::<u64>(),
    ) {
        let expected = g.oracle();
        let a = drive(&g, seed_a);
        check_common(&g, &a)?;
        let b = drive(&g, seed_b);
        check_common(&g, &b)?;
        for run in [&a, &b] {
            let sim = &run.sim;
            prop_assert_eq!(sim.status(), expected.status, "\n{}", g.yaml());
            let executed: BTreeSet<String> = (0..g.steps.len())
                .map(name)
                .filter(|s| sim.executed(s) == 1)
                .collect();
            prop_assert_eq!(&executed, &expected.executed, "\n{}", g.yaml());
            let open: BTreeSet<String> = sim.tasks.keys().cloned().collect();
            prop_assert_eq!(&open, &expected.open);
            prop_assert_eq!(sim.ctx(), &expected.context, "\n{}", g.yaml());
            for s in &expected.open {
                prop_assert_eq!(sim.step_status(s), StepStatus::Waiting);
            }
        }
        // The same graph in two orders: the same end.
        prop_assert_eq!(a.sim.ctx(), b.sim.ctx());
        prop_assert_eq!(a.sim.status(), b.sim.status());
    }

    /// With steps that fail for good, a run ends FAILED (on such a step) or, when none was
    /// reached, as the graph predicts; no step runs twice and nothing is left behind.
    #[test]
    fn random_dags_with_fatal_failures_end_cleanly(
        g in graph(true, true),
        seed in any::<u64>(),
    ) {
        let run = drive(&g, seed);
        check_common(&g, &run)?;
        if run.sim.status() != InstanceStatus::Failed {
            let expected = g.oracle();
            if !g.has_doomed() || expected.executed.iter().all(|s| !g.steps[s[1..].parse::<usize>().unwrap()].doomed) {
                prop_assert_eq!(run.sim.status(), expected.status);
                prop_assert_eq!(run.sim.ctx(), &expected.context);
            }
        } else {
            // After the failure nothing ran on: no step started after WorkflowFailed.
            let types = run.sim.types();
            let at = types.iter().position(|t| *t == "WorkflowFailed").unwrap();
            prop_assert_eq!(at, types.len() - 1, "events after WorkflowFailed: {:?}", &types[at..]);
        }
    }
}

// ----------------------------------------------------------------------------------------
// Bad input never panics

fn corpus() -> Vec<String> {
    let mut files = vec![
        r#"
name: expense_approval
version: "1.2.0"
initial_step: submit
steps:
  submit:
    type: machine
    handler: set
    config: { submitted: true }
    retry: { max_attempts: 5, initial_interval: 200ms, backoff: 2.0, max_interval: 30s, jitter: true, non_retryable: [validation] }
    timeout: 30s
  manager_approval:
    type: human
    title: Approve the expense
    assignee: manager@example.com
    candidates: [a@example.com]
    form: { type: object, required: [approved], properties: { approved: { type: boolean } } }
    due: 48h
  route: { type: gateway }
  cool_off: { type: timer, duration: 2s }
  later: { type: timer, until_expr: "context.when" }
  pay: { type: machine, handler: pay }
  reject: { type: machine, handler: set }
  refund: { type: machine, handler: set }
  escalate: { type: machine, handler: set }
edges:
  - { from: submit, to: manager_approval }
  - { from: manager_approval, to: cool_off }
  - { from: cool_off, to: route }
  - { from: route, to: pay, condition: "context.approved == true" }
  - { from: route, to: later, condition: "context.get('score', 0) >= 80" }
  - { from: route, to: reject, default: true }
  - { from: pay, to: refund, on: failure }
  - { from: manager_approval, to: escalate, on: timeout }
"#
        .to_string(),
        r#"
name: loop
version: "0.1.0"
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
"#
        .to_string(),
        r#"{"name":"j","version":"1.0.0","steps":{"a":{"type":"machine","handler":"h"},"b":{"type":"gateway"}},"edges":[{"from":"a","to":"b"}]}"#
            .to_string(),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if let Ok(text) = std::fs::read_to_string(&p) {
                files.push(text);
            }
        }
    }
    files
}

const TOKENS: &[&str] = &[
    ":",
    "{",
    "}",
    "[",
    "]",
    "- ",
    ",",
    "\n",
    "  ",
    "\"",
    "'",
    "#",
    "&a ",
    "*a",
    "!!binary ",
    "<<: *a",
    "type: timer",
    "type: human",
    "type: robot",
    "on: timeout",
    "on: failure",
    "default: true",
    "condition: \"context.x >\"",
    "condition: \"context.x.y.z[0] == 1\"",
    "99999999999999999999",
    "1e400",
    ".nan",
    "-1",
    "~",
    "null",
    "0s",
    "999999999h",
    "until: \"9999-12-31T23:59:59Z\"",
    "until_expr: \"context.t\"",
    "max_attempts: 0",
    "backoff: .inf",
    "initial_step: nope",
    "\u{0}",
    "\u{feff}",
    "é",
    "\t",
    "%YAML 1.2\n---\n",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..20).prop_map(|(a, b)| Mutation::Delete(a, b)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, b)| Mutation::Insert(a, b)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn char_boundary(s: &str, i: usize) -> usize {
    let mut i = i % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(text: &str, m: &Mutation) -> String {
    let mut s = text.to_string();
    match *m {
        Mutation::Delete(at, len) => {
            let a = char_boundary(&s, at);
            let b = char_boundary(&s, (a + len).min(s.len()));
            if b > a {
                s.replace_range(a..b, "");
            }
        }
        Mutation::Insert(at, tok) => {
            let a = char_boundary(&s, at);
            s.insert_str(a, TOKENS[tok]);
        }
        Mutation::DuplicateLine(i) => {
            let mut lines: Vec<&str> = s.lines().collect();
            if !lines.is_empty() {
                let i = i % lines.len();
                lines.insert(i, lines[i]);
            }
            s = lines.join("\n");
        }
        Mutation::SwapLines(i, j) => {
            let mut lines: Vec<&str> = s.lines().collect();
            if !lines.is_empty() {
                let (i, j) = (i % lines.len(), j % lines.len());
                lines.swap(i, j);
            }
            s = lines.join("\n");
        }
        Mutation::Truncate(at) => {
            let a = char_boundary(&s, at);
            s.truncate(a);
        }
    }
    s
}

/// Parses and compiles; a valid result is also run through the core (every attempt
/// succeeds, every task is completed, every timer fires), which must not panic either.
fn load_and_run(text: &str) {
    let Ok(def) = weir::parse_definition(text) else {
        return;
    };
    let Ok(wf) = weir::compile(def) else {
        return;
    };
    let mut sim = Sim::start_wf(Arc::new(wf), json!({ "approved": false, "when": 0 }));
    for _ in 0..200 {
        if sim.status().is_terminal() {
            break;
        }
        if let Some(step) = sim.running().first().cloned() {
            sim.succeed(&step, json!({}));
        } else if let Some((step, kind)) = sim
            .timers
            .values()
            .next()
            .map(|t| (t.step.to_string(), t.kind))
        {
            sim.fire(&step, kind);
        } else if let Some(step) = sim.tasks.keys().next().cloned() {
            // The form may refuse `{}`: then this run stops here.
            if sim
                .complete(&step, "manager@example.com", json!({ "approved": true }))
                .is_err()
            {
                break;
            }
        } else {
            break;
        }
    }
}

proptest! {
    #![proptest_config(proptest_config(300))]

    #[test]
    fn arbitrary_text_never_panics_the_loader(text in ".{0,400}") {
        load_and_run(&text);
    }

    #[test]
    fn yaml_like_text_never_panics_the_loader(
        parts in prop::collection::vec(0..TOKENS.len(), 0..60),
    ) {
        let text: String = parts.iter().map(|&i| TOKENS[i]).collect();
        load_and_run(&text);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        file in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let files = corpus();
        let mut text = file.get(&files).clone();
        for m in &mutations {
            text = mutate(&text, m);
        }
        load_and_run(&text);
    }

    #[test]
    fn arbitrary_conditions_never_panic(
        source in prop_oneof![
            ".{0,80}",
            prop::collection::vec(
                prop::sample::select(vec![
                    "context", ".", "x", "y", "get", "(", ")", "'x'", "\"s\"", "0", "1", "-1",
                    "9223372036854775807", "1.5", "==", "!=", "<", ">=", "&&", "||", "!", "+",
                    "-", "*", "/", "%", "?", ":", "[", "]", "{", "}", ",", "in", "size", "has",
                    "true", "false", "null", "all", "exists", "map", "filter", "e", "int",
                    "string", "double", "timestamp", "matches", "startsWith", "b'x'", "u",
                ]),
                0..25,
            ).prop_map(|v| v.join(" ")),
        ],
        x in prop_oneof![
            Just(json!(null)), Just(json!(1)), Just(json!(-1)), Just(json!(1.5)),
            Just(json!(i64::MAX)), Just(json!(u64::MAX)), Just(json!("s")),
            Just(json!([1, "a", null])), Just(json!({ "y": { "x": 2 } })), Just(json!(true)),
        ],
    ) {
        if let Ok(c) = weir::condition::Condition::compile(&source) {
            for ctx in [json!({}), json!({ "x": x.clone(), "y": x.clone() })] {
                let ctx = common::obj(ctx);
                let _ = c.evaluate(&ctx);
                let _ = c.evaluate_time(&ctx);
            }
        }
    }
}

#[test]
fn every_corpus_file_is_valid() {
    for text in corpus() {
        let def = weir::parse_definition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        weir::compile(def).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}

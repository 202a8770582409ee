//! The compiled, checked form of a definition that the core runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::graph::Graph;
use super::{DefinitionError, Problem};
use crate::condition::Condition;
use crate::form::FormSchema;
use crate::model::{Definition, EdgeOn, OutcomeChoice, RetryPolicy, StepDef};
use crate::template::{Path, Template};
use crate::time::Timestamp;

/// Index of a step in [`Workflow::steps`].
pub type StepId = usize;
/// Index of an edge in [`Workflow::edges`] (the same as in the definition's `edges`).
pub type EdgeId = usize;

/// The queue a machine step goes to when it names none.
pub const DEFAULT_QUEUE: &str = "default";

/// A checked definition, ready to run. Immutable and shared (`Arc<Workflow>`).
#[derive(Debug)]
pub struct Workflow {
    /// The definition as written.
    pub definition: Definition,
    /// Its name.
    pub name: Arc<str>,
    /// Its version as written.
    pub version: Arc<str>,
    /// Its version, parsed.
    pub semver: semver::Version,
    /// Steps, indexed by [`StepId`].
    pub steps: Vec<CompiledStep>,
    /// Edges, indexed by [`EdgeId`].
    pub edges: Vec<CompiledEdge>,
    /// Where instances start.
    pub initial: StepId,
    /// Canonical JSON of the definition: equal text means equal definitions.
    pub fingerprint: String,
    /// The loops (steps on a common cycle) and the edges that leave them.
    pub(crate) loops: Vec<Loop>,
    index: crate::NameMap<Arc<str>, StepId>,
}

/// Steps that lie on a common cycle, and the edges that leave them. While a loop goes round,
/// an exit edge not taken this turn may be taken the next: it is decided dead only when
/// nothing in the loop is active or pending any more (see `core::transition`).
#[derive(Debug)]
pub(crate) struct Loop {
    /// The loop's steps.
    pub steps: Vec<StepId>,
    /// Edges from a step of the loop to a step outside it.
    pub exits: Vec<EdgeId>,
}

/// One checked step.
#[derive(Debug)]
pub struct CompiledStep {
    /// Its name.
    pub name: Arc<str>,
    /// What it does.
    pub kind: CompiledKind,
    /// Edges leaving it, in definition order.
    pub outgoing: Vec<EdgeId>,
    /// Incoming edges that are not loop edges: a join waits for all of them to resolve.
    pub forward_in: usize,
}

/// What a step does, with everything precompiled.
#[derive(Debug)]
pub enum CompiledKind {
    /// Run by a handler.
    Machine {
        /// Handler name.
        handler: Arc<str>,
        /// Handler configuration.
        config: Arc<Value>,
        /// Worker queue.
        queue: Arc<str>,
        /// Retry policy (one attempt when the step has none).
        retry: RetryPolicy,
        /// One attempt's limit.
        timeout: Option<Duration>,
    },
    /// A task for a person.
    Human {
        /// What the task list shows (the step's `title`), rendered when the task opens.
        title: Option<Template>,
        /// Longer text shown with the form, if any, rendered when the task opens.
        description: Option<Template>,
        /// The context fields shown with the task (`show`), with their form titles.
        show: Vec<ShowField>,
        /// The outcome buttons, in order (`outcomes`).
        outcomes: Vec<OutcomeChoice>,
        /// The one person it is assigned to, if any.
        assignee: Option<String>,
        /// Who else may complete it (empty: only the assignee, or anyone when there is none).
        candidates: Vec<String>,
        /// Groups whose members may also complete it.
        candidate_groups: Vec<String>,
        /// The assignee computed from the context when the task opens (instead of `assignee`).
        assignee_expr: Option<Condition>,
        /// Candidates computed from the context when the task opens (instead of `candidates`).
        candidates_expr: Option<Condition>,
        /// The compiled form.
        form: Option<FormSchema>,
        /// Overdue after.
        due: Option<Duration>,
        /// A reminder this often while the task is open.
        remind_every: Option<Duration>,
    },
    /// Routing only.
    Gateway,
    /// A durable wait.
    Timer(TimerSpec),
    /// A wait for a message.
    Event {
        /// The message name.
        event: Arc<str>,
        /// The correlation key's expression; `None`: signals only.
        correlation: Option<Condition>,
        /// The context key the data goes under; `None`: merged key by key.
        output: Option<Arc<str>>,
        /// How long to wait at most.
        timeout: Option<Duration>,
    },
}

/// A context field a human step shows (an entry of its `show`).
#[derive(Debug)]
pub struct ShowField {
    /// Where it is in the context.
    pub path: Path,
    /// The form schema's `title` of the same field, if it has one.
    pub title: Option<String>,
}

/// When a timer step fires.
#[derive(Debug)]
pub enum TimerSpec {
    /// This long after the step is reached.
    After(Duration),
    /// At this time.
    At(Timestamp),
    /// At the time this expression gives.
    Expr(Condition),
}

/// One checked edge.
#[derive(Debug)]
pub struct CompiledEdge {
    /// Source step.
    pub from: StepId,
    /// Target step.
    pub to: StepId,
    /// Compiled condition.
    pub condition: Option<Condition>,
    /// Taken when no conditional sibling matched.
    pub default: bool,
    /// Success, failure or timeout.
    pub on: EdgeOn,
    /// Closes a loop: taking it restarts the target, and joins do not wait for it.
    pub back: bool,
    /// Leaves a loop: when not taken, it is dead only once the loop is over.
    pub exit: bool,
}

impl Workflow {
    /// A step's index by name.
    pub fn step_id(&self, name: &str) -> Option<StepId> {
        self.index.get(name).copied()
    }

    /// A step by index.
    pub fn step(&self, id: StepId) -> &CompiledStep {
        &self.steps[id]
    }

    /// `name@version`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// Checks a definition and compiles it. Every problem is reported, each naming its place.
pub fn compile(def: Definition) -> Result<Workflow, DefinitionError> {
    let mut problems = Vec::new();
    let mut problem = |at: String, message: String| problems.push(Problem { at, message });

    if !is_identifier(&def.name) {
        problem(
            "name".into(),
            format!(
                "{:?} is not a valid workflow name: use 1-128 letters, digits, '_', '-' or '.'",
                def.name
            ),
        );
    }
    let semver = match semver::Version::parse(def.version.trim()) {
        Ok(v) => Some(v),
        Err(e) => {
            problem(
                "version".into(),
                format!(
                    "{:?} is not a semantic version ({e}); write it like \"1.2.0\"",
                    def.version
                ),
            );
            None
        }
    };
    if def.steps.is_empty() {
        problem("steps".into(), "a workflow needs at least one step".into());
    }

    let names: Vec<Arc<str>> = def.steps.keys().map(|k| Arc::from(k.as_str())).collect();
    let index: crate::NameMap<Arc<str>, StepId> = names
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, n)| (n, i))
        .collect();

    // Steps.
    let mut steps = Vec::with_capacity(def.steps.len());
    for (name, step) in &def.steps {
        let at = format!("step {name:?}");
        if !is_identifier(name) {
            problem(
                at.clone(),
                "invalid step name: use 1-128 letters, digits, '_', '-' or '.'".into(),
            );
        }
        let kind = match step {
            StepDef::Machine(m) => {
                if m.handler.trim().is_empty() {
                    problem(
                        at.clone(),
                        "machine step has no handler: add `handler: NAME`".into(),
                    );
                }
                let retry = m.retry.clone().unwrap_or_else(RetryPolicy::no_retry);
                for msg in retry_problems(&retry) {
                    problem(at.clone(), msg);
                }
                if m.timeout == Some(Duration::ZERO) {
                    problem(at.clone(), "timeout must be longer than zero".into());
                }
                let queue = m.queue.as_deref().unwrap_or(DEFAULT_QUEUE);
                if !is_identifier(queue) {
                    problem(
                        at.clone(),
                        format!(
                            "invalid queue name {queue:?}: use letters, digits, '_', '-' or '.'"
                        ),
                    );
                }
                CompiledKind::Machine {
                    handler: Arc::from(m.handler.as_str()),
                    config: Arc::new(m.config.clone()),
                    queue: Arc::from(queue),
                    retry,
                    timeout: m.timeout,
                }
            }
            StepDef::Human(h) => {
                let form = match &h.form {
                    Some(schema) => match FormSchema::compile(schema) {
                        Ok(f) => Some(f),
                        Err(e) => {
                            problem(at.clone(), e.to_string());
                            None
                        }
                    },
                    None => None,
                };
                if h.assignee.as_deref().is_some_and(|a| a.trim().is_empty())
                    || h.candidates.iter().any(|c| c.trim().is_empty())
                {
                    problem(
                        at.clone(),
                        "assignee and candidates must not be empty".into(),
                    );
                }
                if h.candidate_groups.iter().any(|g| g.trim().is_empty()) {
                    problem(
                        at.clone(),
                        "candidate_groups must not be empty names".into(),
                    );
                }
                if h.due == Some(Duration::ZERO) {
                    problem(at.clone(), "due must be longer than zero".into());
                }
                let mut template = |field: &str, text: &Option<String>| {
                    let parsed = text.as_deref().map(Template::parse).transpose();
                    parsed.unwrap_or_else(|e| {
                        problem(at.clone(), format!("`{field}`: {e}"));
                        None
                    })
                };
                let title = template("title", &h.title);
                let description = template("description", &h.description);
                let show = show_fields(&h.show, h.form.as_ref(), &mut |m| problem(at.clone(), m));
                let outcomes =
                    outcome_choices(&h.outcomes, form.as_ref(), &mut |m| problem(at.clone(), m));
                if h.remind_every.is_some_and(|r| r < Duration::from_secs(1)) {
                    problem(at.clone(), "remind_every must be at least 1s".into());
                }
                if h.assignee.is_some() && h.assignee_expr.is_some() {
                    problem(
                        at.clone(),
                        "name either a fixed `assignee` or a computed `assignee_expr`, not both"
                            .into(),
                    );
                }
                if !h.candidates.is_empty() && h.candidates_expr.is_some() {
                    problem(
                        at.clone(),
                        "name either fixed `candidates` or computed `candidates_expr`, not both"
                            .into(),
                    );
                }
                let mut compile_names = |field: &str, source: &Option<String>| {
                    source
                        .as_deref()
                        .and_then(|src| match Condition::compile(src) {
                            Ok(c) => Some(c),
                            Err(e) => {
                                problem(at.clone(), format!("`{field}` does not compile: {e}"));
                                None
                            }
                        })
                };
                let assignee_expr = compile_names("assignee_expr", &h.assignee_expr);
                let candidates_expr = compile_names("candidates_expr", &h.candidates_expr);
                CompiledKind::Human {
                    title,
                    description,
                    show,
                    outcomes,
                    assignee: h.assignee.clone(),
                    candidates: h.candidates.clone(),
                    candidate_groups: h.candidate_groups.clone(),
                    assignee_expr,
                    candidates_expr,
                    form,
                    due: h.due,
                    remind_every: h.remind_every,
                }
            }
            StepDef::Gateway(_) => CompiledKind::Gateway,
            StepDef::Timer(t) => {
                let given = [
                    t.duration.is_some(),
                    t.until.is_some(),
                    t.until_expr.is_some(),
                ];
                if given.iter().filter(|g| **g).count() != 1 {
                    problem(
                        at.clone(),
                        "a timer needs exactly one of `duration`, `until` or `until_expr`".into(),
                    );
                }
                let spec = if let Some(d) = t.duration {
                    Some(TimerSpec::After(d))
                } else if let Some(until) = &t.until {
                    match Timestamp::parse_rfc3339(until) {
                        Ok(ts) => Some(TimerSpec::At(ts)),
                        Err(e) => {
                            problem(
                                at.clone(),
                                format!("`until` {until:?} is not an RFC 3339 time: {e}"),
                            );
                            None
                        }
                    }
                } else if let Some(expr) = &t.until_expr {
                    match Condition::compile(expr) {
                        Ok(c) => Some(TimerSpec::Expr(c)),
                        Err(e) => {
                            problem(at.clone(), format!("`until_expr` does not compile: {e}"));
                            None
                        }
                    }
                } else {
                    None
                };
                CompiledKind::Timer(spec.unwrap_or(TimerSpec::After(Duration::ZERO)))
            }
            StepDef::Event(ev) => {
                if ev.event.trim().is_empty() {
                    problem(
                        at.clone(),
                        "event step has no `event`: add `event: MESSAGE_NAME`".into(),
                    );
                } else if !is_identifier(&ev.event) {
                    problem(
                        at.clone(),
                        format!(
                            "invalid event name {:?}: use 1-128 letters, digits, '_', '-' or '.'",
                            ev.event
                        ),
                    );
                }
                let correlation = match &ev.correlation {
                    Some(src) => match Condition::compile(src) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            problem(at.clone(), format!("`correlation` does not compile: {e}"));
                            None
                        }
                    },
                    None => None,
                };
                if ev.output.as_deref().is_some_and(|o| o.trim().is_empty()) {
                    problem(at.clone(), "`output` must not be empty".into());
                }
                if ev.timeout == Some(Duration::ZERO) {
                    problem(at.clone(), "timeout must be longer than zero".into());
                }
                CompiledKind::Event {
                    event: Arc::from(ev.event.as_str()),
                    correlation,
                    output: ev.output.as_deref().map(Arc::from),
                    timeout: ev.timeout,
                }
            }
        };
        steps.push(CompiledStep {
            name: Arc::from(name.as_str()),
            kind,
            outgoing: Vec::new(),
            forward_in: 0,
        });
    }

    // Edges.
    let mut edges = Vec::with_capacity(def.edges.len());
    let mut pairs = Vec::with_capacity(def.edges.len());
    let mut seen = std::collections::HashSet::new();
    for (i, e) in def.edges.iter().enumerate() {
        let at = format!("edge {i} ({} -> {})", e.from, e.to);
        let from = index.get(e.from.as_str()).copied();
        let to = index.get(e.to.as_str()).copied();
        if from.is_none() {
            problem(at.clone(), format!("unknown step {:?} in `from`", e.from));
        }
        if to.is_none() {
            problem(at.clone(), format!("unknown step {:?} in `to`", e.to));
        }
        if e.default && e.condition.is_some() {
            problem(
                at.clone(),
                "an edge is either `default` or has a `condition`, not both".into(),
            );
        }
        if !seen.insert((&e.from, &e.to, e.on)) {
            problem(at.clone(), "duplicate edge (same from, to and on)".into());
        }
        let condition = match &e.condition {
            Some(src) => match Condition::compile(src) {
                Ok(c) => Some(c),
                Err(err) => {
                    problem(at.clone(), err.to_string());
                    None
                }
            },
            None => None,
        };
        if let (Some(from), Some(to)) = (from, to) {
            let src = &steps[from];
            match (e.on, &src.kind) {
                (EdgeOn::Failure, CompiledKind::Human { .. }) => problem(
                    at.clone(),
                    format!(
                        "`on: failure` from {:?}, which cannot fail: only machine, gateway, timer and event steps fail",
                        e.from
                    ),
                ),
                (EdgeOn::Timeout, CompiledKind::Machine { timeout: None, .. }) => problem(
                    at.clone(),
                    format!("`on: timeout` from {:?}, which has no `timeout`", e.from),
                ),
                (EdgeOn::Timeout, CompiledKind::Human { due: None, .. }) => problem(
                    at.clone(),
                    format!("`on: timeout` from {:?}, which has no `due`", e.from),
                ),
                (EdgeOn::Timeout, CompiledKind::Event { timeout: None, .. }) => problem(
                    at.clone(),
                    format!("`on: timeout` from {:?}, which has no `timeout`", e.from),
                ),
                (EdgeOn::Timeout, CompiledKind::Gateway | CompiledKind::Timer(_)) => problem(
                    at.clone(),
                    format!("`on: timeout` from {:?}, which cannot time out", e.from),
                ),
                _ => {}
            }
            steps[from].outgoing.push(i);
            pairs.push((from, to));
            edges.push(CompiledEdge {
                from,
                to,
                condition,
                default: e.default,
                on: e.on,
                back: false,
                exit: false,
            });
        }
    }
    // At most one default edge per (source, on).
    let mut defaults = std::collections::HashSet::new();
    for (i, e) in edges.iter().enumerate() {
        if e.default && !defaults.insert((e.from, e.on)) {
            problem(
                format!("edge {i}"),
                format!(
                    "step {:?} has more than one default edge",
                    names.get(e.from).map(|n| &**n).unwrap_or("?")
                ),
            );
        }
    }

    // The initial step.
    let initial = match &def.initial_step {
        Some(name) => match index.get(name.as_str()) {
            Some(&id) => Some(id),
            None => {
                problem("initial_step".into(), format!("unknown step {name:?}"));
                None
            }
        },
        None => {
            let mut has_in = vec![false; steps.len()];
            for &(_, to) in &pairs {
                has_in[to] = true;
            }
            let roots: Vec<StepId> = (0..steps.len()).filter(|&s| !has_in[s]).collect();
            match roots.as_slice() {
                [one] => Some(*one),
                [] if !steps.is_empty() => {
                    problem(
                        "initial_step".into(),
                        "every step has an incoming edge: set `initial_step`".into(),
                    );
                    None
                }
                [] => None,
                many => {
                    let list: Vec<&str> = many.iter().map(|&s| &*names[s]).collect();
                    problem(
                        "initial_step".into(),
                        format!(
                            "ambiguous: steps {} have no incoming edge; set `initial_step` to one",
                            list.join(", ")
                        ),
                    );
                    None
                }
            }
        }
    };

    // Graph rules, only when the edges themselves are sound.
    let mut back = vec![false; pairs.len()];
    let mut comp = Vec::new();
    if let Some(initial) = initial {
        if edges.len() == def.edges.len() {
            let outgoing: Vec<Vec<usize>> = steps.iter().map(|s| s.outgoing.clone()).collect();
            let graph = Graph {
                edges: &pairs,
                outgoing: &outgoing,
            };
            let reachable = graph.reachable_from(initial);
            for (s, ok) in reachable.iter().enumerate() {
                if !ok {
                    problem(
                        format!("step {:?}", names[s]),
                        format!(
                            "unreachable from the initial step {:?}: add an edge to it or remove it",
                            names[initial]
                        ),
                    );
                }
            }
            // An end is a step with no success edge: the path finishes there.
            let ends: Vec<bool> = steps
                .iter()
                .map(|s| !s.outgoing.iter().any(|&e| edges[e].on == EdgeOn::Success))
                .collect();
            let can_end = graph.can_reach(&ends);
            for (s, ok) in can_end.iter().enumerate() {
                if !ok && reachable[s] {
                    problem(
                        format!("step {:?}", names[s]),
                        "no end can be reached from it (a cycle with no exit)".into(),
                    );
                }
            }
            back = graph.back_edges(initial);
            comp = graph.components();
        }
    }

    if !problems.is_empty() {
        return Err(DefinitionError::Invalid {
            name: format!("{}@{}", def.name, def.version),
            problems,
        });
    }
    let (Some(initial), Some(semver)) = (initial, semver) else {
        // Unreachable: a missing initial step or version was reported as a problem above.
        return Err(DefinitionError::Invalid {
            name: format!("{}@{}", def.name, def.version),
            problems: vec![Problem {
                at: "initial_step".into(),
                message: "no initial step".into(),
            }],
        });
    };
    for (e, is_back) in edges.iter_mut().zip(back) {
        e.back = is_back;
        if !is_back {
            steps[e.to].forward_in += 1;
        }
    }
    let loops = loops(&comp, &mut edges, steps.len());
    let fingerprint =
        serde_json::to_string(&def).map_err(|e| DefinitionError::Parse(e.to_string()))?;
    Ok(Workflow {
        name: Arc::from(def.name.as_str()),
        version: Arc::from(def.version.trim()),
        semver,
        steps,
        edges,
        initial,
        fingerprint,
        loops,
        index,
        definition: def,
    })
}

/// Groups the steps of each cycle (a component with several steps, or a step with an edge to
/// itself) and marks the edges that leave it.
fn loops(comp: &[usize], edges: &mut [CompiledEdge], steps: usize) -> Vec<Loop> {
    if comp.len() != steps {
        return Vec::new();
    }
    let mut size = vec![0usize; steps];
    for &c in comp {
        size[c] += 1;
    }
    let mut cyclic: Vec<bool> = size.iter().map(|&n| n > 1).collect();
    for e in edges.iter() {
        if e.from == e.to {
            cyclic[comp[e.from]] = true;
        }
    }
    let mut by_comp: HashMap<usize, Loop> = HashMap::new();
    for (s, &c) in comp.iter().enumerate() {
        if cyclic[c] {
            by_comp
                .entry(c)
                .or_insert_with(|| Loop {
                    steps: Vec::new(),
                    exits: Vec::new(),
                })
                .steps
                .push(s);
        }
    }
    for (i, e) in edges.iter_mut().enumerate() {
        let c = comp[e.from];
        if cyclic[c] && comp[e.to] != c {
            e.exit = true;
            if let Some(l) = by_comp.get_mut(&c) {
                l.exits.push(i);
            }
        }
    }
    let mut loops: Vec<Loop> = by_comp.into_values().collect();
    loops.sort_by_key(|l| l.steps[0]);
    loops
}

fn retry_problems(r: &RetryPolicy) -> Vec<String> {
    let mut out = Vec::new();
    if r.max_attempts == 0 {
        out.push("retry.max_attempts must be at least 1".into());
    }
    if !r.backoff.is_finite() || r.backoff < 1.0 {
        out.push(format!(
            "retry.backoff must be a number >= 1.0, not {}",
            r.backoff
        ));
    }
    if r.initial_interval.is_zero() {
        out.push("retry.initial_interval must be longer than zero".into());
    }
    if r.max_interval < r.initial_interval {
        out.push("retry.max_interval must not be shorter than retry.initial_interval".into());
    }
    out
}

/// Names used in keys, messages and URLs: 1-128 of `[A-Za-z0-9_.-]`.
/// The most fields a step may show, and the most outcome buttons it may offer: a task is a
/// card for a person, not a report.
pub const MAX_SHOWN: usize = 20;

/// Checks a human step's `show` and titles each field from the form schema.
fn show_fields(
    show: &[String],
    form: Option<&Value>,
    problem: &mut dyn FnMut(String),
) -> Vec<ShowField> {
    if show.len() > MAX_SHOWN {
        problem(format!(
            "`show` lists {} fields; at most {MAX_SHOWN} are shown",
            show.len()
        ));
    }
    let mut fields: Vec<ShowField> = Vec::new();
    for text in show {
        match Path::parse(text) {
            Ok(path) if fields.iter().any(|f| f.path == path) => {
                problem(format!("`show` lists {text:?} twice"))
            }
            Ok(path) => {
                let title = form.and_then(|f| form_title(f, &path));
                fields.push(ShowField { path, title });
            }
            Err(e) => problem(format!("`show`: {e}")),
        }
    }
    fields
}

/// The `title` the form schema gives the field at `path` (`properties` of `properties`).
fn form_title(form: &Value, path: &Path) -> Option<String> {
    let mut schema = form;
    for key in path.keys() {
        schema = schema.get("properties")?.get(key)?;
    }
    schema.get("title")?.as_str().map(str::to_string)
}

/// Checks a human step's `outcomes`: names, objects, and data that fits the form.
fn outcome_choices(
    outcomes: &serde_json::Map<String, Value>,
    form: Option<&FormSchema>,
    problem: &mut dyn FnMut(String),
) -> Vec<OutcomeChoice> {
    if outcomes.len() > MAX_SHOWN {
        problem(format!(
            "`outcomes` has {} buttons; at most {MAX_SHOWN} are offered",
            outcomes.len()
        ));
    }
    let mut choices = Vec::new();
    for (name, data) in outcomes {
        if !is_identifier(name) {
            problem(format!(
                "outcome {name:?}: name it with 1-128 letters, digits, '_', '-' or '.'"
            ));
            continue;
        }
        let Value::Object(data) = data else {
            problem(format!(
                "outcome {name:?}: its data must be an object of the fields it sets, like                  {{ approved: true }}"
            ));
            continue;
        };
        if let Some(form) = form {
            if let Err(e) = form.validate_outcome(&Value::Object(data.clone())) {
                problem(format!("outcome {name:?}: {e}"));
                continue;
            }
        }
        choices.push(OutcomeChoice {
            name: name.clone(),
            data: data.clone(),
        });
    }
    choices
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

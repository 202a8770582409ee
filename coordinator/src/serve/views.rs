//! The JSON shapes of the API, built from the engine's types. They are the contract with
//! the dashboard and every other client (field names are never renamed nor removed; new
//! ones may be added), and they carry the OpenAPI schemas.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use weir::api::InstanceView;
use weir::definition::{CompiledKind, Workflow};
use weir::model::{AttemptRecord, EdgeOn, InstanceStatus, StepStatus, Task};
use weir::Timestamp;

/// An instance's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Stored by a start; no coordinator created it yet (it can be canceled).
    Pending,
    /// Steps are running or scheduled.
    Running,
    /// Only open human tasks are left.
    Waiting,
    /// Every path reached its end.
    Completed,
    /// A step failed for good; retry can resume it.
    Failed,
    /// Canceled by a user.
    Canceled,
}

impl From<InstanceStatus> for Status {
    fn from(s: InstanceStatus) -> Status {
        match s {
            InstanceStatus::Pending => Status::Pending,
            InstanceStatus::Running => Status::Running,
            InstanceStatus::Waiting => Status::Waiting,
            InstanceStatus::Completed => Status::Completed,
            InstanceStatus::Failed => Status::Failed,
            InstanceStatus::Canceled => Status::Canceled,
        }
    }
}

impl From<Status> for InstanceStatus {
    fn from(s: Status) -> InstanceStatus {
        match s {
            Status::Pending => InstanceStatus::Pending,
            Status::Running => InstanceStatus::Running,
            Status::Waiting => InstanceStatus::Waiting,
            Status::Completed => InstanceStatus::Completed,
            Status::Failed => InstanceStatus::Failed,
            Status::Canceled => InstanceStatus::Canceled,
        }
    }
}

/// An instance in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct InstanceSummary {
    /// The instance id, as the other routes take it.
    pub id: String,
    /// The workflow (definition) name.
    pub workflow: String,
    /// The definition version it is pinned to.
    pub version: String,
    /// Where it is in its life.
    pub status: Status,
    /// Steps running, retrying, waiting or sleeping now.
    pub current_steps: Vec<String>,
    /// The tenant that owns it, if any.
    pub tenant: Option<String>,
    /// Who started it.
    pub created_by: Option<String>,
    /// When it started (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// When it finished, if it did.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// Why it failed or was canceled.
    pub error: Option<String>,
    /// A delayed start not created yet: when it will be.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub start_at: Option<Timestamp>,
    /// The messages its event steps wait for now (empty when none waits).
    pub waiting_for: Vec<WaitingView>,
}

/// A message an event step of an instance waits for: send it with `POST /messages` (name
/// and key) or, for a step without a key, `POST /instances/{id}/signal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(super) struct WaitingView {
    /// The event step.
    pub step: String,
    /// The message name.
    pub event: String,
    /// The correlation key; absent when the step takes signals only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<&InstanceView> for InstanceSummary {
    fn from(v: &InstanceView) -> InstanceSummary {
        InstanceSummary {
            id: v.id.clone(),
            workflow: v.definition.clone(),
            version: v.version.clone(),
            status: v.status.into(),
            current_steps: v.current_steps.clone(),
            tenant: v.tenant.clone(),
            created_by: v.created_by.clone(),
            created_at: v.created_at,
            updated_at: v.updated_at,
            finished_at: v.finished_at,
            error: v.error.clone(),
            start_at: v.start_at,
            waiting_for: v
                .waiting_for
                .iter()
                .map(|w| WaitingView {
                    step: w.step.clone(),
                    event: w.event.clone(),
                    key: w.key.clone(),
                })
                .collect(),
        }
    }
}

/// An instance with its context, history and open tasks.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct InstanceDetail {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: InstanceSummary,
    /// The context (a JSON object).
    pub context: Value,
    /// The step that failed it.
    pub failed_step: Option<String>,
    /// The attempts, oldest first (finished ones, then those in flight): the first 1,000;
    /// `GET /instances/{id}/history` pages through all of them.
    pub history: Vec<Attempt>,
    /// How many attempt records the instance has in all (kept, and in flight).
    pub history_total: usize,
    /// Older finished records dropped: an instance keeps its last 10,000.
    pub history_dropped: u64,
    /// Its open human tasks.
    pub tasks: Vec<TaskView>,
}

/// One attempt of one step.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct Attempt {
    /// The step.
    pub step: String,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// `running`, `completed`, `failed`, `retrying`, `timed_out`, `canceled`, `skipped`,
    /// `reassigned`, ...
    pub status: String,
    /// When it started.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    /// When it ended.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// The worker, or for a human step the user, that produced the outcome.
    pub worker: Option<String>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// More about the record, for people (for a reassignment: to whom).
    pub note: Option<String>,
}

impl From<&AttemptRecord> for Attempt {
    fn from(r: &AttemptRecord) -> Attempt {
        Attempt {
            step: r.step.to_string(),
            attempt: r.attempt,
            status: enum_name(&r.status),
            started_at: r.started_at,
            finished_at: r.finished_at,
            worker: r.worker.clone(),
            error: r.error.clone(),
            note: r.note.clone(),
        }
    }
}

/// The lowercase name serde gives a unit enum variant.
pub(super) fn enum_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// An open human task.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct TaskView {
    /// Its instance.
    pub instance_id: String,
    /// Its human step; with the instance id it names the task.
    pub step: String,
    /// The title shown to people.
    pub title: Option<String>,
    /// A longer description.
    pub description: Option<String>,
    /// The user it is for.
    pub assignee: Option<String>,
    /// Others who may complete it (anyone, when it names no one).
    pub candidates: Vec<String>,
    /// Groups whose members may complete it.
    pub candidate_groups: Vec<String>,
    /// Who claimed it ("taken by"), if anyone: only they may complete it until released.
    pub claimed_by: Option<String>,
    /// How many reminders it has had.
    pub reminders: u32,
    /// Whether its due time has passed.
    pub overdue: bool,
    /// The JSON Schema its completion data must satisfy.
    pub form: Option<Value>,
    /// When it opened.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it becomes overdue.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due_at: Option<Timestamp>,
    /// The instance's tenant.
    pub tenant: Option<String>,
    /// The instance's workflow name.
    pub workflow: Option<String>,
    /// Whether the caller may complete it (it allows them, and no one else claimed it).
    pub allowed: bool,
    /// The context fields its step shows (`show`), with their values when it opened.
    pub fields: Vec<ShownFieldView>,
    /// Its outcome buttons, in order; `POST .../complete` takes one as `outcome`.
    pub outcomes: Vec<OutcomeView>,
    /// Whether the caller may claim it (it allows them, and it is not claimed).
    pub claimable: bool,
}

/// A context field shown with a task.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct ShownFieldView {
    /// The context path, e.g. `receipt.number`.
    pub path: String,
    /// The form schema's title of the field, when it has one.
    pub title: Option<String>,
    /// Its value when the task opened (null when the context had none); a value over
    /// 1 KiB of JSON is the start of its JSON text, cut with `…`.
    pub value: Option<Value>,
}

/// An outcome button of a task.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct OutcomeView {
    /// Its name, e.g. `approve`.
    pub name: String,
    /// The data it merges into the submission, e.g. `{"approved": true}`.
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, Value>,
}

impl TaskView {
    /// The view of a task for a user.
    pub(super) fn new(t: &Task, workflow: Option<String>, user: &str) -> TaskView {
        TaskView {
            instance_id: t.instance_id.to_string(),
            step: t.step.to_string(),
            title: t.title.clone(),
            description: t.description.clone(),
            assignee: t.assignee.clone(),
            candidates: t.candidates.clone(),
            candidate_groups: t.candidate_groups.clone(),
            claimed_by: t.claimed_by.clone(),
            reminders: t.reminders,
            overdue: t.due_at.is_some_and(|d| d <= Timestamp::now_system()),
            form: t.form.clone(),
            created_at: t.created_at,
            due_at: t.due_at,
            tenant: t.tenant_id.clone(),
            workflow,
            allowed: t.allows(user) && t.claimed_by.as_deref().is_none_or(|c| c == user),
            claimable: t.allows(user) && t.claimed_by.is_none(),
            fields: t
                .fields
                .iter()
                .map(|f| ShownFieldView {
                    path: f.path.clone(),
                    title: f.title.clone(),
                    value: f.value.clone(),
                })
                .collect(),
            outcomes: t
                .outcomes
                .iter()
                .map(|o| OutcomeView {
                    name: o.name.clone(),
                    data: o.data.clone(),
                })
                .collect(),
        }
    }

    /// The view of a task for a caller, with their groups.
    pub(super) fn for_caller(
        t: &Task,
        workflow: Option<String>,
        caller: &super::auth::Caller,
    ) -> TaskView {
        let mut view = TaskView::new(t, workflow, &caller.user);
        let may = t.allows_member(&caller.user, &caller.groups);
        view.allowed = may && t.claimed_by.as_deref().is_none_or(|c| c == caller.user);
        view.claimable = may && t.claimed_by.is_none();
        view
    }
}

/// A workflow's diagram: Mermaid text and the same graph as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct Graph {
    /// A Mermaid `flowchart TD` (node ids `s0`, `s1`, ... in step order).
    pub mermaid: String,
    /// The steps.
    pub nodes: Vec<Node>,
    /// The edges, in definition order.
    pub edges: Vec<Edge>,
}

/// A step of a graph.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct Node {
    /// The step name.
    pub id: String,
    /// `machine`, `human`, `gateway` or `timer`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What to show: the step name (and for a human step its title, if any).
    pub label: String,
    /// The node's id in the Mermaid text (`s0`, ...).
    pub mermaid_id: String,
    /// Whether instances start here.
    pub initial: bool,
}

/// An edge of a graph.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct Edge {
    /// Source step.
    pub from: String,
    /// Target step.
    pub to: String,
    /// Its condition (CEL), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Taken when no conditional sibling matched.
    pub default: bool,
    /// `success`, `failure` or `timeout`.
    pub on: String,
}

impl Graph {
    /// The graph of a compiled workflow.
    pub(super) fn new(wf: &Workflow) -> Graph {
        let nodes = wf
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (kind, label) = match &s.kind {
                    CompiledKind::Machine { .. } => ("machine", s.name.to_string()),
                    CompiledKind::Human { title, .. } => (
                        "human",
                        title
                            .as_ref()
                            .map_or_else(|| s.name.to_string(), |t| format!("{}: {t}", s.name)),
                    ),
                    CompiledKind::Gateway => ("gateway", s.name.to_string()),
                    CompiledKind::Timer(_) => ("timer", s.name.to_string()),
                    CompiledKind::Event { event, .. } => {
                        ("event", format!("{}: message {event}", s.name))
                    }
                };
                Node {
                    id: s.name.to_string(),
                    kind: kind.to_string(),
                    label,
                    mermaid_id: format!("s{i}"),
                    initial: i == wf.initial,
                }
            })
            .collect();
        let edges = wf
            .edges
            .iter()
            .map(|e| Edge {
                from: wf.steps[e.from].name.to_string(),
                to: wf.steps[e.to].name.to_string(),
                condition: e.condition.as_ref().map(|c| c.source().to_string()),
                default: e.default,
                on: match e.on {
                    EdgeOn::Success => "success",
                    EdgeOn::Failure => "failure",
                    EdgeOn::Timeout => "timeout",
                }
                .to_string(),
            })
            .collect();
        Graph {
            mermaid: weir::definition::to_mermaid(wf),
            nodes,
            edges,
        }
    }
}

/// An instance's diagram: the definition's graph and each step's state.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct InstanceGraph {
    /// The definition's graph.
    #[serde(flatten)]
    pub graph: Graph,
    /// Step name -> `pending`, `running`, `retrying`, `waiting`, `sleeping`, `completed`,
    /// `failed`, `skipped` or `interrupted`.
    pub states: BTreeMap<String, String>,
}

/// The state name of a step for diagrams (`idle` is shown as `pending`).
pub(super) fn step_state(s: StepStatus) -> String {
    match s {
        StepStatus::Idle => "pending".to_string(),
        other => enum_name(&other),
    }
}

/// A registered workflow with its versions.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct DefinitionSummary {
    /// The name.
    pub name: String,
    /// The highest version.
    pub latest_version: String,
    /// Every registered version, lowest first.
    pub versions: Vec<String>,
    /// The latest version's description.
    pub description: Option<String>,
    /// The latest version's step count.
    pub steps: usize,
}

/// One version of a definition, as in its file.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct DefinitionDetail {
    /// The name.
    pub name: String,
    /// The version.
    pub version: String,
    /// What it does.
    pub description: Option<String>,
    /// Where instances start.
    pub initial_step: String,
    /// Steps by name, as in the definition file.
    #[schema(value_type = Object)]
    pub steps: Value,
    /// Edges, as in the definition file.
    #[schema(value_type = Vec<Object>)]
    pub edges: Value,
    /// The tenants that may start it; empty means every tenant.
    pub tenants: Vec<String>,
}

/// What a non-admin sees in place of a handler's `config` (which may hold credentials).
pub(super) const REDACTED: &str = "[redacted]";

impl DefinitionDetail {
    /// The detail of a compiled workflow; with `redact`, each step's handler `config` is
    /// replaced by [`REDACTED`] (for callers who are not admins).
    pub(super) fn new(wf: &Workflow, redact: bool) -> DefinitionDetail {
        let def = &wf.definition;
        let mut steps = serde_json::to_value(&def.steps).unwrap_or(Value::Null);
        if redact {
            if let Value::Object(steps) = &mut steps {
                for step in steps.values_mut() {
                    if let Some(config) = step.get_mut("config") {
                        *config = Value::String(REDACTED.to_string());
                    }
                }
            }
        }
        DefinitionDetail {
            name: wf.name.to_string(),
            version: wf.version.to_string(),
            description: def.description.clone(),
            initial_step: wf.steps[wf.initial].name.to_string(),
            steps,
            edges: serde_json::to_value(&def.edges).unwrap_or(Value::Null),
            tenants: def.tenants.clone(),
        }
    }
}

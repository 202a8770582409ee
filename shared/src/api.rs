//! The shapes both engines speak: options to start an instance, filters for listings, the
//! views returned to callers (the `weir status --json` shape), and the one error type. The
//! calls that take and return them are the [`crate::Engine`] trait, which the LocalEngine
//! and the Redis client both implement, so switching engines changes no calling code.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::Refusal;
use crate::definition::Workflow;
use crate::model::{
    AttemptRecord, AttemptStatus, Context, Instance, InstanceStatus, StepStatus, Task,
};
use crate::redis::RedisError;
use crate::registry::RegistryError;
use crate::time::Timestamp;

/// How to start an instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartOptions {
    /// A definition version; the latest when `None`.
    #[serde(default)]
    pub version: Option<String>,
    /// The initial context (a JSON object).
    #[serde(default)]
    pub initial_data: Context,
    /// A caller-chosen id: starting the same id again returns the existing instance.
    #[serde(default)]
    pub id: Option<String>,
    /// The tenant that owns it, if any: only that tenant's callers see it, and a
    /// caller-chosen `id` becomes `TENANT:ID`.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Who starts it.
    #[serde(default)]
    pub created_by: Option<String>,
    /// A delayed start: create the instance at this time (the engine's clock; Redis time
    /// on the Redis engine). The start is stored now, with the same checks and caller-id
    /// rule, and stays `pending` (with this time as its `start_at`) until then; it can be
    /// canceled meanwhile. A time in the past starts it at once. Not with `start_delay_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<Timestamp>,
    /// A delayed start: create the instance this many milliseconds after the start is
    /// stored (measured on the engine's clock, so the caller's clock does not matter).
    /// Not with `start_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_delay_ms: Option<u64>,
}

/// The longest a start may be delayed: ten years (a later time is a mistake, not a plan).
pub const MAX_START_DELAY_MS: u64 = 10 * 366 * 24 * 3600 * 1000;

impl StartOptions {
    /// When the instance is to be created, by the engine's clock `now`: `None` for a start
    /// due now (no delay, or a time already past). `start_at` wins over `start_delay_ms`
    /// ([`check_start`] refuses both at once).
    pub fn due_time(&self, now: Timestamp) -> Option<Timestamp> {
        let due = match (self.start_at, self.start_delay_ms) {
            (Some(at), _) => at,
            (None, Some(ms)) => now.after(std::time::Duration::from_millis(ms)),
            (None, None) => return None,
        };
        (due > now).then_some(due)
    }

    /// Options with initial data.
    pub fn with_data(data: Context) -> StartOptions {
        StartOptions {
            initial_data: data,
            ..StartOptions::default()
        }
    }
}

/// Largest accepted caller id, in bytes.
pub const MAX_ID_LEN: usize = 200;

/// The checks of a start that do not depend on Redis or the instance map, made by every
/// start path before it stores anything: the initial data fits the context limit
/// ([`crate::model::MAX_CONTEXT_BYTES`]), and the definition's tenant allowlist
/// ([`crate::model::Definition::tenants`]) admits the start's tenant.
pub fn check_start(wf: &Workflow, options: &StartOptions) -> Result<(), EngineError> {
    let tenant = options.tenant_id.as_deref();
    if !wf.definition.allows_tenant(tenant) {
        return Err(EngineError::TenantNotAllowed {
            workflow: wf.name.to_string(),
            tenant: tenant.map(str::to_string),
            allowed: wf.definition.tenants.clone(),
        });
    }
    if options.start_at.is_some() && options.start_delay_ms.is_some() {
        return Err(EngineError::BadRequest(
            "give either a start time (start_at) or a delay (start_delay_ms), not both".into(),
        ));
    }
    if options
        .start_delay_ms
        .is_some_and(|ms| ms > MAX_START_DELAY_MS)
    {
        return Err(EngineError::BadRequest(
            "the start delay is over ten years; give a shorter one".into(),
        ));
    }
    crate::model::check_context_size(&options.initial_data)
        .map_err(|e| EngineError::Refused(Refusal::TooLarge(e)))
}

/// Checks a caller-chosen instance id: 1 to 200 bytes, printable, no spaces.
pub fn check_instance_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!("instance id must be 1 to {MAX_ID_LEN} bytes"));
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "instance id {id:?} must not contain spaces or control characters"
        ));
    }
    Ok(())
}

/// The separator between a tenant and a caller id in a tenant's instance ids (see
/// [`scoped_instance_id`]); a tenant name may not contain it.
pub const TENANT_ID_SEPARATOR: char = ':';

/// Checks a tenant name: 1 to 200 bytes, printable, no spaces and no
/// [`TENANT_ID_SEPARATOR`] (so `TENANT:ID` names one tenant's id and no other's).
pub fn check_tenant(tenant: &str) -> Result<(), String> {
    if tenant.is_empty() || tenant.len() > MAX_ID_LEN {
        return Err(format!("tenant must be 1 to {MAX_ID_LEN} bytes"));
    }
    if tenant
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == TENANT_ID_SEPARATOR)
    {
        return Err(format!(
            "tenant {tenant:?} must not contain spaces, control characters or \
             {TENANT_ID_SEPARATOR:?}"
        ));
    }
    Ok(())
}

/// The instance id a start with the caller id `id` gets. Caller ids are scoped per tenant:
/// with a tenant the instance id is `TENANT:ID`, so two tenants may use the same caller id
/// without meeting (neither can take, nor probe for, the other's ids); without a tenant it
/// is `id` itself. Starting the same caller id again (same tenant) finds the same instance.
pub fn scoped_instance_id(id: &str, tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("{t}{TENANT_ID_SEPARATOR}{id}"),
        None => id.to_string(),
    }
}

/// Checks what a start can check without any state (the caller id and the tenant) and
/// returns the instance id its caller id gets ([`scoped_instance_id`]); `None` when the
/// caller chose none (the engine then makes one). Both engines call it, so they agree.
pub fn start_instance_id(options: &StartOptions) -> Result<Option<String>, EngineError> {
    if let Some(t) = &options.tenant_id {
        check_tenant(t).map_err(EngineError::BadRequest)?;
    }
    let Some(id) = &options.id else {
        return Ok(None);
    };
    check_instance_id(id).map_err(EngineError::BadRequest)?;
    Ok(Some(scoped_instance_id(id, options.tenant_id.as_deref())))
}

/// Which instances to list. Every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceFilter {
    /// Only instances in this status.
    pub status: Option<InstanceStatus>,
    /// Definition name.
    pub definition: Option<String>,
    /// Only this tenant's instances.
    pub tenant_id: Option<String>,
    /// Only instances started by this user.
    pub created_by: Option<String>,
    /// Created at or after.
    pub created_after: Option<Timestamp>,
    /// Created before.
    pub created_before: Option<Timestamp>,
    /// At most this many (newest first); [`DEFAULT_LIST_LIMIT`] when `None`.
    pub limit: Option<usize>,
}

/// How many instances a listing returns when its filter sets no limit.
pub const DEFAULT_LIST_LIMIT: usize = 100;

impl InstanceFilter {
    /// The most instances a listing with this filter returns.
    pub fn limit_or_default(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIST_LIMIT)
    }

    /// Whether an instance matches (the limit aside).
    pub fn matches(&self, i: &Instance) -> bool {
        self.status.is_none_or(|s| s == i.status)
            && self
                .definition
                .as_deref()
                .is_none_or(|d| d == &*i.definition)
            && self
                .tenant_id
                .as_deref()
                .is_none_or(|t| i.tenant_id.as_deref() == Some(t))
            && self
                .created_by
                .as_deref()
                .is_none_or(|c| i.created_by.as_deref() == Some(c))
            && self.created_after.is_none_or(|t| i.created_at >= t)
            && self.created_before.is_none_or(|t| i.created_at < t)
    }
}

/// Which open tasks to list, in which order, and which page.
///
/// `user` with `groups` names the caller; `scope` says which of their tasks: with `user` and
/// no `scope`, every task the user may act on ([`TaskScope::MayDo`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskFilter {
    /// Tasks this user may act on (assignee, claimer, candidate, member of a candidate
    /// group, or open to anyone), narrowed by `scope`.
    pub user: Option<String>,
    /// The groups `user` is a member of.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Which of `user`'s tasks (default: all they may act on).
    #[serde(default)]
    pub scope: Option<TaskScope>,
    /// Tasks assigned to exactly this user.
    pub assignee: Option<String>,
    /// Tasks of one instance.
    pub instance_id: Option<String>,
    /// Tasks of one tenant.
    pub tenant_id: Option<String>,
    /// Tasks of one workflow (definition name).
    #[serde(default)]
    pub workflow: Option<String>,
    /// The order: oldest first (default) or soonest due first.
    #[serde(default)]
    pub sort: TaskSort,
    /// Only tasks after this position (the `next` of the previous page).
    #[serde(default)]
    pub after: Option<TaskCursor>,
    /// At most this many (none: no limit).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Which of a user's tasks to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskScope {
    /// Assigned to the user, or claimed by them.
    Mine,
    /// Open to one of the user's groups.
    Groups,
    /// Everything the user may act on: theirs, as a candidate, through a group, or open to
    /// anyone.
    MayDo,
}

impl TaskScope {
    /// The name used by the API and the CLI: `mine`, `groups`, `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskScope::Mine => "mine",
            TaskScope::Groups => "groups",
            TaskScope::MayDo => "all",
        }
    }

    /// The inverse of [`TaskScope::as_str`].
    pub fn parse(s: &str) -> Option<TaskScope> {
        [TaskScope::Mine, TaskScope::Groups, TaskScope::MayDo]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// The order of a task listing. Ties are broken by instance id and step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskSort {
    /// Oldest first (by opening time).
    #[default]
    Oldest,
    /// Soonest due first; tasks without a due time last.
    Due,
}

impl TaskSort {
    /// The name used by the API and the CLI: `oldest`, `due`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskSort::Oldest => "oldest",
            TaskSort::Due => "due",
        }
    }

    /// The inverse of [`TaskSort::as_str`].
    pub fn parse(s: &str) -> Option<TaskSort> {
        [TaskSort::Oldest, TaskSort::Due]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    /// A task's position in this order: the sort key in ms (no due time sorts last), then
    /// `INSTANCE_ID|STEP`.
    pub fn position(self, t: &Task) -> TaskCursor {
        let key_ms = match self {
            TaskSort::Oldest => t.created_at.millis(),
            TaskSort::Due => t
                .due_at
                .map_or(NO_DUE_MS + t.created_at.millis(), |d| d.millis()),
        };
        TaskCursor {
            key_ms,
            task: format!("{}|{}", t.instance_id, t.step),
        }
    }
}

/// Where tasks without a due time start under [`TaskSort::Due`]: their sort key is this plus
/// their opening time, so they come after every real due time, oldest first among
/// themselves (and do not all tie), and stay exact as a Redis score (a double).
pub const NO_DUE_MS: i64 = 1 << 52;

/// A position in a task listing: the sort key (ms) and `INSTANCE_ID|STEP`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskCursor {
    /// The sort key: opening time or due time, in ms.
    pub key_ms: i64,
    /// `INSTANCE_ID|STEP`.
    pub task: String,
}

/// One page of open tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskPage {
    /// Matching tasks, in the filter's order.
    pub items: Vec<Task>,
    /// Where the next page begins, when there may be more.
    pub next: Option<TaskCursor>,
    /// Stored tasks that could not be read and were left out (logged).
    pub unreadable: usize,
}

impl TaskFilter {
    /// Whether a task matches (every filter but the page).
    pub fn matches(&self, t: &Task) -> bool {
        let user_ok = match self.user.as_deref() {
            None => true,
            Some(u) => {
                let mine = t.assignee.as_deref() == Some(u) || t.claimed_by.as_deref() == Some(u);
                let by_group = t.candidate_groups.iter().any(|g| self.groups.contains(g));
                match self.scope.unwrap_or(TaskScope::MayDo) {
                    TaskScope::Mine => mine,
                    TaskScope::Groups => by_group,
                    TaskScope::MayDo => mine || t.allows_member(u, &self.groups),
                }
            }
        };
        user_ok
            && self
                .assignee
                .as_deref()
                .is_none_or(|a| t.assignee.as_deref() == Some(a))
            && self
                .instance_id
                .as_deref()
                .is_none_or(|i| &*t.instance_id == i)
            && self
                .tenant_id
                .as_deref()
                .is_none_or(|x| t.tenant_id.as_deref() == Some(x))
            && self
                .workflow
                .as_deref()
                .is_none_or(|w| t.workflow.as_deref() == Some(w))
    }

    /// One page of `tasks` (any order) under this filter: the matches in its order, after
    /// its cursor, at most its limit. The LocalEngine's listing; the Redis client reads its
    /// indexes instead.
    pub fn page_of(&self, tasks: impl IntoIterator<Item = Task>) -> TaskPage {
        let mut items: Vec<(TaskCursor, Task)> = tasks
            .into_iter()
            .filter(|t| self.matches(t))
            .map(|t| (self.sort.position(&t), t))
            .filter(|(p, _)| self.after.as_ref().is_none_or(|a| p > a))
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut next = None;
        if let Some(limit) = self.limit {
            if items.len() > limit {
                items.truncate(limit);
                next = items.last().map(|(p, _)| p.clone());
            }
        }
        TaskPage {
            items: items.into_iter().map(|(_, t)| t).collect(),
            next,
            unreadable: 0,
        }
    }
}

/// What the instance's event steps wait for, in step order.
fn waiting_for(inst: &Instance, wf: &Workflow) -> Vec<WaitingFor> {
    inst.steps
        .iter()
        .enumerate()
        .filter_map(|(s, st)| {
            let awaiting = st.awaiting.as_ref()?;
            Some(WaitingFor {
                step: wf.steps.get(s)?.name.to_string(),
                event: awaiting.event.to_string(),
                key: awaiting.key.clone(),
            })
        })
        .collect()
}

/// An instance as callers see it (`weir status --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceView {
    /// The instance id, as every call about this instance takes it.
    pub id: String,
    /// Definition name.
    pub definition: String,
    /// Definition version.
    pub version: String,
    /// Where it is in its life: pending, running, waiting on people, or how it ended.
    pub status: InstanceStatus,
    /// Steps running, retrying, waiting or sleeping now.
    pub current_steps: Vec<String>,
    /// Its context: the data its steps read and write, as it is now.
    pub context: Value,
    /// Why it failed or was canceled.
    pub error: Option<String>,
    /// The step that failed it.
    pub failed_step: Option<String>,
    /// The tenant that owns it, if any.
    pub tenant: Option<String>,
    /// Who started it, if given.
    pub created_by: Option<String>,
    /// When it was started.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// When it completed, failed or was canceled (`None` while it runs).
    pub finished_at: Option<Timestamp>,
    /// The messages its event steps wait for now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<WaitingFor>,
    /// A delayed start not created yet: when it will be (see [`StartOptions::start_at`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<Timestamp>,
}

/// A message an event step of an instance waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingFor {
    /// The event step.
    pub step: String,
    /// The message name.
    pub event: String,
    /// The correlation key (`None`: the step takes signals only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl InstanceView {
    /// The view of an instance of a workflow.
    pub fn new(inst: &Instance, wf: &Workflow) -> InstanceView {
        InstanceView {
            id: inst.id.to_string(),
            definition: inst.definition.to_string(),
            version: inst.version.to_string(),
            status: inst.status,
            current_steps: current_steps(inst, wf),
            context: Value::Object((*inst.context).clone()),
            error: inst.error.clone(),
            failed_step: inst.failed_step.as_deref().map(str::to_string),
            tenant: inst.tenant_id.clone(),
            created_by: inst.created_by.clone(),
            created_at: inst.created_at,
            updated_at: inst.updated_at,
            finished_at: inst.finished_at,
            waiting_for: waiting_for(inst, wf),
            start_at: None,
        }
    }

    /// The first of the current steps (the Python engine's `current_step`).
    pub fn current_step(&self) -> Option<&str> {
        self.current_steps.first().map(String::as_str)
    }
}

/// Names of the steps active now, in definition order.
pub fn current_steps(inst: &Instance, wf: &Workflow) -> Vec<String> {
    inst.steps
        .iter()
        .zip(&wf.steps)
        .filter(|(st, _)| st.status.is_active())
        .map(|(_, s)| s.name.to_string())
        .collect()
}

/// One start of a batch ([`crate::Engine::start_workflows`]).
#[derive(Debug, Clone)]
pub struct Started {
    /// The instance: on the Redis engine `pending` when this call stored it; on the
    /// LocalEngine as it is after its first transition.
    pub view: InstanceView,
    /// True when this call stored the start; false when its caller id was used by the
    /// same start before (then nothing was stored and `view` is that instance).
    pub stored: bool,
}

/// A batch of starts refused before anything was stored: the start at `index` (from 0)
/// failed its checks.
#[derive(Debug, thiserror::Error)]
#[error("start {index} of the batch: {error}")]
pub struct StartBatchError {
    /// Which start, from 0.
    pub index: usize,
    /// Why it was refused.
    pub error: EngineError,
}

/// The finished attempt records an instance keeps, in both engines: past it, each new
/// record drops the oldest one, and the instance counts how many were dropped
/// ([`HistoryPage::dropped`]). A workflow that loops for ever (a polling loop, retries
/// without end) would otherwise grow its history without bound; 10,000 records are about
/// 1 MB in Redis, and more than anyone pages through.
pub const MAX_HISTORY_RECORDS: usize = 10_000;

/// One page of an instance's execution history ([`crate::redis::WeirClient::history_page`],
/// [`crate::LocalEngine::history_page`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// The records of the page, oldest first.
    pub records: Vec<AttemptRecord>,
    /// The position of the next page, or `None` when this is the last.
    pub next: Option<usize>,
    /// Records in all: the finished ones kept and those in flight.
    pub total: usize,
    /// Older finished records dropped by the cap ([`MAX_HISTORY_RECORDS`]); positions count
    /// from the oldest record kept.
    pub dropped: u64,
}

impl HistoryPage {
    /// The page of `finished` records read from `offset` (at most `limit`) out of
    /// `total_finished`; the attempts in flight follow the last finished record, so they
    /// are on the page that reaches the end.
    pub fn new(
        finished: Vec<AttemptRecord>,
        offset: usize,
        limit: usize,
        total_finished: usize,
        inst: &Instance,
        wf: &Workflow,
    ) -> HistoryPage {
        let running = history_with_running(&[], inst, wf);
        let total = total_finished + running.len();
        let mut records = finished;
        // Positions past the finished records are those in flight.
        let from = offset.max(total_finished) - total_finished;
        let room = limit.saturating_sub(records.len());
        if offset + records.len() >= total_finished {
            records.extend(running.into_iter().skip(from).take(room));
        }
        let end = offset + records.len();
        HistoryPage {
            records,
            next: (end < total && limit > 0).then_some(end),
            total,
            dropped: 0,
        }
    }
}

/// The full history: the finished attempts, then one `running` entry per attempt in flight.
pub fn history_with_running(
    finished: &[AttemptRecord],
    inst: &Instance,
    wf: &Workflow,
) -> Vec<AttemptRecord> {
    let mut out = finished.to_vec();
    for (st, step) in inst.steps.iter().zip(&wf.steps) {
        if matches!(
            st.status,
            StepStatus::Running | StepStatus::Waiting | StepStatus::Sleeping
        ) {
            out.push(AttemptRecord {
                step: step.name.clone(),
                attempt: st.attempt,
                status: AttemptStatus::Running,
                started_at: st.started_at,
                finished_at: None,
                worker: None,
                error: None,
                note: None,
            });
        }
    }
    out
}

/// The kind of [`EngineError::IdTaken`], also on the Redis reply wire.
pub const ID_TAKEN: &str = "id_taken";

/// The kind of [`EngineError::Quarantined`], also on the Redis reply wire.
pub const QUARANTINED: &str = "quarantined";

/// The kind of [`EngineError::NotFound`], also on the Redis reply wire.
pub const NOT_FOUND: &str = "not_found";

/// The kind of [`EngineError::BadRequest`], also on the Redis reply wire.
pub const BAD_REQUEST: &str = "bad_request";

/// Whether a start by caller id finds, in the instance that already has the id, the one it
/// would have started: the same workflow, the version asked for (any, when none was), and
/// the same tenant. Only then is the start idempotent; otherwise it is refused
/// ([`EngineError::IdTaken`]), so that an id never hands one tenant another's instance.
pub fn is_same_start(
    existing: (&str, &str, Option<&str>),
    name: &str,
    version: Option<&str>,
    tenant: Option<&str>,
) -> bool {
    let (def, ver, ten) = existing;
    let version_ok = match version {
        None => true,
        Some(v) => match (
            semver::Version::parse(v.trim()),
            semver::Version::parse(ver),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => v.trim() == ver,
        },
    };
    def == name && version_ok && ten == tenant
}

/// Why an engine call did not do what was asked. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The workflow or version is unknown, invalid, or conflicts with a registered one.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// No instance with this id.
    #[error("no instance {0:?}")]
    NotFound(String),
    /// The instance refused the input (a user it does not allow, bad data, wrong state, ...).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The request itself is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The definition's tenant allowlist does not admit the start's tenant.
    #[error(
        "workflow {workflow:?} may only be started for the tenants {allowed:?}, not for {}: \
         start it for one of them, or add the tenant to the definition's `tenants`",
        match tenant { Some(t) => format!("tenant {t:?}"), None => "an instance without a tenant".to_string() }
    )]
    TenantNotAllowed {
        /// The definition's name.
        workflow: String,
        /// The start's tenant.
        tenant: Option<String>,
        /// The tenants the definition admits.
        allowed: Vec<String>,
    },
    /// A start named an instance id that another start already took, for another
    /// workflow, version or tenant (a start with the same ones returns the instance).
    #[error(
        "instance id {0:?} is already used by an instance of another workflow, version or \
         tenant: choose another id"
    )]
    IdTaken(String),
    /// A wait ran out of time.
    #[error("timed out after {0:?} waiting for instance {1}")]
    WaitTimeout(std::time::Duration, String),
    /// The coordinator will not change the instance: its stored record could not be used,
    /// so it was quarantined (failed, with the reason; ARCHITECTURE.md invariant 5). The
    /// Redis engine only: the LocalEngine never quarantines.
    #[error("{0}")]
    Quarantined(String),
    /// A refusal from a coordinator older than this client, whose reply carries only a
    /// kind and a message, not the typed [`Refusal`] (a current coordinator's refusals
    /// arrive as [`EngineError::Refused`] and the other variants). `kind` as in
    /// [`EngineError::kind`]. Kept so that a client upgraded before its coordinators still
    /// reports their refusals; nothing else makes it (a refusal of a start travels untyped
    /// too, but the client never waits for a start's reply).
    #[error("{message}")]
    Rejected {
        /// Machine-readable kind.
        kind: String,
        /// Why, for people.
        message: String,
    },
    /// The command was queued, but no coordinator applied it in time.
    #[error("{0}")]
    NotApplied(String),
    /// No schedule with this name.
    #[error("no schedule {0:?}")]
    ScheduleNotFound(String),
    /// A schedule with this name exists with another spec (the same spec is a no-op).
    #[error("schedule {0:?} exists with another spec: delete it first, or choose another name")]
    ScheduleExists(String),
    /// Redis failed or is unreachable (the Redis engine only); the call may be retried.
    /// The [`RedisError`] keeps what failed (and its redis-rs error) as the source.
    #[error(transparent)]
    Redis(#[from] RedisError),
}

impl From<crate::schedule::ScheduleError> for EngineError {
    fn from(e: crate::schedule::ScheduleError) -> EngineError {
        match e {
            crate::schedule::ScheduleError::Invalid(m) => EngineError::BadRequest(m),
        }
    }
}

impl EngineError {
    /// A short machine-readable kind: `unknown_workflow`, `invalid_definition`, `conflict`,
    /// `not_found`, `stale`, `unknown_step`, `not_a_human_step`, `task_not_open`,
    /// `forbidden`, `invalid_data`, `too_large`, `wrong_status`, `bad_request`, `id_taken`,
    /// `timeout`, `quarantined`, `not_applied`, `redis`.
    pub fn kind(&self) -> &str {
        match self {
            EngineError::Registry(RegistryError::Unknown { .. }) => "unknown_workflow",
            EngineError::Registry(RegistryError::Invalid(_)) => "invalid_definition",
            EngineError::Registry(RegistryError::Conflict { .. }) => "conflict",
            EngineError::NotFound(_) => NOT_FOUND,
            EngineError::Refused(r) => r.kind(),
            EngineError::BadRequest(_) => BAD_REQUEST,
            EngineError::TenantNotAllowed { .. } => "forbidden",
            EngineError::IdTaken(_) => ID_TAKEN,
            EngineError::WaitTimeout(..) => "timeout",
            EngineError::Quarantined(_) => QUARANTINED,
            EngineError::Rejected { kind, .. } => kind,
            EngineError::NotApplied(_) => "not_applied",
            EngineError::ScheduleNotFound(_) => NOT_FOUND,
            EngineError::ScheduleExists(_) => "conflict",
            EngineError::Redis(_) => "redis",
        }
    }
}

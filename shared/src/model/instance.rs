//! A running (or finished) workflow instance: the state the core transitions.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::Timestamp;

/// The JSON object every step reads and writes.
pub type Context = Map<String, Value>;

/// The largest context an instance may hold: 1 MiB, measured as compact JSON.
///
/// Enforced where data enters: a start whose initial data is larger is refused, a step
/// whose output would push the context past it fails with the non-retryable kind
/// `too_large`, and a task completion that would is refused. It is one fixed figure, not a
/// setting, so that both engines and every coordinator agree on what an instance may hold;
/// it keeps every message that carries a context well under the wire's 4 MiB limit.
pub const MAX_CONTEXT_BYTES: usize = 1 << 20;

/// A context over [`MAX_CONTEXT_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error(
    "the context would be {size} bytes of JSON, over the limit of {limit} bytes (1 MiB): keep \
     large data elsewhere (object storage, a database) and put a reference in the context"
)]
pub struct ContextTooLarge {
    /// The size it would have, in bytes of compact JSON.
    pub size: usize,
    /// The limit ([`MAX_CONTEXT_BYTES`]).
    pub limit: usize,
}

/// The size of a JSON value written compactly, in bytes, without allocating it.
pub fn json_size(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and JSON values always serialize.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Checks a context against [`MAX_CONTEXT_BYTES`].
pub fn check_context_size(context: &Context) -> Result<(), ContextTooLarge> {
    let size = json_size(context);
    if size > MAX_CONTEXT_BYTES {
        Err(ContextTooLarge {
            size,
            limit: MAX_CONTEXT_BYTES,
        })
    } else {
        Ok(())
    }
}

/// Checks the context `context` would become with `output`'s keys merged into it (each key
/// of `output` replacing the same key), without building it.
pub fn check_merged_size(
    context: &Context,
    output: &Map<String, Value>,
) -> Result<(), ContextTooLarge> {
    if output.is_empty() {
        return Ok(());
    }
    // `{` `}`, and per entry: the key, `:`, the value and a `,` (one too many: harmless).
    let entry = |k: &String, v: &Value| json_size(k) + 1 + json_size(v) + 1;
    let kept: usize = context
        .iter()
        .filter(|(k, _)| !output.contains_key(*k))
        .map(|(k, v)| entry(k, v))
        .sum();
    let added: usize = output.iter().map(|(k, v)| entry(k, v)).sum();
    let size = 2 + kept + added;
    if size > MAX_CONTEXT_BYTES + 1 {
        Err(ContextTooLarge {
            size: size - 1,
            limit: MAX_CONTEXT_BYTES,
        })
    } else {
        Ok(())
    }
}

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceStatus {
    /// Stored by a start and not yet created by a coordinator (the Redis engine only: a
    /// start is enqueued in Redis and returns at once; the LocalEngine creates at once and
    /// never shows it). It can be canceled; it runs nothing.
    Pending,
    /// Steps are running, scheduled, or timers are pending.
    Running,
    /// Only open human tasks are left: nothing happens until a person acts.
    Waiting,
    /// Every path reached its end.
    Completed,
    /// A step failed for good and no failure edge handled it. `retry` can resume it.
    Failed,
    /// Canceled by a user.
    Canceled,
}

impl InstanceStatus {
    /// Completed, failed or canceled: no more transitions except `retry` of a failed one.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }

    /// The lowercase name used in JSON, the CLI and Redis indexes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    /// Every status, in lifecycle order.
    pub const ALL: [InstanceStatus; 6] = [
        Self::Pending,
        Self::Running,
        Self::Waiting,
        Self::Completed,
        Self::Failed,
        Self::Canceled,
    ];
}

impl std::fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for InstanceStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown status {s:?}: use pending, running, waiting, completed, failed or canceled")
            })
    }
}

/// Where one step is in its current activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not reached (yet, or in this loop iteration).
    #[default]
    Idle,
    /// A machine step attempt is dispatched and not yet answered.
    Running,
    /// A failed attempt waits for its retry backoff.
    Retrying,
    /// A human task is open, or an event step waits for its message.
    Waiting,
    /// A timer step waits for its due time.
    Sleeping,
    /// Finished successfully.
    Completed,
    /// Failed for good (a failure or timeout edge may have handled it).
    Failed,
    /// On a path not taken (dead-path elimination).
    Skipped,
    /// Was active when the instance failed or was canceled; retry restarts it.
    Interrupted,
}

impl StepStatus {
    /// The step holds the instance open: running, retrying, waiting or sleeping.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Running | Self::Retrying | Self::Waiting | Self::Sleeping
        )
    }
}

/// One edge's state on the way into a join: followed, or known dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeMark {
    /// Index of the edge in the definition's `edges`.
    pub edge: u32,
    /// True if followed, false if dead.
    pub taken: bool,
}

/// The runtime state of one step of an instance.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StepState {
    /// Where the step is.
    pub status: StepStatus,
    /// The current (or last) attempt, from 1; 0 when never started. It never goes back,
    /// not even when a loop or a retry of the instance runs the step again, so
    /// (instance, step, attempt) names one attempt for good (the idempotency key).
    pub attempt: u32,
    /// Attempts made in the current activation (what the retry policy counts).
    pub tries: u32,
    /// The fencing token of the current activation or attempt: any result, timer or task
    /// completion that carries another token is stale and dropped.
    pub token: u64,
    /// When the current attempt started (or the timer was set, or the task opened).
    pub started_at: Option<Timestamp>,
    /// When the step last finished.
    pub finished_at: Option<Timestamp>,
    /// When the current attempt's timeout, timer or task deadline falls due.
    pub due_at: Option<Timestamp>,
    /// Marks of incoming forward edges resolved so far in this activation (joins).
    pub marks: Vec<EdgeMark>,
    /// How many times the step was activated (loops make it more than one).
    pub runs: u32,
    /// The last error of this step.
    pub error: Option<String>,
    /// Who may complete the step's open task, when it was reassigned; `None` means what
    /// the step's definition names. Cleared when the step is activated again.
    #[serde(default)]
    pub assignment: Option<Box<super::Assignment>>,
    /// What the step waits for while an event step waits: the message name and key.
    // Stored records are positional (MessagePack arrays): no field may be skipped when
    // serializing, or the fields after it would shift.
    #[serde(default)]
    pub awaiting: Option<Box<super::Awaiting>>,
    /// Who claimed the step's open task, if anyone. Cleared when the step is activated
    /// again, and by a release or a reassignment.
    #[serde(default)]
    pub claimed_by: Option<String>,
    /// How many reminders the step's open task has had in this activation.
    #[serde(default)]
    pub reminders: u32,
}

impl StepState {
    /// Begins the step's next attempt at `now`: the attempt number (for good) and the tries
    /// of this activation count up, and the attempt's start time is now. Returns the new
    /// attempt number.
    pub fn begin_attempt(&mut self, now: Timestamp) -> u32 {
        self.attempt += 1;
        self.tries += 1;
        self.started_at = Some(now);
        self.attempt
    }

    /// Ends the step at `now` in `status`: it finished now, and no deadline of it is due
    /// any more.
    pub fn end(&mut self, status: StepStatus, now: Timestamp) {
        self.status = status;
        self.finished_at = Some(now);
        self.due_at = None;
        self.awaiting = None;
    }
}

/// A workflow instance. Only the core changes it; drivers store and load it whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Unique id (a UUID v7 unless the caller chose one).
    pub id: Arc<str>,
    /// The definition's name.
    pub definition: Arc<str>,
    /// The definition's version this instance is pinned to.
    pub version: Arc<str>,
    /// Lifecycle status.
    pub status: InstanceStatus,
    /// The data steps read and write.
    pub context: Arc<Context>,
    /// Step states, indexed like the compiled workflow's steps.
    pub steps: Vec<StepState>,
    /// Why the instance failed or was canceled.
    pub error: Option<String>,
    /// The step whose failure failed the instance (where `retry` resumes by default).
    pub failed_step: Option<Arc<str>>,
    /// Tenant, for multi-tenant deployments.
    pub tenant_id: Option<String>,
    /// Who started it.
    pub created_by: Option<String>,
    /// When it started.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When it reached a terminal status.
    pub finished_at: Option<Timestamp>,
    /// Counts transitions applied; a store uses it for optimistic concurrency.
    pub revision: u64,
    /// The source of fencing tokens (monotonic per instance).
    pub next_token: u64,
}

impl Instance {
    /// Reads a context value by top-level key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.context.get(key)
    }
}

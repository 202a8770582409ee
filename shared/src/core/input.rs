//! What can happen to an instance: the inputs of [`super::apply`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Actor, Context};

/// One input to an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// A machine step attempt succeeded.
    StepSucceeded {
        /// The step.
        step: Arc<str>,
        /// The attempt's fencing token, as dispatched.
        token: u64,
        /// Keys to merge into the context.
        output: Context,
        /// Who ran it.
        worker: Option<String>,
    },
    /// A machine step attempt failed.
    StepFailed {
        /// The step.
        step: Arc<str>,
        /// The attempt's fencing token, as dispatched.
        token: u64,
        /// What went wrong.
        error: StepError,
        /// Who ran it.
        worker: Option<String>,
    },
    /// A timer the core scheduled fell due.
    Timer {
        /// The step it belongs to.
        step: Arc<str>,
        /// What it is for.
        kind: TimerKind,
        /// The token it was scheduled with.
        token: u64,
    },
    /// A person completes a human task.
    CompleteTask {
        /// The human step.
        step: Arc<str>,
        /// Who completes it.
        user: String,
        /// The completion data (a JSON object), checked against the form.
        data: Value,
        /// The groups `user` is a member of (for tasks with candidate groups).
        #[serde(default)]
        groups: Vec<String>,
    },
    /// A person the task allows claims it: until it is released, only they may complete
    /// it. Refused with [`super::Refusal::Claimed`] when someone else holds it (of two
    /// claims at once, the one applied first wins), and with
    /// [`super::Refusal::ClaimForbidden`] for a user the task does not allow.
    ClaimTask {
        /// The human step.
        step: Arc<str>,
        /// Who claims it, with their groups.
        by: Actor,
    },
    /// The claimer, or an admin, releases the claim on a task.
    ReleaseTask {
        /// The human step.
        step: Arc<str>,
        /// Who releases it, and whether they are an admin.
        by: Actor,
    },
    /// Give an open human task to other people. Allowed to an admin, or to a user the
    /// task allows at the moment of the transition (its current assignee or a candidate,
    /// or anyone when it names no one); anyone else is refused with
    /// [`super::Refusal::ReassignForbidden`]. The core records who did it.
    ReassignTask {
        /// The human step.
        step: Arc<str>,
        /// Who reassigns it, and whether they are an admin.
        by: Actor,
        /// The new assignee.
        assignee: Option<String>,
        /// The new candidates.
        candidates: Vec<String>,
    },
    /// A message (or a signal) for an event step of this instance. Accepted only while a
    /// step waits on `name` (and on `key`, when given); see [`super::Refusal::NotWaiting`].
    DeliverMessage {
        /// The message id, recorded in the history.
        id: String,
        /// The message name.
        name: String,
        /// The correlation key: only a step waiting on this key receives it. `None`: a
        /// signal, sent to this instance by id, for a step waiting on `name` with any key.
        key: Option<String>,
        /// The data, stored under the step's `output`.
        data: Value,
    },
    /// Cancel the instance.
    Cancel {
        /// Why, kept on the instance (`None`: no reason given).
        reason: Option<String>,
    },
    /// Resume a failed instance.
    Retry {
        /// Where to resume; the failed step when `None`.
        from_step: Option<String>,
    },
}

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// A timer step's due time.
    Wake,
    /// The end of a retry backoff.
    Retry,
    /// A machine step attempt's timeout.
    Timeout,
    /// A human task's due time.
    TaskDue,
    /// A human task's next reminder (`remind_every`).
    TaskReminder,
}

impl TimerKind {
    /// A short name, used in timer keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wake => "wake",
            Self::Retry => "retry",
            Self::Timeout => "timeout",
            Self::TaskDue => "task_due",
            Self::TaskReminder => "task_reminder",
        }
    }

    /// The inverse of [`TimerKind::as_str`].
    pub fn parse(s: &str) -> Option<TimerKind> {
        [
            Self::Wake,
            Self::Retry,
            Self::Timeout,
            Self::TaskDue,
            Self::TaskReminder,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Why a step attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct StepError {
    /// A short machine-readable kind, e.g. `timeout`, `validation`, `http`; matched against
    /// the retry policy's `non_retryable`.
    pub kind: String,
    /// What went wrong, for people.
    pub message: String,
    /// False when retrying cannot help.
    pub retryable: bool,
}

impl StepError {
    /// A retryable error of kind `error`.
    pub fn retryable(message: impl Into<String>) -> StepError {
        StepError {
            kind: "error".into(),
            message: message.into(),
            retryable: true,
        }
    }

    /// A non-retryable error of the given kind.
    pub fn fatal(kind: impl Into<String>, message: impl Into<String>) -> StepError {
        StepError {
            kind: kind.into(),
            message: message.into(),
            retryable: false,
        }
    }

    /// Sets the kind.
    pub fn with_kind(mut self, kind: impl Into<String>) -> StepError {
        self.kind = kind.into();
        self
    }

    /// The kind of an attempt that ran past its step's `timeout`.
    pub const TIMEOUT: &'static str = "timeout";

    /// Attempt `attempt` ran past its step's `timeout` of `limit`: retryable, as the next
    /// attempt may be quicker. The worker reports it when it cuts a handler short, and the
    /// core makes it when its own `Timer(Timeout)` fires first; either way it is the same
    /// error, so the core treats both alike (see [`StepError::is_timeout`]).
    pub fn timeout(attempt: u32, limit: std::time::Duration) -> StepError {
        StepError {
            kind: Self::TIMEOUT.into(),
            message: format!(
                "attempt {attempt} exceeded its timeout of {}",
                crate::model::definition::duration::format(&limit)
            ),
            retryable: true,
        }
    }

    /// Whether this error says that the attempt ran past its timeout.
    pub fn is_timeout(&self) -> bool {
        self.kind == Self::TIMEOUT
    }
}

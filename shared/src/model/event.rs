//! Events: what happened to an instance, for buses, streams, dashboards and audits.
//!
//! Every event serializes to one JSON object with at least `type`, `instance_id` and
//! `timestamp`, plus the fields of its kind.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// One event of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The instance it concerns.
    pub instance_id: Arc<str>,
    /// When it happened (the clock of whoever applied the transition).
    pub timestamp: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. The variant name is the event's `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// An instance started.
    WorkflowStarted {
        /// Definition name.
        definition: Arc<str>,
        /// Definition version.
        version: Arc<str>,
    },
    /// An instance completed.
    WorkflowCompleted,
    /// An instance failed.
    WorkflowFailed {
        /// The step that failed it.
        step: Option<Arc<str>>,
        /// The error that ended it, as the step or the engine reported it.
        error: String,
    },
    /// An instance was canceled.
    WorkflowCanceled {
        /// The reason given.
        reason: Option<String>,
    },
    /// A failed instance was resumed.
    WorkflowRetried {
        /// Where it resumed.
        from_step: Arc<str>,
    },
    /// A machine step attempt was dispatched.
    StepStarted {
        /// Step name.
        step: Arc<str>,
        /// Attempt number.
        attempt: u32,
    },
    /// A step finished successfully.
    StepExecuted {
        /// Step name.
        step: Arc<str>,
        /// Attempt number.
        attempt: u32,
    },
    /// A step failed for good.
    StepFailed {
        /// Step name.
        step: Arc<str>,
        /// Attempt number.
        attempt: u32,
        /// What went wrong, as the handler (or the engine) reported it.
        error: String,
    },
    /// A step attempt failed and will be retried.
    StepRetrying {
        /// Step name.
        step: Arc<str>,
        /// The attempt that failed.
        attempt: u32,
        /// What went wrong in that attempt.
        error: String,
        /// When the next attempt is due.
        retry_at: Timestamp,
    },
    /// A step attempt exceeded its timeout.
    StepTimedOut {
        /// Step name.
        step: Arc<str>,
        /// Attempt number.
        attempt: u32,
    },
    /// A step was skipped: it is on a path not taken.
    StepSkipped {
        /// Step name.
        step: Arc<str>,
    },
    /// A human task opened.
    HumanTaskCreated {
        /// Step name.
        step: Arc<str>,
        /// The one person it is assigned to, if any.
        assignee: Option<String>,
        /// Who else may complete it.
        candidates: Vec<String>,
    },
    /// A human task was completed.
    HumanTaskCompleted {
        /// Step name.
        step: Arc<str>,
        /// Who completed it.
        user: String,
    },
    /// A human task was given to other people.
    HumanTaskReassigned {
        /// Step name.
        step: Arc<str>,
        /// Who reassigned it.
        by: String,
        /// Its new assignee.
        assignee: Option<String>,
        /// Its new candidates.
        candidates: Vec<String>,
    },
    /// A human task passed its due time.
    HumanTaskOverdue {
        /// Step name.
        step: Arc<str>,
    },
    /// A candidate claimed a human task: until it is released, only they may complete it.
    HumanTaskClaimed {
        /// Step name.
        step: Arc<str>,
        /// Who claimed it.
        user: String,
    },
    /// The claim on a human task was released: its candidates may claim or complete it again.
    HumanTaskReleased {
        /// Step name.
        step: Arc<str>,
        /// Who released it (the claimer, or an admin).
        by: String,
        /// Whose claim it was.
        claimed_by: String,
    },
    /// A human task is still open after another `remind_every`.
    HumanTaskReminder {
        /// Step name.
        step: Arc<str>,
        /// The how-manyth reminder this is, from 1.
        count: u32,
    },
    /// A timer step was set.
    TimerScheduled {
        /// Step name.
        step: Arc<str>,
        /// When it fires.
        fire_at: Timestamp,
    },
    /// A timer step fired.
    TimerFired {
        /// Step name.
        step: Arc<str>,
    },
    /// An event step started waiting for a message.
    MessageAwaited {
        /// Step name.
        step: Arc<str>,
        /// The message name.
        event: Arc<str>,
        /// The correlation key (`None`: signals only).
        key: Option<String>,
    },
    /// An event step received a message (or a signal).
    MessageReceived {
        /// Step name.
        step: Arc<str>,
        /// The message name.
        event: Arc<str>,
        /// The message's key (`None`: a signal, sent by instance id).
        key: Option<String>,
        /// The message id.
        message_id: String,
    },
    /// An edge condition could not be evaluated (it counted as false).
    ConditionFailed {
        /// The source step of the edge.
        step: Arc<str>,
        /// The target step of the edge.
        to: Arc<str>,
        /// The evaluation error.
        error: String,
    },
    /// A schedule fired a slot; the event's instance is the slot's instance (started,
    /// found started, or skipped by the overlap rule).
    ScheduleFired {
        /// The schedule's name.
        schedule: String,
        /// The slot (`None` for a manual trigger).
        slot: Option<Timestamp>,
        /// `started`, `already_started`, `started_after_cancel`, `skipped_overlap` or
        /// `failed`.
        outcome: String,
    },
    /// A schedule skipped due slots because more than its catch-up were due (no driver ran
    /// at their time); the event's instance is `schedule:NAME`.
    ScheduleMissed {
        /// The schedule's name.
        schedule: String,
        /// How many slots were skipped.
        count: u64,
    },
}

impl EventKind {
    /// The event's `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::WorkflowStarted { .. } => "WorkflowStarted",
            Self::WorkflowCompleted => "WorkflowCompleted",
            Self::WorkflowFailed { .. } => "WorkflowFailed",
            Self::WorkflowCanceled { .. } => "WorkflowCanceled",
            Self::WorkflowRetried { .. } => "WorkflowRetried",
            Self::StepStarted { .. } => "StepStarted",
            Self::StepExecuted { .. } => "StepExecuted",
            Self::StepFailed { .. } => "StepFailed",
            Self::StepRetrying { .. } => "StepRetrying",
            Self::StepTimedOut { .. } => "StepTimedOut",
            Self::StepSkipped { .. } => "StepSkipped",
            Self::HumanTaskCreated { .. } => "HumanTaskCreated",
            Self::HumanTaskCompleted { .. } => "HumanTaskCompleted",
            Self::HumanTaskReassigned { .. } => "HumanTaskReassigned",
            Self::HumanTaskOverdue { .. } => "HumanTaskOverdue",
            Self::HumanTaskClaimed { .. } => "HumanTaskClaimed",
            Self::HumanTaskReleased { .. } => "HumanTaskReleased",
            Self::HumanTaskReminder { .. } => "HumanTaskReminder",
            Self::TimerScheduled { .. } => "TimerScheduled",
            Self::TimerFired { .. } => "TimerFired",
            Self::MessageAwaited { .. } => "MessageAwaited",
            Self::MessageReceived { .. } => "MessageReceived",
            Self::ConditionFailed { .. } => "ConditionFailed",
            Self::ScheduleFired { .. } => "ScheduleFired",
            Self::ScheduleMissed { .. } => "ScheduleMissed",
        }
    }
}

impl Event {
    /// The event's `type` name.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_type_instance_id_and_timestamp() {
        let e = Event {
            instance_id: "i-1".into(),
            timestamp: Timestamp(0),
            kind: EventKind::StepExecuted {
                step: "pay".into(),
                attempt: 2,
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "StepExecuted");
        assert_eq!(v["instance_id"], "i-1");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["step"], "pay");
        assert_eq!(v["attempt"], 2);
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), e);
        assert_eq!(e.type_name(), "StepExecuted");
    }
}

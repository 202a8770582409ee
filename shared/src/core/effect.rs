//! What a transition asks its driver to do: effects as data (the restate way).
//!
//! The core decides; the LocalEngine or the coordinator carries the effects out. A driver
//! must carry out all of a transition's effects together with storing the new state (the
//! coordinator does it in one Redis script), in order.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::input::TimerKind;
use crate::model::{AttemptRecord, Context, Event, Task, TaskOutcome};
use crate::time::Timestamp;

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Run a machine step attempt.
    Dispatch(Dispatch),
    /// Feed `Input::Timer` back at `due_at`.
    Schedule(Timer),
    /// Drop a timer scheduled before (it would be stale anyway; this keeps stores small).
    Unschedule {
        /// Its step.
        step: Arc<str>,
        /// Its kind.
        kind: TimerKind,
    },
    /// Open a human task. Boxed: a task is twice the size of any other effect, and every
    /// effect is moved a few times on its way to the driver.
    OpenTask(Box<Task>),
    /// The task as it was (before this transition) leaves the indexes of the people who
    /// could act on it: pushed before the task is closed, and before it is opened again
    /// under the same step for other people, a claim, a release or a reminder count. A
    /// driver that indexes open tasks by who may act on them (Redis) drops those entries;
    /// one that keeps tasks by step only (the LocalEngine) has nothing to do.
    RetireTask(Box<Task>),
    /// Close a human task.
    CloseTask {
        /// Its step.
        step: Arc<str>,
        /// Completed, expired, or voided with its instance.
        outcome: TaskOutcome,
    },
    /// Wait for a message: the instance joins the waiters on (event, key), oldest first.
    /// When a message is kept for (event, key), the driver delivers it at once
    /// (`Input::DeliverMessage`). Without a key, only signals reach the step.
    Subscribe {
        /// The event step.
        step: Arc<str>,
        /// The message name.
        event: Arc<str>,
        /// The correlation key.
        key: Option<String>,
    },
    /// Stop waiting: the step received its message, timed out, or was interrupted.
    Unsubscribe {
        /// The event step.
        step: Arc<str>,
        /// The message name.
        event: Arc<str>,
        /// The correlation key.
        key: Option<String>,
    },
    /// Append to the execution history.
    Record(AttemptRecord),
    /// Publish an event.
    Emit(Event),
}

/// A machine step attempt to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    /// The step.
    pub step: Arc<str>,
    /// The attempt number (part of the idempotency key).
    pub attempt: u32,
    /// The fencing token the result must carry.
    pub token: u64,
    /// The handler to run.
    pub handler: Arc<str>,
    /// The queue it goes to.
    pub queue: Arc<str>,
    /// The handler's configuration.
    pub config: Arc<Value>,
    /// The context as it is now.
    pub context: Arc<Context>,
    /// The attempt's time limit.
    pub timeout: Option<Duration>,
}

/// A wake-up to schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// Its step.
    pub step: Arc<str>,
    /// What it is for.
    pub kind: TimerKind,
    /// The token to hand back.
    pub token: u64,
    /// When it fires (engine clock).
    pub due_at: Timestamp,
}

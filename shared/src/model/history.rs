//! Execution history: one record per finished attempt.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// Still running (only in a history read, never stored).
    Running,
    /// Succeeded; its output is in the context.
    Completed,
    /// Failed for good.
    Failed,
    /// Failed, and another attempt is scheduled.
    Retrying,
    /// Exceeded its timeout (and was not retried).
    TimedOut,
    /// Was running when the instance failed or was canceled.
    Canceled,
    /// On a path not taken.
    Skipped,
    /// Not an end: the open task was given to other people (see the record's note).
    Reassigned,
    /// Not an end: a candidate claimed the open task (the record's `worker` is who).
    Claimed,
    /// Not an end: the claim on the open task was released (the record's `worker` is who
    /// released it, its note whose claim it was).
    Released,
}

/// One attempt of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The step this attempt ran.
    pub step: Arc<str>,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// How it ended.
    pub status: AttemptStatus,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// The worker (or for a human step, the user) that produced the outcome.
    pub worker: Option<String>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// More about the record, for people: for a reassignment, to whom.
    #[serde(default)]
    pub note: Option<String>,
}

impl AttemptRecord {
    /// The record of a step's current attempt, ending at `now` with `status`: its number
    /// and start time come from the step's state. It names no worker, error or note until
    /// [`Self::by`], [`Self::with_error`] or [`Self::with_note`] add them.
    pub fn ended(
        step: Arc<str>,
        state: &super::StepState,
        status: AttemptStatus,
        now: Timestamp,
    ) -> AttemptRecord {
        AttemptRecord {
            step,
            attempt: state.attempt,
            status,
            started_at: state.started_at,
            finished_at: Some(now),
            worker: None,
            error: None,
            note: None,
        }
    }

    /// A record of something that happened to attempt `attempt` at one moment (`now`)
    /// rather than over a span, such as a reassignment of its task.
    pub fn at(
        step: Arc<str>,
        attempt: u32,
        status: AttemptStatus,
        now: Timestamp,
    ) -> AttemptRecord {
        AttemptRecord {
            step,
            attempt,
            status,
            started_at: Some(now),
            finished_at: Some(now),
            worker: None,
            error: None,
            note: None,
        }
    }

    /// The record, naming the worker (or for a human step, the user) that produced it.
    pub fn by(mut self, worker: Option<String>) -> AttemptRecord {
        self.worker = worker;
        self
    }

    /// The record, with the error the attempt ended with.
    pub fn with_error(mut self, error: impl Into<String>) -> AttemptRecord {
        self.error = Some(error.into());
        self
    }

    /// The record, with a note for people.
    pub fn with_note(mut self, note: impl Into<String>) -> AttemptRecord {
        self.note = Some(note.into());
        self
    }
}

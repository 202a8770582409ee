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
}

/// One attempt of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The step.
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

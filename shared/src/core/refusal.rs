//! Why an input was not applied. A refused input changes nothing.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::form::FormError;
use crate::model::InstanceStatus;

/// Why [`super::apply`] did not apply an input. The instance is unchanged.
///
/// It is data (serde): the coordinator sends it back on a command's reply, so the Redis
/// client returns the same refusal as the LocalEngine. Its texts are `Cow`s because the
/// core writes them as literals but a refusal read off the wire owns them.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// A result, timer or token that no longer matches the step's current attempt: a late,
    /// duplicated or stale message. Drivers drop and count these; they are not user errors.
    #[error("stale input for step {step:?}: {reason}")]
    Stale {
        /// The step named by the input.
        step: String,
        /// Why it is stale.
        reason: Cow<'static, str>,
    },
    /// The definition has no such step.
    #[error("the workflow has no step {0:?}")]
    UnknownStep(String),
    /// The step is not a human step.
    #[error("step {0:?} is not a human step")]
    NotAHumanStep(String),
    /// The task is not open: already completed, expired, or not reached yet.
    #[error("the task of step {0:?} is not open (already completed, expired or not reached)")]
    TaskNotOpen(String),
    /// The user may not complete the task.
    #[error("user {user:?} may not complete the task of step {step:?}")]
    Forbidden {
        /// The user who tried to complete it.
        user: String,
        /// The human step whose task it is.
        step: String,
    },
    /// The user may not reassign the task: they are neither an admin nor a user the task
    /// allows at the moment of the reassignment.
    #[error(
        "user {user:?} may not reassign the task of step {step:?}: only an admin or a user \
         the task allows (its assignee or a candidate) may"
    )]
    ReassignForbidden {
        /// The user who tried to reassign it.
        user: String,
        /// The human step whose task it is.
        step: String,
    },
    /// Someone else holds a claim on the task: only they may complete it (or release it;
    /// an admin may release it too).
    #[error("the task of step {step:?} is claimed by {claimed_by:?}")]
    Claimed {
        /// The human step whose task it is.
        step: String,
        /// Who holds the claim.
        claimed_by: String,
    },
    /// The user may not claim the task: it does not allow them.
    #[error(
        "user {user:?} may not claim the task of step {step:?}: only its assignee, a \
         candidate or a member of a candidate group may"
    )]
    ClaimForbidden {
        /// The user who tried to claim it.
        user: String,
        /// The human step whose task it is.
        step: String,
    },
    /// The task is not claimed, so there is nothing to release.
    #[error("the task of step {0:?} is not claimed")]
    NotClaimed(String),
    /// The user may not release the claim: it is someone else's and they are no admin.
    #[error(
        "user {user:?} may not release the claim of {claimed_by:?} on the task of step \
         {step:?}: only the claimer or an admin may"
    )]
    ReleaseForbidden {
        /// The user who tried to release it.
        user: String,
        /// The human step whose task it is.
        step: String,
        /// Who holds the claim.
        claimed_by: String,
    },
    /// The completion data is not acceptable.
    #[error("invalid task data for step {step:?}: {message}")]
    InvalidData {
        /// The human step whose task it is.
        step: String,
        /// What is wrong.
        message: String,
        /// The form's field errors, when a form schema refused it.
        form: Option<FormError>,
    },
    /// No step of the instance waits for this message: none waits on its name (and key),
    /// or the instance is finished.
    #[error("the instance is not waiting for message {event:?}{}", match key { Some(k) => format!(" with key {k:?}"), None => String::new() })]
    NotWaiting {
        /// The message name.
        event: String,
        /// The message key (`None`: a signal).
        key: Option<String>,
    },
    /// The input would make the context larger than [`crate::model::MAX_CONTEXT_BYTES`].
    #[error("{0}")]
    TooLarge(#[from] crate::model::ContextTooLarge),
    /// The instance's status does not allow the input.
    #[error("the instance is {status}: {action} is not possible")]
    WrongStatus {
        /// The instance's status.
        status: InstanceStatus,
        /// What was attempted.
        action: Cow<'static, str>,
    },
}

impl Refusal {
    /// A short machine-readable kind, used on the wire and for HTTP status codes.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Stale { .. } => "stale",
            Refusal::UnknownStep(_) => "unknown_step",
            Refusal::NotAHumanStep(_) => "not_a_human_step",
            Refusal::TaskNotOpen(_) => "task_not_open",
            Refusal::Forbidden { .. }
            | Refusal::ReassignForbidden { .. }
            | Refusal::ClaimForbidden { .. }
            | Refusal::ReleaseForbidden { .. } => "forbidden",
            Refusal::Claimed { .. } => "claimed",
            Refusal::NotClaimed(_) => "not_claimed",
            Refusal::InvalidData { .. } => "invalid_data",
            Refusal::NotWaiting { .. } => "not_waiting",
            Refusal::TooLarge(_) => "too_large",
            Refusal::WrongStatus { .. } => "wrong_status",
        }
    }

    /// A stale message (drop and count) rather than a user error.
    pub fn is_stale(&self) -> bool {
        matches!(self, Refusal::Stale { .. })
    }
}

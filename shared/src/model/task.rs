//! Human tasks: what a person is asked to do.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::Timestamp;

/// An open (or closed) human task of one instance's human step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The instance it belongs to.
    pub instance_id: Arc<str>,
    /// The human step it belongs to; with the instance id it names the task.
    pub step: Arc<str>,
    /// The activation token; a completion is checked against it.
    pub token: u64,
    /// The title shown to people.
    pub title: Option<String>,
    /// A longer description.
    pub description: Option<String>,
    /// The user it is for.
    pub assignee: Option<String>,
    /// Others who may complete it.
    pub candidates: Vec<String>,
    /// The JSON Schema the completion data must satisfy.
    pub form: Option<Value>,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it becomes overdue.
    pub due_at: Option<Timestamp>,
    /// Tenant of the instance.
    pub tenant_id: Option<String>,
}

impl Task {
    /// Whether `user` may complete the task: the assignee or a candidate, or anyone when the
    /// step names neither.
    pub fn allows(&self, user: &str) -> bool {
        allows(self.assignee.as_deref(), &self.candidates, user)
    }
}

/// Who may complete a task, when it was reassigned away from what its step names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Assignment {
    /// The user it is for.
    pub assignee: Option<String>,
    /// Others who may complete it.
    pub candidates: Vec<String>,
}

impl Assignment {
    /// Whether `user` may complete a task with this assignment: the assignee or a
    /// candidate, or anyone when it names neither.
    pub fn allows(&self, user: &str) -> bool {
        allows(self.assignee.as_deref(), &self.candidates, user)
    }
}

/// Who acts on a task, as the driver authenticated them: the user, and whether they are an
/// admin. The core decides with it who may reassign a task (see
/// [`crate::core::Input::ReassignTask`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user.
    pub user: String,
    /// Whether the user is an admin (an admin API token, or an operator with Redis access).
    #[serde(default)]
    pub admin: bool,
}

impl Actor {
    /// A user who is not an admin.
    pub fn user(user: impl Into<String>) -> Actor {
        Actor {
            user: user.into(),
            admin: false,
        }
    }

    /// An admin.
    pub fn admin(user: impl Into<String>) -> Actor {
        Actor {
            user: user.into(),
            admin: true,
        }
    }
}

/// The one rule for who may complete a task.
pub(crate) fn allows(assignee: Option<&str>, candidates: &[String], user: &str) -> bool {
    (assignee.is_none() && candidates.is_empty())
        || assignee == Some(user)
        || candidates.iter().any(|c| c == user)
}

/// How a task was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutcome {
    /// Completed by an allowed user.
    Completed,
    /// Its deadline passed and a timeout edge took over.
    Expired,
    /// The instance was canceled or failed.
    Voided,
}

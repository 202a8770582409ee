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
    /// The context fields its step shows (`show`), with their values when it opened.
    // Stored records are positional (MessagePack arrays): new fields go last, with a
    // default, so tasks stored before them still decode.
    #[serde(default)]
    pub fields: Vec<ShownField>,
    /// The outcome buttons its step offers, in order (empty: one plain submission).
    #[serde(default)]
    pub outcomes: Vec<OutcomeChoice>,
    /// Groups whose members may complete it.
    #[serde(default)]
    pub candidate_groups: Vec<String>,
    /// Who claimed it, if anyone: then only they may complete it until they (or an admin)
    /// release it.
    #[serde(default)]
    pub claimed_by: Option<String>,
    /// How many `HumanTaskReminder` events it has had.
    #[serde(default)]
    pub reminders: u32,
    /// The workflow (definition name) of its instance.
    #[serde(default)]
    pub workflow: Option<Arc<str>>,
}

impl Task {
    /// Whether `user` (a member of no group) may complete the task: the assignee or a
    /// candidate, or anyone when the task names no one.
    pub fn allows(&self, user: &str) -> bool {
        self.allows_member(user, &[])
    }

    /// Whether `user`, a member of `groups`, may act on the task: the assignee, a
    /// candidate, a member of a candidate group, or anyone when the task names no one. A
    /// claim does not change who may act; it changes who may complete (see
    /// [`Task::claimed_by`]).
    pub fn allows_member(&self, user: &str, groups: &[String]) -> bool {
        self.assignment().allows_member(user, groups)
    }

    /// Who the task is for.
    pub fn assignment(&self) -> Assignment {
        Assignment {
            assignee: self.assignee.clone(),
            candidates: self.candidates.clone(),
            groups: self.candidate_groups.clone(),
        }
    }

    /// Whether the task names no one: then anyone may act on it.
    pub fn open_to_anyone(&self) -> bool {
        self.assignee.is_none() && self.candidates.is_empty() && self.candidate_groups.is_empty()
    }

    /// The completion data for `outcome` (one of [`Task::outcomes`], by name) and the data
    /// a person entered: `data` with the outcome's data merged over it (an outcome's keys
    /// win). Without an outcome, `data` as it is. The form still checks the result when the
    /// completion is applied: this only builds it.
    pub fn submission(&self, outcome: Option<&str>, data: Value) -> Result<Value, UnknownOutcome> {
        let Some(name) = outcome else {
            return Ok(data);
        };
        let Some(choice) = self.outcomes.iter().find(|o| o.name == name) else {
            return Err(UnknownOutcome {
                outcome: name.to_string(),
                offered: self.outcomes.iter().map(|o| o.name.clone()).collect(),
            });
        };
        let mut merged = match data {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => return Ok(other), // not an object: the form refuses it, as without one
        };
        for (k, v) in &choice.data {
            merged.insert(k.clone(), v.clone());
        }
        Ok(Value::Object(merged))
    }
}

/// A context field shown with a task (a step's `show`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShownField {
    /// The context path, e.g. `receipt.number`.
    pub path: String,
    /// The form schema's `title` of the same field, when it has one.
    pub title: Option<String>,
    /// The value when the task opened; `None` when the context has none.
    pub value: Option<Value>,
}

impl ShownField {
    /// The label for people: the title, else the path.
    pub fn label(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.path)
    }
}

/// One outcome button of a task: its name and the data it merges into the submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeChoice {
    /// The name, e.g. `approve`; also the button's label.
    pub name: String,
    /// The data it merges into the submission, e.g. `{"approved": true}`.
    pub data: serde_json::Map<String, Value>,
}

/// A completion named an outcome the task does not offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the task has no outcome {outcome:?}; it offers: {}",
    offered_list(offered)
)]
pub struct UnknownOutcome {
    /// The outcome asked for.
    pub outcome: String,
    /// The outcomes the task offers.
    pub offered: Vec<String>,
}

fn offered_list(offered: &[String]) -> String {
    if offered.is_empty() {
        "none (complete it with its form data)".to_string()
    } else {
        offered.join(", ")
    }
}

/// Who may complete a task: what its step names (fixed or computed when it opened), or
/// what a reassignment named.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Assignment {
    /// The user it is for.
    pub assignee: Option<String>,
    /// Others who may complete it.
    pub candidates: Vec<String>,
    /// Groups whose members may complete it.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Assignment {
    /// Whether `user` may complete a task with this assignment: the assignee or a
    /// candidate, or anyone when it names no one.
    pub fn allows(&self, user: &str) -> bool {
        self.allows_member(user, &[])
    }

    /// Whether `user`, a member of `groups`, may complete a task with this assignment: the
    /// assignee, a candidate, a member of a candidate group, or anyone when it names no one.
    pub fn allows_member(&self, user: &str, groups: &[String]) -> bool {
        self.is_empty()
            || self.assignee.as_deref() == Some(user)
            || self.candidates.iter().any(|c| c == user)
            || self.groups.iter().any(|g| groups.contains(g))
    }

    /// Whether it names no one.
    pub fn is_empty(&self) -> bool {
        self.assignee.is_none() && self.candidates.is_empty() && self.groups.is_empty()
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
    /// The groups the user is a member of (for tasks with `candidate_groups`).
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Actor {
    /// A user who is not an admin.
    pub fn user(user: impl Into<String>) -> Actor {
        Actor {
            user: user.into(),
            admin: false,
            groups: Vec::new(),
        }
    }

    /// An admin.
    pub fn admin(user: impl Into<String>) -> Actor {
        Actor {
            user: user.into(),
            admin: true,
            groups: Vec::new(),
        }
    }

    /// The same actor, a member of `groups`.
    pub fn in_groups(mut self, groups: Vec<String>) -> Actor {
        self.groups = groups;
        self
    }
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

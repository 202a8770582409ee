//! The definition file format: what authors write in YAML or JSON, or build in Rust.
//!
//! These types are plain data, checked by [`crate::definition::compile`] into a
//! [`crate::definition::Workflow`] before anything runs. The format is a contract that users'
//! files rely on: add optional fields, never change the meaning of existing ones.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A workflow definition as written by its author.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// Workflow name, e.g. `expense_approval`: letters, digits, `_`, `-` and `.`.
    pub name: String,
    /// Semantic version, e.g. `1.2.0`. A (name, version) pair is immutable once registered.
    pub version: String,
    /// What the workflow does, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where instances start; optional when exactly one step has no incoming edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_step: Option<String>,
    /// Steps by name.
    pub steps: BTreeMap<String, StepDef>,
    /// Edges between steps, in the order their conditions are evaluated.
    #[serde(default)]
    pub edges: Vec<EdgeDef>,
    /// The tenants that may start it; empty (the default) means every tenant. A start for
    /// another tenant, or for none, is refused, and the HTTP API shows the definition only
    /// to callers of these tenants (and to admins and unbound callers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
}

impl Definition {
    /// Whether an instance of `tenant` (or of no tenant) may be started from it.
    pub fn allows_tenant(&self, tenant: Option<&str>) -> bool {
        self.tenants.is_empty() || tenant.is_some_and(|t| self.tenants.iter().any(|x| x == t))
    }
}

/// One step. The `type` field selects the kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepDef {
    /// Code run by a worker (or by a handler registered with the LocalEngine).
    Machine(MachineStep),
    /// A task for a person; the instance waits until an allowed user completes it.
    Human(HumanStep),
    /// Routing only: its outgoing edge conditions decide where to go.
    Gateway(GatewayStep),
    /// A durable wait.
    Timer(TimerStep),
    /// A wait for a message from the outside world (a webhook, a callback, a reply).
    Event(EventStep),
}

/// A step run by a handler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineStep {
    /// The handler's name, e.g. `set`, `http` or one the application registered.
    #[serde(default)]
    pub handler: String,
    /// Free-form configuration handed to the handler.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub config: Value,
    /// The worker pool that runs the step (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// How failed attempts are retried; absent means one attempt only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// The limit of one attempt, e.g. `30s`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub timeout: Option<Duration>,
    /// A description for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A task for a person.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HumanStep {
    /// The task's title; may name context values: `"Approve {employee}'s expense"` (see
    /// [`crate::template`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A longer description for people; may name context values like `title`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The one user the task is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Users who may also complete it. With neither `assignee` nor `candidates`, anyone may.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    /// Groups whose members may also complete it (a user's groups come from the auth file or
    /// a trusted proxy header, or `--group` on the command line).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidate_groups: Vec<String>,
    /// A CEL expression over the context giving the assignee (a user name), evaluated when
    /// the task opens, e.g. `context.manager_email`. Not with `assignee`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee_expr: Option<String>,
    /// A CEL expression over the context giving candidate users (a name or a list of names),
    /// evaluated when the task opens. Not with `candidates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates_expr: Option<String>,
    /// A JSON Schema that the completion data must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Value>,
    /// When the task becomes overdue, counted from its creation, e.g. `48h`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub due: Option<Duration>,
    /// Context fields shown with the task (`[employee, amount, receipt.number]`), each
    /// titled by the form schema's `title` of the same field when it has one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub show: Vec<String>,
    /// Outcome buttons, in order: each name with the data it merges into the submission,
    /// e.g. `{ approve: { approved: true }, reject: { approved: false } }`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub outcomes: serde_json::Map<String, Value>,
    /// While the task is open, a `HumanTaskReminder` event this often (e.g. `1d`), counted
    /// on the task.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub remind_every: Option<Duration>,
}

/// A routing step. It has no settings; its outgoing edges decide.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayStep {
    /// A description for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A durable wait: exactly one of `duration`, `until` or `until_expr`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimerStep {
    /// Wait this long from when the step is reached, e.g. `2s`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub duration: Option<Duration>,
    /// Wait until this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Wait until the time this expression gives (a CEL timestamp, an RFC 3339 string or
    /// milliseconds since the epoch), evaluated against the context when the step is reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_expr: Option<String>,
    /// A description for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A wait for a message: the instance waits (status `waiting`) until a message named
/// `event` arrives for the key `correlation` gives, or until `timeout`.
///
/// Without `correlation` the step receives only signals (messages sent to this instance by
/// its id); with one, it also receives messages sent by name and key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventStep {
    /// The message name waited for, e.g. `payment_received`.
    #[serde(default)]
    pub event: String,
    /// A CEL expression over `context` giving the key this instance waits on, e.g.
    /// `context.order_id` (a string, an integer or a bool), evaluated when the step is
    /// reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    /// The context key the message data is stored under; without it the data (a JSON
    /// object) is merged into the context key by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// How long to wait at most, e.g. `2h`; then the step's `on: timeout` edges are
    /// followed (else its `on: failure` edges; else the instance fails).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub timeout: Option<Duration>,
    /// A description for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// When an edge is followed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeOn {
    /// When the source step succeeds (the default).
    #[default]
    Success,
    /// When the source step fails for good (after its retries); the error is in the context.
    Failure,
    /// When the source step times out for good, or its human task becomes overdue.
    Timeout,
}

/// An edge from one step to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeDef {
    /// The source step.
    pub from: String,
    /// The target step.
    pub to: String,
    /// A CEL expression over `context`; the edge is taken when it is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Taken when no conditional edge of the same source (and the same `on`) matched.
    #[serde(default, skip_serializing_if = "is_false")]
    pub default: bool,
    /// Success (default), failure or timeout.
    #[serde(default, skip_serializing_if = "is_success")]
    pub on: EdgeOn,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_success(on: &EdgeOn) -> bool {
    *on == EdgeOn::Success
}

/// How failed attempts of a machine step are retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 3).
    #[serde(default = "RetryPolicy::default_max_attempts")]
    pub max_attempts: u32,
    /// The wait before the second attempt (default `1s`).
    #[serde(default = "RetryPolicy::default_initial", with = "duration")]
    pub initial_interval: Duration,
    /// Each wait is the previous one times this (default 2.0).
    #[serde(default = "RetryPolicy::default_backoff")]
    pub backoff: f64,
    /// No wait is longer than this (default `5m`).
    #[serde(default = "RetryPolicy::default_max_interval", with = "duration")]
    pub max_interval: Duration,
    /// Spread waits over [wait/2, wait] so that failures do not retry in lockstep (default true).
    #[serde(default = "RetryPolicy::default_jitter")]
    pub jitter: bool,
    /// Error kinds that are never retried, e.g. `validation`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_retryable: Vec<String>,
}

impl RetryPolicy {
    fn default_max_attempts() -> u32 {
        3
    }
    fn default_initial() -> Duration {
        Duration::from_secs(1)
    }
    fn default_backoff() -> f64 {
        2.0
    }
    fn default_max_interval() -> Duration {
        Duration::from_secs(300)
    }
    fn default_jitter() -> bool {
        true
    }

    /// The policy of a step that has no `retry` block: one attempt, no retry.
    pub fn no_retry() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before attempt `failed_attempts + 1`, given a random `unit` in [0, 1) that
    /// the caller derived from its seed (so this stays a pure function).
    pub fn delay(&self, failed_attempts: u32, unit: f64) -> Duration {
        let exp = failed_attempts.saturating_sub(1).min(64) as i32;
        let base = self.initial_interval.as_secs_f64() * self.backoff.max(1.0).powi(exp);
        let capped = base.min(self.max_interval.as_secs_f64()).max(0.0);
        let secs = if self.jitter {
            capped / 2.0 + capped / 2.0 * unit.clamp(0.0, 1.0)
        } else {
            capped
        };
        Duration::try_from_secs_f64(secs).unwrap_or(self.max_interval)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: Self::default_max_attempts(),
            initial_interval: Self::default_initial(),
            backoff: Self::default_backoff(),
            max_interval: Self::default_max_interval(),
            jitter: Self::default_jitter(),
            non_retryable: Vec::new(),
        }
    }
}

/// Durations written as `250ms`, `2s`, `5m`, `48h` (anything `humantime` reads).
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Parses `250ms`, `2s`, `1h 30m`, ...; a bare number is refused so units are explicit.
    pub fn parse(text: &str) -> Result<Duration, String> {
        humantime::parse_duration(text.trim()).map_err(|e| {
            format!("invalid duration {text:?}: {e} (write it like 250ms, 2s, 5m or 48h)")
        })
    }

    /// Formats a duration the way [`parse`] reads it.
    pub fn format(d: &Duration) -> String {
        humantime::format_duration(*d).to_string()
    }

    /// Serde: serialize.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(d))
    }

    /// Serde: deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}

pub(crate) mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => super::duration::parse(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            initial_interval: Duration::from_millis(200),
            backoff: 2.0,
            max_interval: Duration::from_secs(1),
            jitter: false,
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(200));
        assert_eq!(p.delay(2, 0.0), Duration::from_millis(400));
        assert_eq!(p.delay(3, 0.0), Duration::from_millis(800));
        assert_eq!(p.delay(4, 0.0), Duration::from_secs(1));
        assert_eq!(p.delay(u32::MAX, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        let p = RetryPolicy {
            initial_interval: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(2));
        let mid = p.delay(1, 0.5);
        assert!(mid > Duration::from_secs(1) && mid < Duration::from_secs(2));
    }

    #[test]
    fn durations_parse_the_documented_forms() {
        assert_eq!(
            duration::parse("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(duration::parse("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(duration::parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(
            duration::parse("48h").unwrap(),
            Duration::from_secs(48 * 3600)
        );
        assert!(duration::parse("soon").unwrap_err().contains("250ms"));
        assert!(duration::parse("10").is_err());
    }
}

//! Events as lines a person reads, as they happen: `  +0.104s  charge: attempt 1 failed: ...`.

use std::io::Write;
use std::time::Instant;

use async_trait::async_trait;
use weir::events::EventBus;
use weir::model::definition::duration;
use weir::model::{Event, EventKind};

/// Writes a line to stdout. A closed stdout (`weir demo | head`) is not an error worth a
/// panic: the line is dropped.
pub(crate) fn out(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// An event bus that prints each event on stdout, with the time since it was created.
#[derive(Debug)]
pub(crate) struct Printer {
    start: Instant,
    indent: String,
}

impl Printer {
    /// A printer whose clock starts now; each line starts with `indent`.
    pub(crate) fn new(indent: impl Into<String>) -> Printer {
        Printer {
            start: Instant::now(),
            indent: indent.into(),
        }
    }

    /// Prints one event (also the way to print events read from Redis).
    pub(crate) fn print(&self, event: &Event) {
        self.note(&describe(event));
    }

    /// Prints a line of the caller's, timed like the events.
    pub(crate) fn note(&self, text: &str) {
        let secs = self.start.elapsed().as_secs_f64();
        out(&format!("{}+{secs:.3}s  {text}", self.indent));
    }
}

#[async_trait]
impl EventBus for Printer {
    async fn emit(&self, event: &Event) {
        self.print(event);
    }
}

/// Who a task is for, in words.
fn people(assignee: &Option<String>, candidates: &[String]) -> String {
    let mut who: Vec<&str> = assignee.iter().map(String::as_str).collect();
    who.extend(candidates.iter().map(String::as_str));
    if who.is_empty() {
        "anyone".to_string()
    } else {
        who.join(", ")
    }
}

/// What an event says, in words.
pub(crate) fn describe(event: &Event) -> String {
    let until = |t: weir::Timestamp| duration::format(&t.since(event.timestamp));
    match &event.kind {
        EventKind::WorkflowStarted {
            definition,
            version,
        } => format!(
            "started {definition}@{version} (instance {})",
            event.instance_id
        ),
        EventKind::WorkflowCompleted => "workflow completed".into(),
        EventKind::WorkflowFailed { step, error } => match step {
            Some(step) => format!("workflow failed at {step}: {error}"),
            None => format!("workflow failed: {error}"),
        },
        EventKind::WorkflowCanceled { reason } => match reason {
            Some(r) => format!("workflow canceled: {r}"),
            None => "workflow canceled".into(),
        },
        EventKind::WorkflowRetried { from_step } => format!("workflow retried from {from_step}"),
        EventKind::StepStarted { step, attempt } => match attempt {
            1 => format!("{step}: started"),
            n => format!("{step}: attempt {n} started"),
        },
        EventKind::StepExecuted { step, .. } => format!("{step}: done"),
        EventKind::StepFailed {
            step,
            attempt,
            error,
        } => format!("{step}: failed for good (attempt {attempt}): {error}"),
        EventKind::StepRetrying {
            step,
            attempt,
            error,
            retry_at,
        } => format!(
            "{step}: attempt {attempt} failed: {error}; retrying in {}",
            until(*retry_at)
        ),
        EventKind::StepTimedOut { step, attempt } => {
            format!("{step}: attempt {attempt} timed out")
        }
        EventKind::StepSkipped { step } => format!("{step}: skipped (on a path not taken)"),
        EventKind::HumanTaskCreated {
            step,
            assignee,
            candidates,
        } => format!("{step}: task open, for {}", people(assignee, candidates)),
        EventKind::HumanTaskReassigned {
            step,
            by,
            assignee,
            candidates,
        } => format!(
            "{step}: task reassigned by {by} to {}",
            people(assignee, candidates)
        ),
        EventKind::HumanTaskCompleted { step, user } => format!("{step}: completed by {user}"),
        EventKind::HumanTaskOverdue { step } => format!("{step}: task overdue"),
        EventKind::TimerScheduled { step, fire_at } => {
            format!("{step}: timer set, fires in {}", until(*fire_at))
        }
        EventKind::TimerFired { step } => format!("{step}: timer fired"),
        EventKind::ConditionFailed { step, to, error } => {
            format!("{step}: the condition of the edge to {to} failed ({error}); counted as false")
        }
    }
}

#[cfg(test)]
mod tests {
    use weir::Timestamp;

    use super::*;

    fn ev(kind: EventKind) -> Event {
        Event {
            instance_id: "i-1".into(),
            timestamp: Timestamp(1_000),
            kind,
        }
    }

    #[test]
    fn events_read_as_sentences() {
        assert_eq!(
            describe(&ev(EventKind::StepRetrying {
                step: "charge".into(),
                attempt: 1,
                error: "down".into(),
                retry_at: Timestamp(1_100),
            })),
            "charge: attempt 1 failed: down; retrying in 100ms"
        );
        assert_eq!(
            describe(&ev(EventKind::HumanTaskCreated {
                step: "approve".into(),
                assignee: Some("boss".into()),
                candidates: vec!["deputy".into()],
            })),
            "approve: task open, for boss, deputy"
        );
        assert_eq!(
            describe(&ev(EventKind::TimerScheduled {
                step: "wait".into(),
                fire_at: Timestamp(2_000),
            })),
            "wait: timer set, fires in 1s"
        );
        assert_eq!(
            describe(&ev(EventKind::StepStarted {
                step: "a".into(),
                attempt: 2
            })),
            "a: attempt 2 started"
        );
    }
}

//! Events as lines a person reads, as they happen: `  +0.104s  charge: attempt 1 failed: ...`.

use std::io::Write;
use std::time::Instant;

use async_trait::async_trait;
use weir::events::EventBus;
use weir::model::definition::duration;
use weir::model::{Event, EventKind, ShownField, Task};
use weir::template::value_text;

/// Writes a line to stdout. A closed stdout (`weir demo | head`) is not an error worth a
/// panic: the line is dropped.
pub(crate) fn out(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// `text` safe to print on a terminal: each control character (escape sequences, carriage
/// returns, line breaks, ...) is written as its Rust escape (`\u{1b}`), so text that came
/// from a context (a task's title, a shown value) cannot move the cursor, recolour the
/// terminal or fake another line.
pub(crate) fn terminal_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A task's shown fields on one line, safe for a terminal: `Employee: Ann · Amount: 50`
/// (a field the context lacked reads `(none)`); `None` when the step shows none.
pub(crate) fn shown_fields(task: &Task) -> Option<String> {
    if task.fields.is_empty() {
        return None;
    }
    let parts: Vec<String> = task.fields.iter().map(shown_field).collect();
    Some(parts.join(" · "))
}

/// One shown field as `Label: value`, safe for a terminal (`(none)` when the context
/// lacked it).
pub(crate) fn shown_field(field: &ShownField) -> String {
    let value = field
        .value
        .as_ref()
        .map_or_else(|| "(none)".to_string(), value_text);
    format!(
        "{}: {}",
        terminal_text(field.label()),
        terminal_text(&value)
    )
}

/// A task's outcome buttons, for a line: `approve, reject`; `None` when it offers none.
pub(crate) fn outcome_names(task: &Task) -> Option<String> {
    if task.outcomes.is_empty() {
        return None;
    }
    let names: Vec<&str> = task.outcomes.iter().map(|o| o.name.as_str()).collect();
    Some(names.join(", "))
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
        EventKind::HumanTaskClaimed { step, user } => format!("{step}: task claimed by {user}"),
        EventKind::HumanTaskReleased {
            step,
            by,
            claimed_by,
        } => format!("{step}: claim of {claimed_by} released by {by}"),
        EventKind::HumanTaskReminder { step, count } => {
            format!("{step}: reminder {count}, the task is still open")
        }
        EventKind::TimerScheduled { step, fire_at } => {
            format!("{step}: timer set, fires in {}", until(*fire_at))
        }
        EventKind::TimerFired { step } => format!("{step}: timer fired"),
        EventKind::MessageAwaited { step, event, key } => match key {
            Some(key) => format!("{step}: waiting for message {event} with key {key}"),
            None => format!("{step}: waiting for signal {event}"),
        },
        EventKind::MessageReceived {
            step,
            event,
            message_id,
            ..
        } => format!("{step}: received message {event} (id {message_id})"),
        EventKind::ConditionFailed { step, to, error } => {
            format!("{step}: the condition of the edge to {to} failed ({error}); counted as false")
        }
        EventKind::ScheduleFired {
            schedule,
            slot,
            outcome,
        } => match slot {
            Some(slot) => format!(
                "schedule {schedule} fired slot {slot}: {outcome} (instance {})",
                event.instance_id
            ),
            None => format!(
                "schedule {schedule} triggered: {outcome} (instance {})",
                event.instance_id
            ),
        },
        EventKind::ScheduleMissed { schedule, count } => {
            format!("schedule {schedule} missed {count} slot(s): no coordinator ran at their time")
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
    fn terminal_text_shows_control_characters_instead_of_obeying_them() {
        assert_eq!(
            terminal_text("\u{1b}[2J\u{1b}[31mAnn\r\nfake line\u{7}"),
            "\\u{1b}[2J\\u{1b}[31mAnn\\r\\nfake line\\u{7}"
        );
        assert_eq!(terminal_text("Zoë <b>{x}</b>"), "Zoë <b>{x}</b>");
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

//! Asking a person on the terminal for a human task's completion data.
//!
//! The prompt goes to stderr (stdout keeps the run's event lines); the answer is one JSON
//! line read from stdin. Text that is not JSON is refused here and asked again; data the
//! task refuses (its form, say) is shown by the caller, which asks again.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{anyhow, Context as _};
use serde_json::{json, Map, Value};
use weir::model::Task;

use super::printer::{outcome_names, shown_field, terminal_text};

/// Whether stdin is a terminal a person can type into.
pub(crate) fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Writes prompt text to stderr (errors ignored: there is no better place to report them).
fn say(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{text}");
    let _ = err.flush();
}

/// Describes the task (the first time), then reads JSON lines until one parses; an error
/// at the end of input.
pub(crate) async fn ask(task: &Task, user: &str, first: bool) -> anyhow::Result<Value> {
    if first {
        say(&describe(task, user));
    }
    loop {
        say("> ");
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map(|n| (n, line))
        })
        .await
        .context("reading stdin")?
        .context("reading stdin")?;
        let (n, line) = line;
        if n == 0 {
            return Err(anyhow!(
                "no data for the task of step {:?}: stdin ended; pass --task {}='JSON' instead",
                task.step,
                task.step
            ));
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        match answer(task, text) {
            Ok(v) => return Ok(v),
            Err(e) => say(&format!("{e}\n")),
        }
    }
}

/// The data a typed line stands for: an outcome's name, optionally followed by JSON data
/// (`approve` or `approve {"comment": "ok"}`), or one JSON value.
fn answer(task: &Task, text: &str) -> Result<Value, String> {
    let (first, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let outcome = task.outcomes.iter().find(|o| o.name == first);
    let (outcome, json) = match outcome {
        Some(o) => (Some(o.name.as_str()), rest.trim()),
        None => (None, text),
    };
    let data = if json.is_empty() {
        json!({})
    } else {
        serde_json::from_str::<Value>(json).map_err(|e| {
            format!(
                "That is not JSON ({e}). Type {}one JSON value, e.g. {}",
                outcome_hint(task),
                example(task)
            )
        })?
    };
    task.submission(outcome, data).map_err(|e| e.to_string())
}

/// `an outcome (approve, reject) or `, when the task offers outcomes.
fn outcome_hint(task: &Task) -> String {
    match outcome_names(task) {
        Some(names) => format!("an outcome ({}) or ", terminal_text(&names)),
        None => String::new(),
    }
}

/// Says that the engine refused the data, before asking again.
pub(crate) fn refused(reason: &str) {
    say(&format!("Refused: {reason}\nTry again.\n"));
}

/// The text shown before the first `> `.
fn describe(task: &Task, user: &str) -> String {
    let mut s = format!("\nHuman task {:?}", task.step);
    if let Some(title) = &task.title {
        s.push_str(&format!(": {}", terminal_text(title)));
    }
    s.push('\n');
    if let Some(d) = &task.description {
        s.push_str(&format!("  {}\n", terminal_text(d)));
    }
    for f in &task.fields {
        s.push_str(&format!("  {}\n", shown_field(f)));
    }
    if let Some(a) = &task.assignee {
        s.push_str(&format!("  assignee:   {a}\n"));
    }
    if !task.candidates.is_empty() {
        s.push_str(&format!("  candidates: {}\n", task.candidates.join(", ")));
    }
    if let Some(form) = &task.form {
        s.push_str(&format!("  form:       {form}\n"));
    }
    if let Some(names) = outcome_names(task) {
        s.push_str(&format!("  outcomes:   {}\n", terminal_text(&names)));
    }
    s.push_str(&format!(
        "Completing it as {user:?}. Type {}the data as one JSON line, e.g. {}\n",
        outcome_hint(task),
        example(task)
    ));
    s
}

/// A plausible answer built from the form's required properties and their types.
pub(crate) fn example(task: &Task) -> Value {
    let Some(form) = &task.form else {
        return json!({});
    };
    let props = form.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = form
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    for name in required {
        let schema = props.and_then(|p| p.get(name));
        out.insert(name.to_string(), sample(schema));
    }
    Value::Object(out)
}

fn sample(schema: Option<&Value>) -> Value {
    let Some(schema) = schema else {
        return json!("...");
    };
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("boolean") => json!(true),
        Some("integer") | Some("number") => json!(0),
        Some("array") => json!([]),
        Some("object") => json!({}),
        Some("null") => Value::Null,
        _ => json!("..."),
    }
}

#[cfg(test)]
mod tests {
    use weir::model::{OutcomeChoice, ShownField};
    use weir::Timestamp;

    use super::*;

    fn task(form: Option<Value>) -> Task {
        Task {
            instance_id: "i".into(),
            step: "approve".into(),
            token: 1,
            title: Some("Approve".into()),
            description: None,
            assignee: Some("boss".into()),
            candidates: vec![],
            candidate_groups: vec![],
            claimed_by: None,
            reminders: 0,
            workflow: None,
            form,
            created_at: Timestamp(0),
            due_at: None,
            tenant_id: None,
            fields: vec![],
            outcomes: vec![],
        }
    }

    fn expense() -> Task {
        let mut t = task(Some(json!({
            "type": "object",
            "required": ["approved"],
            "properties": { "approved": { "type": "boolean" }, "amount": { "title": "Amount" } }
        })));
        t.title = Some("Approve \u{1b}[2JAnn's expense".into());
        t.fields = vec![
            ShownField {
                path: "amount".into(),
                title: Some("Amount".into()),
                value: Some(json!(150)),
            },
            ShownField {
                path: "employee".into(),
                title: None,
                value: Some(json!("Bob\u{1b}[31m")),
            },
        ];
        t.outcomes = vec![
            OutcomeChoice {
                name: "approve".into(),
                data: json!({ "approved": true })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            },
            OutcomeChoice {
                name: "reject".into(),
                data: json!({ "approved": false })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            },
        ];
        t
    }

    #[test]
    fn the_prompt_shows_the_fields_and_outcomes_with_terminal_escapes_disarmed() {
        let d = describe(&expense(), "boss");
        assert!(d.contains(": Approve \\u{1b}[2JAnn's expense"), "{d}");
        assert!(d.contains("  Amount: 150\n"), "{d}");
        assert!(d.contains("  employee: Bob\\u{1b}[31m\n"), "{d}");
        assert!(d.contains("outcomes:   approve, reject"), "{d}");
        assert!(!d.contains('\u{1b}'), "{d}");
    }

    #[test]
    fn an_outcome_name_answers_with_its_data_merged() {
        let t = expense();
        assert_eq!(answer(&t, "approve"), Ok(json!({ "approved": true })));
        assert_eq!(
            answer(&t, r#"reject {"approved": true, "note": "dup"}"#),
            Ok(json!({ "approved": false, "note": "dup" }))
        );
        assert_eq!(
            answer(&t, r#"{"approved": true}"#),
            Ok(json!({ "approved": true }))
        );
        let err = answer(&t, "maybe").unwrap_err();
        assert!(err.contains("an outcome (approve, reject) or"), "{err}");
    }

    #[test]
    fn the_example_follows_the_form() {
        let t = task(Some(json!({
            "type": "object",
            "required": ["approved", "amount", "level", "note"],
            "properties": {
                "approved": { "type": "boolean" },
                "amount": { "type": "number" },
                "level": { "enum": ["low", "high"] },
            }
        })));
        assert_eq!(
            example(&t),
            json!({ "approved": true, "amount": 0, "level": "low", "note": "..." })
        );
        assert_eq!(example(&task(None)), json!({}));
    }

    #[test]
    fn the_description_names_the_task_and_who_completes_it() {
        let d = describe(&task(Some(json!({ "type": "object" }))), "boss");
        assert!(d.contains("Human task \"approve\": Approve"), "{d}");
        assert!(d.contains("assignee:   boss"), "{d}");
        assert!(d.contains("form:"), "{d}");
        assert!(d.contains("as \"boss\""), "{d}");
    }
}

//! `weir run FILE [--data JSON] [--task STEP=JSON ...]`: one definition, run to its end on
//! the in-process LocalEngine with the built-in handlers. No Redis.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use clap::Args;
use serde_json::Value;
use weir::api::StartOptions;
use weir::definition::{CompiledKind, Workflow};
use weir::{Context, Handlers, InstanceStatus, LocalEngine};
use weir_worker::builtin_handlers;

use super::definition::load;
use super::drive::{drive, Answers, Finished};
use super::exit::{self, Exit};
use super::printer::{out, Printer};
use super::{prompt, Global};

/// Who starts the instances of `weir run` and `weir demo`.
pub(crate) const CLI_USER: &str = "cli";

/// `weir run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The definition file (YAML or JSON).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The initial context: a JSON object, e.g. '{"amount": 120}'.
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    /// Data for a human step instead of asking on the terminal, e.g. approve='{"approved": true}'.
    /// Repeat it for several steps, or for a step reached several times (used in order).
    #[arg(long = "task", value_name = "STEP=JSON")]
    pub tasks: Vec<String>,
    /// Data of a message for an event step waiting on NAME, e.g. payment_received='{"amount": 30}':
    /// sent with the key the step waits on when it is reached. Repeat it for several
    /// messages (used in order).
    #[arg(long = "message", value_name = "NAME=JSON")]
    pub messages: Vec<String>,
}

/// Runs `weir run`.
pub(crate) async fn run(_global: &Global, args: RunArgs) -> anyhow::Result<ExitCode> {
    let wf = load(&args.file)?;
    let data = parse_data(args.data.as_deref())?;
    let given = parse_tasks(&args.tasks, &wf)?;
    let messages = parse_messages(&args.messages, &wf)?;
    let handlers = builtin_handlers();
    check_handlers(&wf, &handlers, &args.file.display().to_string())?;

    let printer = Arc::new(Printer::new("  "));
    let engine = LocalEngine::builder()
        .handlers(handlers)
        .event_bus(printer.clone())
        .build();
    let wf = engine.registry().insert(Arc::new(wf))?;
    let mut answers =
        Answers::new(given, prompt::stdin_is_terminal(), "--task").with_messages(messages);
    let options = StartOptions {
        initial_data: data,
        created_by: Some(CLI_USER.into()),
        ..StartOptions::default()
    };
    let finished = drive(&engine, &wf.name, options, &mut answers, &printer).await?;
    print_outcome(&finished);
    outcome(&finished)
}

/// Parses `--data`: a JSON object, or nothing.
pub(crate) fn parse_data(data: Option<&str>) -> anyhow::Result<Context> {
    let Some(text) = data else {
        return Ok(Context::new());
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => bail!("--data must be a JSON object, like '{{\"amount\": 120}}'"),
        Err(e) => {
            bail!("--data is not JSON ({e}): write a JSON object, like '{{\"amount\": 120}}'")
        }
    }
}

/// Parses `--task STEP=JSON` values, checking each names a human step of the workflow.
pub(crate) fn parse_tasks(tasks: &[String], wf: &Workflow) -> anyhow::Result<Vec<(String, Value)>> {
    tasks
        .iter()
        .map(|raw| {
            let Some((step, json)) = raw.split_once('=') else {
                bail!("--task {raw:?}: write it as STEP=JSON, e.g. approve='{{\"approved\": true}}'");
            };
            let step = step.trim();
            let Some(id) = wf.step_id(step) else {
                let humans: Vec<&str> = wf
                    .steps
                    .iter()
                    .filter(|s| matches!(s.kind, CompiledKind::Human { .. }))
                    .map(|s| &*s.name)
                    .collect();
                bail!(
                    "--task {step}=...: {} has no step {step:?} (its human steps: {})",
                    wf.key(),
                    if humans.is_empty() { "none".to_string() } else { humans.join(", ") }
                );
            };
            if !matches!(wf.step(id).kind, CompiledKind::Human { .. }) {
                bail!("--task {step}=...: step {step:?} is not a human step; only human steps take data");
            }
            let data: Value = serde_json::from_str(json)
                .map_err(|e| anyhow!("--task {step}=...: the data is not JSON ({e})"))?;
            Ok((step.to_string(), data))
        })
        .collect()
}

/// Parses `--message NAME=JSON` values, checking each names a message an event step of the
/// workflow waits for.
pub(crate) fn parse_messages(
    messages: &[String],
    wf: &Workflow,
) -> anyhow::Result<Vec<(String, Value)>> {
    let events: Vec<&str> = wf
        .steps
        .iter()
        .filter_map(|s| match &s.kind {
            CompiledKind::Event { event, .. } => Some(&**event),
            _ => None,
        })
        .collect();
    messages
        .iter()
        .map(|raw| {
            let Some((name, json)) = raw.split_once('=') else {
                bail!(
                    "--message {raw:?}: write it as NAME=JSON, e.g. payment_received='{{\"amount\": 30}}'"
                );
            };
            let name = name.trim();
            if !events.contains(&name) {
                bail!(
                    "--message {name}=...: no event step of {} waits for {name:?} (it waits for: {})",
                    wf.key(),
                    if events.is_empty() { "nothing".to_string() } else { events.join(", ") }
                );
            }
            let data: Value = serde_json::from_str(json)
                .map_err(|e| anyhow!("--message {name}=...: the data is not JSON ({e})"))?;
            Ok((name.to_string(), data))
        })
        .collect()
}

/// Refuses, before starting, a machine step whose handler is not built in.
pub(crate) fn check_handlers(
    wf: &Workflow,
    handlers: &Handlers,
    origin: &str,
) -> anyhow::Result<()> {
    for step in &wf.steps {
        if let CompiledKind::Machine { handler, .. } = &step.kind {
            if handlers.get(handler).is_none() {
                bail!(
                    "{origin}: step {:?} uses handler {handler:?}, which weir run does not have: \
                     use one of {} (or run it on a worker that registers {handler:?})",
                    step.name,
                    handlers.names().join(", ")
                );
            }
        }
    }
    Ok(())
}

fn print_outcome(f: &Finished) {
    let (steps, attempts) = f.counts();
    out("");
    out(&format!(
        "status:  {} (in {:.2}s, {steps} steps, {attempts} attempts)",
        f.view.status,
        f.elapsed.as_secs_f64()
    ));
    if let Some(e) = &f.view.error {
        out(&format!("error:   {e}"));
    }
    let context = serde_json::to_string_pretty(&f.view.context)
        .unwrap_or_else(|_| f.view.context.to_string());
    out(&format!("context: {context}"));
}

/// Exit 0 for a completed instance; an [`Exit`] error otherwise.
fn outcome(f: &Finished) -> anyhow::Result<ExitCode> {
    let v = &f.view;
    if f.interrupted {
        return Err(Exit::new(
            exit::INTERRUPTED,
            format!("interrupted: instance {} canceled", v.id),
        )
        .into());
    }
    match v.status {
        InstanceStatus::Completed => Ok(ExitCode::SUCCESS),
        status => {
            let at = v
                .failed_step
                .as_deref()
                .map(|s| format!(" at step {s:?}"))
                .unwrap_or_default();
            let why = v
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            Err(Exit::new(
                exit::WORKFLOW_FAILED,
                format!("{}@{} {status}{at}{why}", v.definition, v.version),
            )
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cli::definition::load_text;

    fn wf() -> Workflow {
        load_text(
            "t.yaml",
            r#"
name: t
version: "1.0.0"
steps:
  a: { type: machine, handler: noop }
  ask: { type: human }
edges:
  - { from: a, to: ask }
"#,
        )
        .unwrap()
    }

    #[test]
    fn data_must_be_a_json_object() {
        assert_eq!(parse_data(None).unwrap(), Context::new());
        assert_eq!(parse_data(Some(r#"{"a":1}"#)).unwrap()["a"], json!(1));
        assert!(parse_data(Some("[1]"))
            .unwrap_err()
            .to_string()
            .contains("JSON object"));
        assert!(parse_data(Some("{a"))
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
    }

    #[test]
    fn tasks_must_name_human_steps_and_carry_json() {
        let wf = wf();
        let ok = parse_tasks(&[r#"ask={"x": 1}"#.into(), "ask=2".into()], &wf).unwrap();
        assert_eq!(
            ok,
            vec![("ask".into(), json!({ "x": 1 })), ("ask".into(), json!(2))]
        );
        let err = |t: &str| parse_tasks(&[t.to_string()], &wf).unwrap_err().to_string();
        assert!(err("ask").contains("STEP=JSON"));
        assert!(
            err("nope={}").contains("its human steps: ask"),
            "{}",
            err("nope={}")
        );
        assert!(err("a={}").contains("not a human step"));
        assert!(err("ask={").contains("not JSON"));
    }

    #[test]
    fn messages_must_name_an_awaited_message_and_carry_json() {
        let wf = load_text(
            "t.yaml",
            "name: t\nversion: \"1.0.0\"\nsteps:\n  pay: { type: event, event: paid }\n",
        )
        .unwrap();
        let ok = parse_messages(&[r#"paid={"amount": 3}"#.into()], &wf).unwrap();
        assert_eq!(ok, vec![("paid".into(), json!({ "amount": 3 }))]);
        let err = |m: &str| {
            parse_messages(&[m.to_string()], &wf)
                .unwrap_err()
                .to_string()
        };
        assert!(err("paid").contains("NAME=JSON"));
        assert!(
            err("refund={}").contains("it waits for: paid"),
            "{}",
            err("refund={}")
        );
        assert!(err("paid={").contains("not JSON"));
    }

    #[test]
    fn unknown_handlers_are_refused_before_running() {
        let wf = load_text(
            "t.yaml",
            "name: t\nversion: \"1.0.0\"\nsteps:\n  pay: { type: machine, handler: stripe }\n",
        )
        .unwrap();
        let e = check_handlers(&wf, &builtin_handlers(), "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"stripe\"") && e.contains("noop"), "{e}");
        check_handlers(&self::wf(), &builtin_handlers(), "t.yaml").unwrap();
    }
}

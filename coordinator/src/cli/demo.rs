//! `weir demo`: runs the example workflows of [`super::examples`] one after the other,
//! printing each step as it happens, then a summary table. It checks that each example
//! ended as it should (status and context), so it fails loudly when the engine is broken.
//! It takes a few seconds (the timer example waits 1s).
//!
//! Where the workflows run is a [`DemoTarget`]: today the in-process LocalEngine. A
//! distributed target needs only a new variant whose `run_example` starts the instance
//! through the Redis client and prints its events from the event stream.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use clap::Args;
use serde_json::Value;
use weir::api::StartOptions;
use weir::LocalEngine;
use weir_worker::builtin_handlers;

use super::definition::load_text;
use super::drive::{drive, Answers, Finished};
use super::examples::{Example, EXAMPLES};
use super::printer::{out, Printer};
use super::run::{check_handlers, parse_data, CLI_USER};
use super::Global;

/// `weir demo` (no options yet).
#[derive(Debug, Args)]
pub struct DemoArgs {}

/// Where the demo's workflows run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoTarget {
    /// In this process: one LocalEngine per example with the built-in handlers, its events
    /// printed by a [`Printer`] bus.
    Local,
}

impl DemoTarget {
    /// What the header says.
    fn describe(self) -> &'static str {
        match self {
            DemoTarget::Local => "on the in-process engine (no Redis)",
        }
    }

    /// Runs one example to its end.
    async fn run_example(self, ex: &Example) -> anyhow::Result<Finished> {
        let wf = load_text(ex.path, ex.source)?;
        let handlers = builtin_handlers();
        check_handlers(&wf, &handlers, ex.path)?;
        let options = StartOptions {
            initial_data: parse_data(Some(ex.data)).with_context(|| ex.path)?,
            created_by: Some(CLI_USER.into()),
            ..StartOptions::default()
        };
        let tasks = ex
            .tasks
            .iter()
            .map(|(step, data)| {
                serde_json::from_str::<Value>(data)
                    .map(|v| (step.to_string(), v))
                    .map_err(|e| anyhow!("{}: task data of {step}: {e}", ex.path))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut answers = Answers::new(tasks, false, "the demo");
        match self {
            DemoTarget::Local => {
                let printer = Arc::new(Printer::new("  "));
                let engine = LocalEngine::builder()
                    .handlers(handlers)
                    .event_bus(printer.clone())
                    .build();
                let wf = engine.registry().insert(Arc::new(wf))?;
                drive(&engine, &wf.name, options, &mut answers, &printer).await
            }
        }
    }
}

/// One row of the summary.
struct Row {
    workflow: String,
    status: String,
    steps: usize,
    attempts: usize,
    seconds: f64,
    problem: Option<String>,
}

/// Runs `weir demo`.
pub async fn run(_global: &Global, _args: DemoArgs) -> anyhow::Result<ExitCode> {
    let target = DemoTarget::Local;
    out(&format!(
        "Weir demo: {} example workflows {}. Their files are in deploy/examples/.",
        EXAMPLES.len(),
        target.describe()
    ));
    let mut rows = Vec::new();
    for ex in &EXAMPLES {
        out("");
        out(&format!("== {}: {}", name_of(ex), ex.shows));
        out(&format!("   {}, started with {}", ex.path, ex.data));
        let finished = target.run_example(ex).await?;
        if finished.interrupted {
            return Err(anyhow!("demo interrupted"));
        }
        let context = serde_json::to_string(&finished.view.context).unwrap_or_default();
        out(&format!("   => {}: {context}", finished.view.status));
        let (steps, attempts) = finished.counts();
        rows.push(Row {
            workflow: name_of(ex).to_string(),
            status: finished.view.status.to_string(),
            steps,
            attempts,
            seconds: finished.elapsed.as_secs_f64(),
            problem: check(ex, &finished),
        });
    }
    print_table(&rows);
    let problems: Vec<String> = rows.iter().filter_map(|r| r.problem.clone()).collect();
    if problems.is_empty() {
        out("");
        out(&format!("All {} workflows ended as expected.", rows.len()));
        Ok(ExitCode::SUCCESS)
    } else {
        Err(anyhow!("the demo went wrong: {}", problems.join("; ")))
    }
}

/// The workflow name: the file name without `.yaml`.
fn name_of(ex: &Example) -> &str {
    let file = ex.path.rsplit('/').next().unwrap_or(ex.path);
    file.strip_suffix(".yaml").unwrap_or(file)
}

/// What is wrong with how an example ended, if anything.
fn check(ex: &Example, f: &Finished) -> Option<String> {
    let name = name_of(ex);
    if f.view.status != ex.expect {
        return Some(format!(
            "{name} ended {} (expected {}){}",
            f.view.status,
            ex.expect,
            f.view
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    for (key, want) in ex.expect_context {
        let want: Value = serde_json::from_str(want).unwrap_or(Value::Null);
        let got = f.view.context.get(*key);
        if got != Some(&want) {
            return Some(format!(
                "{name}: context {key} is {}, expected {want}",
                got.map_or("missing".to_string(), Value::to_string)
            ));
        }
    }
    None
}

fn print_table(rows: &[Row]) {
    let width = rows
        .iter()
        .map(|r| r.workflow.len())
        .chain(["workflow".len()])
        .max()
        .unwrap_or(8);
    out("");
    out("Summary");
    out(&format!(
        "{:<width$}  {:<9}  {:>5}  {:>8}  {:>8}  check",
        "workflow", "status", "steps", "attempts", "duration"
    ));
    for r in rows {
        out(&format!(
            "{:<width$}  {:<9}  {:>5}  {:>8}  {:>7.2}s  {}",
            r.workflow,
            r.status,
            r.steps,
            r.attempts,
            r.seconds,
            if r.problem.is_some() { "FAILED" } else { "ok" }
        ));
    }
}

//! `weir demo`: runs the example workflows of [`super::examples`] one after the other,
//! printing each step as it happens, then a summary table. It checks that each example
//! ended as it should (status and context), so it fails loudly when the engine is broken.
//! It takes a few seconds (the timer example waits 1s).
//!
//! Where the workflows run is a [`DemoTarget`]: the in-process LocalEngine, or (with
//! `--redis URL` on the command line, or `--distributed`) a coordinator and two workers
//! started in this process against that Redis, driven through the Redis client, events
//! printed from the event streams. The distributed demo uses a fresh namespace
//! `weir-demo-<uuid>` (deleted at the end) unless `--namespace` is given.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use clap::Args;
use serde_json::Value;
use std::time::Duration;
use weir::api::StartOptions;
use weir::Engine;

use tokio::sync::watch;
use weir::redis::client::EventCursor;
use weir::redis::{Connections, RedisConfig, WeirClient};
use weir::LocalEngine;
use weir_coordinator::service::{Coordinator, CoordinatorConfig};
use weir_worker::{builtin_handlers, Worker, WorkerConfig};

use super::definition::load_text;
use super::drive::{drive, Answers, Finished};
use super::examples::{Example, EXAMPLES};
use super::printer::{out, Printer};
use super::remote::redis_error;
use super::run::{check_handlers, parse_data, CLI_USER};
use super::Global;

/// `weir demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Run distributed on the Redis of --redis / WEIR_REDIS_URL (implied when --redis is
    /// given on the command line).
    #[arg(long)]
    pub distributed: bool,
}

/// Where the demo's workflows run.
#[derive(Debug, Clone)]
pub(crate) enum DemoTarget {
    /// In this process: one LocalEngine per example with the built-in handlers, its events
    /// printed by a [`Printer`] bus.
    Local,
    /// Through Redis: a coordinator and two workers of this process.
    Redis {
        /// The client the demo drives instances with.
        client: Box<WeirClient>,
        /// Where (for the header).
        url: String,
        /// The namespace.
        namespace: String,
    },
}

impl DemoTarget {
    /// What the header says.
    fn describe(&self) -> String {
        match self {
            DemoTarget::Local => "on the in-process engine (no Redis)".into(),
            DemoTarget::Redis { url, namespace, .. } => format!(
                "distributed: a coordinator and two workers on {url}, namespace {namespace}"
            ),
        }
    }

    /// Runs one example to its end.
    async fn run_example(&self, ex: &Example) -> anyhow::Result<Finished> {
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
        let messages = ex
            .messages
            .iter()
            .map(|(name, data)| {
                serde_json::from_str::<Value>(data)
                    .map(|v| (name.to_string(), v))
                    .map_err(|e| anyhow!("{}: message data of {name}: {e}", ex.path))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut answers = Answers::new(tasks, false, "the demo").with_messages(messages);
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
            DemoTarget::Redis { client, .. } => {
                let wf = client.register_definition(wf.definition.clone()).await?;
                let printer = Arc::new(Printer::new("  "));
                let cursor = client.events_now().await?;
                let (stop, stop_rx) = watch::channel(false);
                let follower = tokio::spawn(print_events(
                    (**client).clone(),
                    cursor,
                    printer.clone(),
                    stop_rx,
                ));
                let finished = drive(&**client, &wf.name, options, &mut answers, &printer).await;
                let _ = stop.send(true);
                let _ = follower.await;
                finished
            }
        }
    }
}

/// Prints events from the streams as they come, until `stop`; then what is left.
async fn print_events(
    client: WeirClient,
    mut cursor: EventCursor,
    printer: Arc<Printer>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stopping = *stop.borrow();
        let block = (!stopping).then_some(Duration::from_millis(100));
        match client.read_events(&cursor, 1000, block).await {
            Ok((events, next)) => {
                let moved = next != cursor;
                cursor = next;
                for e in &events {
                    printer.print(e);
                }
                if stopping && !moved {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("cannot read events: {e}");
                if stopping {
                    return;
                }
                tokio::select! {
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
}

/// A coordinator and two workers running in this process, and the namespace to clean.
struct Cluster {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    client: WeirClient,
    fresh_namespace: Option<String>,
}

impl Cluster {
    async fn start(global: &Global) -> anyhow::Result<(Cluster, DemoTarget)> {
        let (namespace, fresh) = if global.namespace_given {
            (global.namespace.clone(), None)
        } else {
            let ns = format!("weir-demo-{}", uuid::Uuid::now_v7().simple());
            (ns.clone(), Some(ns))
        };
        let config = global
            .mode
            .apply(RedisConfig::new(&global.redis, &namespace).with_tls(global.tls.files()));
        let coordinator = Coordinator::connect(CoordinatorConfig::new(config.clone()))
            .await
            .map_err(|e| redis_error(global, e))?;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(coordinator.run(stop_rx.clone()))];
        for _ in 0..2 {
            let mut wc = WorkerConfig::new(config.clone());
            wc.grace = Duration::from_secs(2);
            let worker = Worker::connect(wc, builtin_handlers())
                .await
                .map_err(|e| redis_error(global, e))?;
            tasks.push(tokio::spawn(worker.run(stop_rx.clone())));
        }
        let client = WeirClient::from_connections(
            Connections::connect(&config)
                .await
                .map_err(|e| redis_error(global, e))?,
        );
        let target = DemoTarget::Redis {
            client: Box::new(client.clone()),
            url: weir::redis::connect::mask_password(&global.redis),
            namespace,
        };
        Ok((
            Cluster {
                stop,
                tasks,
                client,
                fresh_namespace: fresh,
            },
            target,
        ))
    }

    /// Stops the services and deletes a namespace the demo made up.
    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(ns) = self.fresh_namespace {
            let mut conn = self.client.connections().conn.clone();
            // Best effort: a demo namespace left behind is only clutter.
            let _ = weir::redis::server::wipe_namespace(&mut conn, &ns).await;
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
pub(crate) async fn run(global: &Global, args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.distributed || global.redis_given {
        let (cluster, target) = Cluster::start(global).await?;
        let outcome = run_on(&target).await;
        cluster.stop().await;
        outcome
    } else {
        run_on(&DemoTarget::Local).await
    }
}

async fn run_on(target: &DemoTarget) -> anyhow::Result<ExitCode> {
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

//! Commands on instances in Redis: `weir start`, `status`, `wait`, `list`, `history`,
//! `cancel`, `retry`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use serde_json::Value;
use weir::api::{EngineError, InstanceFilter, InstanceView, StartOptions};
use weir::model::{AttemptRecord, InstanceStatus};
use weir::Engine;

use super::exit::{self, Exit};
use super::printer::out;
use super::remote::{client, engine_error, parse_duration, print_json, when};
use super::run::parse_data;
use super::Global;

/// `weir start`.
#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    /// The workflow's name (registered with `weir definition register`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A version; the latest when not given.
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// The initial context: a JSON object, e.g. '{"amount": 120}'.
    #[arg(long, value_name = "JSON", conflicts_with = "data_file")]
    pub data: Option<String>,
    /// A file holding the initial context (a JSON object). A file named `*.jsonl` (or
    /// `*.ndjson`) starts one instance per line instead, each line a JSON object, and
    /// prints one id per line, in order; a bad line is reported by number and then nothing
    /// of the file is started.
    #[arg(long, value_name = "FILE")]
    pub data_file: Option<PathBuf>,
    /// The instance id; starting the same id again starts nothing and prints it again.
    /// With a tenant, the instance's id is `TENANT:ID` (caller ids are per tenant).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// The tenant to start it for (its id becomes `TENANT:ID`).
    #[arg(long, value_name = "T")]
    pub tenant: Option<String>,
    /// Who starts it.
    #[arg(long, value_name = "U")]
    pub created_by: Option<String>,
    /// A delayed start: create the instance at this time (RFC 3339, e.g.
    /// 2026-12-24T08:00:00Z). The start is stored now; until then the instance is `pending`
    /// with its start time, and `weir cancel` cancels it.
    #[arg(long, value_name = "RFC3339", conflicts_with = "delay", value_parser = weir::Timestamp::parse_input)]
    pub at: Option<weir::Timestamp>,
    /// A delayed start: create the instance this long from now (by the Redis clock), e.g.
    /// 90s, 15m, 2h.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub delay: Option<Duration>,
    /// Wait until a coordinator created the instance (it is `pending` until then). Without
    /// it, `weir start` returns as soon as the start is stored in Redis, coordinator or not.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits (exit code 4 after it; the start stays stored, pending).
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration, requires = "wait")]
    pub wait_timeout: Duration,
}

/// `weir status ID`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `weir wait ID`.
#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Give up after this long (exit code 4), e.g. 30s or 5m.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `weir list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only this status: pending, running, waiting, completed, failed or canceled.
    #[arg(long, value_name = "S")]
    pub status: Option<InstanceStatus>,
    /// Only instances of this workflow.
    #[arg(long, value_name = "NAME")]
    pub definition: Option<String>,
    /// Only this tenant.
    #[arg(long, value_name = "T")]
    pub tenant: Option<String>,
    /// Only instances started by this user.
    #[arg(long, value_name = "U")]
    pub created_by: Option<String>,
    /// At most this many, newest first.
    #[arg(long, value_name = "N", default_value_t = weir::redis::client::DEFAULT_LIST_LIMIT)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `weir history ID`.
#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `weir cancel ID`.
#[derive(Debug, Args)]
pub(crate) struct CancelArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Why (kept as the instance's error).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// `weir signal ID NAME [--data JSON] [--id MSG_ID]`.
#[derive(Debug, Args)]
pub(crate) struct SignalArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The message name its event step waits on.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The data (JSON; default `{}`): stored under the step's `output`, or merged into the
    /// context when the step has none (then it must be an object).
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    /// The signal's id: the same id twice is delivered once (default: a new one).
    #[arg(long = "id", value_name = "MSG_ID")]
    pub message_id: Option<String>,
}

/// `weir retry ID`.
#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    /// The instance id (a failed instance).
    #[arg(value_name = "ID")]
    pub id: String,
    /// Resume from this step instead of the one that failed.
    #[arg(long, value_name = "STEP")]
    pub from_step: Option<String>,
}

/// Runs `weir start`.
pub(crate) async fn start(global: &Global, args: StartArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = args.data_file.as_ref().filter(|p| is_json_lines(p)) {
        return start_lines(global, &args, path).await;
    }
    let data = match &args.data_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow!("--data-file {}: cannot read it: {e}", path.display()))?;
            parse_data(Some(&text)).map_err(|e| anyhow!("--data-file {}: {e}", path.display()))?
        }
        None => parse_data(args.data.as_deref())?,
    };
    let client = client(global).await?;
    let options = StartOptions {
        version: args.version.clone(),
        initial_data: data,
        id: args.id.clone(),
        tenant_id: args.tenant.clone(),
        created_by: args.created_by.clone(),
        ..start_time(&args)
    };
    let view = client
        .start_workflow(&args.name, options)
        .await
        .map_err(|e| engine_error(global, e))?;
    if args.wait {
        wait_created(global, &client, &view.id, args.wait_timeout).await?;
    }
    out(&view.id);
    Ok(ExitCode::SUCCESS)
}

/// The start time options of `--at` or `--delay`.
fn start_time(args: &StartArgs) -> StartOptions {
    StartOptions {
        start_at: args.at,
        start_delay_ms: args
            .delay
            .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64),
        ..StartOptions::default()
    }
}

/// Whether `--data-file` names a JSON Lines file (one start per line).
fn is_json_lines(path: &std::path::Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"))
}

/// `weir start NAME --data-file F.jsonl`: one start per non-blank line, as one batch. Every
/// line is checked before anything is stored; then the ids are printed in line order. A
/// start that Redis refused (a caller id taken) or could not store is reported on stderr
/// with its line number, and the exit code is 1; the other lines are started.
async fn start_lines(
    global: &Global,
    args: &StartArgs,
    path: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    if args.id.is_some() {
        anyhow::bail!(
            "--id names one instance, but --data-file {} starts one per line: leave --id out",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("--data-file {}: cannot read it: {e}", path.display()))?;
    let mut lines = Vec::new();
    let mut starts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let data = parse_data(Some(line)).map_err(|e| {
            anyhow!(
                "--data-file {} line {}: {e}; nothing was started",
                path.display(),
                n + 1
            )
        })?;
        lines.push(n + 1);
        starts.push(StartOptions {
            version: args.version.clone(),
            initial_data: data,
            id: None,
            tenant_id: args.tenant.clone(),
            created_by: args.created_by.clone(),
            ..start_time(args)
        });
    }
    let client = client(global).await?;
    let results = client
        .start_workflows(&args.name, starts)
        .await
        .map_err(|e| {
            let line = lines.get(e.index).copied().unwrap_or(0);
            anyhow!(
                "--data-file {} line {line}: {}; nothing was started",
                path.display(),
                engine_error(global, e.error)
            )
        })?;
    let mut failed = 0;
    for (result, line) in results.into_iter().zip(&lines) {
        match result {
            Ok(started) => {
                if args.wait {
                    wait_created(global, &client, &started.view.id, args.wait_timeout).await?;
                }
                out(&started.view.id)
            }
            Err(e) => {
                failed += 1;
                eprintln!(
                    "error: --data-file {} line {line}: {}",
                    path.display(),
                    engine_error(global, e)
                );
            }
        }
    }
    if failed > 0 {
        return Err(Exit::new(
            exit::ERROR,
            format!(
                "{failed} of {} lines were not started (see above); the others were",
                lines.len()
            ),
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}

/// `--wait`: waits until a coordinator created the instance.
async fn wait_created(
    global: &Global,
    client: &weir::redis::WeirClient,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    match client.wait_created(id, timeout).await {
        Ok(_) => Ok(()),
        Err(EngineError::WaitTimeout(..)) => Err(Exit::new(
            exit::TIMEOUT,
            format!(
                "instance {id} is stored but still pending after {}: no coordinator created it \
                 (is `weir coordinator` running?); it will be created once one runs, or cancel \
                 it with `weir cancel {id}`",
                weir::model::definition::duration::format(&timeout)
            ),
        )
        .into()),
        Err(e) => Err(engine_error(global, e)),
    }
}

/// Runs `weir status`.
pub(crate) async fn status(global: &Global, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = client(global).await?;
    let view = client
        .get_instance(&args.id)
        .await
        .map_err(|e| engine_error(global, e))?;
    if args.json {
        print_json(&view)?;
    } else {
        print_view(&view);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints an instance for a person.
fn print_view(v: &InstanceView) {
    out(&format!("id:            {}", v.id));
    out(&format!("definition:    {}@{}", v.definition, v.version));
    out(&format!("status:        {}", v.status));
    out(&format!("current steps: {}", steps_text(&v.current_steps)));
    for w in &v.waiting_for {
        let key = w
            .key
            .as_deref()
            .map(|k| format!(" with key {k}"))
            .unwrap_or_else(|| " (signal)".into());
        out(&format!(
            "waits for:     message {}{key} at {}",
            w.event, w.step
        ));
    }
    if let Some(e) = &v.error {
        out(&format!("error:         {e}"));
    }
    if let Some(s) = &v.failed_step {
        out(&format!("failed step:   {s}"));
    }
    if let Some(t) = &v.tenant {
        out(&format!("tenant:        {t}"));
    }
    if let Some(u) = &v.created_by {
        out(&format!("created by:    {u}"));
    }
    out(&format!("created at:    {}", when(Some(v.created_at))));
    if let Some(at) = v.start_at {
        out(&format!(
            "starts at:     {at} (a delayed start; `weir cancel` cancels it)"
        ));
    }
    out(&format!("updated at:    {}", when(Some(v.updated_at))));
    if v.finished_at.is_some() {
        out(&format!("finished at:   {}", when(v.finished_at)));
    }
    out(&format!("context:       {}", v.context));
}

fn steps_text(steps: &[String]) -> String {
    if steps.is_empty() {
        "-".into()
    } else {
        steps.join(", ")
    }
}

/// Runs `weir wait`.
pub(crate) async fn wait(global: &Global, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let client = client(global).await?;
    match client.wait(&args.id, args.timeout).await {
        Ok(view) => {
            print_json(&view)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(EngineError::WaitTimeout(..)) => {
            let status = client
                .get_instance(&args.id)
                .await
                .map(|v| v.status.to_string())
                .unwrap_or_else(|_| "unknown".into());
            Err(Exit::new(
                exit::TIMEOUT,
                format!(
                    "instance {} is still {status} after {}: wait longer with --timeout, or \
                     check `weir status {}` and that coordinator and workers run",
                    args.id,
                    weir::model::definition::duration::format(&args.timeout),
                    args.id
                ),
            )
            .into())
        }
        Err(e) => Err(engine_error(global, e)),
    }
}

/// Runs `weir list`.
pub(crate) async fn list(global: &Global, args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = client(global).await?;
    let filter = InstanceFilter {
        status: args.status,
        definition: args.definition,
        tenant_id: args.tenant,
        created_by: args.created_by,
        limit: Some(args.limit),
        ..InstanceFilter::default()
    };
    let views = client
        .list_instances(&filter)
        .await
        .map_err(|e| engine_error(global, e))?;
    if args.json {
        print_json(&views)?;
        return Ok(ExitCode::SUCCESS);
    }
    if views.is_empty() {
        out("no instances");
        return Ok(ExitCode::SUCCESS);
    }
    let id_w = views.iter().map(|v| v.id.len()).max().unwrap_or(2).max(2);
    let def_w = views
        .iter()
        .map(|v| v.definition.len() + v.version.len() + 1)
        .max()
        .unwrap_or(10)
        .max(10);
    out(&format!(
        "{:<id_w$}  {:<def_w$}  {:<9}  {:<24}  current steps",
        "id", "definition", "status", "created at"
    ));
    for v in &views {
        out(&format!(
            "{:<id_w$}  {:<def_w$}  {:<9}  {:<24}  {}",
            v.id,
            format!("{}@{}", v.definition, v.version),
            v.status.as_str(),
            when(Some(v.created_at)),
            match v.start_at {
                Some(at) => format!("starts at {at}"),
                None => steps_text(&v.current_steps),
            }
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `weir history`.
pub(crate) async fn history(global: &Global, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let client = client(global).await?;
    let records: Vec<AttemptRecord> = client
        .history(&args.id)
        .await
        .map_err(|e| engine_error(global, e))?;
    if args.json {
        print_json(&records)?;
        return Ok(ExitCode::SUCCESS);
    }
    // The count of records the history cap dropped (an empty page carries it).
    let dropped = client
        .history_page(&args.id, 0, 0)
        .await
        .map_err(|e| engine_error(global, e))?
        .dropped;
    if dropped > 0 {
        out(&format!(
            "({dropped} older records dropped: an instance keeps its last {})",
            weir::api::MAX_HISTORY_RECORDS
        ));
    }
    let step_w = records
        .iter()
        .map(|r| r.step.len())
        .max()
        .unwrap_or(4)
        .max(4);
    out(&format!(
        "{:<step_w$}  {:>7}  {:<10}  {:<24}  {:<24}  {:<16}  error or note",
        "step", "attempt", "status", "started at", "finished at", "worker"
    ));
    for r in &records {
        let status = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out(&format!(
            "{:<step_w$}  {:>7}  {:<10}  {:<24}  {:<24}  {:<16}  {}",
            r.step,
            r.attempt,
            status,
            when(r.started_at),
            when(r.finished_at),
            r.worker.as_deref().unwrap_or("-"),
            r.error.as_deref().or(r.note.as_deref()).unwrap_or("")
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `weir cancel`.
pub(crate) async fn cancel(global: &Global, args: CancelArgs) -> anyhow::Result<ExitCode> {
    let client = client(global).await?;
    let view = client
        .cancel_workflow(&args.id, args.reason.as_deref())
        .await
        .map_err(|e| engine_error(global, e))?;
    out(&format!("{} {}", view.id, view.status));
    Ok(ExitCode::SUCCESS)
}

/// Runs `weir retry`.
pub(crate) async fn retry(global: &Global, args: RetryArgs) -> anyhow::Result<ExitCode> {
    let client = client(global).await?;
    let view = client
        .retry(&args.id, args.from_step.as_deref())
        .await
        .map_err(|e| engine_error(global, e))?;
    out(&format!("{} {}", view.id, view.status));
    Ok(ExitCode::SUCCESS)
}

/// Runs `weir signal`: delivers a signal to the instance's event step waiting on NAME, and
/// prints the instance's id, status and current steps.
pub(crate) async fn signal(global: &Global, args: SignalArgs) -> anyhow::Result<ExitCode> {
    let data = match args.data.as_deref() {
        None => Value::Object(Default::default()),
        Some(text) => serde_json::from_str::<Value>(text).map_err(|e| {
            anyhow!("--data is not JSON ({e}): write a JSON value, like '{{\"ok\": true}}'")
        })?,
    };
    let client = client(global).await?;
    let view = client
        .signal(&args.id, &args.name, data, args.message_id.as_deref())
        .await
        .map_err(|e| engine_error(global, e))?;
    let steps = view.current_steps.join(",");
    let line = if steps.is_empty() {
        format!("{} {}", view.id, view.status)
    } else {
        format!("{} {} {steps}", view.id, view.status)
    };
    out(&line);
    Ok(ExitCode::SUCCESS)
}

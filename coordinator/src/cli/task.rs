//! `weir task list`, `complete` and `reassign`: human tasks in Redis.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::Value;
use weir::api::TaskFilter;
use weir::model::{Actor, Assignment};
use weir::Engine;

use super::printer::out;
use super::remote::{client, engine_error, print_json, when};
use super::Global;

/// `weir task ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TaskCommand {
    /// List open human tasks (with their form schema).
    List(ListArgs),
    /// Complete a human task as a user, with form data.
    Complete(CompleteArgs),
    /// Give an open human task to another assignee and/or candidates (recorded in the
    /// history, announced as HumanTaskReassigned).
    Reassign(ReassignArgs),
}

/// `weir task list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only tasks assigned to this user.
    #[arg(long, value_name = "U")]
    pub assignee: Option<String>,
    /// Only tasks of this instance.
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `weir task complete`.
#[derive(Debug, Args)]
pub(crate) struct CompleteArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The human step.
    #[arg(value_name = "STEP")]
    pub step: String,
    /// Who completes it (must be its assignee or a candidate, when it names any).
    #[arg(long, value_name = "U")]
    pub user: String,
    /// The form data, a JSON value, e.g. '{"approved": true}'.
    #[arg(long, value_name = "JSON")]
    pub data: String,
}

/// `weir task reassign`.
#[derive(Debug, Args)]
pub(crate) struct ReassignArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The human step.
    #[arg(value_name = "STEP")]
    pub step: String,
    /// The new assignee.
    #[arg(long, value_name = "U")]
    pub to: Option<String>,
    /// A new candidate (repeat for several); replaces the candidates.
    #[arg(long = "candidate", value_name = "U")]
    pub candidates: Vec<String>,
    /// Who reassigns it, for the history. The CLI acts as an admin: whoever holds the Redis
    /// credentials can change any state anyway.
    #[arg(long, value_name = "U", env = "USER", default_value = "operator")]
    pub by: String,
}

/// Runs a `weir task` command.
pub(crate) async fn run(global: &Global, cmd: TaskCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TaskCommand::List(args) => list(global, args).await,
        TaskCommand::Complete(args) => complete(global, args).await,
        TaskCommand::Reassign(args) => reassign(global, args).await,
    }
}

async fn list(global: &Global, args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = client(global).await?;
    let filter = TaskFilter {
        assignee: args.assignee,
        instance_id: args.instance,
        ..TaskFilter::default()
    };
    let tasks = client
        .list_tasks(&filter)
        .await
        .map_err(|e| engine_error(global, e))?;
    if args.json {
        print_json(&tasks)?;
        return Ok(ExitCode::SUCCESS);
    }
    if tasks.is_empty() {
        out("no open tasks");
        return Ok(ExitCode::SUCCESS);
    }
    for t in &tasks {
        let mut who: Vec<&str> = t.assignee.iter().map(String::as_str).collect();
        who.extend(t.candidates.iter().map(String::as_str));
        out(&format!(
            "{} {}  for {}  opened {}{}",
            t.instance_id,
            t.step,
            if who.is_empty() {
                "anyone".to_string()
            } else {
                who.join(", ")
            },
            when(Some(t.created_at)),
            t.due_at
                .map(|d| format!(", due {}", when(Some(d))))
                .unwrap_or_default()
        ));
        if let Some(title) = &t.title {
            out(&format!("  {title}"));
        }
        if let Some(form) = &t.form {
            out(&format!("  form: {form}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn complete(global: &Global, args: CompleteArgs) -> anyhow::Result<ExitCode> {
    let data: Value = serde_json::from_str(&args.data)
        .map_err(|e| anyhow!("--data is not JSON ({e}): write it like '{{\"approved\": true}}'"))?;
    let client = client(global).await?;
    let view = client
        .complete_human_task(&args.id, &args.step, &args.user, data)
        .await
        .map_err(|e| engine_error(global, e))?;
    out(&format!("{} {}", view.id, view.status));
    Ok(ExitCode::SUCCESS)
}

async fn reassign(global: &Global, args: ReassignArgs) -> anyhow::Result<ExitCode> {
    let client = client(global).await?;
    let to = Assignment {
        assignee: args.to,
        candidates: args.candidates,
    };
    let view = client
        .reassign_task(&args.id, &args.step, &Actor::admin(args.by), to)
        .await
        .map_err(|e| engine_error(global, e))?;
    out(&format!("{} {}", view.id, view.status));
    Ok(ExitCode::SUCCESS)
}

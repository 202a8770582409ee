//! `weir task list`, `complete`, `claim`, `release` and `reassign`: human tasks in Redis.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::Value;
use weir::api::{TaskFilter, TaskScope, TaskSort};
use weir::model::{Actor, Assignment};
use weir::Engine;

use super::printer::{out, outcome_names, shown_fields, terminal_text};
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
    /// Claim an open human task for a user: until released, only they may complete it.
    Claim(ClaimArgs),
    /// Release the claim on a human task (the claimer's own, or anyone's with --admin).
    Release(ReleaseArgs),
}

/// `weir task claim`.
#[derive(Debug, Args)]
pub(crate) struct ClaimArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The human step.
    #[arg(value_name = "STEP")]
    pub step: String,
    /// Who claims it (its assignee, a candidate, or a member of a candidate group).
    #[arg(long, value_name = "U")]
    pub user: String,
    /// A group the user is a member of (repeat for several).
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
}

/// `weir task release`.
#[derive(Debug, Args)]
pub(crate) struct ReleaseArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The human step.
    #[arg(value_name = "STEP")]
    pub step: String,
    /// Who releases it (the claimer, unless --admin).
    #[arg(long, value_name = "U")]
    pub user: String,
    /// Release anyone's claim, as an admin (whoever holds the Redis credentials can).
    #[arg(long)]
    pub admin: bool,
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
    /// Only tasks of this workflow.
    #[arg(long, value_name = "NAME")]
    pub workflow: Option<String>,
    /// Only tasks this user may act on (narrowed by --view).
    #[arg(long, value_name = "U")]
    pub user: Option<String>,
    /// A group --user is a member of (repeat for several).
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
    /// With --user: `mine` (assigned to or claimed by them), `groups` (open to one of
    /// their groups) or `all` (everything they may act on; the default).
    #[arg(long, value_name = "VIEW", requires = "user")]
    pub view: Option<String>,
    /// `oldest` (oldest first, the default) or `due` (soonest due first).
    #[arg(long, value_name = "ORDER", default_value = "oldest")]
    pub sort: String,
    /// At most this many tasks.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
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
    /// Who completes it (must be its assignee, a candidate or a member of a candidate
    /// group, when it names any; and the claimer, when it is claimed).
    #[arg(long, value_name = "U")]
    pub user: String,
    /// A group the user is a member of (repeat for several).
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
    /// The form data, a JSON value, e.g. '{"approved": true}' (default `{}`, for a task
    /// completed by an outcome alone).
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub data: String,
    /// One of the task's outcome buttons (`weir task list` shows them): its data is merged
    /// over `--data`.
    #[arg(long, value_name = "NAME")]
    pub outcome: Option<String>,
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
        TaskCommand::Claim(args) => claim(global, args).await,
        TaskCommand::Release(args) => release(global, args).await,
    }
}

async fn claim(global: &Global, args: ClaimArgs) -> anyhow::Result<ExitCode> {
    let client = client(global).await?;
    let by = Actor::user(args.user).in_groups(args.groups);
    let view = client
        .claim_task(&args.id, &args.step, &by)
        .await
        .map_err(|e| engine_error(global, e))?;
    out(&format!("{} {} claimed by {}", view.id, args.step, by.user));
    Ok(ExitCode::SUCCESS)
}

async fn release(global: &Global, args: ReleaseArgs) -> anyhow::Result<ExitCode> {
    let client = client(global).await?;
    let by = if args.admin {
        Actor::admin(args.user)
    } else {
        Actor::user(args.user)
    };
    let view = client
        .release_task(&args.id, &args.step, &by)
        .await
        .map_err(|e| engine_error(global, e))?;
    out(&format!("{} {} released", view.id, args.step));
    Ok(ExitCode::SUCCESS)
}

async fn list(global: &Global, args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = client(global).await?;
    let scope = match args.view.as_deref() {
        None => None,
        Some(v) => Some(
            TaskScope::parse(v).ok_or_else(|| anyhow!("--view {v:?}: use mine, groups or all"))?,
        ),
    };
    let sort = TaskSort::parse(&args.sort)
        .ok_or_else(|| anyhow!("--sort {:?}: use oldest or due", args.sort))?;
    let filter = TaskFilter {
        scope: scope.or(args.user.as_ref().map(|_| TaskScope::MayDo)),
        user: args.user,
        groups: args.groups,
        assignee: args.assignee,
        instance_id: args.instance,
        workflow: args.workflow,
        sort,
        limit: args.limit,
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
        let mut who: Vec<String> = t.assignee.iter().cloned().collect();
        who.extend(t.candidates.iter().cloned());
        who.extend(t.candidate_groups.iter().map(|g| format!("group {g}")));
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
        if let Some(c) = &t.claimed_by {
            out(&format!("  taken by {c}"));
        }
        if t.reminders > 0 {
            out(&format!("  reminders: {}", t.reminders));
        }
        if let Some(title) = &t.title {
            out(&format!("  {}", terminal_text(title)));
        }
        if let Some(fields) = shown_fields(t) {
            out(&format!("  {fields}"));
        }
        if let Some(names) = outcome_names(t) {
            out(&format!("  outcomes: {}", terminal_text(&names)));
        }
        if let Some(form) = &t.form {
            out(&format!("  form: {}", terminal_text(&form.to_string())));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn complete(global: &Global, args: CompleteArgs) -> anyhow::Result<ExitCode> {
    let data: Value = serde_json::from_str(&args.data)
        .map_err(|e| anyhow!("--data is not JSON ({e}): write it like '{{\"approved\": true}}'"))?;
    let client = client(global).await?;
    let data = match args.outcome.as_deref() {
        None => data,
        Some(outcome) => {
            // The outcome's data is the task's (stored with it when it opened).
            let filter = TaskFilter {
                instance_id: Some(args.id.clone()),
                ..TaskFilter::default()
            };
            let tasks = client
                .list_tasks(&filter)
                .await
                .map_err(|e| engine_error(global, e))?;
            let task = tasks
                .iter()
                .find(|t| *t.step == *args.step)
                .ok_or_else(|| {
                    anyhow!(
                        "no open task of step {:?} in instance {:?}",
                        args.step,
                        args.id
                    )
                })?;
            task.submission(Some(outcome), data)?
        }
    };
    let view = client
        .complete_task_as(
            &args.id,
            &args.step,
            &Actor::user(args.user).in_groups(args.groups),
            data,
        )
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
        groups: Vec::new(),
    };
    let view = client
        .reassign_task(&args.id, &args.step, &Actor::admin(args.by), to)
        .await
        .map_err(|e| engine_error(global, e))?;
    out(&format!("{} {}", view.id, view.status));
    Ok(ExitCode::SUCCESS)
}

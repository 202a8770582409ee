//! `weir schedule create|list|show|pause|resume|delete|trigger`: workflows started on a
//! calendar or at an interval (see the README, "Schedules").

use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use weir::schedule::{Firing, FiringOutcome, Overlap, ScheduleSpec, ScheduleView, Trigger};
use weir::Engine;

use super::printer::out;
use super::remote::{client, engine_error, parse_duration, print_json, when};
use super::run::parse_data;
use super::Global;

/// `weir schedule ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// Create a schedule (the same name with the same spec again is a no-op).
    Create(CreateArgs),
    /// List the schedules.
    List(JsonArgs),
    /// Show a schedule: its next five fire times and its last ten firings.
    Show(NameArgs),
    /// Pause a schedule: no slot fires until it is resumed.
    Pause(NameArgs),
    /// Resume a paused schedule from its next slot after now.
    Resume(NameArgs),
    /// Delete a schedule (the instances it started stay).
    Delete(NameArgs),
    /// Fire a schedule now, outside its slots (its overlap rule applies); prints the
    /// instance id.
    Trigger(NameArgs),
}

/// `weir schedule create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The schedule's name (letters, digits, `_`, `-`, `.`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The workflow it starts.
    #[arg(long, value_name = "W")]
    pub workflow: String,
    /// A version; the latest at each firing when not given.
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// A cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with
    /// seconds first, e.g. '0 30 2 * * *'.
    #[arg(
        long,
        value_name = "EXPR",
        required_unless_present = "every",
        conflicts_with = "every"
    )]
    pub cron: Option<String>,
    /// The IANA time zone of the cron expression (default UTC), e.g. Europe/Paris.
    #[arg(long, value_name = "TZ", requires = "cron")]
    pub timezone: Option<String>,
    /// A fixed interval instead of cron, e.g. 30s, 15m, 1h (slots at its multiples since
    /// the Unix epoch).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub every: Option<Duration>,
    /// The initial context of each instance: a JSON object.
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    /// While the previous instance is unfinished: skip the slot, allow it, or
    /// cancel_previous.
    #[arg(long, value_name = "POLICY", default_value = "skip")]
    pub overlap: String,
    /// How many missed slots fire when a coordinator returns after missing several (the
    /// most recent ones); older ones are skipped and counted.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub catch_up: u32,
    /// Print the schedule as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A schedule's name.
#[derive(Debug, Args)]
pub(crate) struct NameArgs {
    /// The schedule's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--json` only.
#[derive(Debug, Args)]
pub(crate) struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `weir schedule` command.
pub(crate) async fn run(global: &Global, cmd: ScheduleCommand) -> anyhow::Result<ExitCode> {
    let engine = client(global).await?;
    let fail = |e| engine_error(global, e);
    match cmd {
        ScheduleCommand::Create(args) => {
            let trigger = match (&args.cron, args.every) {
                (Some(expr), _) => Trigger::Cron {
                    expr: expr.clone(),
                    timezone: args.timezone.clone(),
                },
                (None, Some(every)) => Trigger::Every {
                    every_ms: every.as_millis().min(u128::from(u64::MAX)) as u64,
                },
                (None, None) => anyhow::bail!("give --cron EXPR or --every DUR"),
            };
            let overlap: Overlap = args
                .overlap
                .parse()
                .map_err(|e| anyhow!("--overlap: {e}"))?;
            let spec = ScheduleSpec {
                name: args.name.clone(),
                workflow: args.workflow.clone(),
                version: args.version.clone(),
                trigger,
                data: parse_data(args.data.as_deref())?,
                overlap,
                catch_up: args.catch_up,
            };
            let view = engine.create_schedule(spec).await.map_err(fail)?;
            if args.json {
                print_json(&view)?;
            } else {
                out(&format!(
                    "schedule {} created; next fire {}",
                    view.spec.name,
                    when(view.next_fire)
                ));
            }
        }
        ScheduleCommand::List(args) => {
            let all = engine.list_schedules().await.map_err(fail)?;
            if args.json {
                print_json(&all)?;
            } else if all.is_empty() {
                out("no schedules");
            } else {
                out(&format!(
                    "{:<24}  {:<20}  {:<24}  {:<24}  {:>6}  {:>6}  {:>7}",
                    "name", "workflow", "trigger", "next fire", "fired", "missed", "skipped"
                ));
                for v in &all {
                    out(&format!(
                        "{:<24}  {:<20}  {:<24}  {:<24}  {:>6}  {:>6}  {:>7}",
                        v.spec.name,
                        v.spec.workflow,
                        trigger_text(v),
                        if v.paused {
                            "paused".to_string()
                        } else {
                            when(v.next_fire)
                        },
                        v.fired,
                        v.missed,
                        v.skipped
                    ));
                }
            }
        }
        ScheduleCommand::Show(args) => {
            let d = engine.get_schedule(&args.name).await.map_err(fail)?;
            if args.json {
                print_json(&d)?;
                return Ok(ExitCode::SUCCESS);
            }
            let v = &d.schedule;
            out(&format!("schedule:      {}", v.spec.name));
            out(&format!(
                "workflow:      {}{}",
                v.spec.workflow,
                v.spec
                    .version
                    .as_deref()
                    .map(|x| format!("@{x}"))
                    .unwrap_or_default()
            ));
            out(&format!("trigger:       {}", trigger_text(v)));
            out(&format!("overlap:       {}", v.spec.overlap.as_str()));
            out(&format!("catch-up:      {}", v.spec.catch_up));
            out(&format!("paused:        {}", v.paused));
            out(&format!(
                "fired:         {} (missed {}, skipped by overlap {})",
                v.fired, v.missed, v.skipped
            ));
            out("next fire times:");
            for t in &d.upcoming {
                out(&format!("  {t}"));
            }
            out("last firings:");
            for f in &d.recent {
                out(&format!("  {}", firing_text(f)));
            }
        }
        ScheduleCommand::Pause(args) => {
            let v = engine.pause_schedule(&args.name).await.map_err(fail)?;
            if args.json {
                print_json(&v)?;
            } else {
                out(&format!("schedule {} paused", v.spec.name));
            }
        }
        ScheduleCommand::Resume(args) => {
            let v = engine.resume_schedule(&args.name).await.map_err(fail)?;
            if args.json {
                print_json(&v)?;
            } else {
                out(&format!(
                    "schedule {} resumed; next fire {}",
                    v.spec.name,
                    when(v.next_fire)
                ));
            }
        }
        ScheduleCommand::Delete(args) => {
            engine.delete_schedule(&args.name).await.map_err(fail)?;
            out(&format!("schedule {} deleted", args.name));
        }
        ScheduleCommand::Trigger(args) => {
            let f = engine.trigger_schedule(&args.name).await.map_err(fail)?;
            if args.json {
                print_json(&f)?;
            } else {
                match &f.instance_id {
                    Some(id) => out(id),
                    None => out(&firing_text(&f)),
                }
            }
            if matches!(f.outcome, FiringOutcome::Failed { .. }) {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The trigger in words.
fn trigger_text(v: &ScheduleView) -> String {
    match &v.spec.trigger {
        Trigger::Cron { expr, timezone } => match timezone {
            Some(tz) => format!("cron '{expr}' {tz}"),
            None => format!("cron '{expr}' UTC"),
        },
        Trigger::Every { every_ms } => format!(
            "every {}",
            weir::model::definition::duration::format(&Duration::from_millis(*every_ms))
        ),
    }
}

/// One firing in words.
fn firing_text(f: &Firing) -> String {
    let slot = f
        .slot
        .map_or("manual trigger".to_string(), |s| format!("slot {s}"));
    let what = match &f.outcome {
        FiringOutcome::Started => "started".to_string(),
        FiringOutcome::AlreadyStarted => "already started".to_string(),
        FiringOutcome::StartedAfterCancel => "started after canceling the previous".to_string(),
        FiringOutcome::SkippedOverlap => "skipped: the previous instance is unfinished".to_string(),
        FiringOutcome::Missed { count } => {
            format!("{count} missed slot(s) skipped, up to this one")
        }
        FiringOutcome::Failed { error } => format!("failed: {error}"),
    };
    match &f.instance_id {
        Some(id) => format!("{}  {slot}: {what} ({id})", f.fired_at),
        None => format!("{}  {slot}: {what}", f.fired_at),
    }
}

//! `weir dlq list|replay|purge`: inspect, re-enqueue or drop dead-lettered messages.
//! A dead letter is named `P/STREAM-ID` (its partition and its id in that partition's
//! dead-letter stream), as `weir dlq list` prints it.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use weir::redis::admin::{self, DlqOutcome};

use super::printer::out;
use super::remote::{connections, print_json, redis_error};
use super::Global;

/// `weir dlq ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// List dead letters: id, source stream, error, deliveries, message size.
    List(ListArgs),
    /// Put dead letters back on the stream they came from.
    Replay(Select),
    /// Drop dead letters.
    Purge(Select),
}

/// `weir dlq list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// At most this many.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which dead letters.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct Select {
    /// Dead letter ids, as `weir dlq list` prints them (P/STREAM-ID).
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// Every dead letter.
    #[arg(long)]
    pub all: bool,
}

/// Runs a `weir dlq` command.
pub(crate) async fn run(global: &Global, cmd: DlqCommand) -> anyhow::Result<ExitCode> {
    let c = connections(global).await?;
    match cmd {
        DlqCommand::List(args) => {
            let letters = admin::dead_letters(&c, args.limit)
                .await
                .map_err(|e| redis_error(global, e))?;
            if args.json {
                print_json(&letters)?;
            } else if letters.is_empty() {
                out("no dead letters");
            } else {
                for d in &letters {
                    out(&format!(
                        "{}  from {} (entry {}, {} deliveries, {} bytes): {}",
                        d.id, d.source, d.message_id, d.deliveries, d.size, d.error
                    ));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Replay(sel) => {
            let ids = (!sel.all).then_some(sel.ids.as_slice());
            let outcome = admin::replay(&c, ids)
                .await
                .map_err(|e| redis_error(global, e))?;
            finish(&outcome, "replayed")
        }
        DlqCommand::Purge(sel) => {
            let ids = (!sel.all).then_some(sel.ids.as_slice());
            let outcome = admin::purge(&c, ids)
                .await
                .map_err(|e| redis_error(global, e))?;
            finish(&outcome, "purged")
        }
    }
}

fn finish(outcome: &DlqOutcome, verb: &str) -> anyhow::Result<ExitCode> {
    for id in &outcome.done {
        out(&format!("{id} {verb}"));
    }
    if outcome.missing.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(anyhow!(
            "no dead letter {}: check the ids with `weir dlq list` (already replayed or purged?)",
            outcome.missing.join(", ")
        ))
    }
}

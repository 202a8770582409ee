//! `weir events [--follow] [--instance ID] [--json]`: the event streams of a namespace.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use weir::model::Event;
use weir::redis::client::EventCursor;

use super::printer::{describe, out};
use super::remote::{client, engine_error, print_json_line, when};
use super::Global;

/// Events read per call.
const BATCH: usize = 1000;

/// `weir events`.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// After what is stored, keep printing new events until Ctrl-C.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only events of this instance.
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
    /// One JSON object per line: type, instance_id, timestamp and the event's data.
    #[arg(long)]
    pub json: bool,
}

/// Runs `weir events`.
pub(crate) async fn run(global: &Global, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let client = client(global).await?;
    let mut cursor = EventCursor::default();
    // What is stored now.
    loop {
        let (events, next) = client
            .read_events(&cursor, BATCH, None)
            .await
            .map_err(|e| engine_error(global, e))?;
        let moved = next != cursor;
        cursor = next;
        print(&events, &args)?;
        if !moved {
            break;
        }
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let follow = async {
        loop {
            let (events, next) = client
                .read_events(&cursor, BATCH, Some(Duration::from_secs(5)))
                .await
                .map_err(|e| engine_error(global, e))?;
            cursor = next;
            print(&events, &args)?;
        }
    };
    tokio::select! {
        r = follow => r,
        () = weir::process::shutdown::signal() => Ok(ExitCode::SUCCESS),
    }
}

fn print(events: &[Event], args: &EventsArgs) -> anyhow::Result<()> {
    for e in events {
        if args
            .instance
            .as_deref()
            .is_some_and(|id| &*e.instance_id != id)
        {
            continue;
        }
        if args.json {
            print_json_line(e)?;
        } else {
            out(&format!(
                "{}  {}  {}",
                when(Some(e.timestamp)),
                e.instance_id,
                describe(e)
            ));
        }
    }
    Ok(())
}

//! The command line: global flags, the command tree, logging, exit codes.
//!
//! # Layout
//!
//! One module per command group; each has an `Args` (or a `Command` enum for groups) and
//! an `async fn run(&Global, args) -> anyhow::Result<ExitCode>`:
//!
//! - [`run`]: `weir run FILE` on the in-process LocalEngine.
//! - [`demo`]: `weir demo`, the example workflows of [`examples`].
//! - [`definition`]: `weir definition validate|show` for local files, `register|list|show`
//!   in Redis.
//! - [`coordinator`]: `weir coordinator`, the coordinator service.
//! - [`instance`]: `weir start|status|wait|list|history|cancel|retry|signal`.
//! - [`message`]: `weir message send|list` (messages by name and correlation key).
//! - [`task`]: `weir task list|complete`.
//! - [`events`]: `weir events`.
//! - [`stats`]: `weir stats`; [`dlq`]: `weir dlq list|replay|purge`.
//! - [`bench`]: `weir bench local|redis`.
//! - [`serve`]: `weir serve`, the HTTP API.
//!
//! Shared pieces: [`engine`] (the few engine calls that `run` and `demo` make, so a Redis
//! client can drive them too), [`drive`] (runs an instance to its end, answering human
//! tasks), [`prompt`] (asks for task data on a terminal), [`printer`] (events as lines),
//! [`exit`] (exit codes and the one-line error), [`remote`] (connecting to Redis, engine
//! errors as one line).

pub(crate) mod bench;
pub(crate) mod coordinator;
pub(crate) mod definition;
pub(crate) mod demo;
pub(crate) mod dlq;
pub(crate) mod drive;
pub(crate) mod events;
pub(crate) mod examples;
pub(crate) mod exit;
pub(crate) mod instance;
pub(crate) mod message;
pub(crate) mod printer;
pub(crate) mod prompt;
pub(crate) mod remote;
pub(crate) mod run;
pub(crate) mod schedule;
pub(crate) mod serve;
pub(crate) mod stats;
pub(crate) mod task;

use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// The default Redis URL.
pub(crate) const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Weir: workflows on Redis, or in-process with no Redis.
#[derive(Debug, Parser)]
#[command(name = "weir", version)]
pub(crate) struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes (before or after the command's name).
#[derive(Debug, Clone, Args)]
pub(crate) struct Global {
    /// Redis to use, e.g. redis://127.0.0.1:6379 or redis://user:password@host:6379/0
    /// (rediss:// for TLS).
    #[arg(
        long,
        global = true,
        env = "WEIR_REDIS_URL",
        hide_env_values = true,
        default_value = DEFAULT_REDIS_URL,
        value_name = "URL"
    )]
    pub redis: String,
    /// Key prefix, so several environments can share one Redis.
    #[arg(
        long,
        global = true,
        env = "WEIR_NAMESPACE",
        default_value = "weir",
        value_name = "NS"
    )]
    pub namespace: String,
    /// Certificates for rediss://.
    #[command(flatten)]
    pub tls: weir::process::RedisTlsArgs,
    /// One server or a cluster, and the partition count.
    #[command(flatten)]
    pub mode: weir::process::RedisModeArgs,
    /// How log lines (on stderr) are written.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Whether `--redis` was given on the command line (not defaulted nor from the
    /// environment): `weir demo` and `weir bench redis` then use that Redis.
    #[arg(skip)]
    pub redis_given: bool,
    /// Whether `--namespace` was given on the command line.
    #[arg(skip)]
    pub namespace_given: bool,
}

pub(crate) use weir::process::LogFormat;

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run one definition file to its end in-process (no Redis), printing each step.
    Run(run::RunArgs),
    /// Run the example workflows in-process and print what happened (no Redis needed).
    Demo(demo::DemoArgs),
    /// Check, register, list and show definitions.
    #[command(subcommand)]
    Definition(definition::DefinitionCommand),
    /// Run the coordinator service until SIGINT or SIGTERM.
    Coordinator(coordinator::CoordinatorArgs),
    /// Start an instance of a registered workflow; prints its id.
    Start(instance::StartArgs),
    /// Show an instance.
    Status(instance::StatusArgs),
    /// Wait until an instance is completed, failed, canceled or waiting on a person; prints
    /// its status as JSON.
    Wait(instance::WaitArgs),
    /// List instances, newest first.
    List(instance::ListArgs),
    /// Show an instance's attempts.
    History(instance::HistoryArgs),
    /// List and complete human tasks.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Cancel a running or waiting instance.
    Cancel(instance::CancelArgs),
    /// Resume a failed instance.
    Retry(instance::RetryArgs),
    /// Deliver a signal to an instance's event step waiting on NAME (refused, with nothing
    /// changed, when none waits).
    Signal(instance::SignalArgs),
    /// Send messages by name and correlation key, and list those kept for instances that
    /// do not wait yet.
    #[command(subcommand)]
    Message(message::MessageCommand),
    /// Print events (and follow new ones with --follow).
    Events(events::EventsArgs),
    /// Instances per status, queues, consumers, dead letters, leases.
    Stats(stats::StatsArgs),
    /// Inspect, replay or drop dead-lettered messages.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Start a workflow on a calendar (cron) or at an interval: create, list, show, pause,
    /// resume, delete, trigger.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// Measure throughput: the in-process engine, or a Redis deployment.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Serve the HTTP API (and the dashboard) until SIGINT or SIGTERM.
    Serve(serve::ServeArgs),
}

impl Command {
    /// The log filter when `RUST_LOG` is not set: quiet, except the `log` handler's lines
    /// for commands that run workflows.
    fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Run(_) | Command::Demo(_) => "warn,weir::log=info",
            Command::Coordinator(_) | Command::Serve(_) => "info",
            Command::Definition(_)
            | Command::Start(_)
            | Command::Status(_)
            | Command::Wait(_)
            | Command::List(_)
            | Command::History(_)
            | Command::Task(_)
            | Command::Cancel(_)
            | Command::Retry(_)
            | Command::Signal(_)
            | Command::Message(_)
            | Command::Events(_)
            | Command::Stats(_)
            | Command::Dlq(_)
            | Command::Schedule(_)
            | Command::Bench(_) => "warn",
        }
    }
}

/// Parses the command line, runs the command and turns its outcome into an exit code.
pub(crate) fn main() -> ExitCode {
    // Usage errors, --help and --version are clap's: it prints them and exits (code 2 for
    // usage errors).
    let cli = parse(std::env::args_os());
    weir::process::init_logging(cli.global.log_format, cli.command.default_log_filter());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return exit::report(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let outcome = runtime.block_on(dispatch(cli));
    // A prompt may still be blocked reading stdin: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match outcome {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    }
}

/// Parses arguments, noting whether `--redis` was typed.
fn parse<I, T>(args: I) -> Cli
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = Cli::command().get_matches_from(args);
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli.global.redis_given = given(&matches, "redis");
    cli.global.namespace_given = given(&matches, "namespace");
    cli
}

/// Whether a global flag came from the command line, at any level of the command tree.
fn given(matches: &clap::ArgMatches, id: &str) -> bool {
    let mut m = Some(matches);
    while let Some(cur) = m {
        if cur.try_contains_id(id).unwrap_or(false)
            && cur.value_source(id) == Some(ValueSource::CommandLine)
        {
            return true;
        }
        m = cur.subcommand().map(|(_, sub)| sub);
    }
    false
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    tracing::debug!(
        redis = %weir::redis::connect::mask_password(&cli.global.redis),
        namespace = %cli.global.namespace,
        "weir starting"
    );
    match cli.command {
        Command::Run(args) => run::run(&cli.global, args).await,
        Command::Demo(args) => demo::run(&cli.global, args).await,
        Command::Definition(cmd) => definition::run(&cli.global, cmd).await,
        Command::Coordinator(args) => coordinator::run(&cli.global, args).await,
        Command::Start(args) => instance::start(&cli.global, args).await,
        Command::Status(args) => instance::status(&cli.global, args).await,
        Command::Wait(args) => instance::wait(&cli.global, args).await,
        Command::List(args) => instance::list(&cli.global, args).await,
        Command::History(args) => instance::history(&cli.global, args).await,
        Command::Task(cmd) => task::run(&cli.global, cmd).await,
        Command::Cancel(args) => instance::cancel(&cli.global, args).await,
        Command::Retry(args) => instance::retry(&cli.global, args).await,
        Command::Signal(args) => instance::signal(&cli.global, args).await,
        Command::Message(cmd) => message::run(&cli.global, cmd).await,
        Command::Events(args) => events::run(&cli.global, args).await,
        Command::Stats(args) => stats::run(&cli.global, args).await,
        Command::Dlq(cmd) => dlq::run(&cli.global, cmd).await,
        Command::Schedule(cmd) => schedule::run(&cli.global, cmd).await,
        Command::Bench(cmd) => bench::run(&cli.global, cmd).await,
        Command::Serve(args) => serve::run(&cli.global, args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let cli = Cli::try_parse_from(["weir", "demo", "--namespace", "x", "--log-format", "json"])
            .unwrap();
        assert_eq!(cli.global.namespace, "x");
        assert_eq!(cli.global.log_format, LogFormat::Json);
        let cli = Cli::try_parse_from(["weir", "--redis", "redis://h:1", "demo"]).unwrap();
        assert_eq!(cli.global.redis, "redis://h:1");
    }

    #[test]
    fn an_explicit_redis_flag_is_noticed_before_or_after_the_command() {
        assert!(
            parse(["weir", "--redis", "redis://h:1", "demo"])
                .global
                .redis_given
        );
        assert!(
            parse(["weir", "demo", "--redis", "redis://h:1"])
                .global
                .redis_given
        );
        assert!(
            parse(["weir", "bench", "redis", "--redis", "redis://h:1"])
                .global
                .redis_given
        );
        assert!(!parse(["weir", "demo"]).global.redis_given);
    }
}

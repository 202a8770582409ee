//! The command line: global flags, the command tree, logging, exit codes.
//!
//! # Layout
//!
//! One module per command group; each has an `Args` (or a `Command` enum for groups) and
//! an `async fn run(&Global, args) -> anyhow::Result<ExitCode>`:
//!
//! - [`run`]: `weir run FILE` on the in-process LocalEngine.
//! - [`demo`]: `weir demo`, the example workflows of [`examples`].
//! - [`definition`]: `weir definition validate|show` for local files.
//!
//! Shared pieces: [`engine`] (the few engine calls that `run` and `demo` make, so a Redis
//! client can drive them too), [`drive`] (runs an instance to its end, answering human
//! tasks), [`prompt`] (asks for task data on a terminal), [`printer`] (events as lines),
//! [`exit`] (exit codes and the one-line error).

pub mod definition;
pub mod demo;
pub mod drive;
pub mod engine;
pub mod examples;
pub mod exit;
pub mod printer;
pub mod prompt;
pub mod run;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The default Redis URL.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Weir: workflows on Redis, or in-process with no Redis.
#[derive(Debug, Parser)]
#[command(name = "weir", version, propagate_version = true)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes (before or after the command's name).
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Redis to use, e.g. redis://127.0.0.1:6379 or redis://user:password@host:6379/0
    /// (rediss:// for TLS).
    #[arg(
        long,
        global = true,
        env = "WEIR_REDIS_URL",
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
    /// How log lines (on stderr) are written.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one definition file to its end in-process (no Redis), printing each step.
    Run(run::RunArgs),
    /// Run the example workflows in-process and print what happened (no Redis needed).
    Demo(demo::DemoArgs),
    /// Check and show definition files.
    #[command(subcommand)]
    Definition(definition::DefinitionCommand),
}

impl Command {
    /// The log filter when `RUST_LOG` is not set: quiet, except the `log` handler's lines
    /// for commands that run workflows.
    fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Run(_) | Command::Demo(_) => "warn,weir::log=info",
            Command::Definition(_) => "warn",
        }
    }
}

/// Parses the command line, runs the command and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    // Usage errors, --help and --version are clap's: it prints them and exits (code 2 for
    // usage errors).
    let cli = Cli::parse();
    init_logging(&cli);
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
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(cli.command.default_log_filter()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A subscriber already set (impossible in the binary) is not worth failing for.
    let _ = match cli.global.log_format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
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
}

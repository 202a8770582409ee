//! Log lines of a Weir process: on stderr, as text or one JSON object per line, filtered
//! by `RUST_LOG`.

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Sends the process's `tracing` events to stderr in `format`, filtered by `RUST_LOG` or,
/// when it is unset or invalid, by `default_filter` (an `EnvFilter` directive such as
/// `"info"` or `"warn,weir::log=info"`). Colours only when stderr is a terminal; text lines
/// leave out the module path, JSON lines keep it.
///
/// Call it once, first thing: a second call (or one after another subscriber was set)
/// changes nothing, which is not worth failing a process for.
pub fn init_logging(format: LogFormat, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

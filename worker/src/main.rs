//! `weir-worker`: runs the built-in handlers (`noop`, `set`, `sleep`, `fail`, `log`, `http`)
//! on the step streams of a namespace until SIGINT or SIGTERM, then drains: no new reads,
//! attempts in flight get `--grace` to finish and report.
//!
//! Every failure ends with one line on stderr and a non-zero exit code.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use weir::process::{self, LogFormat, Shutdown};
use weir::redis::{RedisConfig, RedisError};
use weir_worker::runtime::secrets::Secrets;
use weir_worker::{builtin_handlers_with, HttpPolicy, Worker, WorkerConfig};

/// The allocator: faster than the system's for the many small buffers of each step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Weir worker: runs step attempts of a Redis namespace with the built-in handlers.
#[derive(Debug, Parser)]
#[command(name = "weir-worker", version)]
struct Args {
    /// Redis to use, e.g. redis://127.0.0.1:6379 or redis://user:password@host:6379/0
    /// (rediss:// for TLS).
    #[arg(
        long,
        env = "WEIR_REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379",
        value_name = "URL"
    )]
    redis: String,
    /// Key prefix, so several environments can share one Redis.
    #[arg(
        long,
        env = "WEIR_NAMESPACE",
        default_value = "weir",
        value_name = "NS"
    )]
    namespace: String,
    /// Certificates for rediss://.
    #[command(flatten)]
    tls: process::RedisTlsArgs,
    /// One server or a cluster, and the partition count.
    #[command(flatten)]
    mode: process::RedisModeArgs,
    /// Attempts run at once.
    #[arg(long, default_value_t = 16, value_name = "N")]
    concurrency: usize,
    /// A queue to serve (repeat for several).
    #[arg(long = "queue", value_name = "Q", default_values_t = [weir::definition::DEFAULT_QUEUE.to_string()])]
    queues: Vec<String>,
    /// An entry idle this long is taken from a worker presumed dead, e.g. 30s.
    #[arg(long, default_value = "30s", value_name = "DUR", value_parser = parse_duration)]
    visibility_timeout: Duration,
    /// Deliveries after which an entry that never finishes is dead-lettered.
    #[arg(long, default_value_t = 5, value_name = "N")]
    max_deliveries: u64,
    /// How long attempts in flight may take to finish after SIGTERM, e.g. 10s.
    #[arg(long, default_value = "10s", value_name = "DUR", value_parser = parse_duration)]
    grace: Duration,
    /// This worker's id (its consumer name); random by default.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Serve /metrics, /healthz and /readyz on this address, e.g. 127.0.0.1:9464 (off when
    /// unset).
    #[arg(long, env = "WEIR_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Let `http` steps reach only this host (`host` or `host:port`; repeat for several).
    /// A listed host is exempt from the address checks. Default: any host.
    #[arg(
        long = "http-allow-host",
        value_name = "HOST",
        value_delimiter = ',',
        env = "WEIR_HTTP_ALLOW_HOSTS"
    )]
    http_allow_hosts: Vec<String>,
    /// Refuse `http` requests to loopback and private addresses (link-local ones, such as
    /// cloud metadata services, are always refused unless allowed by name).
    #[arg(long, env = "WEIR_HTTP_DENY_PRIVATE")]
    http_deny_private: bool,
    /// The total time of one `http` request, redirects included, e.g. 30s.
    #[arg(long, default_value = "30s", value_name = "DUR", value_parser = parse_duration)]
    http_timeout: Duration,
    /// A file of NAME=value lines that `{secret:NAME}` in step configs resolves to
    /// (`{env:NAME}` reads the worker's environment).
    #[arg(long, env = "WEIR_SECRETS_FILE", value_name = "FILE")]
    secrets_file: Option<std::path::PathBuf>,
    /// How log lines (on stderr) are written.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    weir::model::definition::duration::parse(text)
        .map_err(|e| format!("{e} (write it like 30s, 5m or 500ms)"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    process::init_logging(args.log_format, "info");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!(
                "error: {}",
                message.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    // First of all: a SIGTERM while connecting must stop it gracefully, not kill it.
    let signal = process::shutdown::signal();
    if args.queues.iter().any(String::is_empty) {
        return Err("--queue must not be empty".into());
    }
    let redis = args
        .mode
        .apply(RedisConfig::new(&args.redis, &args.namespace).with_tls(args.tls.files()));
    let mut config = WorkerConfig::new(redis);
    config.queues = args.queues;
    config.concurrency = args.concurrency.max(1);
    config.visibility_timeout = args.visibility_timeout;
    config.max_deliveries = args.max_deliveries.max(1);
    config.grace = args.grace;
    if let Some(id) = args.id {
        config.id = id;
    }
    if let Some(path) = &args.secrets_file {
        config.secrets = Secrets::from_file(path).map_err(|e| e.to_string())?;
    }
    let handlers = builtin_handlers_with(HttpPolicy {
        allow_hosts: args.http_allow_hosts,
        deny_private: args.http_deny_private,
        timeout: args.http_timeout,
    });
    let url = weir::redis::connect::mask_password(&args.redis);
    let queues = config.queues.join(", ");
    let readiness = match args.metrics_addr {
        Some(_) => Some(process::redis_readiness(&config.redis).map_err(|e| e.to_string())?),
        None => None,
    };
    let worker = Worker::connect(config, handlers)
        .await
        .map_err(|e| match e {
            RedisError::Unreachable { source, .. } => format!(
                "Redis at {url} is unreachable or failed ({source}): check that redis-server runs there, or pass \
                 --redis URL (or set WEIR_REDIS_URL)"
            ),
            other => other.to_string(),
        })?;
    tracing::info!(
        id = %worker.id(),
        redis = %url,
        namespace = %args.namespace,
        queues = %queues,
        "worker running; Ctrl-C or SIGTERM drains and stops it"
    );
    let shutdown = Shutdown::new();
    if let (Some(addr), Some(readiness)) = (args.metrics_addr, readiness) {
        let server = process::serve(addr, readiness, shutdown.listener())
            .await
            .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
        tracing::info!(addr = %server.local_addr(), "metrics and health endpoints");
    }
    let running = tokio::spawn(worker.run(shutdown.listener()));
    signal.await;
    tracing::info!("draining: no new reads, attempts in flight get the grace period");
    shutdown.trigger();
    running
        .await
        .map_err(|e| format!("the worker stopped abnormally: {e}"))
}

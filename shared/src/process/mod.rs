//! Process plumbing shared by the `weir` and `weir-worker` binaries (feature `process`):
//! log setup ([`init_logging`]), the shutdown signal and switch ([`shutdown`]), the Redis
//! TLS flags ([`RedisTlsArgs`]), and the metrics and health server.
//!
//! It sits behind a cargo feature because it pulls a web server, a metrics exporter, a log
//! formatter and a CLI parser, which a service that only links the library to start
//! workflows does not need.
//!
//! # The metrics and health server
//!
//! One HTTP server per process (`--metrics-addr`, off by default) answers:
//!
//! - `GET /metrics`: every `weir_*` metric in the Prometheus text format;
//! - `GET /healthz`: `200 ok` while the process runs (liveness);
//! - `GET /readyz`: `200 {"ready":true}` when the process can do its work, `503
//!   {"ready":false,"reason":"..."}` otherwise (readiness). A worker is ready when Redis
//!   answers `PING` within a second; a coordinator also needs its own heartbeat in
//!   `NS:coordinators` to be fresh, i.e. its lease loop is running and able to take leases.
//!   The Redis reads are in [`crate::redis::health`].
//!
//! Metrics go through the [`metrics`](::metrics) facade; [`install_recorder`] installs the
//! Prometheus recorder once per process (the server does it), and anything recorded before
//! that is dropped. The names are in [`names`].
//!
//! # Wiring it into a binary
//!
//! ```no_run
//! # async fn f(redis: weir::redis::RedisConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use weir::process::{self, Shutdown};
//!
//! process::init_logging(process::LogFormat::Text, "info");
//! let signal = process::shutdown::signal(); // first: a SIGTERM from now on stops gracefully
//! let shutdown = Shutdown::new();
//! let addr: std::net::SocketAddr = "127.0.0.1:9464".parse()?;
//! let ready = process::redis_readiness(&redis)?;
//! let server = process::serve(addr, ready, shutdown.listener()).await?;
//! tracing::info!(addr = %server.local_addr(), "metrics and health endpoints");
//! // ... spawn the service with `shutdown.listener()` ...
//! signal.await;
//! shutdown.trigger();
//! server.wait().await;
//! # Ok(()) }
//! ```

mod logging;
mod mode_args;
pub mod names;
mod readiness;
mod record;
mod server;
pub mod shutdown;
mod tls_args;

pub use logging::{init_logging, LogFormat};
pub use mode_args::{RedisModeArg, RedisModeArgs};
pub use readiness::{coordinator_readiness, redis_readiness, Readiness, ReadyFuture};
pub use record::{install_recorder, sample_partitions, InstanceOutcome, Tally};
pub use server::{serve, OpsServer};
pub use shutdown::{Shutdown, ShutdownListener};
pub use tls_args::RedisTlsArgs;

/// Recording Weir's metrics, from the worker runtime and the coordinator service (a no-op
/// until [`install_recorder`] ran).
pub mod metrics {
    pub use super::record::{
        attempt_finished, attempt_picked_up, batch_committed, dead_lettered, dead_letters_trimmed,
        leases_held, reclaimed, redis_error, results_dropped, schedule_fired, stale_dropped,
    };
}

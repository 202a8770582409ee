//! Operations: Prometheus metrics and health endpoints for coordinators and workers.
//!
//! One HTTP server per process (`--metrics-addr`, off by default) answers:
//!
//! - `GET /metrics`: every `weir_*` metric in the Prometheus text format;
//! - `GET /healthz`: `200 ok` while the process runs (liveness);
//! - `GET /readyz`: `200 {"ready":true}` when the process can do its work, `503
//!   {"ready":false,"reason":"..."}` otherwise (readiness). A worker is ready when Redis
//!   answers `PING` within a second; a coordinator also needs its own heartbeat in
//!   `NS:coordinators` to be fresh, i.e. its lease loop is running and able to take leases.
//!
//! Metrics go through the [`metrics`](::metrics) facade; [`install_recorder`] installs the
//! Prometheus recorder once per process (the server does it), and anything recorded before
//! that is dropped. The names are in [`names`].
//!
//! # Wiring it into a binary
//!
//! ```no_run
//! # async fn f(config: weir_worker::WorkerConfig, shutdown: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> {
//! let addr: std::net::SocketAddr = "127.0.0.1:9464".parse()?;
//! let ready = weir_worker::ops::redis_readiness(&config.redis)?;
//! let server = weir_worker::ops::serve(addr, ready, shutdown).await?;
//! tracing::info!(addr = %server.local_addr(), "metrics and health endpoints");
//! # Ok(()) }
//! ```

pub mod names;
mod readiness;
mod record;
mod server;

pub use readiness::{coordinator_readiness, redis_readiness, Readiness, ReadyFuture};
pub use record::{install_recorder, sample_partitions, InstanceOutcome, Tally};
pub use server::{serve, OpsServer};

/// Record helpers used by the worker runtime and the coordinator service.
pub mod metrics {
    pub use super::record::{
        attempt_finished, attempt_picked_up, batch_committed, dead_lettered, dead_letters_trimmed,
        leases_held, reclaimed, redis_error, results_dropped, stale_dropped,
    };
}

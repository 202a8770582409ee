//! Weir's worker (`weir-worker`): it takes step attempts from Redis streams, runs their
//! handlers and reports the results. Workers hold no state of their own; whatever they work
//! on is also pending in Redis.
//!
//! # Layout
//!
//! - [`handlers`]: `noop`, `set`, `sleep`, `fail`, `log` and `http`, so workflows written
//!   only in YAML run without Rust code; [`builtin_handlers`] registers them all.
//! - [`runtime`]: the [`Worker`]: consuming, running with timeouts, reporting, reclaiming
//!   what dead workers left, resolving secrets in step configurations.
//! - [`ops`]: Prometheus metrics and the health endpoints, for workers and coordinators.
//! - [`shutdown`]: the signal every Weir process stops on.
//! - [`tls_args`]: the Redis TLS flags, shared with the `weir` command.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod handlers;
pub mod runtime;

pub use handlers::{builtin_handlers, builtin_handlers_with, HttpPolicy};
pub use runtime::{Worker, WorkerConfig};

//! Weir's worker: the built-in handlers (and, next, the runtime that consumes step streams).
//!
//! # Layout
//!
//! - [`handlers`]: `noop`, `set`, `sleep`, `fail`, `log` and `http`, so workflows written
//!   only in YAML run without Rust code; [`builtin_handlers`] registers them all.

pub mod handlers;
pub mod runtime;

pub use handlers::{builtin_handlers, builtin_handlers_with, HttpPolicy};
pub use runtime::{Worker, WorkerConfig};

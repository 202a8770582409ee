//! Weir: a workflow engine whose one source of truth is Redis, and which also runs
//! in-process with no Redis at all.
//!
//! Services link this crate to define workflows, start instances and complete tasks; the
//! coordinator and workers link it for the engine core and the wire format.
//!
//! # Layout
//!
//! - [`model`]: the data: definitions (the file format), instances, tasks, history, events.
//! - [`definition`]: loading YAML/JSON, validating, compiling into a [`Workflow`], and
//!   drawing it as a Mermaid diagram.
//! - [`condition`]: edge conditions and timer deadlines in CEL, a sandboxed expression
//!   language, evaluated under a budget.
//! - [`form`]: JSON Schema forms of human tasks.
//! - [`core`]: the pure engine core, `apply(workflow, instance, input, env) -> effects`.
//!   It does no I/O and reads no clock; the two drivers below carry out what it decides.
//! - [`registry`]: definitions by (name, version), "latest" by semantic version.
//! - [`step`]: the `Step` trait for machine steps written in Rust, and handlers by name.
//! - [`events`]: the `EventBus` trait and in-process buses.
//! - [`api`]: what both engines take and return: start options, filters, instance views.
//! - [`engine`]: the [`Engine`] trait, the calls both engines take (the promise that the
//!   LocalEngine and the Redis client are interchangeable).
//! - [`local`]: the in-process `LocalEngine`, a driver loop over the core.
//! - [`redis`]: Weir on Redis: the key layout, the wire format, the scripts, and the client
//!   that services use; the coordinator (crate `weir-coordinator`) is the other driver of the
//!   core, and workers (crate `weir-worker`) run the machine steps.
//! - [`template`]: the text templates of human tasks' titles and descriptions.
//! - [`time`]: timestamps; time is always passed in.
//! - `process` (feature `process`): the plumbing of the Weir binaries: logging, the
//!   shutdown signal, the metrics and health server, the Redis TLS flags.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod api;
pub mod condition;
pub mod core;
pub mod definition;
pub mod engine;
pub mod events;
pub mod form;
pub mod local;
pub mod model;
#[cfg(feature = "process")]
pub mod process;
pub mod redis;
pub mod registry;
pub mod schedule;
pub mod schedule_run;
pub mod step;
pub mod template;
pub mod time;

/// A map looked up by step or handler name on every step (the compiled workflow's step index,
/// the handlers): hashed with foldhash, seeded per process, instead of the standard SipHash.
/// These names come from definitions and code, not from requests, and SipHash was about 7 %
/// of the LocalEngine's instructions per step (callgrind, `weir bench local`; README,
/// Benchmarks). Maps keyed by what a caller sends (instance ids) keep the standard hasher.
pub(crate) type NameMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use crate::api::{EngineError, InstanceFilter, InstanceView, StartOptions, TaskFilter};
pub use crate::core::{Effect, Env, Input, Refusal, StepError};
pub use crate::definition::{compile, parse_definition, DefinitionError, Workflow};
pub use crate::engine::Engine;
pub use crate::local::LocalEngine;
pub use crate::model::{Context, Definition, Event, EventKind, Instance, InstanceStatus, Task};
pub use crate::step::{Handlers, Step, StepContext};
pub use crate::time::Timestamp;

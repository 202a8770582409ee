//! Machine steps written in Rust: the [`Step`] trait, the [`StepContext`] a step reads and
//! writes, and [`Handlers`], steps by name.
//!
//! The same trait serves the LocalEngine and the distributed worker: a step gets a snapshot
//! of the instance context and writes its output; the engine merges the output when the
//! result is applied (so a retried or duplicated attempt never half-writes the context).

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::core::StepError;
use crate::model::Context;

/// A machine step. Steps run at least once: make side effects idempotent, keyed by
/// [`StepContext::idempotency_key`].
#[async_trait]
pub trait Step: Send + Sync {
    /// Does the work: read with [`StepContext::get`], write with [`StepContext::set`].
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError>;

    /// Called after `execute` succeeded, before the result is reported.
    async fn on_success(&self, _ctx: &mut StepContext) {}

    /// Called after `execute` failed (each failed attempt), before the result is reported.
    async fn on_failure(&self, _ctx: &mut StepContext, _error: &StepError) {}
}

/// Runs a step with its hooks.
pub async fn run_step(step: &dyn Step, ctx: &mut StepContext) -> Result<(), StepError> {
    match step.execute(ctx).await {
        Ok(()) => {
            step.on_success(ctx).await;
            Ok(())
        }
        Err(e) => {
            step.on_failure(ctx, &e).await;
            Err(e)
        }
    }
}

/// What a running step sees: the instance context (read-only snapshot), its configuration,
/// and the output it writes.
#[derive(Debug, Clone)]
pub struct StepContext {
    instance_id: Arc<str>,
    step: Arc<str>,
    attempt: u32,
    config: Arc<Value>,
    context: Arc<Context>,
    output: Context,
}

impl StepContext {
    /// A context for one attempt.
    pub fn new(
        instance_id: Arc<str>,
        step: Arc<str>,
        attempt: u32,
        config: Arc<Value>,
        context: Arc<Context>,
    ) -> StepContext {
        StepContext {
            instance_id,
            step,
            attempt,
            config,
            context,
            output: Context::new(),
        }
    }

    /// A value by top-level key: what this step wrote, else what the instance had.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.output.get(key).or_else(|| self.context.get(key))
    }

    /// Writes a top-level key; merged into the instance context when the step succeeds.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        self.output.insert(key.into(), value);
    }

    /// The step's `config` from the definition.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// The instance context as it was when the attempt was dispatched.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The instance id.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The step name.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// `instance:step:attempt`, stable across redeliveries of the same attempt: use it to
    /// make side effects idempotent.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}:{}", self.instance_id, self.step, self.attempt)
    }

    /// What the step wrote so far.
    pub fn output(&self) -> &Context {
        &self.output
    }

    /// Takes the output.
    pub fn into_output(self) -> Context {
        self.output
    }

    /// Takes the output and the step name (the LocalEngine reports the result under it).
    pub(crate) fn into_output_and_step(self) -> (Context, Arc<str>) {
        (self.output, self.step)
    }
}

/// Steps by handler name.
#[derive(Clone, Default)]
pub struct Handlers {
    map: crate::NameMap<String, Arc<dyn Step>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.map.keys().collect();
        names.sort();
        f.debug_struct("Handlers").field("names", &names).finish()
    }
}

impl Handlers {
    /// No handlers.
    pub fn new() -> Handlers {
        Handlers::default()
    }

    /// Adds (or replaces) a handler.
    pub fn register(&mut self, name: impl Into<String>, step: impl Step + 'static) -> &mut Self {
        self.map.insert(name.into(), Arc::new(step));
        self
    }

    /// Adds (or replaces) a shared handler.
    pub fn register_arc(&mut self, name: impl Into<String>, step: Arc<dyn Step>) -> &mut Self {
        self.map.insert(name.into(), step);
        self
    }

    /// A handler by name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Step>> {
        self.map.get(name)
    }

    /// Handler names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.map.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

/// Runs a handler for one attempt, with its timeout: the shared path of the LocalEngine and
/// the worker. An unknown handler is a non-retryable `unknown_handler` error.
pub async fn execute_attempt(
    handlers: &Handlers,
    handler: &str,
    mut ctx: StepContext,
    timeout: Option<std::time::Duration>,
) -> Result<Context, StepError> {
    execute_in(handlers, handler, &mut ctx, timeout)
        .await
        .map(|()| ctx.into_output())
}

/// [`execute_attempt`] on a context the caller keeps: the output stays in it.
pub(crate) async fn execute_in(
    handlers: &Handlers,
    handler: &str,
    ctx: &mut StepContext,
    timeout: Option<std::time::Duration>,
) -> Result<(), StepError> {
    let Some(step) = handlers.get(handler) else {
        return Err(unknown_handler(handlers, handler));
    };
    execute_step(step.as_ref(), ctx, timeout).await
}

/// The error of an attempt whose handler is not registered: non-retryable.
pub(crate) fn unknown_handler(handlers: &Handlers, handler: &str) -> StepError {
    StepError::fatal(
        "unknown_handler",
        format!(
            "no handler named {handler:?} is registered (have: {})",
            handlers.names().join(", ")
        ),
    )
}

/// [`execute_in`] with the handler found already.
pub(crate) async fn execute_step(
    step: &dyn Step,
    ctx: &mut StepContext,
    timeout: Option<std::time::Duration>,
) -> Result<(), StepError> {
    match timeout {
        // Boxed: the timer makes the future several times larger, and attempts without a
        // timeout should not carry that around.
        Some(limit) => Box::pin(run_step_within(step, ctx, limit)).await,
        None => run_step(step, ctx).await,
    }
}

/// [`run_step`] with a time limit: past it, a retryable `timeout` error.
async fn run_step_within(
    step: &dyn Step,
    ctx: &mut StepContext,
    limit: std::time::Duration,
) -> Result<(), StepError> {
    match tokio::time::timeout(limit, run_step(step, ctx)).await {
        Ok(r) => r,
        Err(_) => Err(StepError::timeout(ctx.attempt(), limit)),
    }
}

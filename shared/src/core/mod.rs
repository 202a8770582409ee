//! The pure engine core: `(workflow, instance, input, now) -> (instance', effects)`.
//!
//! No I/O, no clock, no randomness (ARCHITECTURE.md invariant 1): time and a random seed come in
//! through [`Env`]; what should happen in the world goes out as [`Effect`]s. The LocalEngine
//! and the Redis coordinator both drive these two functions, so the semantics are written
//! and tested once.
//!
//! # Transitions
//!
//! | input                      | when it applies                         | what happens |
//! |----------------------------|-----------------------------------------|--------------|
//! | [`start`]                  | -                                       | instance RUNNING, initial step started |
//! | `StepSucceeded`            | step running, token matches             | output merged, attempt recorded, edges routed |
//! | `StepFailed` (retryable)   | step running, token matches, tries left | step retrying, `Timer(Retry)` scheduled |
//! | `StepFailed` (for good)    | step running, token matches             | matching failure edges taken, else instance FAILED |
//! | `Timer(Retry)`             | step retrying, token matches            | next attempt dispatched |
//! | `Timer(Timeout)`           | step running, token matches             | as a failure of kind `timeout` |
//! | `Timer(Wake)`              | timer step sleeping, token matches      | timer step completes, edges routed |
//! | `Timer(TaskDue)`           | task open, token matches                | `HumanTaskOverdue`; if a timeout edge matches: task expires, edges taken |
//! | `CompleteTask`             | task open, user allowed, data fits form | data merged, task closed, edges routed |
//! | `Timer(TaskReminder)`      | task open, token matches                | reminder counted on the task, `HumanTaskReminder`, next one scheduled |
//! | `CompleteTask`             | task open, user allowed and not claimed by another, data fits form | (as above) |
//! | `ClaimTask`                | task open, user allowed, not claimed by another | task claimed, recorded, `HumanTaskClaimed` |
//! | `ReleaseTask`              | task claimed, by the claimer or an admin | claim dropped, recorded, `HumanTaskReleased` |
//! | `ReassignTask`             | task open, someone named, by an admin or a user the task allows now | task given to the new assignee/candidates, recorded |
//! | `Timer(Timeout)` (event)   | event step waiting, token matches       | wait ends; as a failure of kind `timeout` |
//! | `DeliverMessage`           | an event step waits on the name (and key) | data stored under `output`, message id recorded, edges routed |
//! | `Cancel`                   | instance not finished                   | active steps interrupted (waits unsubscribed), CANCELED |
//! | `Retry`                    | instance FAILED                         | from the failed (or named) step on, RUNNING again |
//!
//! A result or timer whose token does not match the step's current attempt is refused as
//! [`Refusal::Stale`]: late, duplicated and old messages change nothing. User inputs that
//! are not acceptable are refused with the reason, and also change nothing.
//!
//! # Routing and joins
//!
//! When a step ends, its outgoing edges of the outcome's group (success, failure, timeout)
//! are decided: unconditional edges are taken (parallel fan-out), conditional edges are taken
//! when true (every matching one), `default` edges when no condition matched. All other
//! outgoing edges are dead. A step with several incoming edges starts once every incoming
//! edge is taken or dead and at least one was taken; when all are dead it is skipped and its
//! own edges die too (dead-path elimination), so joins never hang and run once. Edges that
//! close a loop (found by a depth-first walk from the initial step) are not waited for:
//! taking one restarts its target. The instance completes when no step is active.

mod effect;
mod input;
mod lifecycle;
mod machine;
mod message;
mod refusal;
mod task;
mod transition;

pub use effect::{Dispatch, Effect, Timer};
pub use input::{Input, StepError, TimerKind};
pub use lifecycle::{start, StartSpec};
pub use refusal::Refusal;
pub use task::MAX_SHOWN_VALUE_BYTES;

use crate::definition::Workflow;
use crate::model::{Assignment, Instance};
use crate::time::Timestamp;

/// What a transition may know of the world: the time, and a seed for retry jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Env {
    /// Now, by the driver's clock (the Redis server's, for the coordinator).
    pub now: Timestamp,
    /// Randomness for jitter, chosen by the driver.
    pub seed: u64,
}

/// Applies one input to an instance. On `Ok`, the instance has changed and the effects must
/// be carried out with it; on `Err`, nothing changed.
pub fn apply(
    wf: &Workflow,
    inst: &mut Instance,
    input: Input,
    env: Env,
) -> Result<Vec<Effect>, Refusal> {
    let mut effects = Vec::new();
    apply_into(wf, inst, input, env, &mut effects)?;
    Ok(effects)
}

/// [`apply`], appending the effects to a buffer the caller keeps: a driver that applies
/// transitions one after another (the LocalEngine's short steps, under one lock) reuses one
/// buffer for all of them instead of allocating one per transition. On `Err`, neither the
/// instance nor the buffer changed.
pub fn apply_into(
    wf: &Workflow,
    inst: &mut Instance,
    input: Input,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let before = effects.len();
    let out = &mut *effects;
    let applied = match input {
        Input::StepSucceeded {
            step,
            token,
            output,
            worker,
        } => machine::succeeded(wf, inst, &step, token, output, worker, env, out),
        Input::StepFailed {
            step,
            token,
            error,
            worker,
        } => machine::failed(wf, inst, &step, token, error, worker, env, out),
        Input::Timer { step, kind, token } => match kind {
            TimerKind::Retry => machine::retry_due(wf, inst, &step, token, env, out),
            TimerKind::Timeout if message::is_event_step(wf, &step) => {
                message::timed_out(wf, inst, &step, token, env, out)
            }
            TimerKind::Timeout => machine::timed_out(wf, inst, &step, token, env, out),
            TimerKind::Wake => lifecycle::wake(wf, inst, &step, token, env, out),
            TimerKind::TaskDue => task::due(wf, inst, &step, token, env, out),
            TimerKind::TaskReminder => task::remind(wf, inst, &step, token, env, out),
        },
        Input::CompleteTask {
            step,
            user,
            data,
            groups,
        } => task::complete(wf, inst, &step, (user, groups), data, env, out),
        Input::ClaimTask { step, by } => task::claim(wf, inst, &step, by, env, out),
        Input::ReleaseTask { step, by } => task::release(wf, inst, &step, by, env, out),
        Input::ReassignTask {
            step,
            by,
            assignee,
            candidates,
        } => task::reassign(
            wf,
            inst,
            &step,
            by,
            Assignment {
                assignee,
                candidates,
                groups: Vec::new(),
            },
            env,
            out,
        ),
        Input::DeliverMessage {
            id,
            name,
            key,
            data,
        } => message::deliver(wf, inst, id, &name, key, data, env, out),
        Input::Cancel { reason } => lifecycle::cancel(wf, inst, reason, env, out),
        Input::Retry { from_step } => lifecycle::retry(wf, inst, from_step.as_deref(), env, out),
    };
    if applied.is_err() {
        // A refusal is decided before anything is written; this keeps "nothing changed"
        // true of the caller's buffer even if a transition ever refused late.
        effects.truncate(before);
    }
    applied
}

/// Finds a step for an input that carries a token; a step the workflow lacks is stale input
/// (it cannot come from this workflow's dispatches).
fn step_for_token(
    wf: &Workflow,
    inst: &Instance,
    step: &str,
    token: u64,
    expected: crate::model::StepStatus,
) -> Result<usize, Refusal> {
    let stale = |reason: &'static str| Refusal::Stale {
        step: step.to_string(),
        reason: reason.into(),
    };
    if inst.status.is_terminal() {
        return Err(stale("the instance is finished"));
    }
    let s = wf.step_id(step).ok_or_else(|| stale("no such step"))?;
    let st = inst.steps.get(s).ok_or_else(|| stale("no such step"))?;
    if st.token != token {
        return Err(stale("not the current attempt"));
    }
    if st.status != expected {
        return Err(stale("the step is not in the state this input needs"));
    }
    Ok(s)
}

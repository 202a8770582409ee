//! Event step transitions: a message (or a signal) received, and the wait timing out.
//!
//! Reaching an event step evaluates its key and asks the driver to subscribe the instance
//! (`Effect::Subscribe`, in `transition`); these transitions end the wait, and every end
//! of a wait (received, timed out, interrupted) asks the driver to unsubscribe it.

use std::sync::Arc;

use serde_json::Value;

use super::input::StepError;
use super::transition::{Outcome, Transition};
use super::{step_for_token, Effect, Env, Refusal, TimerKind};
use crate::definition::{CompiledKind, StepId, Workflow};
use crate::model::{check_merged_size, Context, EventKind, Instance, StepStatus};

/// `DeliverMessage`: the oldest wait on `name` (and `key`, when given) receives the data.
/// Every check comes before any change, so a refusal changes nothing.
#[allow(clippy::too_many_arguments)]
pub(super) fn deliver(
    wf: &Workflow,
    inst: &mut Instance,
    id: String,
    name: &str,
    key: Option<String>,
    data: Value,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let not_waiting = || Refusal::NotWaiting {
        event: name.to_string(),
        key: key.clone(),
    };
    if inst.status.is_terminal() {
        return Err(not_waiting());
    }
    let s = waiting_step(wf, inst, name, key.as_deref()).ok_or_else(not_waiting)?;
    let CompiledKind::Event {
        event,
        output,
        timeout,
        ..
    } = &wf.steps[s].kind
    else {
        return Err(not_waiting());
    };
    let output = match (output, data) {
        (Some(at), data) => Context::from_iter([(at.to_string(), data)]),
        (None, Value::Object(map)) => map,
        (None, _) => {
            return Err(Refusal::InvalidData {
                step: wf.steps[s].name.to_string(),
                message: "the step has no `output`, so the message data must be a JSON object \
                          (its keys are merged into the context)"
                    .into(),
                form: None,
            })
        }
    };
    check_merged_size(&inst.context, &output)?;

    let waited_key = inst.steps[s].awaiting.as_ref().and_then(|a| a.key.clone());
    let mut t = Transition::new(wf, inst, env, effects);
    let step = t.name(s);
    t.effects.push(Effect::Unsubscribe {
        step: step.clone(),
        event: event.clone(),
        key: waited_key.clone(),
    });
    if timeout.is_some() {
        t.effects.push(Effect::Unschedule {
            step: step.clone(),
            kind: TimerKind::Timeout,
        });
    }
    t.emit(EventKind::MessageReceived {
        step,
        event: event.clone(),
        key: waited_key,
        message_id: id.clone(),
    });
    t.succeed_with_note(s, Some(output), format!("message {id}"));
    t.finish();
    Ok(())
}

/// The step that receives a message `name` for `key` (any key for a signal): of the event
/// steps waiting on it, the one that waits longest (lowest token).
fn waiting_step(wf: &Workflow, inst: &Instance, name: &str, key: Option<&str>) -> Option<StepId> {
    inst.steps
        .iter()
        .enumerate()
        .filter(|(_, st)| st.status == StepStatus::Waiting)
        .filter(|(_, st)| {
            st.awaiting.as_ref().is_some_and(|a| {
                &*a.event == name && key.is_none_or(|k| a.key.as_deref() == Some(k))
            })
        })
        .min_by_key(|(_, st)| st.token)
        .map(|(s, _)| s)
        .filter(|&s| matches!(wf.steps[s].kind, CompiledKind::Event { .. }))
}

/// Whether step `step` of the workflow is an event step (its `Timer(Timeout)` ends a wait,
/// not an attempt).
pub(super) fn is_event_step(wf: &Workflow, step: &str) -> bool {
    wf.step_id(step)
        .is_some_and(|s| matches!(wf.steps[s].kind, CompiledKind::Event { .. }))
}

/// `Timer(Timeout)` of an event step: no message came in time. The wait ends and the step
/// fails with kind `timeout`: its `on: timeout` edges are followed, else its `on: failure`
/// edges, else the instance fails.
pub(super) fn timed_out(
    wf: &Workflow,
    inst: &mut Instance,
    step: &str,
    token: u64,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let s = step_for_token(wf, inst, step, token, StepStatus::Waiting)?;
    let CompiledKind::Event { event, timeout, .. } = &wf.steps[s].kind else {
        return Err(Refusal::Stale {
            step: step.to_string(),
            reason: "not an event step".into(),
        });
    };
    let key = inst.steps[s].awaiting.as_ref().and_then(|a| a.key.clone());
    let limit = timeout.map(|d| crate::model::definition::duration::format(&d));
    let err = StepError::fatal(
        StepError::TIMEOUT,
        format!(
            "no message {event:?}{} arrived within {}",
            key.as_deref()
                .map(|k| format!(" with key {k:?}"))
                .unwrap_or_default(),
            limit.as_deref().unwrap_or("the step's timeout")
        ),
    );
    let mut t = Transition::new(wf, inst, env, effects);
    let name: Arc<str> = t.name(s);
    t.effects.push(Effect::Unsubscribe {
        step: name.clone(),
        event: event.clone(),
        key,
    });
    let attempt = t.inst.steps[s].attempt;
    t.emit(EventKind::StepTimedOut {
        step: name,
        attempt,
    });
    t.fail_for_good(s, &err, None, Outcome::Timeout);
    t.finish();
    Ok(())
}

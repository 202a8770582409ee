//! Machine step transitions: results, failures with retry, backoff timers and timeouts.

use std::sync::Arc;

use super::input::StepError;
use super::transition::{unit, Transition};
use super::{step_for_token, Effect, Env, Refusal, Timer, TimerKind};
use crate::definition::{CompiledKind, StepId, Workflow};
use crate::model::{
    check_merged_size, AttemptRecord, AttemptStatus, Context, EventKind, Instance, StepStatus,
};

/// `StepSucceeded`.
#[allow(clippy::too_many_arguments)] // the input's fields, then the transition's setting
pub(super) fn succeeded(
    wf: &Workflow,
    inst: &mut Instance,
    step: Arc<str>,
    token: u64,
    output: Context,
    worker: Option<String>,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let s = step_for_token(wf, inst, &step, token, StepStatus::Running)?;
    let too_large = check_merged_size(&inst.context, &output).err();
    let mut t = Transition::new(wf, inst, env, effects);
    unschedule_timeout(&mut t, s);
    if let Some(e) = too_large {
        // The output is dropped: retrying would produce it again.
        let err = StepError::fatal("too_large", format!("the step's output is too large: {e}"));
        fail_attempt(&mut t, s, err, worker, false);
        t.finish();
        return Ok(());
    }
    // `step` names step `s` (step_for_token found it by that name): record it under this
    // Arc rather than cloning the workflow's.
    t.succeed_as(s, step, Some(output), worker);
    t.finish();
    Ok(())
}

/// `StepFailed`.
#[allow(clippy::too_many_arguments)] // the input's fields, then the transition's setting
pub(super) fn failed(
    wf: &Workflow,
    inst: &mut Instance,
    step: &str,
    token: u64,
    error: StepError,
    worker: Option<String>,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let s = step_for_token(wf, inst, step, token, StepStatus::Running)?;
    let mut t = Transition::new(wf, inst, env, effects);
    unschedule_timeout(&mut t, s);
    // The worker enforces the step's timeout too and may report it before the coordinator's
    // `Timer(Timeout)` fires: a `timeout` error of a step that has a timeout is the same
    // outcome (timeout edges, `timed_out` history), whichever side saw it first.
    let timed_out = error.kind == "timeout"
        && matches!(
            &wf.steps[s].kind,
            CompiledKind::Machine {
                timeout: Some(_),
                ..
            }
        );
    if timed_out {
        let (name, attempt) = (t.name(s), t.inst.steps[s].attempt);
        t.emit(EventKind::StepTimedOut {
            step: name,
            attempt,
        });
    }
    fail_attempt(&mut t, s, error, worker, timed_out);
    t.finish();
    Ok(())
}

/// `Timer(Timeout)`: the coordinator's deadline passed (the worker may be dead).
pub(super) fn timed_out(
    wf: &Workflow,
    inst: &mut Instance,
    step: &str,
    token: u64,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let s = step_for_token(wf, inst, step, token, StepStatus::Running)?;
    let mut t = Transition::new(wf, inst, env, effects);
    let attempt = t.inst.steps[s].attempt;
    let limit = match &wf.steps[s].kind {
        CompiledKind::Machine {
            timeout: Some(d), ..
        } => crate::model::definition::duration::format(d),
        _ => "?".into(),
    };
    let name = t.name(s);
    t.emit(EventKind::StepTimedOut {
        step: name,
        attempt,
    });
    let err = StepError {
        kind: "timeout".into(),
        message: format!("attempt {attempt} exceeded its timeout of {limit}"),
        retryable: true,
    };
    fail_attempt(&mut t, s, err, None, true);
    t.finish();
    Ok(())
}

/// `Timer(Retry)`: the backoff is over, dispatch the next attempt.
pub(super) fn retry_due(
    wf: &Workflow,
    inst: &mut Instance,
    step: &str,
    token: u64,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let s = step_for_token(wf, inst, step, token, StepStatus::Retrying)?;
    let mut t = Transition::new(wf, inst, env, effects);
    t.dispatch_attempt(s);
    t.finish();
    Ok(())
}

fn unschedule_timeout(t: &mut Transition<'_>, s: StepId) {
    if t.inst.steps[s].due_at.is_some() {
        let step = t.name(s);
        t.effects.push(Effect::Unschedule {
            step,
            kind: TimerKind::Timeout,
        });
    }
}

/// One attempt failed: retry it if the policy allows, else the step fails for good.
fn fail_attempt(
    t: &mut Transition<'_>,
    s: StepId,
    err: StepError,
    worker: Option<String>,
    timed_out: bool,
) {
    let CompiledKind::Machine { retry, .. } = &t.wf.steps[s].kind else {
        t.fail_for_good(s, &err, worker, timed_out);
        return;
    };
    let st = &t.inst.steps[s];
    let retryable = err.retryable && !retry.non_retryable.contains(&err.kind);
    if !retryable || st.tries >= retry.max_attempts {
        t.fail_for_good(s, &err, worker, timed_out);
        return;
    }
    let now = t.env.now;
    let delay = retry.delay(st.tries, unit(t.env.seed, st.token));
    let retry_at = now.after(delay);
    t.inst.next_token += 1;
    let token = t.inst.next_token;
    let name = t.name(s);
    let st = &mut t.inst.steps[s];
    st.status = StepStatus::Retrying;
    st.token = token;
    st.due_at = Some(retry_at);
    st.error = Some(err.to_string());
    let attempt = st.attempt;
    let record = AttemptRecord {
        step: name.clone(),
        attempt,
        status: AttemptStatus::Retrying,
        started_at: st.started_at,
        finished_at: Some(now),
        worker,
        error: Some(err.to_string()),
        note: None,
    };
    t.effects.push(Effect::Record(record));
    t.effects.push(Effect::Schedule(Timer {
        step: name.clone(),
        kind: TimerKind::Retry,
        token,
        due_at: retry_at,
    }));
    t.emit(EventKind::StepRetrying {
        step: name,
        attempt,
        error: err.to_string(),
        retry_at,
    });
}

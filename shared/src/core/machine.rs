//! Machine step transitions: results, failures with retry, backoff timers and timeouts.

use super::input::StepError;
use super::transition::{unit, Outcome, Transition};
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
    step: &str,
    token: u64,
    output: Context,
    worker: Option<String>,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let s = step_for_token(wf, inst, step, token, StepStatus::Running)?;
    let too_large = check_merged_size(&inst.context, &output).err();
    let mut t = Transition::new(wf, inst, env, effects);
    unschedule_timeout(&mut t, s);
    if let Some(e) = too_large {
        // The output is dropped: retrying would produce it again.
        let err = StepError::fatal("too_large", format!("the step's output is too large: {e}"));
        fail_attempt(&mut t, s, err, worker, Outcome::Failure);
        t.finish();
        return Ok(());
    }
    t.succeed(s, Some(output), worker);
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
    // `Timer(Timeout)` fires: a timeout error of a step that has a timeout is the same
    // outcome (timeout edges, `timed_out` history), whichever side saw it first.
    let outcome = if error.is_timeout() && step_timeout(wf, s).is_some() {
        Outcome::Timeout
    } else {
        Outcome::Failure
    };
    if outcome == Outcome::Timeout {
        let (name, attempt) = (t.name(s), t.inst.steps[s].attempt);
        t.emit(EventKind::StepTimedOut {
            step: name,
            attempt,
        });
    }
    fail_attempt(&mut t, s, error, worker, outcome);
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
    // Only an attempt with a timeout schedules this timer, so the token could not match
    // otherwise; refused like any other input this attempt cannot have caused.
    let limit = step_timeout(wf, s).ok_or_else(|| Refusal::Stale {
        step: step.to_string(),
        reason: "the step has no timeout",
    })?;
    let mut t = Transition::new(wf, inst, env, effects);
    let attempt = t.inst.steps[s].attempt;
    let name = t.name(s);
    t.emit(EventKind::StepTimedOut {
        step: name,
        attempt,
    });
    fail_attempt(
        &mut t,
        s,
        StepError::timeout(attempt, limit),
        None,
        Outcome::Timeout,
    );
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

/// The timeout of machine step `s`, if it has one.
fn step_timeout(wf: &Workflow, s: StepId) -> Option<std::time::Duration> {
    match &wf.steps[s].kind {
        CompiledKind::Machine { timeout, .. } => *timeout,
        _ => None,
    }
}

/// Drops the timer of the running attempt's timeout, if it has one: the attempt ended.
fn unschedule_timeout(t: &mut Transition<'_>, s: StepId) {
    if t.inst.steps[s].due_at.is_some() {
        let step = t.name(s);
        t.effects.push(Effect::Unschedule {
            step,
            kind: TimerKind::Timeout,
        });
    }
}

/// One attempt failed (`outcome` is [`Outcome::Failure`] or [`Outcome::Timeout`]): retry
/// it if the policy allows, else the step fails for good.
fn fail_attempt(
    t: &mut Transition<'_>,
    s: StepId,
    err: StepError,
    worker: Option<String>,
    outcome: Outcome,
) {
    let CompiledKind::Machine { retry, .. } = &t.wf.steps[s].kind else {
        t.fail_for_good(s, &err, worker, outcome);
        return;
    };
    let st = &t.inst.steps[s];
    let retryable = err.retryable && !retry.non_retryable.contains(&err.kind);
    if !retryable || st.tries >= retry.max_attempts {
        t.fail_for_good(s, &err, worker, outcome);
        return;
    }
    let now = t.env.now;
    let delay = retry.delay(st.tries, unit(t.env.seed, st.token));
    let retry_at = now.after(delay);
    let token = t.new_token();
    let name = t.name(s);
    let st = &mut t.inst.steps[s];
    st.status = StepStatus::Retrying;
    st.token = token;
    st.due_at = Some(retry_at);
    st.error = Some(err.to_string());
    let attempt = st.attempt;
    let record = AttemptRecord::ended(name.clone(), st, AttemptStatus::Retrying, now)
        .by(worker)
        .with_error(err.to_string());
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

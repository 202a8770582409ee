//! Human task transitions: completion by a person, and the due time passing.

use serde_json::Value;

use super::transition::{Outcome, Transition};
use super::{step_for_token, Effect, Env, Refusal, TimerKind};
use crate::definition::{CompiledKind, Workflow};
use crate::model::{
    AttemptRecord, AttemptStatus, EventKind, Instance, InstanceStatus, StepStatus, TaskOutcome,
};

/// `CompleteTask`: every check comes before any change, so a refusal changes nothing.
pub(super) fn complete(
    wf: &Workflow,
    inst: &mut Instance,
    step: &str,
    user: String,
    data: Value,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    if !matches!(
        inst.status,
        InstanceStatus::Running | InstanceStatus::Waiting
    ) {
        return Err(Refusal::WrongStatus {
            status: inst.status,
            action: "completing a task",
        });
    }
    let s = wf
        .step_id(step)
        .ok_or_else(|| Refusal::UnknownStep(step.to_string()))?;
    let CompiledKind::Human {
        assignee,
        candidates,
        form,
        due,
        ..
    } = &wf.steps[s].kind
    else {
        return Err(Refusal::NotAHumanStep(step.to_string()));
    };
    if inst.steps[s].status != StepStatus::Waiting {
        return Err(Refusal::TaskNotOpen(step.to_string()));
    }
    let open_to_all = assignee.is_none() && candidates.is_empty();
    if !open_to_all && assignee.as_deref() != Some(user.as_str()) && !candidates.contains(&user) {
        return Err(Refusal::Forbidden {
            user,
            step: step.to_string(),
        });
    }
    if let Some(form) = form {
        if let Err(e) = form.validate(&data) {
            return Err(Refusal::InvalidData {
                step: step.to_string(),
                message: e.to_string(),
                form: Some(e),
            });
        }
    }
    let Value::Object(output) = data else {
        return Err(Refusal::InvalidData {
            step: step.to_string(),
            message: "completion data must be a JSON object".into(),
            form: None,
        });
    };

    let mut t = Transition::new(wf, inst, env, effects);
    let name = t.name(s);
    if due.is_some() {
        t.effects.push(Effect::Unschedule {
            step: name.clone(),
            kind: TimerKind::TaskDue,
        });
    }
    t.effects.push(Effect::CloseTask {
        step: name.clone(),
        outcome: TaskOutcome::Completed,
    });
    t.emit(EventKind::HumanTaskCompleted {
        step: name,
        user: user.clone(),
    });
    t.succeed(s, Some(output), Some(user));
    t.finish();
    Ok(())
}

/// `Timer(TaskDue)`: the task is overdue. With `on: timeout` edges the task expires and
/// they are taken; without, the task stays open and only the event says so.
pub(super) fn due(
    wf: &Workflow,
    inst: &mut Instance,
    step: &str,
    token: u64,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let s = step_for_token(wf, inst, step, token, StepStatus::Waiting)?;
    let mut t = Transition::new(wf, inst, env, effects);
    let name = t.name(s);
    t.emit(EventKind::HumanTaskOverdue { step: name.clone() });
    // Like a machine step's timeout, the error goes into the context for the timeout path.
    let attempt = t.inst.steps[s].attempt;
    let error = serde_json::json!({
        "step": &*name,
        "kind": "timeout",
        "message": "the task became overdue",
        "attempt": attempt,
    });
    let Some(taken) = t.decide_failure(s, Outcome::Timeout, error) else {
        // No timeout edge (or none matched): the task stays open; the deadline is spent.
        t.inst.steps[s].due_at = None;
        t.finish();
        return Ok(());
    };
    let now = t.env.now;
    t.effects.push(Effect::CloseTask {
        step: name.clone(),
        outcome: TaskOutcome::Expired,
    });
    let st = &mut t.inst.steps[s];
    st.status = StepStatus::Failed;
    st.finished_at = Some(now);
    st.due_at = None;
    st.error = Some("the task became overdue".into());
    let record = AttemptRecord {
        step: name,
        attempt,
        status: AttemptStatus::TimedOut,
        started_at: st.started_at,
        finished_at: Some(now),
        worker: None,
        error: Some("the task became overdue".into()),
    };
    t.effects.push(Effect::Record(record));
    t.follow(s, &taken);
    t.finish();
    Ok(())
}

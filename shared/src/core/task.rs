//! Human task transitions: completion by a person, and the due time passing.

use serde_json::Value;

use super::input::StepError;
use super::transition::{Outcome, Transition};
use super::{step_for_token, Effect, Env, Refusal, TimerKind};
use crate::definition::{CompiledKind, StepId, Workflow};
use crate::model::task::allows;
use crate::model::{
    check_merged_size, Actor, Assignment, AttemptRecord, AttemptStatus, EventKind, Instance,
    InstanceStatus, StepStatus, Task, TaskOutcome,
};
use crate::time::Timestamp;

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
    let s = open_task(wf, inst, step, "completing a task")?;
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
    if !task_allows(inst, s, assignee.as_deref(), candidates, &user) {
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
    check_merged_size(&inst.context, &output)?;

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

/// Whether `user` may complete the open task of step `s`: by its reassignment when it was
/// reassigned, else by what the step names.
fn task_allows(
    inst: &Instance,
    s: usize,
    assignee: Option<&str>,
    candidates: &[String],
    user: &str,
) -> bool {
    match &inst.steps[s].assignment {
        Some(reassigned) => reassigned.allows(user),
        None => allows(assignee, candidates, user),
    }
}

/// `ReassignTask`: the open task is given to `to`; the step's state and token do not
/// change, so the task keeps its deadline and a completion started before still counts
/// only if the new assignment allows its user.
///
/// Who may reassign is decided here, against the task as it is at this transition (not as
/// a caller read it earlier): an admin, or a user the task allows now (its current
/// assignee or a candidate, or anyone when it names no one). Anyone else is refused before
/// any change, so a reassignment racing the task's opening cannot hand it to a stranger.
pub(super) fn reassign(
    wf: &Workflow,
    inst: &mut Instance,
    step: &str,
    by: Actor,
    to: Assignment,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let s = open_task(wf, inst, step, "reassigning a task")?;
    let CompiledKind::Human {
        assignee,
        candidates,
        ..
    } = &wf.steps[s].kind
    else {
        return Err(Refusal::NotAHumanStep(step.to_string()));
    };
    if !by.admin && !task_allows(inst, s, assignee.as_deref(), candidates, &by.user) {
        return Err(Refusal::ReassignForbidden {
            user: by.user,
            step: step.to_string(),
        });
    }
    let by = by.user;
    let to = Assignment {
        assignee: to.assignee.filter(|a| !a.trim().is_empty()),
        candidates: to
            .candidates
            .into_iter()
            .filter(|c| !c.trim().is_empty())
            .collect(),
    };
    if to.assignee.is_none() && to.candidates.is_empty() {
        return Err(Refusal::InvalidData {
            step: step.to_string(),
            message: "a reassignment names an assignee or at least one candidate".into(),
            form: None,
        });
    }

    let mut t = Transition::new(wf, inst, env, effects);
    let name = t.name(s);
    let now = t.env.now;
    let attempt = t.inst.steps[s].attempt;
    let mut note = match &to.assignee {
        Some(a) => format!("assigned to {a}"),
        None => "assigned to no one".to_string(),
    };
    if !to.candidates.is_empty() {
        note.push_str("; candidates: ");
        note.push_str(&to.candidates.join(", "));
    }
    // Re-opening under the same step replaces the stored task (both drivers key tasks by
    // instance and step), so listings by assignee follow at once.
    let task = human_task(wf, s, t.inst, to.clone(), now);
    t.effects.push(Effect::OpenTask(Box::new(task)));
    let record = AttemptRecord::at(name.clone(), attempt, AttemptStatus::Reassigned, now)
        .by(Some(by.clone()))
        .with_note(note);
    t.effects.push(Effect::Record(record));
    t.emit(EventKind::HumanTaskReassigned {
        step: name,
        by,
        assignee: to.assignee.clone(),
        candidates: to.candidates.clone(),
    });
    t.inst.steps[s].assignment = Some(Box::new(to));
    t.finish();
    Ok(())
}

/// The task that human step `s` has open, for the people `who` names: under the token,
/// deadline and opening time of its current activation (a reassignment opens the same task
/// again, for other people). `now` stands in for an opening time the state lacks.
pub(super) fn human_task(
    wf: &Workflow,
    s: StepId,
    inst: &Instance,
    who: Assignment,
    now: Timestamp,
) -> Task {
    let step = &wf.steps[s];
    let (title, description, form) = match &step.kind {
        CompiledKind::Human {
            title,
            description,
            form,
            ..
        } => (title.clone(), description.clone(), form.as_ref()),
        _ => (None, None, None),
    };
    let st = &inst.steps[s];
    Task {
        instance_id: inst.id.clone(),
        step: step.name.clone(),
        token: st.token,
        title,
        description,
        assignee: who.assignee,
        candidates: who.candidates,
        form: form.map(|f| f.schema().clone()),
        created_at: st.started_at.unwrap_or(now),
        due_at: st.due_at,
        tenant_id: inst.tenant_id.clone(),
    }
}

/// The checks every action on an open task makes first: the instance is live, the step
/// exists and its task is open. Returns the step's index.
fn open_task(
    wf: &Workflow,
    inst: &Instance,
    step: &str,
    action: &'static str,
) -> Result<usize, Refusal> {
    if !matches!(
        inst.status,
        InstanceStatus::Running | InstanceStatus::Waiting
    ) {
        return Err(Refusal::WrongStatus {
            status: inst.status,
            action,
        });
    }
    let s = wf
        .step_id(step)
        .ok_or_else(|| Refusal::UnknownStep(step.to_string()))?;
    if !matches!(wf.steps[s].kind, CompiledKind::Human { .. }) {
        return Err(Refusal::NotAHumanStep(step.to_string()));
    }
    if inst.steps[s].status != StepStatus::Waiting {
        return Err(Refusal::TaskNotOpen(step.to_string()));
    }
    Ok(s)
}

/// The error of a task whose due time passed.
const OVERDUE: &str = "the task became overdue";

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
        "kind": StepError::TIMEOUT,
        "message": OVERDUE,
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
    st.end(StepStatus::Failed, now);
    st.error = Some(OVERDUE.into());
    let record =
        AttemptRecord::ended(name, st, Outcome::Timeout.attempt_status(), now).with_error(OVERDUE);
    t.effects.push(Effect::Record(record));
    t.follow(s, &taken);
    t.finish();
    Ok(())
}

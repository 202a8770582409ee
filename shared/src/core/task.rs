//! Human task transitions: completion by a person, and the due time passing.

use serde_json::Value;

use super::transition::{Outcome, Transition};
use super::{step_for_token, Effect, Env, Refusal, TimerKind};
use crate::definition::{CompiledKind, Workflow};
use crate::model::task::allows;
use crate::model::{
    check_merged_size, Actor, Assignment, AttemptRecord, AttemptStatus, EventKind, Instance,
    InstanceStatus, StepStatus, Task, TaskOutcome,
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
        title,
        description,
        form,
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
    let st = &t.inst.steps[s];
    let (token, attempt, created_at, due_at) = (
        st.token,
        st.attempt,
        st.started_at.unwrap_or(now),
        st.due_at,
    );
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
    t.effects.push(Effect::OpenTask(Box::new(Task {
        instance_id: t.inst.id.clone(),
        step: name.clone(),
        token,
        title: title.clone(),
        description: description.clone(),
        assignee: to.assignee.clone(),
        candidates: to.candidates.clone(),
        form: form.as_ref().map(|f| f.schema().clone()),
        created_at,
        due_at,
        tenant_id: t.inst.tenant_id.clone(),
    })));
    t.effects.push(Effect::Record(AttemptRecord {
        step: name.clone(),
        attempt,
        status: AttemptStatus::Reassigned,
        started_at: Some(now),
        finished_at: Some(now),
        worker: Some(by.clone()),
        error: None,
        note: Some(note),
    }));
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
            action: action.into(),
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
        note: None,
    };
    t.effects.push(Effect::Record(record));
    t.follow(s, &taken);
    t.finish();
    Ok(())
}

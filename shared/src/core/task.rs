//! Human task transitions: completion by a person, claims and releases, reassignment,
//! reminders, and the due time passing.
//!
//! # Who may act on a task
//!
//! A task is for its assignment: what the step names (`assignee`, `candidates`,
//! `candidate_groups`, or the names `assignee_expr`/`candidates_expr` gave when the task
//! opened), or what a reassignment named since. A user it names, or a member of one of its
//! groups, may complete, claim and reassign it; a task that names no one is open to anyone.
//! A claim narrows completion to the claimer until the claimer or an admin releases it;
//! every check is made here, against the task as it is at the transition, so of two claims
//! at once the first applied wins and the second is refused with nothing changed.

use serde_json::Value;

use super::input::StepError;
use super::transition::{Outcome, Transition};
use super::{step_for_token, Effect, Env, Refusal, Timer, TimerKind};
use crate::definition::{CompiledKind, StepId, Workflow};
use crate::model::instance::json_size;
use crate::model::{
    check_merged_size, Actor, Assignment, AttemptRecord, AttemptStatus, EventKind, Instance,
    InstanceStatus, ShownField, StepStatus, Task, TaskOutcome,
};
use crate::time::Timestamp;

/// `CompleteTask`: every check comes before any change, so a refusal changes nothing.
pub(super) fn complete(
    wf: &Workflow,
    inst: &mut Instance,
    step: &str,
    (user, groups): (String, Vec<String>),
    data: Value,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let s = open_task(wf, inst, step, "completing a task")?;
    let CompiledKind::Human {
        form,
        due,
        remind_every,
        ..
    } = &wf.steps[s].kind
    else {
        return Err(Refusal::NotAHumanStep(step.to_string()));
    };
    if !assignment(wf, inst, s).allows_member(&user, &groups) {
        return Err(Refusal::Forbidden {
            user,
            step: step.to_string(),
        });
    }
    if let Some(claimer) = inst.steps[s].claimed_by.as_ref().filter(|c| **c != user) {
        return Err(Refusal::Claimed {
            step: step.to_string(),
            claimed_by: claimer.clone(),
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
    if remind_every.is_some() {
        t.effects.push(Effect::Unschedule {
            step: name.clone(),
            kind: TimerKind::TaskReminder,
        });
    }
    let retired = current_task(wf, s, t.inst, t.env.now);
    t.effects.push(Effect::RetireTask(Box::new(retired)));
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

/// Who the open task of step `s` is for: its assignment as stored when it was computed at
/// opening or reassigned since, else what the step names.
pub(super) fn assignment(wf: &Workflow, inst: &Instance, s: StepId) -> Assignment {
    if let Some(stored) = &inst.steps[s].assignment {
        return (**stored).clone();
    }
    match &wf.steps[s].kind {
        CompiledKind::Human {
            assignee,
            candidates,
            candidate_groups,
            ..
        } => Assignment {
            assignee: assignee.clone(),
            candidates: candidates.clone(),
            groups: candidate_groups.clone(),
        },
        _ => Assignment::default(),
    }
}

/// The open task of step `s` as it is now (for [`Effect::RetireTask`]).
pub(super) fn current_task(wf: &Workflow, s: StepId, inst: &Instance, now: Timestamp) -> Task {
    human_task(wf, s, inst, assignment(wf, inst, s), now)
}

/// The error kind of a human step whose computed assignment failed.
pub(super) const ASSIGNMENT_ERROR: &str = "assignment";

/// Who a human step's task opens for: the fixed names of the step, with `assignee_expr` and
/// `candidates_expr` evaluated over the context now. `Ok(None)`: nothing is computed, the
/// step's fixed names apply (not stored on the instance). An expression that fails, or a
/// computed assignment that names no one, is an error: a task meant for someone never opens
/// to anyone by accident.
pub(super) fn computed_assignment(
    wf: &Workflow,
    s: StepId,
    inst: &Instance,
) -> Result<Option<Assignment>, StepError> {
    let CompiledKind::Human {
        assignee,
        candidates,
        candidate_groups,
        assignee_expr,
        candidates_expr,
        ..
    } = &wf.steps[s].kind
    else {
        return Ok(None);
    };
    if assignee_expr.is_none() && candidates_expr.is_none() {
        return Ok(None);
    }
    let fail = |field: &str, message: String| {
        StepError::fatal(
            ASSIGNMENT_ERROR,
            format!(
                "`{field}` of human step {:?}: {message}",
                &*wf.steps[s].name
            ),
        )
    };
    let mut who = Assignment {
        assignee: assignee.clone(),
        candidates: candidates.clone(),
        groups: candidate_groups.clone(),
    };
    if let Some(expr) = assignee_expr {
        let names = expr
            .evaluate_names(&inst.context)
            .map_err(|e| fail("assignee_expr", e.to_string()))?;
        match <[String; 1]>::try_from(names) {
            Ok([one]) => who.assignee = Some(one),
            Err(names) => {
                return Err(fail(
                    "assignee_expr",
                    format!("gave {} names; it must give exactly one", names.len()),
                ))
            }
        }
    }
    if let Some(expr) = candidates_expr {
        who.candidates = expr
            .evaluate_names(&inst.context)
            .map_err(|e| fail("candidates_expr", e.to_string()))?;
        if who.is_empty() {
            return Err(fail(
                "candidates_expr",
                "gave no names, and the step names no one else: the task would be open to \
                 anyone"
                    .into(),
            ));
        }
    }
    Ok(Some(who))
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
    if !by.admin && !assignment(wf, inst, s).allows_member(&by.user, &by.groups) {
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
        groups: to
            .groups
            .into_iter()
            .filter(|g| !g.trim().is_empty())
            .collect(),
    };
    if to.is_empty() {
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
    if !to.groups.is_empty() {
        note.push_str("; groups: ");
        note.push_str(&to.groups.join(", "));
    }
    // Re-opening under the same step replaces the stored task (both drivers key tasks by
    // instance and step), so listings by assignee follow at once. A claim does not survive
    // a reassignment: the task is for other people now.
    let retired = current_task(wf, s, t.inst, now);
    t.effects.push(Effect::RetireTask(Box::new(retired)));
    t.inst.steps[s].claimed_by = None;
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
    let st = &inst.steps[s];
    let mut task = Task {
        instance_id: inst.id.clone(),
        step: step.name.clone(),
        token: st.token,
        title: None,
        description: None,
        assignee: who.assignee,
        candidates: who.candidates,
        candidate_groups: who.groups,
        claimed_by: st.claimed_by.clone(),
        reminders: st.reminders,
        workflow: Some(inst.definition.clone()),
        form: None,
        created_at: st.started_at.unwrap_or(now),
        due_at: st.due_at,
        tenant_id: inst.tenant_id.clone(),
        fields: Vec::new(),
        outcomes: Vec::new(),
    };
    if let CompiledKind::Human {
        title,
        description,
        show,
        outcomes,
        form,
        ..
    } = &step.kind
    {
        // What the task is about, from the context as it is now: the title and the shown
        // fields are stored with the task, so the inbox never reads instances.
        task.title = title.as_ref().map(|t| t.render(&inst.context));
        task.description = description.as_ref().map(|t| t.render(&inst.context));
        task.fields = show
            .iter()
            .map(|f| ShownField {
                path: f.path.to_string(),
                title: f.title.clone(),
                value: f.path.lookup(&inst.context).map(shown_value),
            })
            .collect();
        task.outcomes = outcomes.clone();
        task.form = form.as_ref().map(|f| f.schema().clone());
    }
    task
}

/// The largest shown value stored with a task, in bytes of JSON; a larger one is stored as
/// the start of its JSON text, cut with `…` (a task is a card, and its record stays small
/// whatever the context holds).
pub const MAX_SHOWN_VALUE_BYTES: usize = 1024;

/// A shown value as stored with the task: itself, or when over
/// [`MAX_SHOWN_VALUE_BYTES`] the start of its JSON as a string.
fn shown_value(value: &Value) -> Value {
    if json_size(value) <= MAX_SHOWN_VALUE_BYTES {
        return value.clone();
    }
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut cut = MAX_SHOWN_VALUE_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Value::String(format!("{}…", &text[..cut]))
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
    if matches!(
        wf.steps[s].kind,
        CompiledKind::Human {
            remind_every: Some(_),
            ..
        }
    ) {
        t.effects.push(Effect::Unschedule {
            step: name.clone(),
            kind: TimerKind::TaskReminder,
        });
    }
    let retired = current_task(wf, s, t.inst, now);
    t.effects.push(Effect::RetireTask(Box::new(retired)));
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

/// `ClaimTask`: a user the task allows takes it, so that no one else completes it meanwhile.
/// A claim held already, even by the same user, is refused with [`Refusal::Claimed`]
/// (nothing changes; an applied input always changes the instance).
pub(super) fn claim(
    wf: &Workflow,
    inst: &mut Instance,
    step: &str,
    by: Actor,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let s = open_task(wf, inst, step, "claiming a task")?;
    let who = assignment(wf, inst, s);
    if !who.allows_member(&by.user, &by.groups) {
        return Err(Refusal::ClaimForbidden {
            user: by.user,
            step: step.to_string(),
        });
    }
    if let Some(claimer) = &inst.steps[s].claimed_by {
        return Err(Refusal::Claimed {
            step: step.to_string(),
            claimed_by: claimer.clone(),
        });
    }
    let mut t = Transition::new(wf, inst, env, effects);
    let name = t.name(s);
    let now = t.env.now;
    let retired = current_task(wf, s, t.inst, now);
    t.effects.push(Effect::RetireTask(Box::new(retired)));
    t.inst.steps[s].claimed_by = Some(by.user.clone());
    let task = human_task(wf, s, t.inst, who, now);
    t.effects.push(Effect::OpenTask(Box::new(task)));
    let attempt = t.inst.steps[s].attempt;
    let record = AttemptRecord::at(name.clone(), attempt, AttemptStatus::Claimed, now)
        .by(Some(by.user.clone()))
        .with_note(format!("claimed by {}", by.user));
    t.effects.push(Effect::Record(record));
    t.emit(EventKind::HumanTaskClaimed {
        step: name,
        user: by.user,
    });
    t.finish();
    Ok(())
}

/// `ReleaseTask`: the claimer, or an admin, gives the claim up; the task is for all its
/// people again.
pub(super) fn release(
    wf: &Workflow,
    inst: &mut Instance,
    step: &str,
    by: Actor,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let s = open_task(wf, inst, step, "releasing a task")?;
    let Some(claimer) = inst.steps[s].claimed_by.clone() else {
        return Err(Refusal::NotClaimed(step.to_string()));
    };
    if claimer != by.user && !by.admin {
        return Err(Refusal::ReleaseForbidden {
            user: by.user,
            step: step.to_string(),
            claimed_by: claimer,
        });
    }
    let mut t = Transition::new(wf, inst, env, effects);
    let name = t.name(s);
    let now = t.env.now;
    let retired = current_task(wf, s, t.inst, now);
    t.effects.push(Effect::RetireTask(Box::new(retired)));
    t.inst.steps[s].claimed_by = None;
    let task = current_task(wf, s, t.inst, now);
    t.effects.push(Effect::OpenTask(Box::new(task)));
    let attempt = t.inst.steps[s].attempt;
    let record = AttemptRecord::at(name.clone(), attempt, AttemptStatus::Released, now)
        .by(Some(by.user.clone()))
        .with_note(format!("claim of {claimer} released"));
    t.effects.push(Effect::Record(record));
    t.emit(EventKind::HumanTaskReleased {
        step: name,
        by: by.user,
        claimed_by: claimer,
    });
    t.finish();
    Ok(())
}

/// `Timer(TaskReminder)`: the task is still open after another `remind_every`: the
/// reminder is counted on the task, announced, and the next one scheduled.
pub(super) fn remind(
    wf: &Workflow,
    inst: &mut Instance,
    step: &str,
    token: u64,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let s = step_for_token(wf, inst, step, token, StepStatus::Waiting)?;
    let CompiledKind::Human {
        remind_every: Some(every),
        ..
    } = &wf.steps[s].kind
    else {
        return Err(Refusal::Stale {
            step: step.to_string(),
            reason: "the step has no reminders".into(),
        });
    };
    let mut t = Transition::new(wf, inst, env, effects);
    let name = t.name(s);
    let now = t.env.now;
    let retired = current_task(wf, s, t.inst, now);
    t.effects.push(Effect::RetireTask(Box::new(retired)));
    t.inst.steps[s].reminders += 1;
    let count = t.inst.steps[s].reminders;
    let task = current_task(wf, s, t.inst, now);
    t.effects.push(Effect::OpenTask(Box::new(task)));
    t.effects.push(Effect::Schedule(Timer {
        step: name.clone(),
        kind: TimerKind::TaskReminder,
        token,
        due_at: now.after(*every),
    }));
    t.emit(EventKind::HumanTaskReminder { step: name, count });
    t.finish();
    Ok(())
}

//! Instance lifecycle transitions: start, timer steps firing, cancel, and retry of a failed
//! instance.

use std::sync::Arc;

use super::transition::Transition;
use super::{step_for_token, Effect, Env, Refusal};
use crate::definition::Workflow;
use crate::model::{Context, EventKind, Instance, InstanceStatus, StepState, StepStatus};

/// What a caller chooses about a new instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartSpec {
    /// The instance id (the driver makes a UUID v7 when the caller gave none).
    pub id: String,
    /// The initial context.
    pub initial_data: Context,
    /// The tenant that owns it (`None`: no tenant); only that tenant's callers see it.
    pub tenant_id: Option<String>,
    /// Who starts it.
    pub created_by: Option<String>,
}

/// Creates an instance and starts its initial step.
pub fn start(wf: &Workflow, spec: StartSpec, env: Env) -> (Instance, Vec<Effect>) {
    let mut effects = Vec::new();
    let mut inst = Instance {
        id: Arc::from(spec.id),
        definition: wf.name.clone(),
        version: wf.version.clone(),
        status: InstanceStatus::Running,
        context: Arc::new(spec.initial_data),
        steps: vec![StepState::default(); wf.steps.len()],
        error: None,
        failed_step: None,
        tenant_id: spec.tenant_id,
        created_by: spec.created_by,
        created_at: env.now,
        updated_at: env.now,
        finished_at: None,
        revision: 0,
        next_token: 0,
    };
    let mut t = Transition::new(wf, &mut inst, env, &mut effects);
    t.emit(EventKind::WorkflowStarted {
        definition: wf.name.clone(),
        version: wf.version.clone(),
    });
    t.activate(wf.initial);
    t.finish();
    (inst, effects)
}

/// `Timer(Wake)`: a timer step fires.
pub(super) fn wake(
    wf: &Workflow,
    inst: &mut Instance,
    step: &str,
    token: u64,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    let s = step_for_token(wf, inst, step, token, StepStatus::Sleeping)?;
    let mut t = Transition::new(wf, inst, env, effects);
    let name = t.name(s);
    t.emit(EventKind::TimerFired { step: name });
    t.succeed(s, None, None);
    t.finish();
    Ok(())
}

/// `Cancel`: allowed until the instance finishes.
pub(super) fn cancel(
    wf: &Workflow,
    inst: &mut Instance,
    reason: Option<String>,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    if inst.status.is_terminal() {
        return Err(Refusal::WrongStatus {
            status: inst.status,
            action: "cancel".into(),
        });
    }
    let mut t = Transition::new(wf, inst, env, effects);
    t.interrupt_active();
    t.inst.status = InstanceStatus::Canceled;
    t.inst.error = reason.clone();
    t.inst.finished_at = Some(env.now);
    t.emit(EventKind::WorkflowCanceled { reason });
    t.finish();
    Ok(())
}

/// `Retry`: resumes a FAILED instance from `from_step` (default: the step that failed it),
/// keeping its context.
///
/// Every step downstream of `from_step` (itself included) is reset; marks that joins hold
/// from steps outside that region are kept, so a join waits only for what runs again.
/// Steps that were interrupted by the failure outside that region start again too.
pub(super) fn retry(
    wf: &Workflow,
    inst: &mut Instance,
    from_step: Option<&str>,
    env: Env,
    effects: &mut Vec<Effect>,
) -> Result<(), Refusal> {
    if inst.status != InstanceStatus::Failed {
        return Err(Refusal::WrongStatus {
            status: inst.status,
            action: "retry (only a failed instance can be retried)".into(),
        });
    }
    let from_name = match from_step {
        Some(name) => name.to_string(),
        None => inst
            .failed_step
            .as_deref()
            .map(str::to_string)
            .ok_or_else(|| Refusal::UnknownStep("(no failed step recorded)".into()))?,
    };
    let from = wf
        .step_id(&from_name)
        .ok_or_else(|| Refusal::UnknownStep(from_name.clone()))?;

    // The region that runs again: everything reachable from `from`.
    let region = reachable(wf, from);
    // The step that failed runs again too when `from` is beside it rather than after it
    // (a sibling branch): otherwise its branch would stay unresolved, a join after it would
    // never run, and the instance would complete as if the failure had not happened.
    let failed = inst
        .failed_step
        .as_deref()
        .and_then(|name| wf.step_id(name))
        .filter(|&f| !region[f] && !reachable(wf, f)[from]);

    let mut t = Transition::new(wf, inst, env, effects);
    let mut restart = Vec::new();
    for (s, st) in t.inst.steps.iter_mut().enumerate() {
        if region[s] {
            st.status = StepStatus::Idle;
            st.marks.retain(|m| !region[wf.edges[m.edge as usize].from]);
        } else if st.status == StepStatus::Interrupted || Some(s) == failed {
            restart.push(s);
        }
    }
    let inst = &mut *t.inst;
    inst.status = InstanceStatus::Running;
    inst.error = None;
    inst.failed_step = None;
    inst.finished_at = None;
    let name = t.name(from);
    t.emit(EventKind::WorkflowRetried { from_step: name });
    t.activate(from);
    for s in restart {
        t.activate(s);
    }
    t.finish();
    Ok(())
}

/// Steps reachable from `from` (itself included), following every edge.
fn reachable(wf: &Workflow, from: usize) -> Vec<bool> {
    let mut seen = vec![false; wf.steps.len()];
    let mut stack = vec![from];
    while let Some(s) = stack.pop() {
        if std::mem::replace(&mut seen[s], true) {
            continue;
        }
        stack.extend(wf.steps[s].outgoing.iter().map(|&e| wf.edges[e].to));
    }
    seen
}

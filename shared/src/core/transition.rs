//! The machinery every transition shares: activating steps, routing along edges, joins with
//! dead-path elimination, and deciding the instance's status.
//!
//! Work is kept on a FIFO worklist instead of recursion, so a chain of gateways cannot
//! overflow the stack, and a loop of steps that never wait is cut off by a budget.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::json;

use super::effect::{Dispatch, Effect, Timer};
use super::input::{StepError, TimerKind};
use super::Env;
use crate::definition::{CompiledKind, EdgeId, StepId, TimerSpec, Workflow};
use crate::model::{
    AttemptRecord, AttemptStatus, Context, EdgeMark, EdgeOn, Event, EventKind, Instance,
    InstanceStatus, StepStatus, Task, TaskOutcome,
};

/// How many activations one transition may make before the instance fails: only a loop of
/// steps that never wait (gateways looping on themselves) gets near it.
const ACTIVATION_BUDGET: usize = 10_000;

/// How a step ended, for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Success,
    Failure,
    Timeout,
}

#[derive(Clone, Copy)]
enum Work {
    Activate(StepId),
    Skip(StepId),
}

/// How many work items the worklist holds without allocating.
const INLINE_WORK: usize = 16;

/// Outgoing edges a step may have for its routing decision to stay on the stack.
const INLINE_EDGES: usize = 16;

/// Marks a packed [`Work::Skip`] in the worklist's ring.
const SKIP_BIT: u32 = 1 << 31;

/// The FIFO worklist: a ring of [`INLINE_WORK`] items in place (packed in 32 bits, so the
/// ring is cheap to set up), then a heap queue for the rest. Most transitions queue a
/// handful of items, so most never allocate.
struct WorkQueue {
    ring: [u32; INLINE_WORK],
    head: usize,
    len: usize,
    spill: VecDeque<Work>,
}

impl WorkQueue {
    fn new() -> WorkQueue {
        WorkQueue {
            ring: [0; INLINE_WORK],
            head: 0,
            len: 0,
            spill: VecDeque::new(),
        }
    }

    fn pack(work: Work) -> Option<u32> {
        match work {
            Work::Activate(s) => u32::try_from(s).ok().filter(|&s| s < SKIP_BIT),
            Work::Skip(s) => u32::try_from(s)
                .ok()
                .filter(|&s| s < SKIP_BIT)
                .map(|s| s | SKIP_BIT),
        }
    }

    fn push_back(&mut self, work: Work) {
        // Once items spill, later ones follow them there: the ring holds only the oldest.
        if self.spill.is_empty() && self.len < INLINE_WORK {
            if let Some(packed) = Self::pack(work) {
                self.ring[(self.head + self.len) % INLINE_WORK] = packed;
                self.len += 1;
                return;
            }
        }
        self.spill.push_back(work);
    }

    fn pop_front(&mut self) -> Option<Work> {
        if self.len > 0 {
            let packed = self.ring[self.head];
            self.head = (self.head + 1) % INLINE_WORK;
            self.len -= 1;
            let s = (packed & !SKIP_BIT) as usize;
            Some(if packed & SKIP_BIT != 0 {
                Work::Skip(s)
            } else {
                Work::Activate(s)
            })
        } else {
            self.spill.pop_front()
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.spill.clear();
    }
}

/// One transition in progress: the instance being changed and the effects so far (appended
/// to the caller's buffer).
pub(super) struct Transition<'a> {
    pub wf: &'a Workflow,
    pub inst: &'a mut Instance,
    pub env: Env,
    pub effects: &'a mut Vec<Effect>,
    work: WorkQueue,
    activations: usize,
}

impl<'a> Transition<'a> {
    pub fn new(
        wf: &'a Workflow,
        inst: &'a mut Instance,
        env: Env,
        effects: &'a mut Vec<Effect>,
    ) -> Self {
        Transition {
            wf,
            inst,
            env,
            effects,
            work: WorkQueue::new(),
            activations: 0,
        }
    }

    /// Runs queued work, settles the status and bumps the revision. The effects are in the
    /// buffer the transition was given.
    pub fn finish(mut self) {
        self.drain();
        while self.close_idle_loops() {
            self.drain();
        }
        self.settle_status();
        self.inst.revision += 1;
        self.inst.updated_at = self.env.now;
    }

    pub fn emit(&mut self, kind: EventKind) {
        self.effects.push(Effect::Emit(Event {
            instance_id: self.inst.id.clone(),
            timestamp: self.env.now,
            kind,
        }));
    }

    pub fn name(&self, s: StepId) -> Arc<str> {
        self.wf.steps[s].name.clone()
    }

    fn new_token(&mut self) -> u64 {
        self.inst.next_token += 1;
        self.inst.next_token
    }

    /// Queues a step to start now.
    pub fn activate(&mut self, s: StepId) {
        self.work.push_back(Work::Activate(s));
    }

    fn drain(&mut self) {
        while let Some(work) = self.work.pop_front() {
            if self.inst.status.is_terminal() {
                self.work.clear();
                return;
            }
            match work {
                Work::Activate(s) => {
                    self.activations += 1;
                    if self.activations > ACTIVATION_BUDGET {
                        let err = StepError::fatal(
                            "loop",
                            format!(
                                "more than {ACTIVATION_BUDGET} steps started in one transition: \
                                 a loop with no machine, human or timer step in it"
                            ),
                        );
                        self.fail_instance(s, &err);
                        return;
                    }
                    self.start_step(s);
                }
                Work::Skip(s) => self.skip(s),
            }
        }
    }

    fn start_step(&mut self, s: StepId) {
        let now = self.env.now;
        let step = &self.wf.steps[s];
        {
            let st = &mut self.inst.steps[s];
            st.marks.clear();
            st.runs += 1;
            st.tries = 0;
            st.error = None;
            st.finished_at = None;
        }
        match &step.kind {
            CompiledKind::Machine { .. } => self.dispatch_attempt(s),
            CompiledKind::Human {
                title,
                description,
                assignee,
                candidates,
                form,
                due,
            } => {
                let token = self.new_token();
                let due_at = due.map(|d| now.after(d));
                let st = &mut self.inst.steps[s];
                st.status = StepStatus::Waiting;
                st.token = token;
                st.attempt += 1;
                st.tries = 1;
                st.started_at = Some(now);
                st.due_at = due_at;
                st.assignment = None;
                let name = step.name.clone();
                self.effects.push(Effect::OpenTask(Box::new(Task {
                    instance_id: self.inst.id.clone(),
                    step: name.clone(),
                    token,
                    title: title.clone(),
                    description: description.clone(),
                    assignee: assignee.clone(),
                    candidates: candidates.clone(),
                    form: form.as_ref().map(|f| f.schema().clone()),
                    created_at: now,
                    due_at,
                    tenant_id: self.inst.tenant_id.clone(),
                })));
                if let Some(due_at) = due_at {
                    self.effects.push(Effect::Schedule(Timer {
                        step: name.clone(),
                        kind: TimerKind::TaskDue,
                        token,
                        due_at,
                    }));
                }
                self.emit(EventKind::HumanTaskCreated {
                    step: name,
                    assignee: assignee.clone(),
                    candidates: candidates.clone(),
                });
            }
            CompiledKind::Gateway => {
                let st = &mut self.inst.steps[s];
                st.attempt += 1;
                st.tries = 1;
                st.started_at = Some(now);
                // A gateway exists to choose a way on: when it has ways and none is chosen
                // (no condition matched and there is no default), that is a modelling gap,
                // not a quiet end of the branch, so the gateway fails (its failure edges, if
                // any, handle it; else the instance fails and can be retried).
                let taken = self.decide(s, Outcome::Success);
                if self.has_edges(s, Outcome::Success) && !taken.contains(&true) {
                    self.inst.steps[s].status = StepStatus::Running;
                    let err = StepError::fatal(
                        "no_route",
                        "no condition of the gateway's edges matched and it has no default edge",
                    );
                    self.fail_for_good(s, &err, None, false);
                } else {
                    let name = self.name(s);
                    self.record_success(s, name, None, None);
                    self.follow(s, &taken);
                }
            }
            CompiledKind::Timer(spec) => {
                let fire_at = match spec {
                    TimerSpec::After(d) => Ok(now.after(*d)),
                    TimerSpec::At(t) => Ok(*t),
                    TimerSpec::Expr(expr) => expr
                        .evaluate_time(&self.inst.context)
                        .map(crate::time::Timestamp)
                        .map_err(|e| StepError::fatal("timer", e.to_string())),
                };
                let token = self.new_token();
                let st = &mut self.inst.steps[s];
                st.attempt += 1;
                st.tries = 1;
                st.token = token;
                st.started_at = Some(now);
                match fire_at {
                    Ok(fire_at) => {
                        st.status = StepStatus::Sleeping;
                        st.due_at = Some(fire_at);
                        let name = step.name.clone();
                        self.effects.push(Effect::Schedule(Timer {
                            step: name.clone(),
                            kind: TimerKind::Wake,
                            token,
                            due_at: fire_at,
                        }));
                        self.emit(EventKind::TimerScheduled {
                            step: name,
                            fire_at,
                        });
                    }
                    Err(err) => {
                        st.status = StepStatus::Running;
                        self.fail_for_good(s, &err, None, false);
                    }
                }
            }
        }
    }

    /// Sends the step's next attempt to a worker. `attempt` and `tries` count up.
    pub fn dispatch_attempt(&mut self, s: StepId) {
        let now = self.env.now;
        let step = &self.wf.steps[s];
        let CompiledKind::Machine {
            handler,
            config,
            queue,
            timeout,
            ..
        } = &step.kind
        else {
            return;
        };
        let token = self.new_token();
        let st = &mut self.inst.steps[s];
        st.status = StepStatus::Running;
        st.attempt += 1;
        st.tries += 1;
        st.token = token;
        st.started_at = Some(now);
        st.due_at = timeout.map(|t| now.after(t));
        let attempt = st.attempt;
        let due_at = st.due_at;
        let name = step.name.clone();
        self.effects.push(Effect::Dispatch(Dispatch {
            step: name.clone(),
            attempt,
            token,
            handler: handler.clone(),
            queue: queue.clone(),
            config: config.clone(),
            context: self.inst.context.clone(),
            timeout: *timeout,
        }));
        if let Some(due_at) = due_at {
            self.effects.push(Effect::Schedule(Timer {
                step: name.clone(),
                kind: TimerKind::Timeout,
                token,
                due_at,
            }));
        }
        self.emit(EventKind::StepStarted {
            step: name,
            attempt,
        });
    }

    /// Records a step's success: merges its output, records the attempt, routes onwards.
    pub fn succeed(&mut self, s: StepId, output: Option<Context>, worker: Option<String>) {
        let name = self.name(s);
        self.succeed_as(s, name, output, worker);
    }

    /// [`Self::succeed`] with the step's name at hand (equal to the workflow's).
    pub fn succeed_as(
        &mut self,
        s: StepId,
        name: Arc<str>,
        output: Option<Context>,
        worker: Option<String>,
    ) {
        self.record_success(s, name, output, worker);
        self.route(s, Outcome::Success);
    }

    /// The part of a success before routing: output merged, step completed, attempt
    /// recorded, `StepExecuted` published.
    fn record_success(
        &mut self,
        s: StepId,
        name: Arc<str>,
        output: Option<Context>,
        worker: Option<String>,
    ) {
        if let Some(output) = output {
            merge(&mut self.inst.context, output);
        }
        let now = self.env.now;
        let st = &mut self.inst.steps[s];
        st.status = StepStatus::Completed;
        st.finished_at = Some(now);
        st.due_at = None;
        let record = AttemptRecord {
            step: name.clone(),
            attempt: st.attempt,
            status: AttemptStatus::Completed,
            started_at: st.started_at,
            finished_at: Some(now),
            worker,
            error: None,
            note: None,
        };
        let attempt = st.attempt;
        self.effects.push(Effect::Record(record));
        self.emit(EventKind::StepExecuted {
            step: name,
            attempt,
        });
    }

    /// A step failed and will not be retried: route along failure (or timeout) edges, or
    /// fail the instance when there are none.
    pub fn fail_for_good(
        &mut self,
        s: StepId,
        err: &StepError,
        worker: Option<String>,
        timed_out: bool,
    ) {
        let now = self.env.now;
        let name = self.name(s);
        let st = &mut self.inst.steps[s];
        st.status = StepStatus::Failed;
        st.finished_at = Some(now);
        st.due_at = None;
        st.error = Some(err.to_string());
        let attempt = st.attempt;
        self.effects.push(Effect::Record(AttemptRecord {
            step: name.clone(),
            attempt,
            status: if timed_out {
                AttemptStatus::TimedOut
            } else {
                AttemptStatus::Failed
            },
            started_at: st.started_at,
            finished_at: Some(now),
            worker,
            error: Some(err.to_string()),
            note: None,
        }));
        self.emit(EventKind::StepFailed {
            step: name.clone(),
            attempt,
            error: err.to_string(),
        });
        let outcome = if timed_out {
            Outcome::Timeout
        } else {
            Outcome::Failure
        };
        let error =
            json!({ "step": &*name, "kind": err.kind, "message": err.message, "attempt": attempt });
        match self.decide_failure(s, outcome, error) {
            Some(taken) => self.follow(s, &taken),
            None => self.fail_instance(s, err),
        }
    }

    /// Decides the edges of a failure or timeout. The error goes into the context (at
    /// `error`) first, for the edges' conditions and for the path that handles it. When no
    /// edge of the outcome is taken (there is none, or no condition matched and there is no
    /// default), the failure is not handled: `None`, with the context as it was.
    pub fn decide_failure(
        &mut self,
        s: StepId,
        outcome: Outcome,
        error: serde_json::Value,
    ) -> Option<Vec<bool>> {
        if !self.has_edges(s, outcome) {
            return None;
        }
        let before = self.inst.context.clone();
        Arc::make_mut(&mut self.inst.context).insert("error".into(), error);
        let taken = self.decide(s, outcome);
        if taken.iter().any(|&t| t) {
            Some(taken)
        } else {
            self.inst.context = before;
            None
        }
    }

    /// Whether a failure with this outcome has somewhere to go.
    pub fn has_edges(&self, s: StepId, outcome: Outcome) -> bool {
        self.wf.steps[s]
            .outgoing
            .iter()
            .any(|&e| self.matches_outcome(e, s, outcome))
    }

    /// Which edge group an outcome follows: a timeout follows `on: timeout` edges when the
    /// step has any, else `on: failure` edges.
    fn matches_outcome(&self, e: EdgeId, s: StepId, outcome: Outcome) -> bool {
        let on = self.wf.edges[e].on;
        match outcome {
            Outcome::Success => on == EdgeOn::Success,
            Outcome::Failure => on == EdgeOn::Failure,
            Outcome::Timeout => {
                let has_timeout_edges = self.wf.steps[s]
                    .outgoing
                    .iter()
                    .any(|&x| self.wf.edges[x].on == EdgeOn::Timeout);
                if has_timeout_edges {
                    on == EdgeOn::Timeout
                } else {
                    on == EdgeOn::Failure
                }
            }
        }
    }

    /// Decides which outgoing edges are taken and which are dead, and marks them.
    ///
    /// In the outcome's group, edges without a condition are taken, conditional edges are
    /// taken when their condition is true (an evaluation error counts as false and is
    /// reported by a `ConditionFailed` event), and `default` edges are taken when no
    /// conditional edge matched. Every other outgoing edge is dead, except while a loop edge
    /// is taken: the step will run again and decide its exits then. An edge that leaves a
    /// loop is not decided dead here at all: the loop may take it on a later turn, so it
    /// dies only when the loop is over ([`Self::close_idle_loops`]).
    pub fn route(&mut self, s: StepId, outcome: Outcome) {
        let n = self.wf.steps[s].outgoing.len();
        if n <= INLINE_EDGES {
            let mut taken = [false; INLINE_EDGES];
            self.decide_into(s, outcome, &mut taken[..n]);
            self.follow(s, &taken[..n]);
        } else {
            let taken = self.decide(s, outcome);
            self.follow(s, &taken);
        }
    }

    /// Which outgoing edges of `s` an outcome takes (see [`Self::route`]), in `outgoing` order.
    fn decide(&mut self, s: StepId, outcome: Outcome) -> Vec<bool> {
        let mut taken = vec![false; self.wf.steps[s].outgoing.len()];
        self.decide_into(s, outcome, &mut taken);
        taken
    }

    /// [`Self::decide`] into `taken`, one entry per outgoing edge.
    fn decide_into(&mut self, s: StepId, outcome: Outcome, taken: &mut [bool]) {
        let wf = self.wf;
        let step = &wf.steps[s];
        let mut any_condition_matched = false;
        for (i, &e) in step.outgoing.iter().enumerate() {
            let edge = &wf.edges[e];
            let in_group = self.matches_outcome(e, s, outcome);
            let take = if !in_group || edge.default {
                false
            } else if let Some(cond) = &edge.condition {
                match cond.evaluate(&self.inst.context) {
                    Ok(b) => {
                        any_condition_matched |= b;
                        b
                    }
                    Err(err) => {
                        let (step, to) = (self.name(s), self.name(edge.to));
                        self.emit(EventKind::ConditionFailed {
                            step,
                            to,
                            error: err.to_string(),
                        });
                        false
                    }
                }
            } else {
                true
            };
            taken[i] = take;
        }
        if !any_condition_matched {
            for (i, &e) in step.outgoing.iter().enumerate() {
                if wf.edges[e].default && self.matches_outcome(e, s, outcome) {
                    taken[i] = true;
                }
            }
        }
    }

    /// Marks the edges [`Self::decide`] took and those that are dead now.
    pub fn follow(&mut self, s: StepId, taken: &[bool]) {
        let wf = self.wf;
        let step = &wf.steps[s];
        let looping = step
            .outgoing
            .iter()
            .zip(taken)
            .any(|(&e, &t)| t && wf.edges[e].back);
        for (&e, &t) in step.outgoing.iter().zip(taken) {
            if t || (!looping && !wf.edges[e].exit) {
                self.mark(e, t);
            }
        }
    }

    /// A loop that was entered and has no step active or waiting on a join any more is over:
    /// its exit edges still undecided are dead now. Returns whether it marked any.
    fn close_idle_loops(&mut self) -> bool {
        let wf = self.wf;
        if wf.loops.is_empty() || self.inst.status.is_terminal() {
            return false;
        }
        let mut marked = false;
        for lp in &wf.loops {
            let steps = &self.inst.steps;
            let entered = lp
                .steps
                .iter()
                .any(|&s| steps[s].status != StepStatus::Idle);
            let busy = lp
                .steps
                .iter()
                .any(|&s| steps[s].status.is_active() || !steps[s].marks.is_empty());
            if !entered || busy {
                continue;
            }
            for &e in &lp.exits {
                let st = &self.inst.steps[wf.edges[e].to];
                let decided = st.marks.iter().any(|m| m.edge as usize == e);
                if st.status == StepStatus::Idle && !decided {
                    self.mark(e, false);
                    marked = true;
                }
            }
        }
        marked
    }

    /// Resolves one edge into its target: a taken loop edge restarts the target; a forward
    /// edge counts towards the target's join, which starts when every forward edge into it is
    /// resolved and at least one was taken, and is skipped when all are dead.
    fn mark(&mut self, e: EdgeId, taken: bool) {
        let edge = &self.wf.edges[e];
        let t = edge.to;
        if edge.back {
            if taken {
                self.work.push_back(Work::Activate(t));
            }
            return;
        }
        let need = self.wf.steps[t].forward_in;
        let st = &mut self.inst.steps[t];
        // The common case, a step with one way in: resolved at once, no mark kept.
        if need <= 1 && st.marks.is_empty() {
            self.work.push_back(if taken {
                Work::Activate(t)
            } else {
                Work::Skip(t)
            });
            return;
        }
        let edge_id = e as u32;
        match st.marks.iter_mut().find(|m| m.edge == edge_id) {
            Some(m) => m.taken |= taken,
            None => {
                if st.marks.capacity() == 0 {
                    st.marks.reserve_exact(need);
                }
                st.marks.push(EdgeMark {
                    edge: edge_id,
                    taken,
                });
            }
        }
        if st.marks.len() >= need {
            let any = st.marks.iter().any(|m| m.taken);
            st.marks.clear();
            self.work.push_back(if any {
                Work::Activate(t)
            } else {
                Work::Skip(t)
            });
        }
    }

    /// Dead-path elimination: the step is on no live path, and neither is anything only it
    /// leads to.
    fn skip(&mut self, s: StepId) {
        self.inst.steps[s].status = StepStatus::Skipped;
        let name = self.name(s);
        self.emit(EventKind::StepSkipped { step: name });
        let wf = self.wf;
        for &e in &wf.steps[s].outgoing {
            // A loop's exits are decided when the loop is over.
            if !wf.edges[e].exit {
                self.mark(e, false);
            }
        }
    }

    /// Fails the instance because step `s` failed for good.
    pub fn fail_instance(&mut self, s: StepId, err: &StepError) {
        let name = self.name(s);
        self.interrupt_active();
        let inst = &mut *self.inst;
        inst.status = InstanceStatus::Failed;
        inst.error = Some(format!("step {name:?} failed: {err}"));
        inst.failed_step = Some(name.clone());
        inst.finished_at = Some(self.env.now);
        self.work.clear();
        self.emit(EventKind::WorkflowFailed {
            step: Some(name),
            error: err.to_string(),
        });
    }

    /// Stops every active step: timers dropped, tasks voided, running attempts recorded as
    /// canceled (their late results will be stale).
    pub fn interrupt_active(&mut self) {
        let now = self.env.now;
        for s in 0..self.inst.steps.len() {
            let status = self.inst.steps[s].status;
            if !status.is_active() {
                continue;
            }
            let name = self.name(s);
            let kind = match status {
                StepStatus::Running => Some(TimerKind::Timeout),
                StepStatus::Retrying => Some(TimerKind::Retry),
                StepStatus::Sleeping => Some(TimerKind::Wake),
                StepStatus::Waiting => Some(TimerKind::TaskDue),
                _ => None,
            };
            // A running attempt or an open task has a timer only when it has a deadline.
            if let Some(kind) = kind.filter(|_| self.inst.steps[s].due_at.is_some()) {
                self.effects.push(Effect::Unschedule {
                    step: name.clone(),
                    kind,
                });
            }
            if status == StepStatus::Waiting {
                self.effects.push(Effect::CloseTask {
                    step: name.clone(),
                    outcome: TaskOutcome::Voided,
                });
            }
            let st = &mut self.inst.steps[s];
            if status == StepStatus::Running {
                self.effects.push(Effect::Record(AttemptRecord {
                    step: name,
                    attempt: st.attempt,
                    status: AttemptStatus::Canceled,
                    started_at: st.started_at,
                    finished_at: Some(now),
                    worker: None,
                    error: None,
                    note: None,
                }));
            }
            st.status = StepStatus::Interrupted;
            st.due_at = None;
        }
    }

    /// After the work is done: COMPLETED when nothing is active, WAITING when only human
    /// tasks are open, RUNNING otherwise.
    fn settle_status(&mut self) {
        if self.inst.status.is_terminal() {
            return;
        }
        let mut active = false;
        let mut busy = false;
        for st in &self.inst.steps {
            if st.status.is_active() {
                active = true;
                if st.status != StepStatus::Waiting {
                    // One busy step decides it: RUNNING.
                    busy = true;
                    break;
                }
            }
        }
        self.inst.status = if !active {
            self.inst.finished_at = Some(self.env.now);
            self.emit(EventKind::WorkflowCompleted);
            InstanceStatus::Completed
        } else if busy {
            InstanceStatus::Running
        } else {
            InstanceStatus::Waiting
        };
    }
}

/// Merges a step's output into the context, key by key: a key a step writes replaces the
/// value before it. Parallel branches that write different keys give the same context in any
/// completion order; when two write the same key, the result applied last wins.
fn merge(context: &mut Arc<Context>, output: Context) {
    if output.is_empty() {
        return;
    }
    let ctx = Arc::make_mut(context);
    for (k, v) in output {
        ctx.insert(k, v);
    }
}

/// A pseudo-random number in [0, 1) from a seed and a token: jitter stays a pure function.
pub(super) fn unit(seed: u64, token: u64) -> f64 {
    // splitmix64
    let mut z = seed ^ token.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut WorkQueue) -> Vec<(bool, StepId)> {
        std::iter::from_fn(|| q.pop_front())
            .map(|w| match w {
                Work::Activate(s) => (true, s),
                Work::Skip(s) => (false, s),
            })
            .collect()
    }

    #[test]
    fn the_worklist_is_first_in_first_out_in_place_and_spilled() {
        let mut q = WorkQueue::new();
        let mut expected = Vec::new();
        // Past the ring, with an interleaved pop so the ring wraps, and a step id too large
        // to pack, which goes to the heap queue.
        for i in 0..40usize {
            let w = if i % 3 == 0 {
                Work::Skip(i)
            } else {
                Work::Activate(i)
            };
            q.push_back(w);
            expected.push((i % 3 != 0, i));
            if i == 5 {
                assert_eq!(drain(&mut q).len(), 6);
                expected.clear();
            }
        }
        q.push_back(Work::Activate(usize::MAX));
        expected.push((true, usize::MAX));
        q.push_back(Work::Skip(7));
        expected.push((false, 7));
        assert_eq!(drain(&mut q), expected);
        q.push_back(Work::Skip(3));
        q.clear();
        assert!(q.pop_front().is_none());
    }
}

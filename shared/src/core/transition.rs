//! The machinery every transition shares: activating steps, routing along edges, joins with
//! dead-path elimination, and deciding the instance's status.
//!
//! Work is kept on a FIFO worklist instead of recursion, so a chain of gateways cannot
//! overflow the stack, and a loop of steps that never wait is cut off by a budget.
//!
//! # Why the lists are inline
//!
//! A transition's own two lists, the worklist and the taken edges of a step, are
//! [`SmallVec`]s: on the common path (a step with a few ways out, starting a few steps) they
//! live on the stack, and with the driver's reused effect buffer ([`super::apply_into`]) a
//! transition allocates nothing of its own. Measured with callgrind on the LocalEngine's
//! benchmark loop (instructions per step, 10-step chains): the three together save 12.2 %
//! (effects 3.9 %, worklist 2.0 %, taken edges 4.8 % alone), which is why they are here; any
//! one alone would not earn its place (see the README, Benchmarks).

use std::sync::Arc;

use serde_json::json;
use smallvec::SmallVec;

use super::effect::{Dispatch, Effect, Timer};
use super::input::{StepError, TimerKind};
use super::task::{assignment, computed_assignment, current_task, human_task};
use super::Env;
use crate::definition::{CompiledKind, EdgeId, StepId, TimerSpec, Workflow};
use crate::model::{
    AttemptRecord, AttemptStatus, Awaiting, Context, EdgeMark, EdgeOn, Event, EventKind, Instance,
    InstanceStatus, StepStatus, TaskOutcome,
};

/// How many activations one transition may make before the instance fails: only a loop of
/// steps that never wait (gateways looping on themselves) gets near it.
const ACTIVATION_BUDGET: usize = 10_000;

/// How a step ended, for routing: each outcome follows its own group of edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// It succeeded: `on: success` edges.
    Success,
    /// It failed: `on: failure` edges.
    Failure,
    /// It ran past its deadline: `on: timeout` edges, else `on: failure` ones.
    Timeout,
}

impl Outcome {
    /// How the history records an attempt that ended this way.
    pub(super) fn attempt_status(self) -> AttemptStatus {
        match self {
            Outcome::Success => AttemptStatus::Completed,
            Outcome::Failure => AttemptStatus::Failed,
            Outcome::Timeout => AttemptStatus::TimedOut,
        }
    }
}

/// Which outgoing edges of a step an outcome takes, in `outgoing` order (inline up to 16).
pub(super) type Taken = SmallVec<[bool; 16]>;

/// One item of a transition's worklist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Start the step.
    Activate(StepId),
    /// The step is on no live path: skip it (dead-path elimination).
    Skip(StepId),
}

/// One transition in progress: the instance being changed and the effects so far (appended
/// to the caller's buffer).
pub(super) struct Transition<'a> {
    pub wf: &'a Workflow,
    pub inst: &'a mut Instance,
    pub env: Env,
    pub effects: &'a mut Vec<Effect>,
    /// First in, first out: steps start in the order their edges were resolved. Read from
    /// `next`; emptied whenever the reader catches up, so it only grows within one burst.
    work: SmallVec<[Work; 4]>,
    next: usize,
    activations: usize,
}

impl<'a> Transition<'a> {
    pub(super) fn new(
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
            work: SmallVec::new(),
            next: 0,
            activations: 0,
        }
    }

    /// Runs queued work, settles the status and bumps the revision. The effects are in the
    /// buffer the transition was given.
    pub(super) fn finish(mut self) {
        self.drain();
        while self.close_idle_loops() {
            self.drain();
        }
        self.settle_status();
        self.inst.revision += 1;
        self.inst.updated_at = self.env.now;
    }

    pub(super) fn emit(&mut self, kind: EventKind) {
        self.effects.push(Effect::Emit(Event {
            instance_id: self.inst.id.clone(),
            timestamp: self.env.now,
            kind,
        }));
    }

    pub(super) fn name(&self, s: StepId) -> Arc<str> {
        self.wf.steps[s].name.clone()
    }

    /// A fencing token no earlier activation or attempt of this instance had.
    pub(super) fn new_token(&mut self) -> u64 {
        self.inst.next_token += 1;
        self.inst.next_token
    }

    /// Begins the next attempt of step `s` (see [`crate::model::StepState::begin_attempt`])
    /// under a new token, which only this attempt's results, timers or task carry. Returns
    /// the token.
    fn begin_attempt(&mut self, s: StepId) -> u64 {
        let token = self.new_token();
        let st = &mut self.inst.steps[s];
        st.begin_attempt(self.env.now);
        st.token = token;
        token
    }

    /// Queues a step to start now.
    pub(super) fn activate(&mut self, s: StepId) {
        self.work.push(Work::Activate(s));
    }

    /// The next item of the worklist, first in first out.
    fn next_work(&mut self) -> Option<Work> {
        let work = self.work.get(self.next).copied();
        match work {
            Some(_) => self.next += 1,
            None => self.clear_work(),
        }
        work
    }

    fn clear_work(&mut self) {
        self.work.clear();
        self.next = 0;
    }

    fn drain(&mut self) {
        while let Some(work) = self.next_work() {
            if self.inst.status.is_terminal() {
                self.clear_work();
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
                due, remind_every, ..
            } => {
                let token = self.begin_attempt(s);
                let computed = computed_assignment(self.wf, s, self.inst);
                let st = &mut self.inst.steps[s];
                st.claimed_by = None;
                st.reminders = 0;
                st.assignment = None;
                let computed = match computed {
                    Ok(computed) => computed,
                    Err(err) => {
                        // The task opens for no one: the step (and with it the instance, as
                        // human steps take no failure edges) fails with the reason.
                        st.status = StepStatus::Running;
                        self.fail_for_good(s, &err, None, Outcome::Failure);
                        return;
                    }
                };
                let due_at = due.map(|d| now.after(d));
                st.status = StepStatus::Waiting;
                st.due_at = due_at;
                st.assignment = computed.map(Box::new);
                let name = step.name.clone();
                let who = assignment(self.wf, self.inst, s);
                let task = human_task(self.wf, s, self.inst, who.clone(), now);
                self.effects.push(Effect::OpenTask(Box::new(task)));
                if let Some(every) = remind_every {
                    self.effects.push(Effect::Schedule(Timer {
                        step: name.clone(),
                        kind: TimerKind::TaskReminder,
                        token,
                        due_at: now.after(*every),
                    }));
                }
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
                    assignee: who.assignee,
                    candidates: who.candidates,
                });
            }
            CompiledKind::Gateway => {
                // A gateway decides at once: an attempt without a token, as nothing can
                // report on it later.
                self.inst.steps[s].begin_attempt(now);
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
                    self.fail_for_good(s, &err, None, Outcome::Failure);
                } else {
                    self.record_success(s, None, None, None);
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
                let token = self.begin_attempt(s);
                let st = &mut self.inst.steps[s];
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
                        self.fail_for_good(s, &err, None, Outcome::Failure);
                    }
                }
            }
            CompiledKind::Event {
                event,
                correlation,
                timeout,
                ..
            } => {
                let key = match correlation {
                    Some(expr) => expr
                        .evaluate_key(&self.inst.context)
                        .map(Some)
                        .map_err(|e| {
                            StepError::fatal(
                                "correlation",
                                format!("the step's `correlation` gave no key: {e}"),
                            )
                        }),
                    None => Ok(None),
                };
                let token = self.begin_attempt(s);
                let st = &mut self.inst.steps[s];
                match key {
                    Ok(key) => {
                        let due_at = timeout.map(|d| now.after(d));
                        st.status = StepStatus::Waiting;
                        st.due_at = due_at;
                        st.awaiting = Some(Box::new(Awaiting {
                            event: event.clone(),
                            key: key.clone(),
                        }));
                        let name = step.name.clone();
                        self.effects.push(Effect::Subscribe {
                            step: name.clone(),
                            event: event.clone(),
                            key: key.clone(),
                        });
                        if let Some(due_at) = due_at {
                            self.effects.push(Effect::Schedule(Timer {
                                step: name.clone(),
                                kind: TimerKind::Timeout,
                                token,
                                due_at,
                            }));
                        }
                        self.emit(EventKind::MessageAwaited {
                            step: name,
                            event: event.clone(),
                            key,
                        });
                    }
                    Err(err) => {
                        st.status = StepStatus::Running;
                        self.fail_for_good(s, &err, None, Outcome::Failure);
                    }
                }
            }
        }
    }

    /// Sends the step's next attempt to a worker. `attempt` and `tries` count up.
    pub(super) fn dispatch_attempt(&mut self, s: StepId) {
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
        let token = self.begin_attempt(s);
        let st = &mut self.inst.steps[s];
        st.status = StepStatus::Running;
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
    pub(super) fn succeed(&mut self, s: StepId, output: Option<Context>, worker: Option<String>) {
        self.record_success(s, output, worker, None);
        self.route(s, Outcome::Success);
    }

    /// [`Self::succeed`] with a note on the history record (an event step: the message id).
    pub(super) fn succeed_with_note(&mut self, s: StepId, output: Option<Context>, note: String) {
        self.record_success(s, output, None, Some(note));
        self.route(s, Outcome::Success);
    }

    /// The part of a success before routing: output merged, step completed, attempt
    /// recorded, `StepExecuted` published.
    fn record_success(
        &mut self,
        s: StepId,
        output: Option<Context>,
        worker: Option<String>,
        note: Option<String>,
    ) {
        if let Some(output) = output {
            merge(&mut self.inst.context, output);
        }
        let now = self.env.now;
        let name = self.name(s);
        let st = &mut self.inst.steps[s];
        st.end(StepStatus::Completed, now);
        let mut record =
            AttemptRecord::ended(name.clone(), st, AttemptStatus::Completed, now).by(worker);
        record.note = note;
        let attempt = st.attempt;
        self.effects.push(Effect::Record(record));
        self.emit(EventKind::StepExecuted {
            step: name,
            attempt,
        });
    }

    /// A step failed (`outcome` is [`Outcome::Failure`] or [`Outcome::Timeout`]) and will
    /// not be retried: route along failure (or timeout) edges, or fail the instance when
    /// there are none.
    pub(super) fn fail_for_good(
        &mut self,
        s: StepId,
        err: &StepError,
        worker: Option<String>,
        outcome: Outcome,
    ) {
        let now = self.env.now;
        let name = self.name(s);
        let st = &mut self.inst.steps[s];
        st.end(StepStatus::Failed, now);
        st.error = Some(err.to_string());
        let attempt = st.attempt;
        let record = AttemptRecord::ended(name.clone(), st, outcome.attempt_status(), now)
            .by(worker)
            .with_error(err.to_string());
        self.effects.push(Effect::Record(record));
        self.emit(EventKind::StepFailed {
            step: name.clone(),
            attempt,
            error: err.to_string(),
        });
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
    pub(super) fn decide_failure(
        &mut self,
        s: StepId,
        outcome: Outcome,
        error: serde_json::Value,
    ) -> Option<Taken> {
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
    pub(super) fn has_edges(&self, s: StepId, outcome: Outcome) -> bool {
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
    pub(super) fn route(&mut self, s: StepId, outcome: Outcome) {
        let taken = self.decide(s, outcome);
        self.follow(s, &taken);
    }

    /// Which outgoing edges of `s` an outcome takes (see [`Self::route`]), in `outgoing` order.
    fn decide(&mut self, s: StepId, outcome: Outcome) -> Taken {
        let wf = self.wf;
        let step = &wf.steps[s];
        let mut taken: Taken = SmallVec::from_elem(false, step.outgoing.len());
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
        taken
    }

    /// Marks the edges [`Self::decide`] took and those that are dead now.
    pub(super) fn follow(&mut self, s: StepId, taken: &[bool]) {
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
                self.work.push(Work::Activate(t));
            }
            return;
        }
        let need = self.wf.steps[t].forward_in;
        let st = &mut self.inst.steps[t];
        // The common case, a step with one way in: resolved at once, no mark kept.
        if need <= 1 && st.marks.is_empty() {
            self.work.push(if taken {
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
            self.work.push(if any {
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
    pub(super) fn fail_instance(&mut self, s: StepId, err: &StepError) {
        let name = self.name(s);
        self.interrupt_active();
        let inst = &mut *self.inst;
        inst.status = InstanceStatus::Failed;
        inst.error = Some(format!("step {name:?} failed: {err}"));
        inst.failed_step = Some(name.clone());
        inst.finished_at = Some(self.env.now);
        self.clear_work();
        self.emit(EventKind::WorkflowFailed {
            step: Some(name),
            error: err.to_string(),
        });
    }

    /// Stops every active step: timers dropped, tasks voided, running attempts recorded as
    /// canceled (their late results will be stale).
    pub(super) fn interrupt_active(&mut self) {
        let now = self.env.now;
        for s in 0..self.inst.steps.len() {
            let status = self.inst.steps[s].status;
            if !status.is_active() {
                continue;
            }
            let name = self.name(s);
            // An event step waits too, but for a message rather than a person.
            let awaiting = self.inst.steps[s].awaiting.take();
            let kind = match status {
                StepStatus::Running => Some(TimerKind::Timeout),
                StepStatus::Retrying => Some(TimerKind::Retry),
                StepStatus::Sleeping => Some(TimerKind::Wake),
                StepStatus::Waiting if awaiting.is_some() => Some(TimerKind::Timeout),
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
            if let Some(awaiting) = awaiting {
                self.effects.push(Effect::Unsubscribe {
                    step: name.clone(),
                    event: awaiting.event,
                    key: awaiting.key,
                });
            } else if status == StepStatus::Waiting {
                if matches!(
                    self.wf.steps[s].kind,
                    CompiledKind::Human {
                        remind_every: Some(_),
                        ..
                    }
                ) {
                    self.effects.push(Effect::Unschedule {
                        step: name.clone(),
                        kind: TimerKind::TaskReminder,
                    });
                }
                let retired = current_task(self.wf, s, self.inst, now);
                self.effects.push(Effect::RetireTask(Box::new(retired)));
                self.effects.push(Effect::CloseTask {
                    step: name.clone(),
                    outcome: TaskOutcome::Voided,
                });
            }
            let st = &mut self.inst.steps[s];
            if status == StepStatus::Running {
                let record = AttemptRecord::ended(name, st, AttemptStatus::Canceled, now);
                self.effects.push(Effect::Record(record));
            }
            st.status = StepStatus::Interrupted;
            st.due_at = None;
        }
    }

    /// After the work is done: COMPLETED when nothing is active, WAITING when only human
    /// tasks are open and event steps wait for messages, RUNNING otherwise.
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

//! Shared test helpers: a small simulated driver over the pure core (`Sim`), and steps and
//! buses for LocalEngine tests.
//!
//! `Sim` plays the part of the LocalEngine or the coordinator without any I/O: it applies
//! inputs with a fixed `Env`, keeps the dispatched attempts, scheduled timers and open tasks
//! the effects asked for, and checks on every refusal that the instance did not change.

#![allow(dead_code)]

pub mod scenario;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;
use weir::core::{
    self, Dispatch, Effect, Env, Input, Refusal, StartSpec, StepError, Timer, TimerKind,
};
use weir::definition::Workflow;
use weir::events::EventBus;
use weir::model::{
    Actor, AttemptRecord, Event, EventKind, Instance, InstanceStatus, StepState, StepStatus, Task,
    TaskOutcome,
};
use weir::{compile, parse_definition, Context, Step, StepContext, Timestamp};

/// 2026-01-01T00:00:00Z: the fixed "now" of pure core tests.
pub const T0: Timestamp = Timestamp(1_767_225_600_000);

/// Parses and compiles a definition, panicking with the error.
pub fn workflow(yaml: &str) -> Workflow {
    let def = parse_definition(yaml).unwrap_or_else(|e| panic!("parse failed: {e}\n{yaml}"));
    compile(def).unwrap_or_else(|e| panic!("compile failed: {e}\n{yaml}"))
}

/// A JSON object as a context.
pub fn obj(v: Value) -> Context {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// A simulated driver over the pure core.
pub struct Sim {
    pub wf: Arc<Workflow>,
    pub inst: Instance,
    pub now: Timestamp,
    pub seed: u64,
    /// The effects of the last applied transition.
    pub last: Vec<Effect>,
    /// Every effect so far.
    pub all: Vec<Effect>,
    /// Dispatched attempts not yet answered through the Sim, in dispatch order.
    pub dispatched: Vec<Dispatch>,
    /// Attempts answered or replaced: their results are stale from now on.
    pub answered: Vec<Dispatch>,
    /// Timers scheduled and not unscheduled (fired ones are removed when fired).
    pub timers: BTreeMap<(String, &'static str), Timer>,
    /// Timers that fired (kept so they can be delivered again as duplicates).
    pub fired: Vec<Timer>,
    /// Open tasks.
    pub tasks: BTreeMap<String, Task>,
    /// Closed tasks and how.
    pub closed: Vec<(String, TaskOutcome)>,
    /// History records.
    pub history: Vec<AttemptRecord>,
    /// Events emitted, in order.
    pub events: Vec<Event>,
    /// Event steps subscribed and not unsubscribed: step -> (message name, key).
    pub waits: BTreeMap<String, (String, Option<String>)>,
}

impl Sim {
    /// Starts an instance of a YAML definition with initial data.
    pub fn start(yaml: &str, data: Value) -> Sim {
        Sim::start_wf(Arc::new(workflow(yaml)), data)
    }

    /// Starts an instance of a compiled workflow with initial data.
    pub fn start_wf(wf: Arc<Workflow>, data: Value) -> Sim {
        Sim::start_spec(
            wf,
            StartSpec {
                id: "i-1".into(),
                initial_data: obj(data),
                tenant_id: None,
                created_by: None,
            },
            T0,
            7,
        )
    }

    /// Starts with a full spec, time and seed.
    pub fn start_spec(wf: Arc<Workflow>, spec: StartSpec, now: Timestamp, seed: u64) -> Sim {
        let (inst, effects) = core::start(&wf, spec, Env { now, seed });
        let mut sim = Sim {
            wf,
            inst,
            now,
            seed,
            last: Vec::new(),
            all: Vec::new(),
            dispatched: Vec::new(),
            answered: Vec::new(),
            timers: BTreeMap::new(),
            fired: Vec::new(),
            tasks: BTreeMap::new(),
            closed: Vec::new(),
            history: Vec::new(),
            events: Vec::new(),
            waits: BTreeMap::new(),
        };
        sim.absorb(effects);
        sim
    }

    pub fn env(&self) -> Env {
        Env {
            now: self.now,
            seed: self.seed,
        }
    }

    /// Applies an input. A refusal must leave the instance exactly as it was.
    pub fn apply(&mut self, input: Input) -> Result<Vec<Effect>, Refusal> {
        let before = self.inst.clone();
        let env = self.env();
        match core::apply(&self.wf, &mut self.inst, input.clone(), env) {
            Ok(effects) => {
                assert!(
                    self.inst.revision > before.revision,
                    "an applied input must bump the revision"
                );
                self.absorb(effects.clone());
                Ok(effects)
            }
            Err(refusal) => {
                assert_eq!(
                    self.inst, before,
                    "refused input {input:?} ({refusal}) changed the instance"
                );
                Err(refusal)
            }
        }
    }

    /// Carries out effects the way a driver would.
    pub fn absorb(&mut self, effects: Vec<Effect>) {
        for e in &effects {
            match e {
                Effect::Dispatch(d) => {
                    if let Some(i) = self.dispatched.iter().position(|x| x.step == d.step) {
                        let old = self.dispatched.remove(i);
                        self.answered.push(old);
                    }
                    self.dispatched.push(d.clone());
                }
                Effect::Schedule(t) => {
                    self.timers
                        .insert((t.step.to_string(), t.kind.as_str()), t.clone());
                }
                Effect::Unschedule { step, kind } => {
                    self.timers.remove(&(step.to_string(), kind.as_str()));
                }
                Effect::OpenTask(t) => {
                    self.tasks.insert(t.step.to_string(), Task::clone(t));
                }
                Effect::RetireTask(_) => {}
                Effect::CloseTask { step, outcome } => {
                    self.tasks.remove(&**step);
                    self.closed.push((step.to_string(), *outcome));
                }
                Effect::Subscribe { step, event, key } => {
                    self.waits
                        .insert(step.to_string(), (event.to_string(), key.clone()));
                }
                Effect::Unsubscribe { step, .. } => {
                    self.waits.remove(&**step);
                }
                Effect::Record(r) => self.history.push(r.clone()),
                Effect::Emit(ev) => self.events.push(ev.clone()),
            }
        }
        self.all.extend(effects.iter().cloned());
        self.last = effects;
        // Attempts the instance no longer waits for (timed out, interrupted) are not
        // outstanding any more: their results would be stale.
        let (live, gone): (Vec<Dispatch>, Vec<Dispatch>) = std::mem::take(&mut self.dispatched)
            .into_iter()
            .partition(|d| {
                let st = &self.inst.steps[self.wf.step_id(&d.step).unwrap()];
                st.token == d.token && st.status == StepStatus::Running
            });
        self.dispatched = live;
        self.answered.extend(gone);
    }

    /// The outstanding dispatch of a step.
    pub fn dispatch_of(&self, step: &str) -> Option<&Dispatch> {
        self.dispatched.iter().find(|d| &*d.step == step)
    }

    /// Steps with an outstanding dispatch, in dispatch order.
    pub fn running(&self) -> Vec<String> {
        self.dispatched.iter().map(|d| d.step.to_string()).collect()
    }

    fn take_dispatch(&mut self, step: &str) -> Dispatch {
        let i = self
            .dispatched
            .iter()
            .position(|d| &*d.step == step)
            .unwrap_or_else(|| panic!("no outstanding dispatch of {step:?}: {:?}", self.running()));
        let d = self.dispatched.remove(i);
        self.answered.push(d.clone());
        d
    }

    /// Reports success of the step's outstanding attempt; panics if refused.
    pub fn succeed(&mut self, step: &str, output: Value) -> Vec<Effect> {
        self.try_succeed(step, output)
            .unwrap_or_else(|r| panic!("success of {step:?} refused: {r}"))
    }

    pub fn try_succeed(&mut self, step: &str, output: Value) -> Result<Vec<Effect>, Refusal> {
        let d = self.take_dispatch(step);
        self.apply(Input::StepSucceeded {
            step: d.step,
            token: d.token,
            output: obj(output),
            worker: Some("w1".into()),
        })
    }

    /// Reports failure of the step's outstanding attempt; panics if refused.
    pub fn fail(&mut self, step: &str, error: StepError) -> Vec<Effect> {
        self.try_fail(step, error)
            .unwrap_or_else(|r| panic!("failure of {step:?} refused: {r}"))
    }

    pub fn try_fail(&mut self, step: &str, error: StepError) -> Result<Vec<Effect>, Refusal> {
        let d = self.take_dispatch(step);
        self.apply(Input::StepFailed {
            step: d.step,
            token: d.token,
            error,
            worker: Some("w1".into()),
        })
    }

    /// A scheduled timer.
    pub fn timer(&self, step: &str, kind: TimerKind) -> Option<&Timer> {
        self.timers.get(&(step.to_string(), kind.as_str()))
    }

    /// Moves time to the timer's due time and delivers it; panics if it is not scheduled or
    /// refused.
    pub fn fire(&mut self, step: &str, kind: TimerKind) -> Vec<Effect> {
        self.try_fire(step, kind)
            .unwrap_or_else(|r| panic!("timer {step:?} {kind:?} refused: {r}"))
    }

    pub fn try_fire(&mut self, step: &str, kind: TimerKind) -> Result<Vec<Effect>, Refusal> {
        let t = self
            .timers
            .remove(&(step.to_string(), kind.as_str()))
            .unwrap_or_else(|| panic!("no {kind:?} timer for {step:?}: {:?}", self.timers.keys()));
        if t.due_at > self.now {
            self.now = t.due_at;
        }
        self.fired.push(t.clone());
        self.apply(Input::Timer {
            step: t.step,
            kind: t.kind,
            token: t.token,
        })
    }

    /// Completes a human task.
    pub fn complete(
        &mut self,
        step: &str,
        user: &str,
        data: Value,
    ) -> Result<Vec<Effect>, Refusal> {
        self.apply(Input::CompleteTask {
            step: Arc::from(step),
            user: user.to_string(),
            data,
            groups: Vec::new(),
        })
    }

    /// Completes a task as `by` (with their groups).
    pub fn complete_as(
        &mut self,
        step: &str,
        by: &Actor,
        data: Value,
    ) -> Result<Vec<Effect>, Refusal> {
        self.apply(Input::CompleteTask {
            step: Arc::from(step),
            user: by.user.clone(),
            data,
            groups: by.groups.clone(),
        })
    }

    /// Claims a task as `by`.
    pub fn claim(&mut self, step: &str, by: &Actor) -> Result<Vec<Effect>, Refusal> {
        self.apply(Input::ClaimTask {
            step: Arc::from(step),
            by: by.clone(),
        })
    }

    /// Releases a task's claim as `by`.
    pub fn release(&mut self, step: &str, by: &Actor) -> Result<Vec<Effect>, Refusal> {
        self.apply(Input::ReleaseTask {
            step: Arc::from(step),
            by: by.clone(),
        })
    }

    pub fn message(
        &mut self,
        id: &str,
        name: &str,
        key: Option<&str>,
        data: Value,
    ) -> Result<Vec<Effect>, Refusal> {
        self.apply(Input::DeliverMessage {
            id: id.into(),
            name: name.into(),
            key: key.map(str::to_string),
            data,
        })
    }

    pub fn cancel(&mut self, reason: &str) -> Result<Vec<Effect>, Refusal> {
        self.apply(Input::Cancel {
            reason: Some(reason.to_string()),
        })
    }

    pub fn retry(&mut self, from: Option<&str>) -> Result<Vec<Effect>, Refusal> {
        self.apply(Input::Retry {
            from_step: from.map(str::to_string),
        })
    }

    pub fn advance_ms(&mut self, ms: i64) {
        self.now = Timestamp(self.now.0 + ms);
    }

    pub fn status(&self) -> InstanceStatus {
        self.inst.status
    }

    pub fn step(&self, name: &str) -> &StepState {
        let id = self
            .wf
            .step_id(name)
            .unwrap_or_else(|| panic!("no step {name:?}"));
        &self.inst.steps[id]
    }

    pub fn step_status(&self, name: &str) -> StepStatus {
        self.step(name).status
    }

    pub fn ctx(&self) -> &Context {
        &self.inst.context
    }

    /// The `type`s of every event so far.
    pub fn types(&self) -> Vec<&'static str> {
        self.events.iter().map(Event::type_name).collect()
    }

    /// The `type`s of the last transition's events.
    pub fn last_types(&self) -> Vec<&'static str> {
        event_types(&self.last)
    }

    /// How many times a step finished successfully (StepExecuted events).
    pub fn executed(&self, step: &str) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::StepExecuted { step: s, .. } if &**s == step))
            .count()
    }

    /// How many dispatches a step had.
    pub fn dispatch_count(&self, step: &str) -> usize {
        self.all
            .iter()
            .filter(|e| matches!(e, Effect::Dispatch(d) if &*d.step == step))
            .count()
    }
}

/// The event types among effects.
pub fn event_types(effects: &[Effect]) -> Vec<&'static str> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit(ev) => Some(ev.type_name()),
            _ => None,
        })
        .collect()
}

/// The dispatches among effects.
pub fn dispatches(effects: &[Effect]) -> Vec<&Dispatch> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Dispatch(d) => Some(d),
            _ => None,
        })
        .collect()
}

/// The scheduled timers among effects.
pub fn schedules(effects: &[Effect]) -> Vec<&Timer> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Schedule(t) => Some(t),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Steps and buses for LocalEngine tests.

/// Writes every key of its `config` into the context.
pub struct Set;

#[async_trait]
impl Step for Set {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        if let Some(map) = ctx.config().as_object().cloned() {
            for (k, v) in map {
                ctx.set(k, v);
            }
        }
        Ok(())
    }
}

/// A step from a closure.
pub struct FnStep<F>(pub F);

#[async_trait]
impl<F> Step for FnStep<F>
where
    F: Fn(&mut StepContext) -> Result<(), StepError> + Send + Sync,
{
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        (self.0)(ctx)
    }
}

/// Sleeps `config.ms` milliseconds of tokio time, then writes `config.set` (an object).
pub struct Sleep;

#[async_trait]
impl Step for Sleep {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let ms = ctx.config()["ms"].as_u64().unwrap_or(1000);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        if let Some(map) = ctx.config()["set"].as_object().cloned() {
            for (k, v) in map {
                ctx.set(k, v);
            }
        }
        Ok(())
    }
}

/// Fails the first `n` calls (retryable, kind `flaky`), then writes `config`.
pub struct Flaky {
    pub n: usize,
    pub calls: Arc<AtomicUsize>,
}

#[async_trait]
impl Step for Flaky {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if call < self.n {
            return Err(StepError::retryable(format!("flaky call {call}")).with_kind("flaky"));
        }
        if let Some(map) = ctx.config().as_object().cloned() {
            for (k, v) in map {
                ctx.set(k, v);
            }
        }
        Ok(())
    }
}

/// Counts calls of `execute`, `on_success` and `on_failure`; fails when `config.fail` is set
/// (with `config.retryable`, default false).
#[derive(Default)]
pub struct Hooked {
    pub executed: Arc<AtomicUsize>,
    pub succeeded: Arc<AtomicUsize>,
    pub failed: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Step for Hooked {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        self.executed.fetch_add(1, Ordering::SeqCst);
        if ctx.config()["fail"].as_bool() == Some(true) {
            let retryable = ctx.config()["retryable"].as_bool().unwrap_or(false);
            return Err(StepError {
                kind: "boom".into(),
                message: "it broke".into(),
                retryable,
            });
        }
        ctx.set("hooked", Value::Bool(true));
        Ok(())
    }

    async fn on_success(&self, ctx: &mut StepContext) {
        self.succeeded.fetch_add(1, Ordering::SeqCst);
        ctx.set("on_success_ran", Value::Bool(true));
    }

    async fn on_failure(&self, _ctx: &mut StepContext, error: &StepError) {
        self.failed.lock().unwrap().push(error.kind.clone());
    }
}

/// Never finishes until released; counts how many attempts started.
pub struct Gate {
    pub release: Arc<tokio::sync::Notify>,
    pub started: Arc<AtomicUsize>,
}

#[async_trait]
impl Step for Gate {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.release.notified().await;
        ctx.set("gate_passed", Value::Bool(true));
        Ok(())
    }
}

/// An event bus that keeps events and yields to the scheduler before keeping each one, like
/// a bus that writes to a database or a channel would.
#[derive(Default)]
pub struct YieldingBus {
    pub events: Mutex<Vec<Event>>,
}

#[async_trait]
impl EventBus for YieldingBus {
    async fn emit(&self, event: &Event) {
        tokio::task::yield_now().await;
        self.events.lock().unwrap().push(event.clone());
    }
}

impl YieldingBus {
    pub fn types_for(&self, instance_id: &str) -> Vec<&'static str> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| &*e.instance_id == instance_id)
            .map(Event::type_name)
            .collect()
    }
}

//! The LocalEngine's driver: applies inputs to one instance and carries out the effects.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::history::{History, LOCAL_WORKER};
use super::messages::{Message, Route, Waiter};
use super::Inner;
use crate::api::InstanceView;
use crate::core::StepError;
use crate::core::{self, Dispatch, Effect, Env, Input, Refusal, TimerKind};
use crate::definition::Workflow;
use crate::model::{Event, EventKind, Instance, InstanceStatus, Task};
use crate::step::{execute_step, unknown_handler, Step, StepContext};
use crate::time::Timestamp;

/// One instance and what the engine keeps beside it.
pub(crate) struct Slot {
    pub id: Arc<str>,
    pub wf: Arc<Workflow>,
    pub state: tokio::sync::Mutex<SlotState>,
    /// The status for waiters; made by the first one, under the state lock, so a
    /// transition either sees it or ran before it was made with the status then current.
    status: OnceLock<watch::Sender<InstanceStatus>>,
}

pub(crate) struct SlotState {
    pub inst: Instance,
    pub history: History,
    pub tasks: BTreeMap<Arc<str>, Task>,
    timers: HashMap<(Arc<str>, TimerKind), AbortHandle>,
    /// A delayed start still pending: when it is due.
    start_at: Option<Timestamp>,
}

impl Slot {
    pub(super) fn new(wf: Arc<Workflow>, inst: Instance) -> Arc<Slot> {
        Arc::new(Slot {
            id: inst.id.clone(),
            status: OnceLock::new(),
            state: tokio::sync::Mutex::new(SlotState {
                inst,
                // One record per step is what an instance without loops or retries keeps.
                history: History::with_capacity(wf.steps.len()),
                tasks: BTreeMap::new(),
                timers: HashMap::new(),
                start_at: None,
            }),
            wf,
        })
    }

    /// A receiver of the instance's status.
    pub(super) async fn watch(&self) -> watch::Receiver<InstanceStatus> {
        let state = self.state.lock().await;
        self.status
            .get_or_init(|| watch::Sender::new(state.inst.status))
            .subscribe()
    }

    pub(super) async fn view(&self) -> InstanceView {
        let state = self.state.lock().await;
        view_of(&state, &self.wf)
    }
}

/// The view of an instance, with the start time of a delayed start still pending.
pub(crate) fn view_of(state: &SlotState, wf: &Workflow) -> InstanceView {
    let mut view = InstanceView::new(&state.inst, wf);
    if state.inst.status == InstanceStatus::Pending {
        view.start_at = state.start_at;
    }
    view
}

/// A delayed start (its slot holds the pending instance): creates the instance at `due`
/// on the engine's clock, unless it was canceled before. Returns the pending view.
pub(crate) async fn start_later(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    spec: core::StartSpec,
    due: Timestamp,
) -> InstanceView {
    let view = {
        let mut state = slot.state.lock().await;
        state.start_at = Some(due);
        view_of(&state, &slot.wf)
    };
    let at = inner.clock.instant_of(due);
    let (inner, slot) = (Arc::downgrade(inner), slot.clone());
    tokio::spawn(async move {
        tokio::time::sleep_until(at).await;
        let Some(inner) = inner.upgrade() else { return };
        let mut state = slot.state.lock().await;
        if state.inst.status != InstanceStatus::Pending {
            return;
        }
        let (inst, effects) = core::start(&slot.wf, spec, inner.clock.env());
        state.inst = inst;
        state.start_at = None;
        carry_out(&inner, &slot, &mut state, effects).await;
    });
    view
}

/// Cancels a delayed start still pending; `false` when the instance is not pending.
pub(crate) async fn cancel_pending(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    reason: Option<&str>,
) -> bool {
    let mut state = slot.state.lock().await;
    if state.inst.status != InstanceStatus::Pending {
        return false;
    }
    let now = inner.clock.now();
    state.inst.status = InstanceStatus::Canceled;
    state.inst.error = Some(
        reason
            .filter(|r| !r.is_empty())
            .unwrap_or("canceled before it started")
            .to_string(),
    );
    state.inst.finished_at = Some(now);
    state.inst.updated_at = now;
    state.start_at = None;
    if let Some(tx) = slot.status.get() {
        tx.send_if_modified(|s| {
            std::mem::replace(s, InstanceStatus::Canceled) != InstanceStatus::Canceled
        });
    }
    // Announced as any cancel is, and as the Redis engine announces a pending one.
    let event = Event {
        instance_id: state.inst.id.clone(),
        timestamp: now,
        kind: EventKind::WorkflowCanceled {
            reason: reason.filter(|r| !r.is_empty()).map(str::to_string),
        },
    };
    drop(state);
    if !inner.bus.try_emit(&event) {
        inner.bus.emit(&event).await;
    }
    true
}

/// Applies one input and carries out its effects.
pub(crate) async fn apply(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    input: Input,
) -> Result<(), Refusal> {
    let mut state = slot.state.lock().await;
    let env = inner.clock.env();
    let effects = core::apply(&slot.wf, &mut state.inst, input, env)?;
    carry_out(inner, slot, &mut state, effects).await;
    Ok(())
}

/// Carries out the effects of a start and returns the instance as they left it.
pub(crate) async fn run_effects(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    effects: Vec<Effect>,
) -> InstanceView {
    let mut state = slot.state.lock().await;
    carry_out(inner, slot, &mut state, effects).await;
    InstanceView::new(&state.inst, &slot.wf)
}

/// Delivers an input from a handler or timer task; stale ones are counted and dropped.
///
/// Boxed with an explicit `Send`: it is spawned from `carry_out`, which it calls, and the
/// compiler cannot see through that cycle of opaque futures.
fn deliver(
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    input: Input,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        if let Err(refusal) = apply(&inner, &slot, input).await {
            note_refusal(&inner, &slot, &refusal);
        }
    })
}

fn note_refusal(inner: &Inner, slot: &Slot, refusal: &Refusal) {
    if refusal.is_stale() {
        inner.stale.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(instance_id = %slot.id, %refusal, "dropped stale input");
    } else {
        tracing::warn!(instance_id = %slot.id, %refusal, "internal input refused");
    }
}

/// Carries out effects in order. Handlers that finish on their first poll are applied right
/// here, under the same lock, without a task spawn: the fast path of short steps. Their
/// results are applied in turn, once the effects before them are carried out, so the
/// instance's events still come out in transition order.
async fn carry_out(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    state: &mut SlotState,
    effects: Vec<Effect>,
) {
    let mut ready: VecDeque<Input> = VecDeque::new();
    // Kept messages that subscriptions took, until their delivery is applied.
    let mut taken: Vec<(Route, Message)> = Vec::new();
    let mut effects = effects;
    loop {
        for effect in effects.drain(..) {
            match effect {
                Effect::Dispatch(d) => {
                    let step = inner
                        .handlers
                        .get(&d.handler)
                        .cloned()
                        .ok_or_else(|| unknown_handler(&inner.handlers, &d.handler));
                    let mut run = Box::pin(run_attempt(step, slot.id.clone(), d));
                    match (&mut run).now_or_never() {
                        Some(input) => ready.push_back(input),
                        None => {
                            let (inner, slot) = (inner.clone(), slot.clone());
                            tokio::spawn(async move {
                                let input = run.await;
                                deliver(inner, slot, input).await;
                            });
                        }
                    }
                }
                Effect::Schedule(timer) => {
                    let key = (timer.step.clone(), timer.kind);
                    let at = inner.clock.instant_of(timer.due_at);
                    let input = Input::Timer {
                        step: timer.step,
                        kind: timer.kind,
                        token: timer.token,
                    };
                    let (inner, slot2) = (inner.clone(), slot.clone());
                    let handle = tokio::spawn(async move {
                        tokio::time::sleep_until(at).await;
                        deliver(inner, slot2, input).await;
                    })
                    .abort_handle();
                    if let Some(old) = state.timers.insert(key, handle) {
                        abort_other(&old);
                    }
                }
                Effect::Unschedule { step, kind } => {
                    if let Some(handle) = state.timers.remove(&(step, kind)) {
                        abort_other(&handle);
                    }
                }
                Effect::OpenTask(task) => {
                    state.tasks.insert(task.step.clone(), *task);
                }
                // Tasks are kept by step here, not indexed by who may act on them.
                Effect::RetireTask(_) => {}
                Effect::CloseTask { step, .. } => {
                    state.tasks.remove(&step);
                }
                Effect::Subscribe { step, event, key } => {
                    // Without a key the step receives signals only: nothing to register.
                    let Some(key) = key else { continue };
                    let route = Route {
                        tenant: state.inst.tenant_id.clone(),
                        name: event,
                        key,
                    };
                    let waiter = Waiter {
                        instance: slot.id.clone(),
                        step,
                    };
                    let now = inner.clock.now();
                    if let Some(message) = inner.messages.subscribe(route.clone(), waiter, now) {
                        ready.push_back(Input::DeliverMessage {
                            id: message.id.clone(),
                            name: route.name.to_string(),
                            key: Some(route.key.clone()),
                            data: message.data.clone(),
                        });
                        taken.push((route, message));
                    }
                }
                Effect::Unsubscribe { step, event, key } => {
                    if let Some(key) = key {
                        let route = Route {
                            tenant: state.inst.tenant_id.clone(),
                            name: event,
                            key,
                        };
                        let waiter = Waiter {
                            instance: slot.id.clone(),
                            step,
                        };
                        inner.messages.unsubscribe(&route, &waiter);
                    }
                }
                Effect::Record(record) => state.history.push(record),
                Effect::Emit(event) => {
                    if !inner.bus.try_emit(&event) {
                        inner.bus.emit(&event).await;
                    }
                }
            }
        }
        let Some(input) = ready.pop_front() else {
            break;
        };
        let env = inner.clock.env();
        let message_id = match &input {
            Input::DeliverMessage { id, .. } => Some(id.clone()),
            _ => None,
        };
        let taken_message = message_id
            .and_then(|id| taken.iter().position(|(_, m)| m.id == id))
            .map(|i| taken.swap_remove(i));
        // The drained buffer takes the next transition's effects: one allocation for all
        // the transitions of this call.
        match core::apply_into(&slot.wf, &mut state.inst, input, env, &mut effects) {
            Ok(()) => {
                if taken_message.is_some() {
                    inner.messages.delivered();
                }
            }
            Err(refusal) => {
                // A kept message the step could not take after all goes back, first in line.
                if let Some((route, message)) = taken_message {
                    inner.messages.put_back(route, message, env.now);
                }
                note_refusal(inner, slot, &refusal);
            }
        }
    }
    let status = state.inst.status;
    if status.is_terminal() {
        for (_, handle) in state.timers.drain() {
            abort_other(&handle);
        }
    }
    if let Some(tx) = slot.status.get() {
        tx.send_if_modified(|s| std::mem::replace(s, status) != status);
    }
}

/// Aborts a timer task, unless it is the task running this code: a timer whose own
/// transition replaces or drops it must not cut that transition short.
fn abort_other(handle: &AbortHandle) {
    if tokio::task::try_id() != Some(handle.id()) {
        handle.abort();
    }
}

/// Runs one attempt and turns its outcome into the input that reports it.
/// `step` is the attempt's handler, or the error of a handler not registered.
async fn run_attempt(
    step: Result<Arc<dyn Step>, StepError>,
    instance_id: Arc<str>,
    d: Dispatch,
) -> Input {
    let mut ctx = StepContext::new(instance_id, d.step, d.attempt, d.config, d.context);
    let result = match step {
        Ok(step) => execute_step(step.as_ref(), &mut ctx, d.timeout).await,
        Err(error) => Err(error),
    };
    // The step's name comes back out of the context rather than being cloned into it.
    let (output, step) = ctx.into_output_and_step();
    match result {
        Ok(()) => Input::StepSucceeded {
            step,
            token: d.token,
            output,
            worker: Some(LOCAL_WORKER.to_string()),
        },
        Err(error) => Input::StepFailed {
            step,
            token: d.token,
            error,
            worker: Some(LOCAL_WORKER.to_string()),
        },
    }
}

/// The engine's clock: the tokio clock (so paused test time works), as wall-clock
/// timestamps. Anchored on first use, inside the runtime.
pub(crate) struct Clock {
    anchor: OnceLock<(Instant, i64)>,
    /// A random key, so engines do not repeat one another's jitter seeds.
    key: u64,
    /// Transitions so far: each gets a seed of its own.
    transitions: AtomicU64,
}

impl Clock {
    pub(super) fn new() -> Clock {
        Clock {
            anchor: OnceLock::new(),
            key: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
            transitions: AtomicU64::new(0),
        }
    }

    fn anchor(&self) -> (Instant, i64) {
        *self
            .anchor
            .get_or_init(|| (Instant::now(), Timestamp::now_system().millis()))
    }

    pub(super) fn now(&self) -> Timestamp {
        let (at, ms) = self.anchor();
        let elapsed = i64::try_from(at.elapsed().as_millis()).unwrap_or(i64::MAX);
        Timestamp(ms.saturating_add(elapsed))
    }

    pub(super) fn instant_of(&self, t: Timestamp) -> Instant {
        let (at, ms) = self.anchor();
        at + Duration::from_millis(u64::try_from(t.millis().saturating_sub(ms)).unwrap_or(0))
    }

    pub(super) fn env(&self) -> Env {
        let n = self.transitions.fetch_add(1, Ordering::Relaxed);
        Env {
            now: self.now(),
            seed: self.key ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        }
    }
}

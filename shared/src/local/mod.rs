//! The in-process engine: no Redis, state in memory, timers on the tokio clock.
//!
//! A thin driver around [`crate::core`] (the quinn split: the core decides, this carries
//! out). Each instance has its own lock; an input is applied under it and its effects are
//! carried out in order before the lock is released, so events of one instance come out in
//! transition order. Handlers run as tokio tasks; a handler that finishes on its first poll
//! is applied in the same task, without a spawn. Timers are tokio sleeps, so tests can use
//! paused time (`tokio::time::pause`) and jump to the next wake-up.
//!
//! With the API users of the Python engine know: `start_workflow`, `complete_human_task`,
//! `cancel_workflow`, `retry`, `get_instance`, `list_instances`, `list_tasks`, `history`.

mod driver;
mod history;

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::api::{
    check_start, history_with_running, is_same_start, start_instance_id, EngineError,
    InstanceFilter, InstanceView, StartOptions, TaskFilter,
};
use crate::core::{self, Input, StartSpec};
use crate::definition::Workflow;
use crate::events::{EventBus, NullBus};
use crate::model::{Actor, Assignment, AttemptRecord, Definition, InstanceStatus, Task};
use crate::registry::{Registry, RegistryError};
use crate::step::{Handlers, Step};

use driver::{Clock, Slot};

/// The in-process engine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct LocalEngine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    registry: Arc<Registry>,
    handlers: Handlers,
    bus: Arc<dyn EventBus>,
    instances: Instances,
    clock: Clock,
    stale: std::sync::atomic::AtomicU64,
}

/// How many parts the instance map is split into, so that starts on different threads
/// seldom wait for one another.
const SHARDS: usize = 16;

/// Instances by id, in [`SHARDS`] separately locked maps chosen by a hash of the id.
struct Instances {
    shards: [Shard; SHARDS],
}

/// One part of the instance map, on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<HashMap<Arc<str>, Arc<Slot>>>);

impl Instances {
    fn new() -> Instances {
        Instances {
            shards: std::array::from_fn(|_| Shard::default()),
        }
    }

    /// The map that holds `id`.
    fn shard(&self, id: &str) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Arc<Slot>>> {
        // FNV-1a: only spreads ids over the shards; the maps hash with their own keys.
        let mut h: u32 = 0x811c_9dc5;
        for b in id.bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        lock(&self.shards[h as usize % SHARDS].0)
    }

    /// Every slot, in no particular order.
    fn all(&self) -> Vec<Arc<Slot>> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(lock(&shard.0).values().cloned());
        }
        out
    }
}

/// Builds a [`LocalEngine`].
pub struct LocalEngineBuilder {
    registry: Arc<Registry>,
    handlers: Handlers,
    bus: Arc<dyn EventBus>,
}

impl LocalEngineBuilder {
    /// Uses this registry (shared with other engines or tools).
    pub fn registry(mut self, registry: Arc<Registry>) -> Self {
        self.registry = registry;
        self
    }

    /// Adds a handler.
    pub fn handler(mut self, name: impl Into<String>, step: impl Step + 'static) -> Self {
        self.handlers.register(name, step);
        self
    }

    /// Uses these handlers (replacing any added before).
    pub fn handlers(mut self, handlers: Handlers) -> Self {
        self.handlers = handlers;
        self
    }

    /// Sends events to this bus.
    pub fn event_bus(mut self, bus: Arc<dyn EventBus>) -> Self {
        self.bus = bus;
        self
    }

    /// The engine. Needs a tokio runtime when used, not when built.
    pub fn build(self) -> LocalEngine {
        LocalEngine {
            inner: Arc::new(Inner {
                registry: self.registry,
                handlers: self.handlers,
                bus: self.bus,
                instances: Instances::new(),
                clock: Clock::new(),
                stale: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }
}

impl LocalEngine {
    /// A builder with an empty registry, no handlers and no event bus.
    pub fn builder() -> LocalEngineBuilder {
        LocalEngineBuilder {
            registry: Arc::new(Registry::new()),
            handlers: Handlers::new(),
            bus: Arc::new(NullBus),
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// Checks and registers a definition.
    pub fn register_definition(&self, def: Definition) -> Result<Arc<Workflow>, RegistryError> {
        self.inner.registry.register_definition(def)
    }

    /// Starts an instance of a workflow (the latest version unless one is given) and returns
    /// it as it is after its first transition. With a caller id that exists already, returns
    /// that instance and starts nothing.
    pub async fn start_workflow(
        &self,
        name: &str,
        options: StartOptions,
    ) -> Result<InstanceView, EngineError> {
        let wf = self
            .inner
            .registry
            .get_definition(name, options.version.as_deref())?;
        check_start(&wf, &options)?;
        let id = start_instance_id(&options)?.unwrap_or_else(new_instance_id);
        let env = self.inner.clock.env();
        let (version, tenant) = (options.version, options.tenant_id.clone());
        let spec = StartSpec {
            id,
            initial_data: options.initial_data,
            tenant_id: options.tenant_id,
            created_by: options.created_by,
        };
        // The map lock is held only to check and insert: starting the same id twice at once
        // starts one instance.
        let (inst, effects) = core::start(&wf, spec, env);
        let (slot, created) = {
            let mut map = self.inner.instances.shard(&inst.id);
            // One hash of the id for the check and the insert.
            match map.entry(inst.id.clone()) {
                Entry::Occupied(existing) => (existing.get().clone(), false),
                Entry::Vacant(vacant) => {
                    let slot = Slot::new(wf, inst);
                    vacant.insert(slot.clone());
                    (slot, true)
                }
            }
        };
        if created {
            Ok(driver::run_effects(&self.inner, &slot, effects).await)
        } else {
            let existing = slot.view().await;
            let same = is_same_start(
                (
                    &existing.definition,
                    &existing.version,
                    existing.tenant.as_deref(),
                ),
                name,
                version.as_deref(),
                tenant.as_deref(),
            );
            if same {
                Ok(existing)
            } else {
                Err(EngineError::IdTaken(existing.id))
            }
        }
    }

    /// Completes a human task as `user` with `data`. Refused, with nothing changed, for a
    /// user the task does not allow, data that fails its form, or a task not open.
    pub async fn complete_human_task(
        &self,
        instance_id: &str,
        step: &str,
        user: &str,
        data: Value,
    ) -> Result<InstanceView, EngineError> {
        let input = Input::CompleteTask {
            step: Arc::from(step),
            user: user.to_string(),
            data,
        };
        self.apply(instance_id, input).await
    }

    /// Gives an open human task to `to` (an assignee and/or candidates), recorded in the
    /// history as done `by` someone and announced as `HumanTaskReassigned`. Refused, with
    /// nothing changed, for a task not open, an assignment that names no one, or an actor
    /// who is neither an admin nor a user the task allows.
    pub async fn reassign_task(
        &self,
        instance_id: &str,
        step: &str,
        by: &Actor,
        to: Assignment,
    ) -> Result<InstanceView, EngineError> {
        let input = Input::ReassignTask {
            step: Arc::from(step),
            by: by.clone(),
            assignee: to.assignee,
            candidates: to.candidates,
        };
        self.apply(instance_id, input).await
    }

    /// Cancels a running or waiting instance.
    pub async fn cancel_workflow(
        &self,
        instance_id: &str,
        reason: Option<&str>,
    ) -> Result<InstanceView, EngineError> {
        let input = Input::Cancel {
            reason: reason.map(str::to_string),
        };
        self.apply(instance_id, input).await
    }

    /// Resumes a failed instance from `from_step` (the failed step when `None`).
    pub async fn retry(
        &self,
        instance_id: &str,
        from_step: Option<&str>,
    ) -> Result<InstanceView, EngineError> {
        let input = Input::Retry {
            from_step: from_step.map(str::to_string),
        };
        self.apply(instance_id, input).await
    }

    /// An instance by id.
    pub async fn get_instance(&self, instance_id: &str) -> Result<InstanceView, EngineError> {
        Ok(self.slot(instance_id)?.view().await)
    }

    /// Instances matching a filter, newest first.
    pub async fn list_instances(&self, filter: &InstanceFilter) -> Vec<InstanceView> {
        let slots = self.inner.instances.all();
        let mut out = Vec::new();
        for slot in slots {
            let state = slot.state.lock().await;
            if filter.matches(&state.inst) {
                out.push(InstanceView::new(&state.inst, &slot.wf));
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        if let Some(limit) = filter.limit {
            out.truncate(limit);
        }
        out
    }

    /// Open human tasks matching a filter, oldest first.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Vec<Task> {
        let slots = self.inner.instances.all();
        let mut out = Vec::new();
        for slot in slots {
            let state = slot.state.lock().await;
            out.extend(state.tasks.values().filter(|t| filter.matches(t)).cloned());
        }
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.instance_id.cmp(&b.instance_id))
        });
        out
    }

    /// The execution history: one record per finished attempt, then the ones in flight.
    pub async fn history(&self, instance_id: &str) -> Result<Vec<AttemptRecord>, EngineError> {
        let slot = self.slot(instance_id)?;
        let state = slot.state.lock().await;
        Ok(history_with_running(
            &state.history.to_records(),
            &state.inst,
            &slot.wf,
        ))
    }

    /// Waits until the instance is completed, failed, canceled or waiting on a human task.
    pub async fn wait(
        &self,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<InstanceView, EngineError> {
        self.wait_for(instance_id, timeout, |s| s != InstanceStatus::Running)
            .await
    }

    /// Waits until the instance's status satisfies `done`.
    pub async fn wait_for(
        &self,
        instance_id: &str,
        timeout: Duration,
        done: impl Fn(InstanceStatus) -> bool,
    ) -> Result<InstanceView, EngineError> {
        let slot = self.slot(instance_id)?;
        let mut rx: watch::Receiver<InstanceStatus> = slot.watch().await;
        let reached = tokio::time::timeout(timeout, rx.wait_for(|s| done(*s)))
            .await
            .is_ok();
        if reached {
            Ok(slot.view().await)
        } else {
            Err(EngineError::WaitTimeout(timeout, instance_id.to_string()))
        }
    }

    /// How many stale results and timers were dropped (late, duplicated or canceled).
    pub fn stale_dropped(&self) -> u64 {
        self.inner.stale.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn apply(&self, instance_id: &str, input: Input) -> Result<InstanceView, EngineError> {
        let slot = self.slot(instance_id)?;
        driver::apply(&self.inner, &slot, input).await?;
        Ok(slot.view().await)
    }

    fn slot(&self, instance_id: &str) -> Result<Arc<Slot>, EngineError> {
        self.inner
            .instances
            .shard(instance_id)
            .get(instance_id)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(instance_id.to_string()))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new instance id: a UUID v7 (milliseconds since the epoch, then bits that order ids of
/// the same millisecond and tell them apart), in its usual text form, as the Redis client
/// makes them.
fn new_instance_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_distinct_uuid_v7_in_text_form() {
        let ids: Vec<String> = (0..2000).map(|_| new_instance_id()).collect();
        let mut seen = std::collections::HashSet::new();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 7, "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(parsed.hyphenated().to_string(), *id);
            assert!(seen.insert(id.clone()), "{id} twice");
        }
    }
}

//! The in-process engine: no Redis, state in memory, timers on the tokio clock.
//!
//! A thin driver around [`crate::core`] (the quinn split: the core decides, this carries
//! out). Each instance has its own lock; an input is applied under it and its effects are
//! carried out in order before the lock is released, so events of one instance come out in
//! transition order. Handlers run as tokio tasks; a handler that finishes on its first poll
//! is applied in the same task, without a spawn. Timers are tokio sleeps, so tests can use
//! paused time (`tokio::time::pause`) and jump to the next wake-up.
//!
//! Its calls are those of the [`Engine`] trait (the Redis client takes the same), with the
//! names users of the Python engine know: `start_workflow`, `complete_human_task`,
//! `cancel_workflow`, `retry`, `get_instance`, `list_instances`, `list_tasks`, `history`.

mod driver;
mod history;
mod messages;
mod schedules;

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::watch;

use crate::api::{
    check_start, history_with_running, is_same_start, start_instance_id, EngineError, HistoryPage,
    InstanceFilter, InstanceView, StartBatchError, StartOptions, Started, TaskFilter, TaskPage,
};
use crate::core::{self, Input, StartSpec};
use crate::definition::Workflow;
use crate::engine::{Engine, StatusCheck};
use crate::events::{EventBus, NullBus};
use crate::model::{
    check_signal, Actor, Assignment, AttemptRecord, Definition, InstanceStatus, KeptMessage,
    MessageCounts, MessageFilter, MessageOutcome, MessageSent, SendMessage, DEFAULT_MESSAGE_TTL,
};
use crate::registry::Registry;
use crate::step::{Handlers, Step};

use driver::{Clock, Slot};
use messages::{Claim, IdScope, Message, Route, SIGNAL_ID_KEPT};

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
    messages: messages::Correlations,
    schedules: schedules::Schedules,
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
                messages: messages::Correlations::default(),
                schedules: schedules::Schedules::default(),
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

    /// What happened to messages since the engine started.
    pub fn message_counts(&self) -> MessageCounts {
        self.inner.messages.counts(self.inner.clock.now())
    }

    /// How many stale results and timers were dropped (late, duplicated or canceled).
    pub fn stale_dropped(&self) -> u64 {
        self.inner.stale.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One page of the execution history, as [`crate::redis::WeirClient::history_page`]
    /// gives it: up to `limit` records from position `offset` (oldest first), the attempts
    /// in flight after the last finished one, and how many older records the cap
    /// ([`crate::api::MAX_HISTORY_RECORDS`]) dropped.
    pub async fn history_page(
        &self,
        instance_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<HistoryPage, EngineError> {
        let slot = self.slot(instance_id)?;
        let state = slot.state.lock().await;
        let kept = state.history.len();
        let records = state.history.range(offset, limit);
        let mut page = HistoryPage::new(records, offset, limit, kept, &state.inst, &slot.wf);
        page.dropped = state.history.dropped();
        Ok(page)
    }

    /// The checks of a start that need no instance state (see [`Engine::start_workflow`]),
    /// and its workflow and instance id.
    fn prepare_start(
        &self,
        name: &str,
        options: StartOptions,
    ) -> Result<PreparedStart, EngineError> {
        let wf = self
            .inner
            .registry
            .get_definition(name, options.version.as_deref())?;
        check_start(&wf, &options)?;
        let id = start_instance_id(&options)?.unwrap_or_else(new_instance_id);
        Ok(PreparedStart { wf, id, options })
    }

    /// Starts a checked start: creates the instance and runs its first transition, or
    /// finds the instance its caller id already has.
    async fn start_prepared(
        &self,
        name: &str,
        start: PreparedStart,
    ) -> Result<Started, EngineError> {
        let PreparedStart { wf, id, options } = start;
        let env = self.inner.clock.env();
        let due = options.due_time(env.now);
        let (version, tenant) = (options.version, options.tenant_id.clone());
        let spec = StartSpec {
            id,
            initial_data: options.initial_data,
            tenant_id: options.tenant_id,
            created_by: options.created_by,
        };
        // A delayed start: a pending instance now, created by its first transition at `due`.
        let (inst, effects, later) = match due {
            Some(due) => {
                let fields = crate::redis::store::StartFields {
                    definition: wf.name.to_string(),
                    version: wf.semver.to_string(),
                    initial_data: spec.initial_data.clone(),
                    tenant_id: spec.tenant_id.clone(),
                    created_by: spec.created_by.clone(),
                };
                let inst = crate::redis::store::unstarted_instance(&spec.id, fields, env.now, None);
                (inst, Vec::new(), Some((due, spec)))
            }
            None => {
                let (inst, effects) = core::start(&wf, spec, env);
                (inst, effects, None)
            }
        };
        // The map lock is held only to check and insert: starting the same id twice at once
        // starts one instance.
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
            if let Some((due, spec)) = later {
                let view = driver::start_later(&self.inner, &slot, spec, due).await;
                return Ok(Started { view, stored: true });
            }
            let view = driver::run_effects(&self.inner, &slot, effects).await;
            return Ok(Started { view, stored: true });
        }
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
            Ok(Started {
                view: existing,
                stored: false,
            })
        } else {
            Err(EngineError::IdTaken(existing.id))
        }
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

/// A start that passed its checks ([`LocalEngine::prepare_start`]).
struct PreparedStart {
    wf: Arc<Workflow>,
    id: String,
    options: StartOptions,
}

#[async_trait]
impl Engine for LocalEngine {
    async fn register_definition(&self, def: Definition) -> Result<Arc<Workflow>, EngineError> {
        Ok(self.inner.registry.register_definition(def)?)
    }

    async fn get_definition(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<Workflow>, EngineError> {
        Ok(self.inner.registry.get_definition(name, version)?)
    }

    async fn list_definitions(&self) -> Result<Vec<Arc<Workflow>>, EngineError> {
        Ok(self.inner.registry.list_definitions())
    }

    async fn start_workflow(
        &self,
        name: &str,
        options: StartOptions,
    ) -> Result<InstanceView, EngineError> {
        let start = self.prepare_start(name, options)?;
        Ok(self.start_prepared(name, start).await?.view)
    }

    async fn start_workflows(
        &self,
        name: &str,
        starts: Vec<StartOptions>,
    ) -> Result<Vec<Result<Started, EngineError>>, StartBatchError> {
        let mut prepared = Vec::with_capacity(starts.len());
        for (index, options) in starts.into_iter().enumerate() {
            let start = self
                .prepare_start(name, options)
                .map_err(|error| StartBatchError { index, error })?;
            prepared.push(start);
        }
        let mut out = Vec::with_capacity(prepared.len());
        for start in prepared {
            out.push(self.start_prepared(name, start).await);
        }
        Ok(out)
    }

    async fn complete_task_as(
        &self,
        instance_id: &str,
        step: &str,
        by: &Actor,
        data: Value,
    ) -> Result<InstanceView, EngineError> {
        let input = Input::CompleteTask {
            step: Arc::from(step),
            user: by.user.clone(),
            data,
            groups: by.groups.clone(),
        };
        self.apply(instance_id, input).await
    }

    async fn claim_task(
        &self,
        instance_id: &str,
        step: &str,
        by: &Actor,
    ) -> Result<InstanceView, EngineError> {
        let input = Input::ClaimTask {
            step: Arc::from(step),
            by: by.clone(),
        };
        self.apply(instance_id, input).await
    }

    async fn release_task(
        &self,
        instance_id: &str,
        step: &str,
        by: &Actor,
    ) -> Result<InstanceView, EngineError> {
        let input = Input::ReleaseTask {
            step: Arc::from(step),
            by: by.clone(),
        };
        self.apply(instance_id, input).await
    }

    async fn reassign_task(
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

    async fn cancel_workflow(
        &self,
        instance_id: &str,
        reason: Option<&str>,
    ) -> Result<InstanceView, EngineError> {
        let slot = self.slot(instance_id)?;
        if driver::cancel_pending(&self.inner, &slot, reason).await {
            return Ok(slot.view().await);
        }
        let input = Input::Cancel {
            reason: reason.map(str::to_string),
        };
        self.apply(instance_id, input).await
    }

    async fn retry(
        &self,
        instance_id: &str,
        from_step: Option<&str>,
    ) -> Result<InstanceView, EngineError> {
        let input = Input::Retry {
            from_step: from_step.map(str::to_string),
        };
        self.apply(instance_id, input).await
    }

    async fn send_message(&self, message: SendMessage) -> Result<MessageSent, EngineError> {
        message.check().map_err(EngineError::BadRequest)?;
        let now = self.inner.clock.now();
        let ttl = message.ttl.unwrap_or(DEFAULT_MESSAGE_TTL);
        let expires_at = now.after(ttl);
        let id = message.id.unwrap_or_else(new_instance_id);
        let tenant = message.tenant_id;
        let sent = |outcome, instance_id| MessageSent {
            id: id.clone(),
            outcome,
            instance_id,
        };
        let table = &self.inner.messages;
        let route = Route {
            tenant,
            name: Arc::from(message.name.as_str()),
            key: message.key,
        };
        if !table.first_send(&IdScope::Route(route.clone()), &id, expires_at, now) {
            return Ok(sent(MessageOutcome::Duplicate, None));
        }
        let kept = Message {
            id: id.clone(),
            data: message.data,
            sent_at: now,
            expires_at,
        };
        loop {
            let now = self.inner.clock.now();
            let waiter = match table.claim_or_keep(&route, &kept, now) {
                Claim::Deliver(waiter) => waiter,
                Claim::Kept => return Ok(sent(MessageOutcome::Kept, None)),
            };
            let input = Input::DeliverMessage {
                id: id.clone(),
                name: message.name.clone(),
                key: Some(route.key.clone()),
                data: kept.data.clone(),
            };
            // A waiter that stopped waiting in the meantime refuses; the next one (or the
            // kept list) gets the message.
            let Ok(slot) = self.slot(&waiter.instance) else {
                continue;
            };
            if driver::apply(&self.inner, &slot, input).await.is_ok() {
                table.delivered();
                return Ok(sent(
                    MessageOutcome::Delivered,
                    Some(waiter.instance.to_string()),
                ));
            }
        }
    }

    async fn signal(
        &self,
        instance_id: &str,
        name: &str,
        data: Value,
        id: Option<&str>,
    ) -> Result<InstanceView, EngineError> {
        check_signal(name, id).map_err(EngineError::BadRequest)?;
        let slot = self.slot(instance_id)?;
        let now = self.inner.clock.now();
        let id = id.map(str::to_string).unwrap_or_else(new_instance_id);
        let table = &self.inner.messages;
        // A signal's id counts once for its instance's lifetime, as on the Redis engine
        // (which records it on the instance).
        let scope = IdScope::Instance(Arc::from(instance_id));
        if !table.first_send(&scope, &id, now.after(SIGNAL_ID_KEPT), now) {
            return Ok(slot.view().await);
        }
        let input = Input::DeliverMessage {
            id: id.clone(),
            name: name.to_string(),
            key: None,
            data,
        };
        match driver::apply(&self.inner, &slot, input).await {
            Ok(()) => {
                table.delivered();
                Ok(slot.view().await)
            }
            Err(refusal) => {
                // A refused signal was not sent: its id may be used again.
                table.forget(&scope, &id);
                Err(refusal.into())
            }
        }
    }

    async fn list_messages(&self, filter: &MessageFilter) -> Result<Vec<KeptMessage>, EngineError> {
        Ok(self.inner.messages.list(filter, self.inner.clock.now()))
    }

    async fn get_instance(&self, instance_id: &str) -> Result<InstanceView, EngineError> {
        Ok(self.slot(instance_id)?.view().await)
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceView>, EngineError> {
        let slots = self.inner.instances.all();
        let mut out = Vec::new();
        for slot in slots {
            let state = slot.state.lock().await;
            if filter.matches(&state.inst) {
                out.push(driver::view_of(&state, &slot.wf));
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        out.truncate(filter.limit_or_default());
        Ok(out)
    }

    async fn task_page(&self, filter: &TaskFilter) -> Result<TaskPage, EngineError> {
        let slots = self.inner.instances.all();
        let mut out = Vec::new();
        for slot in slots {
            let state = slot.state.lock().await;
            out.extend(state.tasks.values().filter(|t| filter.matches(t)).cloned());
        }
        Ok(filter.page_of(out))
    }

    async fn history(&self, instance_id: &str) -> Result<Vec<AttemptRecord>, EngineError> {
        let slot = self.slot(instance_id)?;
        let state = slot.state.lock().await;
        Ok(history_with_running(
            &state.history.to_records(),
            &state.inst,
            &slot.wf,
        ))
    }

    async fn create_schedule(
        &self,
        spec: crate::schedule::ScheduleSpec,
    ) -> Result<crate::schedule::ScheduleView, EngineError> {
        self.create_schedule_local(spec).await
    }

    async fn list_schedules(&self) -> Result<Vec<crate::schedule::ScheduleView>, EngineError> {
        Ok(self.list_schedules_local())
    }

    async fn get_schedule(
        &self,
        name: &str,
    ) -> Result<crate::schedule::ScheduleDetail, EngineError> {
        self.get_schedule_local(name)
    }

    async fn pause_schedule(
        &self,
        name: &str,
    ) -> Result<crate::schedule::ScheduleView, EngineError> {
        self.set_paused_local(name, true)
    }

    async fn resume_schedule(
        &self,
        name: &str,
    ) -> Result<crate::schedule::ScheduleView, EngineError> {
        self.set_paused_local(name, false)
    }

    async fn delete_schedule(&self, name: &str) -> Result<(), EngineError> {
        self.delete_schedule_local(name)
    }

    async fn trigger_schedule(&self, name: &str) -> Result<crate::schedule::Firing, EngineError> {
        self.trigger_schedule_local(name).await
    }

    async fn wait_for(
        &self,
        instance_id: &str,
        timeout: Duration,
        done: &StatusCheck,
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

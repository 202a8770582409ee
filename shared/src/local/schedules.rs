//! The LocalEngine's schedules: kept in memory, each fired by a tokio task that sleeps on
//! the engine's clock until its next slot, then runs the same plan and firing procedure as
//! the coordinator ([`crate::schedule`], [`crate::schedule_run`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use tokio::task::AbortHandle;

use super::{lock, Inner, LocalEngine};
use crate::api::{check_start, EngineError, StartOptions};
use crate::engine::Engine;
use crate::schedule::{
    plan, Firing, FiringOutcome, ScheduleDetail, ScheduleSpec, ScheduleView, RECENT_FIRINGS,
};
use crate::schedule_run::{fire_plan, fire_slot};

/// Schedules by name.
#[derive(Default)]
pub(crate) struct Schedules {
    map: Mutex<BTreeMap<String, Entry>>,
}

struct Entry {
    view: ScheduleView,
    recent: VecDeque<Firing>,
    task: Option<AbortHandle>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl LocalEngine {
    fn schedules(&self) -> &Schedules {
        &self.inner.schedules
    }

    pub(super) async fn create_schedule_local(
        &self,
        spec: ScheduleSpec,
    ) -> Result<ScheduleView, EngineError> {
        let slots = spec.check()?;
        let wf = self
            .get_definition(&spec.workflow, spec.version.as_deref())
            .await?;
        check_start(
            &wf,
            &StartOptions {
                initial_data: spec.data.clone(),
                ..StartOptions::default()
            },
        )?;
        let now = self.inner.clock.now();
        let mut map = lock(&self.schedules().map);
        if let Some(existing) = map.get(&spec.name) {
            if existing.view.spec == spec {
                return Ok(existing.view.clone());
            }
            return Err(EngineError::ScheduleExists(spec.name));
        }
        let view = ScheduleView {
            next_fire: slots.next_after(now),
            spec,
            paused: false,
            fired: 0,
            missed: 0,
            skipped: 0,
            last_instance: None,
            created_at: now,
        };
        let name = view.spec.name.clone();
        map.insert(
            name.clone(),
            Entry {
                view: view.clone(),
                recent: VecDeque::new(),
                task: Some(spawn(Arc::downgrade(&self.inner), name)),
            },
        );
        Ok(view)
    }

    pub(super) fn list_schedules_local(&self) -> Vec<ScheduleView> {
        lock(&self.schedules().map)
            .values()
            .map(|e| e.view.clone())
            .collect()
    }

    pub(super) fn get_schedule_local(&self, name: &str) -> Result<ScheduleDetail, EngineError> {
        let map = lock(&self.schedules().map);
        let e = map
            .get(name)
            .ok_or_else(|| EngineError::ScheduleNotFound(name.to_string()))?;
        Ok(crate::redis::schedules::detail(
            e.view.clone(),
            e.recent.iter().cloned().collect(),
        ))
    }

    pub(super) fn set_paused_local(
        &self,
        name: &str,
        paused: bool,
    ) -> Result<ScheduleView, EngineError> {
        let now = self.inner.clock.now();
        let mut map = lock(&self.schedules().map);
        let e = map
            .get_mut(name)
            .ok_or_else(|| EngineError::ScheduleNotFound(name.to_string()))?;
        if let Some(t) = e.task.take() {
            t.abort();
        }
        e.view.paused = paused;
        if paused {
            e.view.next_fire = None;
        } else {
            e.view.next_fire = e.view.spec.check()?.next_after(now);
            e.task = Some(spawn(Arc::downgrade(&self.inner), name.to_string()));
        }
        Ok(e.view.clone())
    }

    pub(super) fn delete_schedule_local(&self, name: &str) -> Result<(), EngineError> {
        lock(&self.schedules().map)
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| EngineError::ScheduleNotFound(name.to_string()))
    }

    pub(super) async fn trigger_schedule_local(&self, name: &str) -> Result<Firing, EngineError> {
        let view = self.get_schedule_local(name)?.schedule;
        let now = self.inner.clock.now();
        let id = format!("{name}@manual-{}", uuid::Uuid::now_v7());
        let firing = fire_slot(
            self,
            &view.spec,
            None,
            &id,
            view.last_instance.as_deref(),
            now,
        )
        .await?;
        let mut map = lock(&self.schedules().map);
        if let Some(e) = map.get_mut(name) {
            if matches!(
                firing.outcome,
                FiringOutcome::Started | FiringOutcome::StartedAfterCancel
            ) {
                e.view.fired += 1;
                e.view.last_instance = Some(id);
            }
            e.recent.push_front(firing.clone());
            e.recent.truncate(RECENT_FIRINGS);
        }
        Ok(firing)
    }
}

/// The task that fires schedule `name` at each slot, until it is paused or deleted (its
/// handle is aborted) or the engine is dropped.
fn spawn(inner: Weak<Inner>, name: String) -> AbortHandle {
    tokio::spawn(async move {
        loop {
            let Some(strong) = inner.upgrade() else {
                return;
            };
            let (next, spec) = {
                let map = lock(&strong.schedules.map);
                let Some(e) = map.get(&name) else { return };
                let Some(next) = e.view.next_fire.filter(|_| !e.view.paused) else {
                    return;
                };
                (next, e.view.spec.clone())
            };
            let at = strong.clock.instant_of(next);
            drop(strong);
            tokio::time::sleep_until(at).await;
            let Some(strong) = inner.upgrade() else {
                return;
            };
            let engine = LocalEngine { inner: strong };
            let Ok(slots) = spec.check() else { return };
            let now = engine.inner.clock.now();
            let the_plan = plan(&slots, next, now, spec.catch_up);
            let last = lock(&engine.inner.schedules.map)
                .get(&name)
                .and_then(|e| e.view.last_instance.clone());
            let fired = fire_plan(&engine, &spec, &slots, &the_plan, next, last, now).await;
            let Ok(fired) = fired else { continue };
            {
                let mut map = lock(&engine.inner.schedules.map);
                let Some(e) = map.get_mut(&name) else { return };
                if e.view.next_fire != Some(next) {
                    continue;
                }
                e.view.next_fire = the_plan.next;
                e.view.fired += fired.counts.fired;
                e.view.missed += fired.counts.missed;
                e.view.skipped += fired.counts.skipped;
                if let Some(l) = fired.started_last {
                    e.view.last_instance = Some(l);
                }
                for f in fired.firings {
                    e.recent.push_front(f);
                }
                e.recent.truncate(RECENT_FIRINGS);
            }
            for event in &fired.events {
                engine.inner.bus.emit(event).await;
            }
        }
    })
    .abort_handle()
}

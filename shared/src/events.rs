//! The in-process event bus: the [`EventBus`] trait and the buses Weir ships.

use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::model::Event;

/// Receives every event, in the order of each instance's transitions.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Handles one event. Keep it quick: the instance's next transition waits for it.
    async fn emit(&self, event: &Event);

    /// Handles one event at once, without waiting, if the bus can: returns `true` when it
    /// did, `false` to have the engine call [`EventBus::emit`] instead (the default).
    ///
    /// A bus whose `emit` never waits can implement both the same way: the engine tries this
    /// first and is spared a boxed future per event.
    fn try_emit(&self, _event: &Event) -> bool {
        false
    }
}

/// Drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullBus;

#[async_trait]
impl EventBus for NullBus {
    async fn emit(&self, _event: &Event) {}

    fn try_emit(&self, _event: &Event) -> bool {
        true
    }
}

/// Keeps every event in memory, for tests and small tools.
#[derive(Debug, Default)]
pub struct MemoryBus {
    events: Mutex<Vec<Event>>,
}

impl MemoryBus {
    /// An empty bus.
    pub fn new() -> MemoryBus {
        MemoryBus::default()
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The `type`s of the events of one instance, in order.
    pub fn types_for(&self, instance_id: &str) -> Vec<&'static str> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| &*e.instance_id == instance_id)
            .map(Event::type_name)
            .collect()
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn emit(&self, event: &Event) {
        self.try_emit(event);
    }

    fn try_emit(&self, event: &Event) -> bool {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
        true
    }
}

/// Fans events out to any number of subscribers; a slow subscriber loses the oldest events
/// (it sees `Lagged`), it never slows the engine.
#[derive(Debug, Clone)]
pub struct BroadcastBus {
    tx: broadcast::Sender<Event>,
}

impl BroadcastBus {
    /// A bus that keeps up to `capacity` events for slow subscribers.
    pub fn new(capacity: usize) -> BroadcastBus {
        BroadcastBus {
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// A new subscriber, seeing events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

#[async_trait]
impl EventBus for BroadcastBus {
    async fn emit(&self, event: &Event) {
        self.try_emit(event);
    }

    fn try_emit(&self, event: &Event) -> bool {
        // No subscriber is not an error.
        let _ = self.tx.send(event.clone());
        true
    }
}

//! The LocalEngine's correlation table: which instances wait on which (name, key), and the
//! messages kept for instances that do not wait yet.
//!
//! One lock guards it, held only for short, non-blocking work (never across an instance
//! lock's await), so it cannot deadlock with the instances' locks. Two operations are
//! atomic under it and close the callback race between them:
//! - a subscription takes a kept message for its (name, key) or joins the waiters;
//! - a send claims the oldest waiter or keeps the message.
//!
//! Either the waiter was there first (the send finds it) or the message was (the
//! subscription finds it), so a message inside its time to live is never left kept while
//! an instance waits for it. A claimed waiter that refuses the message (it stopped waiting
//! in the meantime) hands it back through [`Correlations::claim_or_keep`] again, so it goes
//! to the next waiter or is kept. Messages are keyed by tenant too: a message reaches only
//! instances of its sender's tenant.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::model::{KeptMessage, MessageCounts, MessageFilter};
use crate::time::Timestamp;

/// Where a message goes: its tenant, name and key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Route {
    pub(super) tenant: Option<String>,
    pub(super) name: Arc<str>,
    pub(super) key: String,
}

/// How long a signal's id counts on its instance: the instance's lifetime, which in
/// memory is the engine's (a hundred years stands for "for ever").
pub(super) const SIGNAL_ID_KEPT: std::time::Duration =
    std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// Where a message id counts once: a message's id on its route (the same id on another
/// key is another message), a signal's id on its instance (for the instance's lifetime).
/// The Redis engine scopes ids the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum IdScope {
    /// A message sent by (tenant, name, key).
    Route(Route),
    /// A signal sent to one instance.
    Instance(Arc<str>),
}

/// An event step waiting on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Waiter {
    pub(super) instance: Arc<str>,
    pub(super) step: Arc<str>,
}

/// A message on its way: kept, or claimed by a waiter.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Message {
    pub(super) id: String,
    pub(super) data: Value,
    pub(super) sent_at: Timestamp,
    pub(super) expires_at: Timestamp,
}

/// The table.
#[derive(Default)]
pub(super) struct Correlations {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// Waiters per route, oldest first.
    waiting: HashMap<Route, VecDeque<Waiter>>,
    /// Kept messages per route, oldest first.
    kept: HashMap<Route, VecDeque<Message>>,
    /// Kept messages by expiry, to drop them when their time to live runs out.
    kept_expiry: BinaryHeap<Reverse<(Timestamp, Route, String)>>,
    /// Message ids sent (per scope) and until when they count as duplicates.
    seen: HashMap<(IdScope, String), Timestamp>,
    /// Ids by expiry, to forget them.
    seen_expiry: BinaryHeap<Reverse<(Timestamp, IdScope, String)>>,
    counts: MessageCounts,
}

impl Table {
    /// Drops kept messages and remembered ids whose time has passed.
    fn expire(&mut self, now: Timestamp) {
        while let Some(Reverse((at, _, _))) = self.kept_expiry.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, route, id))) = self.kept_expiry.pop() else {
                break;
            };
            if let Some(queue) = self.kept.get_mut(&route) {
                let before = queue.len();
                queue.retain(|m| !(m.id == id && m.expires_at == at));
                if queue.len() < before {
                    self.counts.expired += 1;
                }
                if queue.is_empty() {
                    self.kept.remove(&route);
                }
            }
        }
        while let Some(Reverse((at, _, _))) = self.seen_expiry.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, scope, id))) = self.seen_expiry.pop() else {
                break;
            };
            let key = (scope, id);
            if self.seen.get(&key) == Some(&at) {
                self.seen.remove(&key);
            }
        }
    }

    fn keep(&mut self, route: Route, message: Message) {
        self.kept_expiry.push(Reverse((
            message.expires_at,
            route.clone(),
            message.id.clone(),
        )));
        self.kept.entry(route).or_default().push_back(message);
    }
}

/// What a send found: a waiter to deliver to, or nothing (the message is kept now).
pub(super) enum Claim {
    /// Deliver to this waiter; if it refuses, call [`Correlations::claim_or_keep`] again.
    Deliver(Waiter),
    /// No one waited: the message is kept.
    Kept,
}

impl Correlations {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a message id in its scope until `until`; false when it was sent before
    /// and still counts (a duplicate, counted as such).
    pub(super) fn first_send(
        &self,
        scope: &IdScope,
        id: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> bool {
        let mut t = self.lock();
        t.expire(now);
        let key = (scope.clone(), id.to_string());
        if t.seen.contains_key(&key) {
            t.counts.duplicates += 1;
            return false;
        }
        t.seen_expiry
            .push(Reverse((until, key.0.clone(), key.1.clone())));
        t.seen.insert(key, until);
        true
    }

    /// Forgets a message id remembered by [`Self::first_send`]: its message was refused, so
    /// it was not sent and the id may be used again.
    pub(super) fn forget(&self, scope: &IdScope, id: &str) {
        let mut t = self.lock();
        t.seen.remove(&(scope.clone(), id.to_string()));
    }

    /// Claims the oldest waiter on `route`, or keeps `message` when none waits (one step
    /// under the lock: see the module doc).
    pub(super) fn claim_or_keep(&self, route: &Route, message: &Message, now: Timestamp) -> Claim {
        let mut t = self.lock();
        t.expire(now);
        if let Some(queue) = t.waiting.get_mut(route) {
            if let Some(waiter) = queue.pop_front() {
                if queue.is_empty() {
                    t.waiting.remove(route);
                }
                return Claim::Deliver(waiter);
            }
        }
        if message.expires_at > now {
            t.counts.kept += 1;
            t.keep(route.clone(), message.clone());
        } else {
            t.counts.expired += 1;
        }
        Claim::Kept
    }

    /// An event step starts waiting: it takes the oldest message kept for its route, or
    /// joins the route's waiters.
    pub(super) fn subscribe(
        &self,
        route: Route,
        waiter: Waiter,
        now: Timestamp,
    ) -> Option<Message> {
        let mut t = self.lock();
        t.expire(now);
        if let Some(queue) = t.kept.get_mut(&route) {
            if let Some(message) = queue.pop_front() {
                if queue.is_empty() {
                    t.kept.remove(&route);
                }
                return Some(message);
            }
        }
        t.waiting.entry(route).or_default().push_back(waiter);
        None
    }

    /// An event step stopped waiting (received, timed out, interrupted).
    pub(super) fn unsubscribe(&self, route: &Route, waiter: &Waiter) {
        let mut t = self.lock();
        if let Some(queue) = t.waiting.get_mut(route) {
            queue.retain(|w| w != waiter);
            if queue.is_empty() {
                t.waiting.remove(route);
            }
        }
    }

    /// A message taken by a subscription was refused after all: it is kept again, first in
    /// line (unless it expired meanwhile).
    pub(super) fn put_back(&self, route: Route, message: Message, now: Timestamp) {
        let mut t = self.lock();
        if message.expires_at <= now {
            t.counts.expired += 1;
            return;
        }
        t.kept_expiry.push(Reverse((
            message.expires_at,
            route.clone(),
            message.id.clone(),
        )));
        t.kept.entry(route).or_default().push_front(message);
    }

    /// Counts a delivery.
    pub(super) fn delivered(&self) {
        self.lock().counts.delivered += 1;
    }

    /// The kept messages that pass the filter, oldest first.
    pub(super) fn list(&self, filter: &MessageFilter, now: Timestamp) -> Vec<KeptMessage> {
        let mut t = self.lock();
        t.expire(now);
        let mut out: Vec<KeptMessage> = t
            .kept
            .iter()
            .flat_map(|(route, queue)| {
                queue.iter().map(|m| KeptMessage {
                    id: m.id.clone(),
                    name: route.name.to_string(),
                    key: route.key.clone(),
                    data: m.data.clone(),
                    tenant_id: route.tenant.clone(),
                    sent_at: m.sent_at,
                    expires_at: m.expires_at,
                })
            })
            .filter(|m| filter.matches(m))
            .collect();
        out.sort_by(|a, b| a.sent_at.cmp(&b.sent_at).then(a.id.cmp(&b.id)));
        out
    }

    /// The counts so far.
    pub(super) fn counts(&self, now: Timestamp) -> MessageCounts {
        let mut t = self.lock();
        t.expire(now);
        t.counts
    }
}

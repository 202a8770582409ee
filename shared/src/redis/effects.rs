//! The one place that knows how a transition's effects map onto keys: instance hashes and
//! their index entries, step streams, timers, tasks, history, events, dead letters and the
//! partition's counters. A coordinator turns a turn's transitions into one [`Batch`] with
//! these functions, and commits it in one `commit.lua` call (ARCHITECTURE.md invariant 3).

use std::sync::Arc;

use crate::api::MAX_HISTORY_RECORDS;
use crate::core::Effect;
use crate::definition::Workflow;
use crate::model::{Event, EventKind, Instance, InstanceStatus, StepStatus};
use crate::time::Timestamp;

use super::batch::Batch;
use super::keys::{PartitionKeys, COORDINATOR_GROUP};
use super::messages::{self, Waiter};
use super::store::encode_record;
use super::tasks::{index_entries, task_field};
use super::timer::TimerMember;
use super::wire::{self, MessageRoute, Reply, StepMessage};

/// How long a command's reply waits to be read.
pub const REPLY_TTL_MS: u64 = 60_000;

/// The instance hash field that counts the history records dropped by the cap
/// ([`MAX_HISTORY_RECORDS`]).
pub const HISTORY_DROPPED_FIELD: &str = "history_dropped";

/// The event stream entry field that holds the events of one commit: the event's JSON
/// object when it wrote one, else a JSON array of them, in order (see [`Batch::event`]).
pub const EVENT_FIELD: &str = "e";

/// The events of an event stream entry's [`EVENT_FIELD`] value, in order: one object or an
/// array of them. Text that is neither (not written by Weir) gives none.
pub fn decode_events(text: &str) -> Vec<Event> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Entry {
        One(Box<Event>),
        Many(Vec<Event>),
    }
    match serde_json::from_str::<Entry>(text) {
        Ok(Entry::One(event)) => vec![*event],
        Ok(Entry::Many(events)) => events,
        Err(_) => Vec::new(),
    }
}

/// An event's JSON split around its timestamp, for a script that stamps it with the Redis
/// clock: `prefix` runs up to the timestamp's value, `suffix` from just after it. Joined
/// around the RFC 3339 timestamp in quotes, they are the JSON the engine writes for that
/// event (`Event` serialized), field for field.
pub fn event_around_timestamp(instance_id: &str, kind: &EventKind) -> (String, String) {
    let id = wire::plain_bytes(serde_json::to_vec(instance_id));
    let mut prefix = String::from("{\"instance_id\":");
    prefix.push_str(&String::from_utf8_lossy(&id));
    prefix.push_str(",\"timestamp\":");
    let kind = String::from_utf8_lossy(&wire::plain_bytes(serde_json::to_vec(kind))).into_owned();
    // `kind` is an object (`{"type":...}`): its fields follow the timestamp.
    let suffix = format!(",{}", kind.strip_prefix('{').unwrap_or(&kind));
    (prefix, suffix)
}

/// The correlated waits of an instance around one transition: which token each wait that
/// began or ended has, for the waiters its `Subscribe` and `Unsubscribe` effects name
/// (see [`super::messages`]). Effects carry the step, not the token.
#[derive(Debug, Default, Clone)]
pub struct Waits {
    /// The correlated waits before the transition: (step, token).
    before: Vec<(Arc<str>, u64)>,
    /// The steps' tokens after it, for the steps it subscribed.
    after: Vec<(Arc<str>, u64)>,
    /// The waiter a delivery of this transition was handed to: its correlation partition
    /// removed it already, so its unsubscription is not sent.
    pub handed: Option<String>,
}

impl Waits {
    /// The instance's correlated waits before a transition.
    pub fn before(wf: &Workflow, inst: &Instance) -> Waits {
        let before = inst
            .steps
            .iter()
            .enumerate()
            .filter(|(_, st)| {
                st.status == StepStatus::Waiting
                    && st.awaiting.as_ref().is_some_and(|a| a.key.is_some())
            })
            .filter_map(|(s, st)| Some((wf.steps.get(s)?.name.clone(), st.token)))
            .collect();
        Waits {
            before,
            ..Waits::default()
        }
    }

    /// Notes the tokens after the transition of the steps its effects subscribe.
    pub fn after(mut self, wf: &Workflow, inst: &Instance, effects: &[Effect]) -> Waits {
        for e in effects {
            if let Effect::Subscribe {
                step, key: Some(_), ..
            } = e
            {
                if let Some(st) = wf.step_id(step).and_then(|s| inst.steps.get(s)) {
                    self.after.push((step.clone(), st.token));
                }
            }
        }
        self
    }

    fn token(list: &[(Arc<str>, u64)], step: &str) -> Option<u64> {
        list.iter()
            .rev()
            .find(|(s, _)| &**s == step)
            .map(|(_, t)| *t)
    }
}

/// Writes a transition's effects on instance `inst` (dispatched at `now_ms`, Redis clock);
/// the events stream is capped near `events_cap` entries. `waits` gives the tokens of the
/// correlated waits it begins or ends.
pub fn write_effects(
    b: &mut Batch,
    part: &PartitionKeys,
    inst: &Instance,
    effects: Vec<Effect>,
    now_ms: i64,
    events_cap: usize,
    waits: &Waits,
) {
    let id = &inst.id;
    for effect in effects {
        match effect {
            Effect::Dispatch(d) => {
                let msg = StepMessage {
                    instance_id: id.to_string(),
                    step: d.step.to_string(),
                    attempt: d.attempt,
                    token: d.token,
                    handler: d.handler.to_string(),
                    config: (*d.config).clone(),
                    context: (*d.context).clone(),
                    timeout_ms: d.timeout.map(|t| t.as_millis() as u64),
                    dispatched_at: Timestamp(now_ms),
                };
                b.xadd(&part.queue(&d.queue), 0, wire::FIELD, &wire::encode(&msg));
                b.sadd(&part.queues(), &d.queue);
            }
            Effect::Schedule(t) => {
                let member = TimerMember {
                    instance_id: id,
                    step: &t.step,
                    kind: t.kind,
                };
                b.zadd(&part.timers(), t.due_at.millis(), &member.encode());
            }
            Effect::Unschedule { step, kind } => {
                let member = TimerMember {
                    instance_id: id,
                    step: &step,
                    kind,
                };
                b.zrem(&part.timers(), &member.encode());
            }
            Effect::OpenTask(task) => {
                let field = task_field(id, &task.step);
                b.hset(&part.tasks(), &[(field.as_str(), &encode_record(&task))]);
                b.zadd(&part.index_tasks(), task.created_at.millis(), &field);
                for (key, score) in index_entries(part, &task) {
                    b.zadd(&key, score, &field);
                }
            }
            Effect::RetireTask(task) => {
                let field = task_field(id, &task.step);
                for (key, _) in index_entries(part, &task) {
                    b.zrem(&key, &field);
                }
            }
            Effect::CloseTask { step, .. } => {
                let field = task_field(id, &step);
                b.hdel(&part.tasks(), &field);
                b.zrem(&part.index_tasks(), &field);
            }
            // A wait without a key receives signals only: nothing to register. A
            // correlated one is a hop to its route's correlation partition, relayed after
            // the commit (see `super::messages`).
            Effect::Subscribe {
                step,
                event,
                key: Some(key),
            } => {
                let Some(token) = Waits::token(&waits.after, &step) else {
                    continue;
                };
                let route = MessageRoute {
                    tenant_id: inst.tenant_id.clone(),
                    name: event.to_string(),
                    key,
                };
                let waiter = Waiter {
                    token,
                    step: step.to_string(),
                    instance: id.to_string(),
                };
                messages::write_subscribe(b, part, &route, &waiter, now_ms);
            }
            Effect::Unsubscribe {
                step,
                event,
                key: Some(key),
            } => {
                let Some(token) = Waits::token(&waits.before, &step)
                    .or_else(|| Waits::token(&waits.after, &step))
                else {
                    continue;
                };
                let waiter = Waiter {
                    token,
                    step: step.to_string(),
                    instance: id.to_string(),
                };
                if waits.handed.as_deref() == Some(waiter.encode().as_str()) {
                    continue;
                }
                let route = MessageRoute {
                    tenant_id: inst.tenant_id.clone(),
                    name: event.to_string(),
                    key,
                };
                messages::write_unsubscribe(b, part, &route, &waiter);
            }
            Effect::Subscribe { key: None, .. } | Effect::Unsubscribe { key: None, .. } => {}
            Effect::Record(r) => b.rpush_capped(
                &part.history(id),
                MAX_HISTORY_RECORDS,
                &part.instance(id),
                HISTORY_DROPPED_FIELD,
                &encode_record(&r),
            ),
            Effect::Emit(e) => {
                let json = wire::plain_bytes(serde_json::to_vec(&e));
                b.event(&part.events(), events_cap, EVENT_FIELD, json);
            }
        }
    }
}

/// Writes an instance, guarded by its stored revision `rev` (`None`: it must not exist
/// yet), and keeps its index entries in step with its status. `before` is its status as
/// stored (`None`: a new instance, whose creation fields and indexes are written too).
pub fn write_instance(
    b: &mut Batch,
    part: &PartitionKeys,
    id: &str,
    inst: &Instance,
    rev: Option<u64>,
    before: Option<InstanceStatus>,
) {
    let key = part.instance(id);
    b.check_revision(&key, rev);
    let state = encode_record(inst);
    let new_rev = inst.revision.to_string();
    let status = inst.status.as_str();
    let created = inst.created_at.millis();
    let finished = inst
        .finished_at
        .map(|t| t.millis().to_string())
        .unwrap_or_default();
    let mut fields: Vec<(&str, &[u8])> = vec![
        ("state", &state),
        ("rev", new_rev.as_bytes()),
        ("status", status.as_bytes()),
        ("finished", finished.as_bytes()),
    ];
    let created_s = created.to_string();
    if before.is_none() {
        fields.push(("def", inst.definition.as_bytes()));
        fields.push(("ver", inst.version.as_bytes()));
        fields.push(("created", created_s.as_bytes()));
        if let Some(t) = &inst.tenant_id {
            fields.push(("tenant", t.as_bytes()));
        }
        if let Some(c) = &inst.created_by {
            fields.push(("creator", c.as_bytes()));
        }
    }
    b.hset(&key, &fields);
    if rev.is_none() {
        // New, or created from a stored start, which is in the pending index only.
        let origin = Origin {
            definition: &inst.definition,
            tenant: inst.tenant_id.as_deref(),
            creator: inst.created_by.as_deref(),
            created_ms: created,
        };
        index_origin(b, part, id, &origin);
    }
    if rev.is_none() && before.is_some() {
        // Created from a stored start (pending, or failed when that start was
        // dead-lettered and then replayed): the start's copy is no longer needed.
        b.hdel(&key, "start");
        if before != Some(InstanceStatus::Pending) {
            b.hdel(&key, "reason");
        }
    }
    if before != Some(inst.status) {
        if let Some(old) = before {
            b.zrem(&part.index_status(old.as_str()), id);
            if old.is_terminal() {
                b.zrem(&part.index_finished(), id);
            }
        }
        b.zadd(&part.index_status(status), created, id);
        if let Some(f) = inst.finished_at.filter(|_| inst.status.is_terminal()) {
            b.zadd(&part.index_finished(), f.millis(), id);
        }
    }
}

/// What an instance was started as, and when: the keys of its origin indexes.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The workflow it runs.
    pub definition: &'a str,
    /// Its tenant, if any.
    pub tenant: Option<&'a str>,
    /// Who started it, if given.
    pub creator: Option<&'a str>,
    /// When its start was stored (ms): the score in every index.
    pub created_ms: i64,
}

/// Adds an instance to the indexes of what it was started as: its workflow, tenant and
/// creator. A pending start (`lua/start.lua`) is in none of them, to keep a start cheap;
/// it joins them when it leaves `pending`: created ([`write_instance`]), failed
/// unstarted ([`fail_unstarted`]) or canceled (`lua/cancel_pending.lua`).
pub fn index_origin(b: &mut Batch, part: &PartitionKeys, id: &str, origin: &Origin<'_>) {
    let at = origin.created_ms;
    b.zadd(&part.index_definition(origin.definition), at, id);
    if let Some(t) = origin.tenant {
        b.zadd(&part.index_tenant(t), at, id);
    }
    if let Some(c) = origin.creator {
        b.zadd(&part.index_creator(c), at, id);
    }
}

/// Writes an instance the coordinator quarantined (already marked failed, with the reason
/// in its error): the instance with its indexes, the `quarantined` field, and the
/// partition's `quarantined` counter. Its stored bytes, when they did not decode
/// (`corrupt_state`), are kept aside in the field `corrupt_state`, never destroyed.
pub fn write_quarantine(
    b: &mut Batch,
    part: &PartitionKeys,
    inst: &Instance,
    rev: Option<u64>,
    before: Option<InstanceStatus>,
    reason: &str,
    corrupt_state: Option<&[u8]>,
) {
    let key = part.instance(&inst.id);
    if let Some(bytes) = corrupt_state {
        b.hset(&key, &[("corrupt_state", bytes)]);
    }
    // Whatever the old status was (unknown when the state is undecodable), it leaves every
    // other status index.
    for s in InstanceStatus::ALL {
        if s != InstanceStatus::Failed {
            b.zrem(&part.index_status(s.as_str()), &inst.id);
        }
    }
    write_instance(
        b,
        part,
        &inst.id,
        inst,
        rev,
        Some(before.unwrap_or(InstanceStatus::Running)),
    );
    b.hset(&key, &[("quarantined", reason.as_bytes())]);
    b.hincr(&part.stats(), "quarantined", 1);
}

/// Ends a stored start no coordinator created (`lua/start.lua`) whose Start command is
/// being dead-lettered: the instance becomes `failed` with `reason`, leaves the pending
/// index, and is announced as `WorkflowFailed`; otherwise it would stay `pending` for ever.
/// Guarded by the record having no revision (still not created, not canceled), and it
/// writes none, so that `weir dlq replay` of that Start creates the instance after all.
/// It joins the indexes of its `origin`, as a created instance would.
pub fn fail_unstarted(
    b: &mut Batch,
    part: &PartitionKeys,
    id: &str,
    origin: &Origin<'_>,
    now_ms: i64,
    reason: &str,
    events_cap: usize,
) {
    let key = part.instance(id);
    b.check_revision(&key, None);
    let now = now_ms.to_string();
    b.hset(
        &key,
        &[
            ("status", InstanceStatus::Failed.as_str().as_bytes()),
            ("finished", now.as_bytes()),
            ("reason", reason.as_bytes()),
        ],
    );
    b.zrem(&part.index_status(InstanceStatus::Pending.as_str()), id);
    b.zadd(
        &part.index_status(InstanceStatus::Failed.as_str()),
        origin.created_ms,
        id,
    );
    index_origin(b, part, id, origin);
    b.zadd(&part.index_finished(), now_ms, id);
    let event = Event {
        instance_id: id.into(),
        timestamp: Timestamp(now_ms),
        kind: EventKind::WorkflowFailed {
            step: None,
            error: reason.to_string(),
        },
    };
    let json = wire::plain_bytes(serde_json::to_vec(&event));
    b.event(&part.events(), events_cap, EVENT_FIELD, json);
}

/// Records that instance `id` received signal `message_id` (at `now_ms`), in the commit
/// that delivers it, so that the same id again is a duplicate (see
/// [`super::store::signal_field`]).
pub fn record_signal(b: &mut Batch, part: &PartitionKeys, id: &str, message_id: &str, now_ms: i64) {
    let field = super::store::signal_field(message_id);
    let at = now_ms.to_string();
    b.hset(&part.instance(id), &[(field.as_str(), at.as_bytes())]);
}

/// Acknowledges (and deletes) a handled entry of one of the partition's input streams.
pub fn ack_input(b: &mut Batch, stream: &str, id: &str) {
    b.ack(stream, COORDINATOR_GROUP, id);
}

/// Moves an input entry to the partition's dead-letter stream (capped near `cap`) with
/// `error`, off its own stream, and counts it (`dead_lettered`).
pub fn dead_letter(
    b: &mut Batch,
    part: &PartitionKeys,
    stream: &str,
    id: &str,
    raw: &[u8],
    error: &str,
    cap: usize,
) {
    // The dead-letter entry keeps the raw bytes so `weir dlq replay` can re-enqueue them.
    b.xadd_fields(
        &part.dlq(),
        cap,
        &[
            ("source", stream.as_bytes()),
            ("group", COORDINATOR_GROUP.as_bytes()),
            ("id", id.as_bytes()),
            (wire::FIELD, raw),
            ("error", error.as_bytes()),
            ("deliveries", b"1"),
        ],
    );
    ack_input(b, stream, id);
    b.hincr(&part.stats(), "dead_lettered", 1);
}

/// Removes the due timer `member`, only while its due time is still `due_ms` (an earlier
/// input of the same batch may have rescheduled it, which must stay).
pub fn remove_due_timer(b: &mut Batch, part: &PartitionKeys, member: &str, due_ms: i64) {
    b.zrem_if(&part.timers(), due_ms, member);
}

/// Counts dropped inputs in the partition's counters (`…:stats`), where operators read
/// them: `stale` results and timers, and commands `expired` past their deadline.
pub fn count_dropped(b: &mut Batch, part: &PartitionKeys, stale: u64, expired: u64) {
    if stale > 0 {
        b.hincr(&part.stats(), "stale_dropped", stale as i64);
    }
    if expired > 0 {
        b.hincr(&part.stats(), "commands_expired", expired as i64);
    }
}

/// Where a command's reply may not go.
#[derive(Debug, thiserror::Error)]
#[error("reply key {0:?} is outside the partition")]
pub struct ReplyOutsidePartition(pub String);

/// Pushes a command's reply to `reply_to` (expiring after [`REPLY_TTL_MS`]). Only a reply
/// key of this partition is written: another key could be in another slot or of another
/// type, and fail the commit half-way (scripts do not roll back).
pub fn write_reply(
    b: &mut Batch,
    part: &PartitionKeys,
    reply_to: &str,
    reply: &Reply,
) -> Result<(), ReplyOutsidePartition> {
    if !reply_to.starts_with(&part.reply("")) {
        return Err(ReplyOutsidePartition(reply_to.to_string()));
    }
    b.reply(reply_to, REPLY_TTL_MS, &wire::encode(reply));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_split_around_its_timestamp_joins_to_the_engines_json() {
        let at = Timestamp(1_764_158_400_123);
        for reason in [None, Some("the \"customer\" left\n".to_string())] {
            let kind = EventKind::WorkflowCanceled { reason };
            let id = "order \"42\"|x";
            let (prefix, suffix) = event_around_timestamp(id, &kind);
            let joined = format!("{prefix}\"{at}\"{suffix}");
            let event = Event {
                instance_id: id.into(),
                timestamp: at,
                kind,
            };
            assert_eq!(joined, serde_json::to_string(&event).unwrap());
        }
    }
}

//! Delayed starts and schedules on Redis: what the lease holder of a partition does with
//! the starts and schedules due there, and the schedule calls of the client.
//!
//! **Delayed starts** wait in the partition's due-starts sorted set (`start.lua` put them
//! there); [`release_due`] moves the due ones to the command stream (`release_starts.lua`,
//! guarded by the lease), and the coordinator creates them as any start.
//!
//! **Schedules** live in the partition of their name (`Keys::part_of(NAME)`): a hash (the
//! spec as JSON, the next slot, the pause flag, counters, the last instance), a firing log,
//! and the partition's due sorted set by next slot. [`fire_due`] fires each due schedule:
//! the pure [`crate::schedule::plan`] decides which slots fire (by the Redis clock), each
//! slot's instance is started with its deterministic id ([`slot_instance_id`]) by the
//! ordinary start (`start.lua`, in the instance's own partition), and then
//! `schedule_advance.lua` records the firings and moves the schedule to its next slot,
//! guarded by the lease and by the slot it fired from.
//!
//! **Exactly once per slot.** The start and the advance are two atomic calls on two
//! partitions (an instance's partition is that of its id, a schedule's that of its name),
//! so a crash can fall between them. Then `next` still names the fired slot, and the next
//! lease holder fires it again: the start finds the instance its id already has (the
//! caller-id rule of `start.lua`, decided atomically) and starts nothing, and the firing is
//! recorded `already_started`. Two holders at once (one frozen past its lease) start at
//! most one instance per slot for the same reason, and only the real holder advances.

use super::connect::Connections;
use super::scripts;
use super::RedisError;
use super::WeirClient;
use crate::api::{EngineError, StartOptions};
use crate::engine::Engine;
use crate::schedule::{
    plan, Firing, FiringOutcome, ScheduleDetail, ScheduleSpec, ScheduleView, Slots, RECENT_FIRINGS,
    UPCOMING,
};
use crate::schedule_run::{fire_plan, fire_slot, FiredPlan};
use crate::time::Timestamp;

/// What is due in a partition by the Redis clock (`due_work.lua`).
#[derive(Debug, Clone, Default)]
pub struct DueWork {
    /// The Redis clock (ms).
    pub now_ms: i64,
    /// The earliest delayed start or schedule not returned (ms), if any.
    pub next_ms: Option<i64>,
    /// Delayed starts due (instance ids).
    pub starts: Vec<String>,
    /// Schedules due: name and the slot they are due for (ms).
    pub schedules: Vec<(String, i64)>,
}

/// Reads the Redis clock and the partition's due delayed starts and schedules.
pub async fn due_work(
    c: &Connections,
    part: &super::PartitionKeys,
    limit: usize,
) -> Result<DueWork, RedisError> {
    let reply: Vec<redis::Value> = scripts::DUE_WORK
        .key(part.due_starts())
        .key(part.schedules_due())
        .arg(limit.max(1))
        .invoke_async(&mut c.conn.clone())
        .await
        .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
    parse_due_work(&reply)
        .ok_or_else(|| RedisError::unexpected(&c.display_url, format!("due_work.lua: {reply:?}")))
}

fn parse_due_work(reply: &[redis::Value]) -> Option<DueWork> {
    let int = |v: &redis::Value| redis::from_redis_value_ref::<i64>(v).ok();
    let text = |v: &redis::Value| redis::from_redis_value_ref::<String>(v).ok();
    let mut it = reply.iter();
    let now_ms = int(it.next()?)?;
    let next = int(it.next()?)?;
    let n = int(it.next()?)? as usize;
    let mut starts = Vec::with_capacity(n);
    for _ in 0..n {
        starts.push(text(it.next()?)?);
    }
    let m = int(it.next()?)? as usize;
    let mut schedules = Vec::with_capacity(m);
    for _ in 0..m {
        let name = text(it.next()?)?;
        schedules.push((name, int(it.next()?)?));
    }
    Some(DueWork {
        now_ms,
        next_ms: (next >= 0).then_some(next),
        starts,
        schedules,
    })
}

/// Why the lease holder's work on due starts and schedules stopped.
#[derive(Debug, thiserror::Error)]
pub enum DueError {
    /// The caller no longer holds the partition's lease.
    #[error("the partition lease was lost")]
    LeaseLost,
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// A start or cancel of a firing failed in Redis (the schedule is not advanced, so the
    /// slot fires again).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn script_err(c: &Connections, e: redis::RedisError) -> DueError {
    if e.to_string().contains("LEASE") {
        DueError::LeaseLost
    } else {
        DueError::Redis(RedisError::from_redis(&c.display_url, e))
    }
}

/// Moves the due delayed starts `ids` to the command stream, as lease holder `owner`;
/// returns how many were queued (a start canceled meanwhile is only removed).
pub async fn release_due(
    c: &Connections,
    part: &super::PartitionKeys,
    owner: &str,
    ids: &[String],
) -> Result<u64, DueError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut inv = scripts::RELEASE_STARTS.prepare_invoke();
    inv.key(part.lease())
        .key(part.due_starts())
        .key(part.commands())
        .arg(owner);
    for id in ids {
        inv.key(part.instance(id)).arg(id);
    }
    inv.invoke_async(&mut c.conn.clone())
        .await
        .map_err(|e| script_err(c, e))
}

pub use crate::schedule_run::Fired;

/// A schedule's hash, read.
struct Stored {
    spec: ScheduleSpec,
    next: Option<String>,
    paused: bool,
    fired: u64,
    missed: u64,
    skipped: u64,
    last_instance: Option<String>,
    created: i64,
}

async fn load(
    c: &Connections,
    part: &super::PartitionKeys,
    name: &str,
) -> Result<Option<Stored>, RedisError> {
    type Row = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        Option<String>,
        Option<i64>,
    );
    let (spec, next, paused, fired, missed, skipped, last, created): Row = redis::cmd("HMGET")
        .arg(part.schedule(name))
        .arg(&[
            "spec",
            "next",
            "paused",
            "fired",
            "missed",
            "skipped",
            "last_instance",
            "created",
        ])
        .query_async(&mut c.conn.clone())
        .await
        .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
    let Some(spec) = spec else { return Ok(None) };
    let spec: ScheduleSpec = serde_json::from_str(&spec)
        .map_err(|e| RedisError::Corrupt(format!("schedule {name:?}: {e}")))?;
    Ok(Some(Stored {
        spec,
        next,
        paused: paused.as_deref() == Some("1"),
        fired: fired.unwrap_or(0),
        missed: missed.unwrap_or(0),
        skipped: skipped.unwrap_or(0),
        last_instance: last.filter(|l| !l.is_empty()),
        created: created.unwrap_or(0),
    }))
}

/// Fires schedule `name` of this partition, due by the Redis clock `now_ms`, as lease
/// holder `owner` (see the module doc); `events_cap` caps the event stream.
pub async fn fire_due(
    client: &WeirClient,
    part: &super::PartitionKeys,
    owner: &str,
    name: &str,
    now_ms: i64,
    events_cap: usize,
) -> Result<Fired, DueError> {
    let c = client.connections();
    let Some(stored) = load(c, part, name).await? else {
        return Ok(Fired::default());
    };
    let Some(next_text) = stored.next.clone().filter(|_| !stored.paused) else {
        return Ok(Fired::default());
    };
    let Ok(next_ms) = next_text.parse::<i64>() else {
        return Err(RedisError::Corrupt(format!("schedule {name:?}: next {next_text:?}")).into());
    };
    let slots = stored
        .spec
        .check()
        .map_err(|e| RedisError::Corrupt(format!("schedule {name:?}: {e}")))?;
    let now = Timestamp(now_ms);
    let the_plan = plan(&slots, Timestamp(next_ms), now, stored.spec.catch_up);
    let FiredPlan {
        firings,
        events,
        counts: outcome,
        started_last,
    } = fire_plan(
        client,
        &stored.spec,
        &slots,
        &the_plan,
        Timestamp(next_ms),
        stored.last_instance.clone(),
        now,
    )
    .await?;
    let mut inv = scripts::SCHEDULE_ADVANCE.prepare_invoke();
    inv.key(part.lease())
        .key(part.schedule(name))
        .key(part.schedules_due())
        .key(part.schedule_log(name))
        .key(part.events())
        .key(part.stats())
        .arg(owner)
        .arg(name)
        .arg(&next_text)
        .arg(
            the_plan
                .next
                .map_or(String::new(), |t| t.millis().to_string()),
        )
        .arg(started_last.unwrap_or_default())
        .arg(outcome.fired)
        .arg(outcome.missed)
        .arg(outcome.skipped)
        .arg(events_cap)
        .arg(firings.len());
    for f in &firings {
        inv.arg(serde_json::to_string(f).unwrap_or_default());
    }
    inv.arg(events.len());
    for e in &events {
        inv.arg(serde_json::to_string(e).unwrap_or_default());
    }
    let recorded: i64 = inv
        .invoke_async(&mut c.conn.clone())
        .await
        .map_err(|e| script_err(c, e))?;
    if recorded == 0 {
        // Paused, resumed onto other slots or deleted meanwhile: the starts stand (each
        // slot's id is its own), nothing is recorded.
        return Ok(Fired::default());
    }
    Ok(outcome)
}

/// The schedule calls of the client (the [`Engine`] trait's, see there).
impl WeirClient {
    fn sched_part(&self, name: &str) -> super::PartitionKeys {
        self.connections().keys.part_of(name)
    }

    async fn admin(&self, name: &str, op: &str, args: &[String]) -> Result<String, EngineError> {
        let c = self.connections();
        let part = self.sched_part(name);
        let mut inv = scripts::SCHEDULE_ADMIN.prepare_invoke();
        inv.key(part.schedule(name))
            .key(part.schedules_due())
            .key(part.schedules_all())
            .key(part.schedule_log(name))
            .arg(op)
            .arg(name);
        for a in args {
            inv.arg(a);
        }
        let answer: String = inv
            .invoke_async(&mut c.conn.clone())
            .await
            .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
        super::durability::confirm(
            c.durability,
            &mut c.conn.clone(),
            &part.schedule(name),
            &c.display_url,
        )
        .await?;
        if answer == "not_found" {
            return Err(EngineError::ScheduleNotFound(name.to_string()));
        }
        Ok(answer)
    }

    /// Creates a schedule (see [`Engine::create_schedule`]).
    pub(crate) async fn create_schedule_redis(
        &self,
        spec: ScheduleSpec,
    ) -> Result<ScheduleView, EngineError> {
        let slots = spec.check()?;
        let wf = self
            .get_definition(&spec.workflow, spec.version.as_deref())
            .await?;
        crate::api::check_start(
            &wf,
            &StartOptions {
                initial_data: spec.data.clone(),
                ..StartOptions::default()
            },
        )?;
        let now = self.connections().server_time().await?;
        let next = slots.next_after(Timestamp(now));
        let json = serde_json::to_string(&spec)
            .map_err(|e| EngineError::BadRequest(format!("the schedule: {e}")))?;
        let answer = self
            .admin(
                &spec.name,
                "create",
                &[json, next.map_or(String::new(), |t| t.millis().to_string())],
            )
            .await?;
        if answer != "created" {
            let same = serde_json::from_str::<ScheduleSpec>(&answer).is_ok_and(|s| s == spec);
            if !same {
                return Err(EngineError::ScheduleExists(spec.name));
            }
        }
        self.schedule_view(&spec.name).await
    }

    async fn schedule_view(&self, name: &str) -> Result<ScheduleView, EngineError> {
        let part = self.sched_part(name);
        let stored = load(self.connections(), &part, name)
            .await?
            .ok_or_else(|| EngineError::ScheduleNotFound(name.to_string()))?;
        Ok(view_of(stored))
    }

    /// Every schedule, by name.
    pub(crate) async fn list_schedules_redis(&self) -> Result<Vec<ScheduleView>, EngineError> {
        let c = self.connections();
        let mut names: Vec<String> = Vec::new();
        for part in c.keys.all_parts() {
            let mut found: Vec<String> = redis::cmd("ZRANGE")
                .arg(part.schedules_all())
                .arg(0)
                .arg(-1)
                .query_async(&mut c.conn.clone())
                .await
                .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
            names.append(&mut found);
        }
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match self.schedule_view(&name).await {
                Ok(v) => out.push(v),
                Err(EngineError::ScheduleNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// A schedule with its next fire times and last firings.
    pub(crate) async fn get_schedule_redis(
        &self,
        name: &str,
    ) -> Result<ScheduleDetail, EngineError> {
        crate::schedule::check_name(name)?;
        let c = self.connections();
        let part = self.sched_part(name);
        let view = self.schedule_view(name).await?;
        let log: Vec<String> = redis::cmd("LRANGE")
            .arg(part.schedule_log(name))
            .arg(0)
            .arg(RECENT_FIRINGS as i64 - 1)
            .query_async(&mut c.conn.clone())
            .await
            .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
        let recent = log
            .iter()
            .filter_map(|l| serde_json::from_str::<Firing>(l).ok())
            .collect();
        Ok(detail(view, recent))
    }

    /// Pauses or resumes a schedule. On resume the next slot is the first after now (by
    /// the Redis clock): the slots of the pause are not fired.
    pub(crate) async fn set_schedule_paused_redis(
        &self,
        name: &str,
        paused: bool,
    ) -> Result<ScheduleView, EngineError> {
        crate::schedule::check_name(name)?;
        if paused {
            self.admin(name, "pause", &[]).await?;
        } else {
            let view = self.schedule_view(name).await?;
            let slots = view.spec.check()?;
            let now = self.connections().server_time().await?;
            let next = slots.next_after(Timestamp(now));
            self.admin(
                name,
                "resume",
                &[next.map_or(String::new(), |t| t.millis().to_string())],
            )
            .await?;
        }
        self.schedule_view(name).await
    }

    /// Deletes a schedule (its instances stay).
    pub(crate) async fn delete_schedule_redis(&self, name: &str) -> Result<(), EngineError> {
        crate::schedule::check_name(name)?;
        self.admin(name, "delete", &[]).await.map(|_| ())
    }

    /// Fires a schedule now, outside its slots (the overlap rule applies); the instance id
    /// is `NAME@manual-UUIDv7`.
    pub(crate) async fn trigger_schedule_redis(&self, name: &str) -> Result<Firing, EngineError> {
        crate::schedule::check_name(name)?;
        let view = self.schedule_view(name).await?;
        let now = Timestamp(self.connections().server_time().await?);
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
        let started = match firing.outcome {
            FiringOutcome::Started | FiringOutcome::StartedAfterCancel => id,
            _ => String::new(),
        };
        let json = serde_json::to_string(&firing)
            .map_err(|e| EngineError::BadRequest(format!("the firing: {e}")))?;
        self.admin(name, "record", &[json, started]).await?;
        Ok(firing)
    }
}

fn view_of(s: Stored) -> ScheduleView {
    ScheduleView {
        spec: s.spec,
        paused: s.paused,
        next_fire: s
            .next
            .filter(|_| !s.paused)
            .and_then(|n| n.parse::<i64>().ok())
            .map(Timestamp),
        fired: s.fired,
        missed: s.missed,
        skipped: s.skipped,
        last_instance: s.last_instance,
        created_at: Timestamp(s.created),
    }
}

/// A schedule's detail: its next [`UPCOMING`] fire times (from its next slot) and firings.
pub fn detail(view: ScheduleView, recent: Vec<Firing>) -> ScheduleDetail {
    let upcoming = match (view.next_fire, Slots::of(&view.spec.trigger)) {
        (Some(next), Ok(slots)) => {
            let mut out = vec![next];
            out.extend(slots.upcoming(next, UPCOMING - 1));
            out
        }
        _ => Vec::new(),
    };
    ScheduleDetail {
        schedule: view,
        upcoming,
        recent,
    }
}

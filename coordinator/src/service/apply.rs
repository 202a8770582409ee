//! Turning a turn's inputs into one commit: load the instances, apply each input with the
//! pure core, and translate the effects into writes (the only place that knows how effects
//! map onto keys).
//!
//! A partition loop keeps the instances it wrote in an [`InstanceCache`] while it holds the
//! lease, so a hot instance is not read back and decoded every turn. The cache is only a
//! copy: every write is still guarded by the instance's revision in `commit.lua`, so a copy
//! that went stale (an instance deleted by retention, or changed by anyone else) fails the
//! commit with a conflict, and the loop drops the whole cache and reads Redis again.
//!
//! **Quarantine.** One bad record must not stop a partition. An instance whose stored state
//! does not decode, or whose definition can no longer be loaded (missing, or no longer
//! compiling), is set aside in the turn that meets it, and the rest of the turn goes on:
//! - its hash gets `quarantined` (the reason) and status `failed`, and its index entries
//!   move to `failed` and `finished` (so `weir list --status failed` shows it, and retention
//!   deletes it like any failed instance);
//! - a state that decodes keeps everything, with `error` saying `quarantined: <reason>`; an
//!   undecodable state is never destroyed: its bytes move to the field `corrupt_state`, and
//!   `state` gets a minimal failed record (id, definition, version, tenant, creator,
//!   creation time from the hash; empty context) so `weir status` shows the reason;
//! - from then on, results for it are dead-lettered with the reason (`weir dlq` lists them),
//!   commands are refused with kind `quarantined`, and its timers are dropped.
//!
//! A Redis failure while loading is not a bad record: the turn fails and is retried.

use std::collections::HashMap;
use std::sync::Arc;

use redis::streams::StreamId;
use weir::core::{self, Effect, Env, Input, StartSpec, TimerKind};
use weir::definition::Workflow;
use weir::model::{Actor, Instance, InstanceStatus, StepState, StepStatus};
use weir::redis::batch::Batch;
use weir::redis::keys::COORDINATOR_GROUP;
use weir::redis::store::{decode_record, encode_record};
use weir::redis::wire::{
    self, Command, CommandMessage, Outcome, Reply, ResultMessage, StepMessage,
};
use weir::redis::PartitionKeys;
use weir::Timestamp;

use super::Shared;

/// How long a command's reply waits to be read.
const REPLY_TTL_MS: u64 = 60_000;

/// One input of a turn.
pub enum Inbound {
    /// A client command, with its deadline (ms, Redis clock) when it has one.
    Command {
        stream: String,
        id: String,
        msg: CommandMessage,
        deadline_ms: Option<i64>,
    },
    /// A worker's result, with its bytes (dead-lettered as they came when its instance is
    /// quarantined).
    Result {
        stream: String,
        id: String,
        msg: ResultMessage,
        raw: Vec<u8>,
    },
    /// A due timer: the member `id|step|kind` and its due time (ms) as read.
    Timer(String, i64),
    /// An entry that could not be decoded.
    Poison {
        stream: String,
        id: String,
        raw: Vec<u8>,
        error: String,
    },
}

impl Inbound {
    fn instance_id(&self) -> Option<&str> {
        match self {
            Inbound::Command { msg, .. } => Some(&msg.instance_id),
            Inbound::Result { msg, .. } => Some(&msg.instance_id),
            Inbound::Timer(member, _) => parse_timer(member).map(|(id, _, _)| id),
            Inbound::Poison { .. } => None,
        }
    }
}

/// Decodes a stream entry; anything unreadable becomes [`Inbound::Poison`].
pub fn decode_entry(stream: &str, from_commands: bool, entry: StreamId) -> Inbound {
    let raw: Option<Vec<u8>> = entry.get(wire::FIELD);
    let stream = stream.to_string();
    let id = entry.id.clone();
    let Some(raw) = raw else {
        return Inbound::Poison {
            stream,
            id,
            raw: Vec::new(),
            error: wire::DecodeError::MissingField.to_string(),
        };
    };
    if from_commands {
        let deadline_ms = entry
            .get::<String>(wire::DEADLINE_FIELD)
            .and_then(|d| d.parse::<i64>().ok());
        match wire::decode::<CommandMessage>(&raw) {
            Ok(msg) => Inbound::Command {
                stream,
                id,
                msg,
                deadline_ms,
            },
            Err(e) => Inbound::Poison {
                stream,
                id,
                raw,
                error: e.to_string(),
            },
        }
    } else {
        match wire::decode::<ResultMessage>(&raw) {
            Ok(msg) => Inbound::Result {
                stream,
                id,
                msg,
                raw,
            },
            Err(e) => Inbound::Poison {
                stream,
                id,
                raw,
                error: e.to_string(),
            },
        }
    }
}

/// A timer member: `id|step|kind`. Ids may contain `|`; step names and kinds cannot.
pub fn timer_member(id: &str, step: &str, kind: TimerKind) -> String {
    format!("{id}|{step}|{}", kind.as_str())
}

fn parse_timer(member: &str) -> Option<(&str, &str, TimerKind)> {
    let mut parts = member.rsplitn(3, '|');
    let kind = TimerKind::parse(parts.next()?)?;
    let step = parts.next()?;
    let id = parts.next()?;
    Some((id, step, kind))
}

/// An instance as a partition loop last wrote (or read) it, with its stored revision.
pub struct Cached {
    inst: Instance,
    rev: u64,
    wf: Arc<Workflow>,
}

/// The instances a partition loop keeps between turns (see the module doc). Finished
/// instances are not kept; the cache is emptied when it grows past [`InstanceCache::MAX`].
#[derive(Default)]
pub struct InstanceCache {
    map: HashMap<String, Cached>,
}

impl InstanceCache {
    /// The most instances kept per partition loop (a bound on memory, a few MB; past it the
    /// cache starts over, which costs only reads).
    pub const MAX: usize = 4_096;

    /// Forgets everything: after any failed or uncertain commit, and on conflicts.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Keeps what a committed turn left, except finished instances.
    pub fn keep(&mut self, kept: Vec<(String, Cached)>) {
        if self.map.len() + kept.len() > Self::MAX {
            self.map.clear();
        }
        for (id, c) in kept {
            if !c.inst.status.is_terminal() {
                self.map.insert(id, c);
            }
        }
    }

    /// How many instances are kept.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The commit of one turn, with what it counted.
pub struct Built {
    /// The writes.
    pub batch: Batch,
    /// Inputs handled.
    pub inputs: usize,
    /// Inputs applied.
    pub applied: u64,
    /// Stale inputs dropped.
    pub stale: u64,
    /// Commands refused.
    pub refused: u64,
    /// Entries dead-lettered.
    pub dead: u64,
    /// Commands discarded unapplied because their deadline had passed.
    pub expired: u64,
    /// Metrics of what the batch did, published once it is committed.
    pub tally: weir_worker::ops::Tally,
    /// The instances as the batch leaves them, for [`InstanceCache::keep`] once committed.
    pub kept: Vec<(String, Cached)>,
}

/// One instance as the turn changes it.
struct Working {
    inst: Option<Instance>,
    wf: Option<Arc<Workflow>>,
    rev: Option<u64>,
    before: Option<InstanceStatus>,
    changed: bool,
    /// Why it is quarantined (see the module doc): its inputs are not applied.
    quarantined: Option<String>,
    /// A start no coordinator created yet (`start.lua`): when it was stored, and whether
    /// it was canceled first. `inst` is `None` until the turn creates it.
    unstarted: Option<Unstarted>,
}

/// A stored start the coordinator has not created yet.
#[derive(Clone, Copy)]
struct Unstarted {
    created_at: Timestamp,
    canceled: bool,
}

impl Working {
    fn new(inst: Option<Instance>, wf: Option<Arc<Workflow>>, rev: Option<u64>) -> Working {
        Working {
            before: inst.as_ref().map(|i| i.status),
            inst,
            wf,
            rev,
            changed: false,
            quarantined: None,
            unstarted: None,
        }
    }

    /// A pending start: created by its Start command, against no revision (a cancel in
    /// between writes one, so that commit fails and the next turn sees it).
    fn unstarted(u: Unstarted) -> Working {
        Working {
            before: Some(InstanceStatus::Pending),
            unstarted: Some(u),
            ..Working::new(None, None, None)
        }
    }

    fn quarantined(reason: String) -> Working {
        Working {
            quarantined: Some(reason),
            ..Working::new(None, None, None)
        }
    }
}

/// An instance's hash as a turn reads it: `state`, `rev`, `quarantined`, `status`,
/// `created`, `def`, `ver`, `tenant`, `creator`, `start` (a pending start's command).
type StoredRow = (
    Option<Vec<u8>>,
    Option<u64>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
);

/// Loads the instances a turn touches in one round trip. A record that cannot be used (see
/// the module doc) is quarantined, its writes added to `batch`; only Redis failures fail.
async fn load_working(
    shared: &Shared,
    part: &PartitionKeys,
    ids: &[&str],
    batch: &mut Batch,
    now_ms: i64,
) -> Result<Vec<Working>, String> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("HMGET").arg(part.instance(id)).arg(&[
            "state",
            "rev",
            "quarantined",
            "status",
            "created",
            "def",
            "ver",
            "tenant",
            "creator",
            "start",
        ]);
    }
    let rows: Vec<StoredRow> = pipe
        .query_async(&mut shared.conns.conn.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(ids.len());
    for (id, row) in ids.iter().zip(rows) {
        let (state, rev, quarantined, status, created, def, ver, tenant, creator, start) = row;
        let Some(state) = state else {
            out.push(match start {
                Some(_) => Working::unstarted(Unstarted {
                    created_at: Timestamp(created.unwrap_or(now_ms)),
                    canceled: status.as_deref() == Some(InstanceStatus::Canceled.as_str()),
                }),
                None => Working::new(None, None, None),
            });
            continue;
        };
        if let Some(reason) = quarantined {
            out.push(Working::quarantined(reason));
            continue;
        }
        let mut inst = match decode_record::<Instance>(&state) {
            Ok(inst) => inst,
            Err(e) => {
                let reason = format!("its stored state does not decode ({e})");
                let wf = match (&def, &ver) {
                    (Some(d), Some(v)) => definition(shared, d, v).await?.ok(),
                    _ => None,
                };
                let mut inst = Instance {
                    id: Arc::from(*id),
                    definition: Arc::from(def.as_deref().unwrap_or_default()),
                    version: Arc::from(ver.as_deref().unwrap_or_default()),
                    status: InstanceStatus::Failed,
                    context: Default::default(),
                    steps: vec![StepState::default(); wf.as_ref().map_or(0, |w| w.steps.len())],
                    error: None,
                    failed_step: None,
                    tenant_id: tenant,
                    created_by: creator,
                    created_at: Timestamp(created.unwrap_or(now_ms)),
                    updated_at: Timestamp(now_ms),
                    finished_at: None,
                    revision: 0,
                    next_token: 0,
                };
                let old = status
                    .as_deref()
                    .and_then(|s| InstanceStatus::ALL.into_iter().find(|x| x.as_str() == s));
                // The bytes are kept aside, never destroyed.
                batch.hset(&part.instance(id), &[("corrupt_state", &state)]);
                quarantine(batch, part, &mut inst, rev, old, &reason, now_ms);
                out.push(Working::quarantined(reason));
                continue;
            }
        };
        match definition(shared, &inst.definition, &inst.version).await? {
            Ok(wf) => out.push(Working::new(Some(inst), Some(wf), Some(rev.unwrap_or(0)))),
            Err(e) => {
                let reason = format!(
                    "its definition {}@{} cannot be loaded ({e})",
                    inst.definition, inst.version
                );
                let old = Some(inst.status);
                quarantine(batch, part, &mut inst, rev, old, &reason, now_ms);
                out.push(Working::quarantined(reason));
            }
        }
    }
    Ok(out)
}

/// A definition version: `Ok(Err(..))` when it cannot be loaded for good (missing, or no
/// longer compiling), `Err` when Redis failed (the turn is retried).
async fn definition(
    shared: &Shared,
    name: &str,
    version: &str,
) -> Result<Result<Arc<Workflow>, weir::EngineError>, String> {
    match shared.defs.get(&shared.conns, name, Some(version)).await {
        Ok(wf) => Ok(Ok(wf)),
        Err(weir::EngineError::Redis(e)) => Err(e.to_string()),
        Err(e) => Ok(Err(e)),
    }
}

/// Marks an instance failed and quarantined with `reason` (see the module doc).
fn quarantine(
    batch: &mut Batch,
    part: &PartitionKeys,
    inst: &mut Instance,
    rev: Option<u64>,
    before: Option<InstanceStatus>,
    reason: &str,
    now_ms: i64,
) {
    tracing::error!(instance_id = %inst.id, %reason, "instance quarantined: its inputs are dead-lettered");
    let was_terminal = before.is_some_and(InstanceStatus::is_terminal);
    inst.status = InstanceStatus::Failed;
    inst.error = Some(format!("quarantined: {reason}"));
    inst.updated_at = Timestamp(now_ms);
    if !was_terminal || inst.finished_at.is_none() {
        inst.finished_at = Some(Timestamp(now_ms));
    }
    inst.revision = rev.unwrap_or(0) + 1;
    // Whatever the old status was (unknown when the state is undecodable), it leaves every
    // other status index.
    for s in InstanceStatus::ALL {
        if s != InstanceStatus::Failed {
            batch.zrem(&part.index_status(s.as_str()), &inst.id);
        }
    }
    write_instance(
        batch,
        part,
        &inst.id,
        inst,
        rev,
        Some(before.unwrap_or(InstanceStatus::Running)),
    );
    batch.hset(
        &part.instance(&inst.id),
        &[("quarantined", reason.as_bytes())],
    );
    batch.hincr(&part.stats(), "quarantined", 1);
}

/// Applies a turn's inputs and builds its commit. Instances come from `cache` (taken out
/// of it) or are read from Redis.
pub async fn build(
    shared: &Shared,
    part: &PartitionKeys,
    cache: &mut InstanceCache,
    inbound: Vec<Inbound>,
    now_ms: i64,
) -> Result<Built, String> {
    let mut out = Built {
        batch: Batch::new(part.lease()),
        inputs: inbound.len(),
        applied: 0,
        stale: 0,
        refused: 0,
        dead: 0,
        expired: 0,
        tally: Default::default(),
        kept: Vec::new(),
    };
    // Every instance the turn touches: from the cache, the others read in one round trip.
    let mut ids: Vec<&str> = inbound.iter().filter_map(Inbound::instance_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut working: HashMap<String, Working> = HashMap::with_capacity(ids.len());
    let mut missing: Vec<&str> = Vec::new();
    for id in ids {
        match cache.map.remove(id) {
            Some(c) => {
                working.insert(
                    id.to_string(),
                    Working::new(Some(c.inst), Some(c.wf), Some(c.rev)),
                );
            }
            None => missing.push(id),
        }
    }
    let loaded = load_working(shared, part, &missing, &mut out.batch, now_ms).await?;
    for (id, w) in missing.iter().zip(loaded) {
        working.insert(id.to_string(), w);
    }

    let mut seed = now_ms as u64 ^ 0x5DEE_CE66_D1CE_4E5B;
    let cfg = &shared.config;
    for input in inbound {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let env = Env {
            now: Timestamp(now_ms),
            seed,
        };
        match input {
            Inbound::Poison {
                stream,
                id,
                raw,
                error,
            } => {
                tracing::warn!(%stream, %id, %error, "dead-lettering an undecodable message");
                dead_letter(
                    &mut out.batch,
                    part,
                    &stream,
                    &id,
                    &raw,
                    &error,
                    cfg.dlq_cap,
                );
                out.dead += 1;
            }
            Inbound::Timer(member, due) => {
                // Only this due timer: an earlier input of the batch may have rescheduled
                // the same member (a new attempt's timeout, a new retry), which must stay.
                out.batch.zrem_if(&part.timers(), due, &member);
                let Some((id, step, kind)) = parse_timer(&member) else {
                    continue;
                };
                let Some(w) = working.get_mut(id) else {
                    continue;
                };
                let (Some(inst), Some(wf)) = (w.inst.as_mut(), w.wf.clone()) else {
                    out.stale += 1;
                    continue;
                };
                let Some(token) = current_token(&wf, inst, step, kind, now_ms) else {
                    out.stale += 1;
                    continue;
                };
                let input = Input::Timer {
                    step: Arc::from(step),
                    kind,
                    token,
                };
                match core::apply(&wf, inst, input, env) {
                    Ok(effects) => {
                        w.changed = true;
                        out.applied += 1;
                        effects_to_batch(
                            &mut out.batch,
                            (&mut out.tally, &wf),
                            part,
                            inst,
                            effects,
                            now_ms,
                            cfg.events_cap,
                        );
                    }
                    Err(_) => out.stale += 1,
                }
            }
            Inbound::Result {
                stream,
                id,
                msg,
                raw,
            } => {
                let Some(w) = working.get_mut(&msg.instance_id) else {
                    out.batch.ack(&stream, COORDINATOR_GROUP, &id);
                    continue;
                };
                if let Some(reason) = &w.quarantined {
                    let error = format!("instance {} is quarantined: {reason}", msg.instance_id);
                    dead_letter(
                        &mut out.batch,
                        part,
                        &stream,
                        &id,
                        &raw,
                        &error,
                        cfg.dlq_cap,
                    );
                    out.dead += 1;
                    continue;
                }
                out.batch.ack(&stream, COORDINATOR_GROUP, &id);
                let (Some(inst), Some(wf)) = (w.inst.as_mut(), w.wf.clone()) else {
                    out.stale += 1;
                    continue;
                };
                let step: Arc<str> = Arc::from(msg.step.as_str());
                let worker = Some(msg.worker);
                let input = match msg.outcome {
                    Outcome::Ok(output) => Input::StepSucceeded {
                        step,
                        token: msg.token,
                        output,
                        worker,
                    },
                    Outcome::Err(error) => Input::StepFailed {
                        step,
                        token: msg.token,
                        error,
                        worker,
                    },
                };
                match core::apply(&wf, inst, input, env) {
                    Ok(effects) => {
                        w.changed = true;
                        out.applied += 1;
                        effects_to_batch(
                            &mut out.batch,
                            (&mut out.tally, &wf),
                            part,
                            inst,
                            effects,
                            now_ms,
                            cfg.events_cap,
                        );
                    }
                    Err(refusal) => {
                        tracing::debug!(instance_id = %msg.instance_id, %refusal, "stale result dropped");
                        out.stale += 1;
                    }
                }
            }
            Inbound::Command {
                stream,
                id,
                msg,
                deadline_ms,
            } => {
                out.batch.ack(&stream, COORDINATOR_GROUP, &id);
                // Applied before its deadline or never: its caller was (or will be) told
                // that nothing changed. `commit.lua` checks the deadline again by the
                // Redis clock when the batch is applied.
                if let Some(deadline) = deadline_ms {
                    if deadline <= now_ms {
                        tracing::info!(instance_id = %msg.instance_id, "discarding a command past its deadline");
                        out.expired += 1;
                        out.tally.command_expired();
                        continue;
                    }
                    out.batch.check_deadline(deadline);
                }
                let home = shared.conns.keys.partition_of(&msg.instance_id);
                let reply = match working.get_mut(&msg.instance_id) {
                    // A client that hashed the id wrongly: applying it here would create or
                    // change an instance where no one looks for it.
                    _ if home != part.partition => Reply::Refused {
                        kind: "bad_request".into(),
                        message: format!(
                            "instance {:?} belongs to partition {home}, but the command came on partition {}'s stream",
                            msg.instance_id, part.partition
                        ),
                        refusal: None,
                    },
                    None => Reply::Refused {
                        kind: "not_found".into(),
                        message: format!("no instance {:?}", msg.instance_id),
                        refusal: None,
                    },
                    Some(Working {
                        quarantined: Some(reason),
                        ..
                    }) => Reply::Refused {
                        kind: "quarantined".into(),
                        message: format!(
                            "instance {:?} is quarantined ({reason}); nothing changed",
                            msg.instance_id
                        ),
                        refusal: None,
                    },
                    Some(w) => apply_command(shared, part, w, &msg, env, &mut out, now_ms).await,
                };
                if matches!(reply, Reply::Refused { .. }) {
                    out.refused += 1;
                }
                // Only a reply key of this partition: another key could be in another slot
                // or of another type, and fail the commit half-way (scripts do not roll back).
                match msg.reply_to.as_deref() {
                    Some(to) if to.starts_with(&part.reply("")) => {
                        out.batch.reply(to, REPLY_TTL_MS, &wire::encode(&reply));
                    }
                    Some(to) => {
                        tracing::warn!(reply_to = %to, "ignoring a reply key outside the partition")
                    }
                    None => {}
                }
            }
        }
    }

    // Dropped inputs are counted in Redis too (`…:stats`), where operators read them.
    if out.stale > 0 {
        out.batch
            .hincr(&part.stats(), "stale_dropped", out.stale as i64);
    }
    if out.expired > 0 {
        out.batch
            .hincr(&part.stats(), "commands_expired", out.expired as i64);
    }

    // Write every changed instance once, with its index entries, guarded by its revision.
    for (id, w) in working {
        let (Some(inst), Some(wf)) = (w.inst, w.wf) else {
            continue;
        };
        let rev = if w.changed {
            write_instance(&mut out.batch, part, &id, &inst, w.rev, w.before);
            inst.revision
        } else {
            w.rev.unwrap_or(0)
        };
        out.kept.push((id, Cached { inst, rev, wf }));
    }
    Ok(out)
}

async fn apply_command(
    shared: &Shared,
    part: &PartitionKeys,
    w: &mut Working,
    msg: &CommandMessage,
    env: Env,
    out: &mut Built,
    now_ms: i64,
) -> Reply {
    let cap = shared.config.events_cap;
    let input = match &msg.command {
        Command::Start {
            definition,
            version,
            initial_data,
            tenant_id,
            created_by,
        } => {
            if w.unstarted.is_some_and(|u| u.canceled) {
                // Canceled while pending (`cancel_pending.lua`): never created.
                return Reply::Refused {
                    kind: "wrong_status".into(),
                    message: format!(
                        "instance {:?} was canceled before a coordinator created it",
                        msg.instance_id
                    ),
                    refusal: Some(weir::Refusal::WrongStatus {
                        status: weir::InstanceStatus::Canceled,
                        action: "creating it".into(),
                    }),
                };
            }
            if let Some(existing) = &w.inst {
                // Idempotent start: the id exists. Only for the same workflow and tenant
                // (the client checks the version it asked for, which it resolved here).
                if *existing.definition == **definition && existing.tenant_id == *tenant_id {
                    return Reply::Applied;
                }
                return Reply::Refused {
                    kind: weir::api::ID_TAKEN.to_string(),
                    message: weir::EngineError::IdTaken(msg.instance_id.clone()).to_string(),
                    refusal: None,
                };
            }
            let wf = match shared
                .defs
                .get(&shared.conns, definition, Some(version))
                .await
            {
                Ok(wf) => wf,
                Err(e) => {
                    return Reply::Refused {
                        kind: e.kind().to_string(),
                        message: e.to_string(),
                        refusal: None,
                    }
                }
            };
            let spec = StartSpec {
                id: msg.instance_id.clone(),
                initial_data: initial_data.clone(),
                tenant_id: tenant_id.clone(),
                created_by: created_by.clone(),
            };
            let (mut inst, effects) = core::start(&wf, spec, env);
            if let Some(u) = w.unstarted.take() {
                // It exists for its callers since it was stored: keep that time.
                inst.created_at = u.created_at;
            }
            effects_to_batch(
                &mut out.batch,
                (&mut out.tally, &wf),
                part,
                &mut inst,
                effects,
                now_ms,
                cap,
            );
            w.inst = Some(inst);
            w.wf = Some(wf);
            w.changed = true;
            out.applied += 1;
            return Reply::Applied;
        }
        Command::CompleteTask { step, user, data } => Input::CompleteTask {
            step: Arc::from(step.as_str()),
            user: user.clone(),
            data: data.clone(),
        },
        Command::ReassignTask {
            step,
            by,
            admin,
            assignee,
            candidates,
        } => Input::ReassignTask {
            step: Arc::from(step.as_str()),
            by: Actor {
                user: by.clone(),
                admin: *admin,
            },
            assignee: assignee.clone(),
            candidates: candidates.clone(),
        },
        Command::Cancel { reason } => Input::Cancel {
            reason: reason.clone(),
        },
        Command::Retry { from_step } => Input::Retry {
            from_step: from_step.clone(),
        },
    };
    let (Some(inst), Some(wf)) = (w.inst.as_mut(), w.wf.clone()) else {
        return Reply::Refused {
            kind: "not_found".into(),
            message: format!("no instance {:?}", msg.instance_id),
            refusal: None,
        };
    };
    match core::apply(&wf, inst, input, env) {
        Ok(effects) => {
            effects_to_batch(
                &mut out.batch,
                (&mut out.tally, &wf),
                part,
                inst,
                effects,
                now_ms,
                cap,
            );
            w.changed = true;
            out.applied += 1;
            Reply::Applied
        }
        Err(refusal) => Reply::Refused {
            kind: refusal.kind().to_string(),
            message: refusal.to_string(),
            refusal: Some(refusal),
        },
    }
}

/// The token a due timer stands for: there is one timer per (instance, step, kind), so a
/// timer is the step's current one when the step is in the state that kind needs and its
/// deadline has passed; otherwise it is stale.
fn current_token(
    wf: &Workflow,
    inst: &Instance,
    step: &str,
    kind: TimerKind,
    now_ms: i64,
) -> Option<u64> {
    let s = wf.step_id(step)?;
    let st = inst.steps.get(s)?;
    let expected = match kind {
        TimerKind::Wake => StepStatus::Sleeping,
        TimerKind::Retry => StepStatus::Retrying,
        TimerKind::Timeout => StepStatus::Running,
        TimerKind::TaskDue => StepStatus::Waiting,
    };
    (st.status == expected && st.due_at.is_some_and(|d| d.millis() <= now_ms)).then_some(st.token)
}

/// Translates a transition's effects into writes.
fn effects_to_batch(
    b: &mut Batch,
    (tally, wf): (&mut weir_worker::ops::Tally, &Workflow),
    part: &PartitionKeys,
    inst: &mut Instance,
    effects: Vec<Effect>,
    now_ms: i64,
    events_cap: usize,
) {
    let id = inst.id.clone();
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
                tally.dispatched(&d.handler, &d.queue);
            }
            Effect::Schedule(t) => {
                b.zadd(
                    &part.timers(),
                    t.due_at.millis(),
                    &timer_member(&id, &t.step, t.kind),
                );
            }
            Effect::Unschedule { step, kind } => {
                b.zrem(&part.timers(), &timer_member(&id, &step, kind));
            }
            Effect::OpenTask(task) => {
                let field = format!("{id}|{}", task.step);
                b.hset(&part.tasks(), &[(field.as_str(), &encode_record(&task))]);
                b.zadd(&part.index_tasks(), task.created_at.millis(), &field);
            }
            Effect::CloseTask { step, .. } => {
                let field = format!("{id}|{step}");
                b.hdel(&part.tasks(), &field);
                b.zrem(&part.index_tasks(), &field);
            }
            Effect::Record(r) => b.rpush(&part.history(&id), &encode_record(&r)),
            Effect::Emit(e) => {
                tally.event(wf, &inst.definition, &e.kind);
                let json = serde_json::to_vec(&e).unwrap_or_default();
                b.xadd(&part.events(), events_cap, "e", &json);
            }
        }
    }
}

/// Writes an instance and keeps its index entries in step with its status.
fn write_instance(
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
    if before.is_none() {
        b.zadd(&part.index_all(), created, id);
        b.zadd(&part.index_definition(&inst.definition), created, id);
        if let Some(t) = &inst.tenant_id {
            b.zadd(&part.index_tenant(t), created, id);
        }
        if let Some(c) = &inst.created_by {
            b.zadd(&part.index_creator(c), created, id);
        }
    }
    if before == Some(InstanceStatus::Pending) {
        // Created from a pending start: the start's copy is no longer needed.
        b.hdel(&key, "start");
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

/// Moves an entry to the dead-letter stream and off its own stream.
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
            ("m", raw),
            ("error", error.as_bytes()),
            ("deliveries", b"1"),
        ],
    );
    b.ack(stream, COORDINATOR_GROUP, id);
    b.hincr(&part.stats(), "dead_lettered", 1);
}

//! One turn: apply every input with the pure core, in order, to the instances it touches,
//! and collect the writes into one batch (see the module doc of [`super`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use weir::core::{self, Env, Input, StartSpec, TimerKind};
use weir::definition::{CompiledKind, Workflow};
use weir::model::{Actor, Instance, InstanceStatus, StepStatus};
use weir::redis::batch::Batch;
use weir::redis::effects::Waits;
use weir::redis::messages::{self, Waiter};
use weir::redis::timer::TimerMember;
use weir::redis::wire::{Command, CommandMessage, MessageBody, Outcome, Reply};
use weir::redis::PartitionKeys;
use weir::redis::{effects, store};
use weir::Timestamp;

use super::super::Shared;
use super::cache::{Cached, InstanceCache};
use super::decode::Inbound;
use super::load::{load_working, LoadError, Working};
use super::write;

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
    /// Whether the batch writes hops to the partition's outbox (relayed once committed).
    pub hops: bool,
    /// Metrics of what the batch did, published once it is committed.
    pub tally: weir::process::Tally,
    /// The instances as the batch leaves them, for [`InstanceCache::keep`] once committed.
    pub kept: Vec<(String, Cached)>,
    /// The (instance, signal id) pairs received already, or delivered by this batch: a
    /// signal with one of them is a duplicate.
    signals: HashSet<(String, String)>,
}

/// Applies a turn's inputs and builds its commit. Instances come from `cache` (taken out
/// of it) or are read from Redis.
pub async fn build(
    shared: &Shared,
    part: &PartitionKeys,
    cache: &mut InstanceCache,
    inbound: Vec<Inbound>,
    now_ms: i64,
) -> Result<Built, LoadError> {
    let mut out = Built {
        batch: Batch::new(part.lease()),
        inputs: inbound.len(),
        applied: 0,
        stale: 0,
        refused: 0,
        dead: 0,
        expired: 0,
        hops: false,
        tally: Default::default(),
        kept: Vec::new(),
        signals: HashSet::new(),
    };
    // The signals of the turn whose id their instance received already (one round trip).
    let pairs: Vec<(&str, &str)> = inbound
        .iter()
        .filter_map(|i| match i {
            Inbound::Command {
                msg:
                    CommandMessage {
                        instance_id,
                        command: Command::Signal { id, .. },
                        ..
                    },
                ..
            } => Some((instance_id.as_str(), id.as_str())),
            Inbound::Command {
                msg:
                    CommandMessage {
                        instance_id,
                        command: Command::Deliver { message, .. },
                        ..
                    },
                ..
            } => Some((instance_id.as_str(), message.id.as_str())),
            _ => None,
        })
        .collect();
    let received = store::signals_received(&mut shared.conns.conn.clone(), part, &pairs).await?;
    for ((instance, id), received) in pairs.iter().zip(received) {
        if received {
            out.signals.insert((instance.to_string(), id.to_string()));
        }
    }
    // Every instance the turn touches: from the cache, the others read in one round trip.
    let mut ids: Vec<&str> = inbound.iter().filter_map(Inbound::instance_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut working: HashMap<String, Working> = HashMap::with_capacity(ids.len());
    let mut missing: Vec<&str> = Vec::new();
    for id in ids {
        match cache.take(id) {
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
                start_of,
            } => {
                tracing::warn!(%stream, %id, %error, "dead-lettering a message");
                effects::dead_letter(
                    &mut out.batch,
                    part,
                    &stream,
                    &id,
                    &raw,
                    &error,
                    cfg.dlq_cap,
                );
                out.dead += 1;
                // A start that will never be created ends visibly, not `pending` for ever.
                let unstarted = start_of.as_deref().and_then(|sid| {
                    let w = working.get(sid)?;
                    let u = w
                        .unstarted
                        .as_ref()
                        .filter(|u| u.status == InstanceStatus::Pending)?;
                    w.inst.is_none().then_some((sid, u))
                });
                if let Some((sid, u)) = unstarted {
                    let reason = format!(
                        "its start was dead-lettered ({error}); `weir dlq list` shows it, \
                         and `weir dlq replay` starts it again once the cause is fixed"
                    );
                    effects::fail_unstarted(
                        &mut out.batch,
                        part,
                        sid,
                        &u.origin(),
                        now_ms,
                        &reason,
                        cfg.events_cap,
                    );
                }
            }
            Inbound::Timer(member, due) => {
                // Only this due timer: an earlier input of the batch may have rescheduled
                // the same member (a new attempt's timeout, a new retry), which must stay.
                effects::remove_due_timer(&mut out.batch, part, &member, due);
                let Some(TimerMember {
                    instance_id: id,
                    step,
                    kind,
                }) = TimerMember::parse(&member)
                else {
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
                match apply_input(
                    &mut out,
                    part,
                    &wf,
                    inst,
                    input,
                    env,
                    now_ms,
                    cfg.events_cap,
                ) {
                    Ok(()) => w.changed = true,
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
                    effects::ack_input(&mut out.batch, &stream, &id);
                    continue;
                };
                if let Some(reason) = &w.quarantined {
                    let error = format!("instance {} is quarantined: {reason}", msg.instance_id);
                    effects::dead_letter(
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
                effects::ack_input(&mut out.batch, &stream, &id);
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
                match apply_input(
                    &mut out,
                    part,
                    &wf,
                    inst,
                    input,
                    env,
                    now_ms,
                    cfg.events_cap,
                ) {
                    Ok(()) => w.changed = true,
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
                effects::ack_input(&mut out.batch, &stream, &id);
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
                if let Command::Deliver {
                    message,
                    waiter,
                    sent_ms,
                    expires_ms,
                } = &msg.command
                {
                    let w = working
                        .get_mut(&msg.instance_id)
                        .filter(|w| w.quarantined.is_none());
                    let accepted = w.is_some_and(|w| {
                        deliver(
                            part,
                            w,
                            &msg.instance_id,
                            message,
                            waiter,
                            env,
                            &mut out,
                            now_ms,
                            cfg.events_cap,
                        )
                    });
                    if !accepted {
                        // Not lost: back to its correlation partition, in this commit.
                        messages::write_return(
                            &mut out.batch,
                            part,
                            message,
                            waiter,
                            *sent_ms,
                            *expires_ms,
                        );
                        out.hops = true;
                    }
                    continue;
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
                if let Some(to) = msg.reply_to.as_deref() {
                    if let Err(e) = effects::write_reply(&mut out.batch, part, to, &reply) {
                        tracing::warn!(reply_to = %to, error = %e, "ignoring a reply key outside the partition");
                    }
                }
            }
        }
    }

    // Dropped inputs are counted in Redis too (`…:stats`), where operators read them.
    effects::count_dropped(&mut out.batch, part, out.stale, out.expired);

    // Write every changed instance once, with its index entries, guarded by its revision.
    // An unchanged one is guarded too: the turn may have decided from it (a result or timer
    // dropped as stale, a command refused), and its copy may be a stale one from the cache
    // (another coordinator held the lease meanwhile, and this loop took it back without
    // seeing it lost). Without the check such a commit would acknowledge a current result
    // as stale, and the instance would wait for ever on a step that ran.
    for (id, w) in working {
        let (Some(inst), Some(wf)) = (w.inst, w.wf) else {
            continue;
        };
        let rev = if w.changed {
            effects::write_instance(&mut out.batch, part, &id, &inst, w.rev, w.before);
            inst.revision
        } else {
            if let Some(rev) = w.rev {
                out.batch.check_revision(&part.instance(&id), Some(rev));
            }
            w.rev.unwrap_or(0)
        };
        out.kept.push((id, Cached { inst, rev, wf }));
    }
    Ok(out)
}

/// Applies a client command to its instance; the reply says whether it was applied.
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
            if w.unstarted.as_ref().is_some_and(|u| u.canceled()) {
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
            out.hops |= write::transition(
                &mut out.batch,
                (&mut out.tally, &wf),
                part,
                &inst,
                effects,
                now_ms,
                cap,
                Waits::default(),
            );
            w.inst = Some(inst);
            w.wf = Some(wf);
            w.changed = true;
            out.applied += 1;
            return Reply::Applied;
        }
        Command::CompleteTask {
            step,
            user,
            data,
            groups,
        } => Input::CompleteTask {
            step: Arc::from(step.as_str()),
            user: user.clone(),
            data: data.clone(),
            groups: groups.clone(),
        },
        Command::ClaimTask { step, by, groups } => Input::ClaimTask {
            step: Arc::from(step.as_str()),
            by: Actor::user(by.clone()).in_groups(groups.clone()),
        },
        Command::ReleaseTask { step, by, admin } => Input::ReleaseTask {
            step: Arc::from(step.as_str()),
            by: Actor {
                user: by.clone(),
                admin: *admin,
                groups: Vec::new(),
            },
        },
        Command::ReassignTask {
            step,
            by,
            admin,
            groups,
            assignee,
            candidates,
        } => Input::ReassignTask {
            step: Arc::from(step.as_str()),
            by: Actor {
                user: by.clone(),
                admin: *admin,
                groups: groups.clone(),
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
        // Handled by `deliver` (a refused one is returned, not answered).
        Command::Deliver { .. } => return not_found(&msg.instance_id),
        Command::Signal { id, name, data } => {
            let seen = (msg.instance_id.clone(), id.clone());
            if out.signals.contains(&seen) {
                // Received already: a duplicate changes nothing.
                return Reply::Applied;
            }
            let (Some(inst), Some(wf)) = (w.inst.as_mut(), w.wf.clone()) else {
                return not_found(&msg.instance_id);
            };
            let input = Input::DeliverMessage {
                id: id.clone(),
                name: name.clone(),
                key: None,
                data: data.clone(),
            };
            return match apply_input(out, part, &wf, inst, input, env, now_ms, cap) {
                Ok(()) => {
                    effects::record_signal(&mut out.batch, part, &msg.instance_id, id, now_ms);
                    messages::count_delivered(&mut out.batch, part);
                    out.signals.insert(seen);
                    w.changed = true;
                    Reply::Applied
                }
                Err(refusal) => refused(refusal),
            };
        }
    };
    let (Some(inst), Some(wf)) = (w.inst.as_mut(), w.wf.clone()) else {
        return not_found(&msg.instance_id);
    };
    match apply_input(out, part, &wf, inst, input, env, now_ms, cap) {
        Ok(()) => {
            w.changed = true;
            Reply::Applied
        }
        Err(refusal) => refused(refusal),
    }
}

/// The reply to a command for an instance not stored.
fn not_found(instance_id: &str) -> Reply {
    Reply::Refused {
        kind: "not_found".into(),
        message: format!("no instance {instance_id:?}"),
        refusal: None,
    }
}

/// The reply to a command the core refused (nothing changed).
fn refused(refusal: weir::Refusal) -> Reply {
    Reply::Refused {
        kind: refusal.kind().to_string(),
        message: refusal.to_string(),
        refusal: Some(refusal),
    }
}

/// Applies `input` to `inst` with the core and, when the core accepts it, writes the
/// transition into the batch and counts it; a refusal writes nothing.
#[allow(clippy::too_many_arguments)]
fn apply_input(
    out: &mut Built,
    part: &PartitionKeys,
    wf: &Workflow,
    inst: &mut Instance,
    input: Input,
    env: Env,
    now_ms: i64,
    events_cap: usize,
) -> Result<(), weir::Refusal> {
    apply_handed(out, part, wf, inst, input, env, now_ms, events_cap, None)
}

/// [`apply_input`] of a message handed to the waiter `handed` by its correlation partition
/// (which removed that waiter already: its unsubscription is not sent).
#[allow(clippy::too_many_arguments)]
fn apply_handed(
    out: &mut Built,
    part: &PartitionKeys,
    wf: &Workflow,
    inst: &mut Instance,
    input: Input,
    env: Env,
    now_ms: i64,
    events_cap: usize,
    handed: Option<&str>,
) -> Result<(), weir::Refusal> {
    let mut waits = Waits::before(wf, inst);
    waits.handed = handed.map(str::to_string);
    let effects = core::apply(wf, inst, input, env)?;
    out.applied += 1;
    out.hops |= write::transition(
        &mut out.batch,
        (&mut out.tally, wf),
        part,
        inst,
        effects,
        now_ms,
        events_cap,
        waits,
    );
    Ok(())
}

/// Applies a correlated message handed to `waiter` (a [`Waiter`]): accepted once per
/// message id and instance (a duplicate counts as accepted: the instance has it), and only
/// while that step waits on the message's name and key under the waiter's token, for the
/// message's tenant. Returns false when refused (the caller returns the message).
#[allow(clippy::too_many_arguments)]
fn deliver(
    part: &PartitionKeys,
    w: &mut Working,
    instance_id: &str,
    message: &MessageBody,
    waiter: &str,
    env: Env,
    out: &mut Built,
    now_ms: i64,
    events_cap: usize,
) -> bool {
    let seen = (instance_id.to_string(), message.id.clone());
    if out.signals.contains(&seen) {
        return true;
    }
    let (Some(inst), Some(wf)) = (w.inst.as_mut(), w.wf.clone()) else {
        return false;
    };
    let Some(to) = Waiter::parse(waiter) else {
        return false;
    };
    let waits = wf
        .step_id(&to.step)
        .and_then(|s| inst.steps.get(s))
        .is_some_and(|st| {
            st.status == StepStatus::Waiting
                && st.token == to.token
                && st.awaiting.as_ref().is_some_and(|a| {
                    *a.event == *message.name && a.key.as_deref() == Some(message.key.as_str())
                })
        });
    if !waits || inst.tenant_id != message.tenant_id {
        return false;
    }
    let input = Input::DeliverMessage {
        id: message.id.clone(),
        name: message.name.clone(),
        key: Some(message.key.clone()),
        data: message.data.clone(),
    };
    match apply_handed(
        out,
        part,
        &wf,
        inst,
        input,
        env,
        now_ms,
        events_cap,
        Some(waiter),
    ) {
        Ok(()) => {
            effects::record_signal(&mut out.batch, part, instance_id, &message.id, now_ms);
            messages::count_delivered(&mut out.batch, part);
            out.signals.insert(seen);
            w.changed = true;
            true
        }
        Err(refusal) => {
            tracing::debug!(%instance_id, %refusal, "a handed message was refused; returning it");
            false
        }
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
        // An event step's timeout ends a wait; any other step's, a running attempt.
        TimerKind::Timeout if matches!(wf.steps[s].kind, CompiledKind::Event { .. }) => {
            StepStatus::Waiting
        }
        TimerKind::Timeout => StepStatus::Running,
        TimerKind::TaskDue => StepStatus::Waiting,
        // A reminder's time is its timer's score, not the step's deadline.
        TimerKind::TaskReminder => {
            return (st.status == StepStatus::Waiting).then_some(st.token);
        }
    };
    (st.status == expected && st.due_at.is_some_and(|d| d.millis() <= now_ms)).then_some(st.token)
}

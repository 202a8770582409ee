//! The loop of one leased partition: read, apply, commit, repeat.
//!
//! Each turn reads commands and results (first the entries pending for this coordinator,
//! then new ones), then the timers due by the Redis clock, applies all of them with the pure
//! core, and commits the outcome in one script call that also acknowledges the inputs. When
//! idle it blocks on the streams until the next timer is due (at most 100 ms), so timers fire
//! on time without polling.
//!
//! A busy loop makes two round trips per turn: the read, and the commit. The commit also
//! reads the Redis clock and the timers due by it after its writes (`commit.lua`), and the
//! next turn uses those when it follows at once (its read did not block, and less than
//! [`CLOCK_REUSE`] passed): it advances that Redis time by the few milliseconds measured
//! since on this process's monotonic clock, which never compares clocks of two machines.
//! Otherwise (after an idle wait, an error, or at the start) the turn asks
//! `due_timers.lua`. Instances come from the loop's [`InstanceCache`] (see [`apply`]).
//!
//! Each coordinator reads as its own consumer (its id) in the `coordinators` group. When it
//! takes a partition, after any failed turn, and every [`CLAIM_EVERY`], it moves to itself
//! the entries other consumers left pending and deletes those consumers (`claim.lua`, guarded
//! by the lease), then reads its pending list (ID `0`) again: entries a dead holder read, or
//! that a holder frozen past its lease read once more after resuming, are never stranded.
//! And it reads nothing while its lease is not known valid by the local clock
//! ([`LeaseValidity`]), so a frozen coordinator that resumes does not read before its lease
//! loop has checked the lease.
//!
//! **Failures, by kind** ([`TurnError`]). A lost lease stops the loop. A conflict reloads the
//! instances. A Redis failure (unreachable, timeout, a server busy or loading) backs off
//! exponentially up to 2 s and reads the same input again. A batch that `commit.lua`
//! refuses as it is (a key of the wrong type) is a broken record, not an outage: the loop
//! halves the number of entries it reads after each refusal, so the entry that causes it
//! ends up read alone; an entry refused alone `max_deliveries` times is dead-lettered with
//! the reason, and the rest of the partition goes on (the read size doubles back after each
//! committed turn). Timers wait while the loop isolates an entry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::streams::StreamReadReply;
use tokio::sync::watch;
use tokio::time::Instant;
use weir::redis::batch::{CommitError, DueTimers, HeldReplies};
use weir::redis::groups;
use weir::redis::inputs::{self, ClaimError, ReadFrom};
use weir::redis::keys::COORDINATOR_GROUP;
use weir::redis::wire;
use weir::redis::Durability;

use super::apply::{self, Inbound, InstanceCache};
use super::lease::LeaseValidity;
use super::{retention, Counters, Shared};

/// The longest a loop blocks waiting for input.
const MAX_BLOCK: Duration = Duration::from_millis(100);

/// How long the clock and due timers a commit read stay usable by the next turn.
const CLOCK_REUSE: Duration = Duration::from_millis(20);

/// How often the holder takes over entries other consumers left pending (besides when it
/// takes the partition and after a failed turn).
pub const CLAIM_EVERY: Duration = Duration::from_secs(1);

/// How long a loop waits before looking again when its lease is not known valid.
const LEASE_WAIT: Duration = Duration::from_millis(20);

/// The pause after a refused batch (a broken record, not an outage: no growing backoff).
const REFUSED_PAUSE: Duration = Duration::from_millis(20);

/// What a partition loop carries from one turn to the next; all of it can be lost at any
/// moment (Redis holds the state).
#[derive(Default)]
struct LoopState {
    /// The blocking reads' own connection, made again after an error.
    reader: Option<weir::redis::RedisConnection>,
    /// Read the entries pending for this consumer (ID `0`) before new ones.
    read_pending: bool,
    /// Take over other consumers' pending entries before the next read.
    claim: bool,
    /// Instances as last written.
    cache: InstanceCache,
    /// The clock and due timers read by the last commit, and when it answered.
    clock: Option<(DueTimers, Instant)>,
    /// Entries read per turn: the batch size, halved after each refused batch (to isolate
    /// the entry that causes it), doubled back after each committed turn.
    read_count: usize,
    /// The stream entries (ids) of the current turn.
    entries: Vec<String>,
    /// Refusals of turns that held one entry alone: entry id -> (count, last reason).
    refusals: HashMap<String, (u64, String)>,
    /// Under replicated durability, replies of commits no replica has confirmed yet: they
    /// are published once one does (a caller never reads a verdict a failover can lose).
    unpublished: HeldReplies,
    /// Wakes the partition's outbox relay after a commit that wrote hops.
    relay: Arc<tokio::sync::Notify>,
}

/// Runs the partition until told to stop or the lease is lost. The caller instruments it
/// with a `partition` span.
pub async fn run(
    shared: Arc<Shared>,
    p: u16,
    mut stop: watch::Receiver<bool>,
    validity: Arc<LeaseValidity>,
) {
    let part = shared.conns.keys.part(p);
    if ensure_groups(&shared, &part).await.is_err() {
        tracing::warn!("could not create consumer groups yet; will retry on first read");
    }
    // Delayed starts and schedules of the partition, beside the loop, for as long as it runs.
    let due_task = tokio::spawn(super::due::run(
        shared.clone(),
        p,
        stop.clone(),
        validity.clone(),
    ));
    // The outbox relay and kept-message expiry of the partition, beside the loop too.
    let relay = Arc::new(tokio::sync::Notify::new());
    let relay_task = tokio::spawn(super::messages::run(
        shared.clone(),
        p,
        stop.clone(),
        validity.clone(),
        relay.clone(),
    ));
    let batch = shared.config.batch.max(1);
    let mut state = LoopState {
        relay,
        read_pending: true,
        claim: true,
        read_count: batch,
        ..LoopState::default()
    };
    let mut block = Duration::ZERO;
    let mut backoff = Duration::from_millis(50);
    let mut sweeps = retention::SweepCadence::new(std::time::Instant::now());
    let mut last_claim = tokio::time::Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        if !validity.valid() {
            // Frozen past the lease, or renewals failing: read nothing until the lease loop
            // confirms the lease (or stops this loop).
            state.claim = true;
            tokio::select! {
                _ = tokio::time::sleep(LEASE_WAIT) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        if last_claim.elapsed() >= CLAIM_EVERY {
            state.claim = true;
        }
        if state.claim {
            match claim(&shared, &part).await {
                Ok(moved) => {
                    state.claim = false;
                    state.read_pending = true;
                    last_claim = tokio::time::Instant::now();
                    if moved > 0 {
                        tracing::info!(moved, "took over entries other coordinators left pending");
                    }
                }
                Err(TurnError::LeaseLost) => {
                    tracing::warn!("lease lost; stopping this partition");
                    break;
                }
                Err(e) => {
                    Counters::add(&shared.counters.redis_errors, 1);
                    tracing::warn!(error = %e, "could not take over pending entries; will retry");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        let outcome = turn(&shared, &part, &mut state, block).await;
        if outcome.is_err() {
            // A commit that failed may or may not have been applied: trust Redis only.
            state.cache.clear();
            state.clock = None;
        }
        match outcome {
            Ok(next_block) => {
                block = next_block;
                backoff = Duration::from_millis(50);
                state.read_count = (state.read_count * 2).min(batch);
                if !state.refusals.is_empty() {
                    for id in &state.entries {
                        state.refusals.remove(id);
                    }
                }
            }
            Err(TurnError::Refused(why)) => {
                tracing::error!(error = %why, entries = state.entries.len(), "batch refused; isolating the entry that causes it");
                if let [id] = state.entries.as_slice() {
                    state
                        .refusals
                        .entry(id.clone())
                        .or_insert((0, String::new()))
                        .0 += 1;
                    if let Some(r) = state.refusals.get_mut(id) {
                        r.1 = why;
                    }
                }
                state.read_count = (state.read_count / 2).max(1);
                state.read_pending = true;
                tokio::select! {
                    _ = tokio::time::sleep(REFUSED_PAUSE) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            Err(TurnError::LeaseLost) => {
                tracing::warn!("lease lost; stopping this partition");
                break;
            }
            Err(TurnError::Conflict(key)) => {
                // Someone else wrote the instance (or deleted it): nothing was written; read
                // Redis again (the cache is dropped) after a pause.
                tracing::info!(%key, "instance changed concurrently; reloading");
                state.read_pending = true;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
            Err(
                e @ (TurnError::Redis(_)
                | TurnError::Connect(_)
                | TurnError::Unreplicated(_)
                | TurnError::Load(_)),
            ) => {
                Counters::add(&shared.counters.redis_errors, 1);
                weir::process::metrics::redis_error("coordinator");
                tracing::warn!(error = %e, "partition turn failed; will retry");
                // What was read but not committed is still pending: read it again.
                state.read_pending = true;
                state.claim = true;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        }
        if sweeps.due(std::time::Instant::now()) {
            let swept = retention::sweep(&shared, &part)
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "retention sweep failed"))
                .ok();
            sweeps.after(std::time::Instant::now(), swept);
        }
    }
    due_task.abort();
    relay_task.abort();
}

/// Why a turn wrote nothing; each calls for its own reaction.
#[derive(Debug, thiserror::Error)]
enum TurnError {
    /// Another coordinator holds the lease: stop this loop.
    #[error("the partition lease was lost")]
    LeaseLost,
    /// An instance's revision was not the one expected: nothing was written; reload.
    #[error("instance changed concurrently ({0})")]
    Conflict(String),
    /// Redis failed or is unreachable: back off, growing up to 2 s.
    #[error("Redis failed: {0}")]
    Redis(#[from] redis::RedisError),
    /// The blocking reads' connection could not be made: an outage too, backed off alike.
    #[error("cannot connect the reader: {0}")]
    Connect(#[source] weir::redis::RedisError),
    /// The commit was written, but no replica confirmed it (replicated durability): an
    /// outage of the replicas, backed off alike.
    #[error(transparent)]
    Unreplicated(weir::redis::RedisError),
    /// Loading the instances or definitions the turn touches failed in Redis: an outage
    /// too, backed off alike (a definition that is broken for good quarantines its
    /// instances instead; see [`apply`]).
    #[error(transparent)]
    Load(#[from] apply::LoadError),
    /// `commit.lua` refused the batch as it is (a broken record): isolate the entry that
    /// causes it, and dead-letter it once refused alone `max_deliveries` times.
    #[error("{0}")]
    Refused(String),
}

impl From<ClaimError> for TurnError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::LeaseLost => TurnError::LeaseLost,
            ClaimError::Redis(e) => TurnError::Redis(e),
        }
    }
}

/// Takes over the entries other consumers left pending on the partition's input streams
/// (`claim.lua`), and deletes those consumers. Returns how many moved.
async fn claim(shared: &Shared, part: &weir::redis::PartitionKeys) -> Result<u64, TurnError> {
    let limit = shared.config.batch.max(1) * 4;
    Ok(inputs::claim(
        &mut shared.conns.conn.clone(),
        part,
        &shared.config.id,
        limit,
    )
    .await?)
}

/// One read-apply-commit turn; returns how long the next read may block.
async fn turn(
    shared: &Arc<Shared>,
    part: &weir::redis::PartitionKeys,
    state: &mut LoopState,
    block: Duration,
) -> Result<Duration, TurnError> {
    let commands = part.commands();
    let batch = shared.config.batch;
    // 0. Replies held back by a replicated commit no replica confirmed in time: publish
    // them once one does (a WAIT covers every earlier write of the connection).
    if !state.unpublished.is_empty() {
        weir::redis::durability::confirm(
            shared.conns.durability,
            &mut shared.conns.conn.clone(),
            &commands,
            &shared.conns.display_url,
        )
        .await
        .map_err(TurnError::Unreplicated)?;
        publish_replies(shared, state).await?;
    }
    let count = state.read_count.clamp(1, batch.max(1));
    // 1. Read input; block only when there is nothing pending and no timer is due.
    let blocks = !state.read_pending && !block.is_zero();
    let reply: Option<StreamReadReply> = {
        let reader = match state.reader.take() {
            Some(reader) => reader,
            None => shared.conns.dedicated().await.map_err(TurnError::Connect)?,
        };
        let conn = state.reader.insert(reader);
        let from = if state.read_pending {
            ReadFrom::Pending
        } else {
            ReadFrom::New
        };
        let read = inputs::read(
            conn,
            part,
            &shared.config.id,
            count,
            blocks.then_some(block),
            from,
        )
        .await;
        match read {
            Ok(r) => r,
            Err(e) if groups::is_missing_group(&e) => {
                ensure_groups(shared, part).await?;
                None
            }
            Err(e) => {
                state.reader = None;
                return Err(e.into());
            }
        }
    };
    let mut inbound = Vec::new();
    let mut read = 0;
    state.entries.clear();
    for key in reply.map(|r| r.keys).unwrap_or_default() {
        let from_commands = key.key == commands;
        for entry in key.ids {
            read += 1;
            state.entries.push(entry.id.clone());
            let refused = state
                .refusals
                .get(&entry.id)
                .filter(|(n, _)| *n >= shared.config.max_deliveries);
            match refused {
                Some((n, why)) => {
                    let raw: Vec<u8> = entry.get(wire::FIELD).unwrap_or_default();
                    // A Start's pending instance is failed with its dead letter, unless
                    // that failed too (refused once more): then the entry goes alone.
                    let start_of = (from_commands && *n == shared.config.max_deliveries)
                        .then(|| apply::start_of(&raw))
                        .flatten();
                    inbound.push(Inbound::Poison {
                        stream: key.key.clone(),
                        raw,
                        id: entry.id,
                        error: format!("refused {n} times when applied alone: {why}"),
                        start_of,
                    })
                }
                None => inbound.push(apply::decode_entry(&key.key, from_commands, entry)),
            }
        }
    }
    if state.read_pending && read == 0 {
        state.read_pending = false;
    }
    // 2. The Redis clock and the timers due by it: as the last commit read them when this
    // turn follows it at once, else from Redis now.
    let carried = state
        .clock
        .take()
        .filter(|(_, at)| !blocks && at.elapsed() < CLOCK_REUSE);
    let due = match carried {
        Some((mut due, at)) => {
            due.now_ms += at.elapsed().as_millis() as i64;
            due
        }
        None => inputs::due_timers(&mut shared.conns.conn.clone(), part, batch).await?,
    };
    let now = due.now_ms;
    let next_block = if state.read_pending || read >= count {
        Duration::ZERO
    } else if let Some(next_due) = due.next_due_ms {
        Duration::from_millis((next_due - now).clamp(1, MAX_BLOCK.as_millis() as i64) as u64)
    } else {
        MAX_BLOCK
    };
    // While an entry is being isolated, timers wait (they could be the cause otherwise).
    if !(count < batch && read > 0) {
        inbound.extend(
            due.members
                .into_iter()
                .map(|(member, due)| Inbound::Timer(member, due)),
        );
    }
    if inbound.is_empty() {
        return Ok(next_block);
    }
    // 3. Apply and commit; the commit reads the clock and due timers for the next turn.
    let mut built = apply::build(shared, part, &mut state.cache, inbound, now).await?;
    built.batch.then_due_timers(&part.timers(), batch);
    let n = built.inputs;
    let committed = match shared.conns.durability {
        Durability::Local => built
            .batch
            .commit_then_due(&mut shared.conns.conn.clone(), &shared.config.id)
            .await
            .map(|(_, due)| (due, None)),
        Durability::Replicated => built
            .batch
            .commit_replicated(
                &mut shared.conns.conn.clone(),
                &shared.config.id,
                weir::redis::durability::REPLICA_WAIT,
            )
            .await
            .map(|c| (c.due, Some((c.replicas, c.replies)))),
    };
    match committed {
        Ok((due, replicated)) => {
            // Under replicated durability a commit counts once a replica holds it (its
            // `WAIT` went in the same round trip), and only then are its replies
            // published. If none confirms it, the turn fails as a commit of unknown fate
            // does: the cache is dropped and what Redis holds is read again (the commit
            // itself stands), and the replies wait for the next confirmation.
            if let Some((replicas, replies)) = replicated {
                state.unpublished.extend(replies);
                if replicas < 1 {
                    return Err(TurnError::Unreplicated(
                        weir::redis::RedisError::NotReplicated {
                            url: shared.conns.display_url.clone(),
                            key: part.commands(),
                        },
                    ));
                }
                publish_replies(shared, state).await?;
            }
            state.cache.keep(built.kept);
            if built.hops {
                state.relay.notify_one();
            }
            state.clock = due.map(|d| (d, Instant::now()));
            Counters::add(&shared.counters.commits, 1);
            Counters::add(&shared.counters.transitions, built.applied);
            Counters::add(&shared.counters.stale, built.stale);
            Counters::add(&shared.counters.refused, built.refused);
            Counters::add(&shared.counters.dead_lettered, built.dead);
            weir::process::metrics::batch_committed(n, built.applied, built.stale, built.dead);
            let mut tally = built.tally;
            tally.publish();
            tracing::trace!(inputs = n, "batch committed");
            // Anything fired may have scheduled a timer due now: don't block.
            Ok(if n > 0 { Duration::ZERO } else { next_block })
        }
        Err(CommitError::LeaseLost) => Err(TurnError::LeaseLost),
        Err(CommitError::Conflict(key)) => Err(TurnError::Conflict(key)),
        Err(CommitError::Rejected(why)) => Err(TurnError::Refused(why)),
        Err(CommitError::Redis(e)) => Err(e.into()),
    }
}

/// Publishes the replies of replicated commits a replica now holds.
async fn publish_replies(shared: &Shared, state: &mut LoopState) -> Result<(), TurnError> {
    state
        .unpublished
        .publish(&mut shared.conns.conn.clone())
        .await?;
    state.unpublished = HeldReplies::default();
    Ok(())
}

/// Creates the coordinators' groups on the partition's input streams.
async fn ensure_groups(
    shared: &Shared,
    part: &weir::redis::PartitionKeys,
) -> Result<(), TurnError> {
    let streams = [part.commands(), part.results()];
    groups::ensure_groups(&mut shared.conns.conn.clone(), &streams, COORDINATOR_GROUP).await?;
    Ok(())
}

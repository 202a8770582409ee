//! The Lua scripts, embedded. Each file in `lua/` starts with a header: KEYS, ARGV, return.
//! `redis::Script` sends EVALSHA and reloads the script on `NOSCRIPT`, so a Redis restart
//! or `SCRIPT FLUSH` is handled.

use std::sync::LazyLock;

use redis::Script;

/// Applies a batch of transitions of one partition, all or nothing (`lua/commit.lua`).
pub static COMMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/commit.lua")));
/// The Redis clock and the due timers of a partition (`lua/due_timers.lua`).
pub static DUE_TIMERS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/due_timers.lua")));
/// Takes or renews a partition lease (`lua/lease.lua`).
pub static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/lease.lua")));
/// Releases a partition lease (`lua/release.lua`).
pub static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/release.lua")));
/// Moves the coordinator input entries other coordinators left pending to the lease holder,
/// and removes those consumers (`lua/claim.lua`).
pub static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/claim.lua")));
/// Registers a definition version (`lua/register.lua`).
pub static REGISTER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/register.lua")));
/// Reports step results and acknowledges their messages (`lua/report.lua`).
pub static REPORT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/report.lua")));
/// Moves a message to the dead-letter stream (`lua/dead_letter.lua`).
pub static DEAD_LETTER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/dead_letter.lua")));
/// Puts a dead letter back on its source stream (`lua/dlq_replay.lua`).
pub static DLQ_REPLAY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/dlq_replay.lua")));
/// Stores starts of one partition as pending instances with their Start commands, and
/// decides the caller-id rule, in one call (`lua/start.lua`).
pub static START: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/start.lua")));
/// Cancels an instance no coordinator created yet (`lua/cancel_pending.lua`).
pub static CANCEL_PENDING: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/cancel_pending.lua")));
/// Sends a command with a deadline by the Redis clock (`lua/send_command.lua`).
pub static SEND_COMMAND: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/send_command.lua")));
/// Resets the idle time of a worker's step entries that are still its own
/// (`lua/heartbeat.lua`).
pub static HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/heartbeat.lua")));
/// The Redis clock and a partition's due delayed starts and schedules (`lua/due_work.lua`).
pub static DUE_WORK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/due_work.lua")));
/// Moves due delayed starts to the command stream, guarded by the lease
/// (`lua/release_starts.lua`).
pub static RELEASE_STARTS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/release_starts.lua")));
/// Records a schedule's firing and moves it to its next slot, guarded by the lease and by
/// the slot it fired (`lua/schedule_advance.lua`).
pub static SCHEDULE_ADVANCE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/schedule_advance.lua")));
/// Creates, pauses, resumes or deletes a schedule, or records a manual trigger
/// (`lua/schedule_admin.lua`).
pub static SCHEDULE_ADMIN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/schedule_admin.lua")));
/// Sends a correlated message on its correlation partition: duplicate, handed to the
/// oldest waiter (through the outbox), or kept (`lua/send_message.lua`).
pub static SEND_MESSAGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/send_message.lua")));
/// A waiter joins a route: takes a kept message or waits (`lua/subscribe.lua`).
pub static SUBSCRIBE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/subscribe.lua")));
/// A message its waiter refused comes back: to the next waiter, kept, or expired
/// (`lua/return_message.lua`).
pub static RETURN_MESSAGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/return_message.lua")));
/// Drops kept messages whose time to live ran out (`lua/expire_messages.lua`).
pub static EXPIRE_MESSAGES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/expire_messages.lua")));

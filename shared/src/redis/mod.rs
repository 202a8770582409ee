//! Weir on Redis: the key layout, the wire format, the scripts, and the client API.
//!
//! Redis is the only state (ARCHITECTURE.md invariant 2). Data flows one way: client -> command
//! stream -> coordinator -> step stream -> worker -> result stream -> coordinator. Only the
//! coordinator that holds a partition's lease writes instance state there, one atomic
//! script call per batch of transitions (invariant 3).
//!
//! # What is public
//!
//! A service needs [`WeirClient`] (through the [`Engine`](crate::Engine) trait), the
//! connection settings ([`RedisConfig`], [`Connections`], [`RedisMode`], [`TlsFiles`]), the
//! key names ([`Keys`]), the messages on the streams ([`wire`]), the operators' reads and
//! repairs ([`admin`]) and [`RedisError`]. Everything else in this module (the batch of
//! writes and the Lua scripts, the store's encoding, and the per-concern queries of the
//! coordinator and the workers: inputs, effects, leases, steps, timers, tasks, presence,
//! retention, ...) is the engine's internals, shared with `weir-coordinator` and
//! `weir-worker`: it is public only because those are separate crates, is left out of this
//! documentation, and carries no stability promise; it may change in any release.
//!
//! # Key layout (namespace `NS`, default `weir`)
//!
//! Instances are spread over a fixed number of partitions (`NS:meta` field `partitions`,
//! fixed when the namespace is first used): partition = FNV-1a-64(instance id) mod count.
//! Every key of a partition starts with the hash tag `{NS:pN}`, so no script crosses slots.
//!
//! | key                          | type   | holds |
//! |------------------------------|--------|-------|
//! | `NS:meta`                    | hash   | `partitions`, `created_by` |
//! | `NS:defs`                    | hash   | `name@version` -> definition as canonical JSON (immutable) |
//! | `NS:coordinators`            | zset   | coordinator id -> last heartbeat (ms) |
//! | `NS:workers`                 | zset   | worker id -> last heartbeat (ms) |
//! | `{NS:pN}:lease`              | string | the coordinator that owns partition N (PX lease; a rebalance sets it to the coordinator it hands the partition to) |
//! | `{NS:pN}:reply:REQ`          | list   | the outcome of a client command to an instance of partition N (expires after 60 s) |
//! | `{NS:pN}:commands`           | stream | client commands, field `m` = MessagePack [`wire::CommandMessage`], `d` = its deadline (ms, Redis clock; none for starts); group `coordinators`, one consumer per coordinator (its id) |
//! | `{NS:pN}:results`            | stream | step results, `m` = [`wire::ResultMessage`]; group `coordinators`, as above |
//! | `{NS:pN}:q:QUEUE`            | stream | step attempts, `m` = [`wire::StepMessage`]; group `workers` |
//! | `{NS:pN}:queues`             | set    | queue names used in the partition |
//! | `{NS:pN}:starts:due`         | zset   | delayed starts not due yet: instance id -> start time (ms, Redis clock); the instance hash then also has `start_at` |
//! | `{NS:pN}:sched:h:NAME`       | hash   | a schedule (in the partition of its name): `spec` (JSON), `next` (ms), `paused`, `fired`, `missed`, `skipped`, `last_instance`, `created` |
//! | `{NS:pN}:sched:log:NAME`     | list   | its last ten firings (JSON, newest first) |
//! | `{NS:pN}:sched:due`, `sched:all` | zset | active schedules by next slot (ms); every schedule by creation time |
//! | `{NS:pN}:timers`             | zset   | members `id|step|kind` (parsed from the right: ids may hold `|`) -> due time (ms, Redis clock) |
//! | `{NS:pN}:events`             | stream | events, field `e` = JSON (capped, `MAXLEN ~`) |
//! | `{NS:pN}:dlq`                | stream | dead letters: `source`, `group`, `id`, `m`, `error`, `deliveries` |
//! | `{NS:pN}:tasks`              | hash   | `id|step` -> open task (MessagePack) |
//! | `{NS:pN}:stats`              | hash   | counters: `stale_dropped`, `dead_lettered`, `quarantined`, `msg_delivered`, `msg_kept`, `msg_expired`, `msg_duplicates`, ... |
//! | `{NS:pN}:outbox`             | stream | hops to other partitions, relayed by their writer or the lease holder ([`messages`]): `k` `deliver`/`sub`/`unsub`/`ret`, `w` the waiter `TOKEN|STEP|INSTANCE`, `m` the message ([`wire::MessageBody`]) or route ([`wire::MessageRoute`]), `s`/`x` times (ms) |
//! | `{NS:pN}:m:w:ROUTE`          | zset   | waiters on a route of this correlation partition (`TOKEN|STEP|INSTANCE`) by the time the wait began (ms); ROUTE is `-|NAME|KEY` or `tLEN:TENANT|NAME|KEY` |
//! | `{NS:pN}:m:k:ROUTE`          | zset   | messages kept for a route (`ROUTE\nID`) by time sent (ms) |
//! | `{NS:pN}:m:msgs`, `m:exp`    | hash, zset | kept messages' bodies (`ROUTE\nID` -> [`wire::MessageBody`]); their expiry (ms) |
//! | `{NS:pN}:m:seen:ROUTE\nID`   | string | a sent message id, for its time to live: `k` kept, `d:WAITER` handed to it, `x` expired |
//! | `{NS:pN}:i:ID`               | hash   | `state` (MessagePack instance), `rev`, `status`, `def`, `ver`, `tenant`, `creator`, `created`, `finished`, `signal:ID` per signal or message received (ms); a quarantined one also `quarantined` (the reason) and, if its state did not decode, `corrupt_state` (the bytes); before a coordinator created it: `status` `pending` and `start` (the Start command), no `state` (canceled then: `status` `canceled`, `rev` 0, `finished`, `reason`) |
//! | `{NS:pN}:h:ID`               | list   | finished attempts (MessagePack) |
//! | `{NS:pN}:x:status:S`, `x:def:NAME`, `x:tenant:T`, `x:creator:U` | zset | instance ids by creation time (the time the start was stored); every instance is in one status index (together, the index of all), and once it has left `pending` in the index of its workflow, tenant and creator (a pending start is in the pending index only) |
//! | `{NS:pN}:x:finished`         | zset   | finished instance ids by finish time (retention) |
//! | `{NS:pN}:x:tasks`            | zset   | open tasks `id|step` by creation time |
//!
//! Stream entries are deleted once handled (`XACK` + `XDEL` in the same script), so streams
//! hold only what some group has not acknowledged yet.
//!
//! # Writing a worker in another language
//!
//! Create group `workers` on `{NS:pN}:q:QUEUE` for every partition N (`XGROUP CREATE … 0
//! MKSTREAM`, ignore `BUSYGROUP`, and again on `NOGROUP`), read with `XREADGROUP` no more
//! entries than you can start at once (`COUNT` is per stream: read stream by stream), decode
//! `m` (a MessagePack map with the fields of [`wire::StepMessage`]), run the handler, then
//! run `lua/report.lua` with your consumer name and the [`wire::ResultMessage`] (carrying
//! back `token`); it appends only results whose entry is still pending to you. Claim entries
//! idle longer than the visibility timeout with `XAUTOCLAIM` (keeping its cursor); keep long
//! steps alive by re-claiming your own entries (`XCLAIM … JUSTID`, only while `XPENDING`
//! still shows them as yours) more often than that.

// Every Redis command Weir sends lives in this module, by concern (a CI check,
// `.ci/redis-boundary`, keeps them out of every other file).
//
// The `#[doc(hidden)]` modules are the engine's internals (see the module doc, "What is
// public"): public only because weir-coordinator and weir-worker are other crates.
pub mod admin;
#[doc(hidden)]
pub mod batch;
pub mod client;
pub mod cluster_healing;
#[doc(hidden)]
pub mod cluster_reads;
pub mod connect;
pub mod connection;
pub mod durability;
#[doc(hidden)]
pub mod effects;
#[doc(hidden)]
pub mod events;
#[doc(hidden)]
pub mod groups;
#[doc(hidden)]
pub mod health;
#[doc(hidden)]
pub mod inputs;
pub mod keys;
#[doc(hidden)]
pub mod lease;
#[doc(hidden)]
pub mod listing;
#[doc(hidden)]
pub mod messages;
#[doc(hidden)]
pub mod presence;
#[doc(hidden)]
pub mod retention;
#[doc(hidden)]
pub mod safety;
#[doc(hidden)]
pub mod schedules;
#[doc(hidden)]
pub mod scripts;
mod sentinel;
#[doc(hidden)]
pub mod server;
#[doc(hidden)]
pub mod slots;
/// The arguments of a `start.lua` call: starts grouped by what they share.
mod start_call;
#[doc(hidden)]
pub mod steps;
#[doc(hidden)]
pub mod store;
#[doc(hidden)]
pub mod tasks;
#[doc(hidden)]
pub mod timer;
pub mod topology;
pub mod wire;

pub use client::WeirClient;
pub use connect::{BlockingConnection, Connections, RedisConfig, TlsFiles};
pub use connection::RedisConnection;
pub use durability::Durability;
pub use keys::{Keys, PartitionKeys};
pub use topology::RedisMode;

/// A Redis-side failure, typed by who can act on it.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// A setting is wrong (URL, namespace): the user must fix it.
    #[error("{0}")]
    Config(String),
    /// Redis cannot be reached or answered with an error: retry later. The redis-rs error
    /// is kept as the source, so a caller can tell a refused connection from a timeout
    /// or a script error (`source.kind()`, `source.is_timeout()`, ...).
    #[error("Redis at {url} is unreachable or failed: {source}")]
    Unreachable {
        /// The URL (password masked).
        url: String,
        /// What went wrong.
        #[source]
        source: redis::RedisError,
    },
    /// Stored data could not be decoded (written by an incompatible version, or damaged).
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    /// Under `--durability replicated`, no replica confirmed the write in time (`WAIT`).
    /// The write is done on the master, but may not survive its failover; a retry with the
    /// same caller id (instance id, task) is safe: it does not write twice.
    #[error(
        "Redis at {url} stored the write to {key} but no replica confirmed it within the \
         durability wait: it may not survive a failover of that master (check that the \
         master has a connected replica; retrying with the same id is safe)"
    )]
    NotReplicated {
        /// The URL (password masked).
        url: String,
        /// The key written.
        key: String,
    },
}

impl RedisError {
    /// Wraps a redis-rs error with the URL it concerns.
    pub fn from_redis(url: &str, e: redis::RedisError) -> RedisError {
        RedisError::Unreachable {
            url: url.to_string(),
            source: e,
        }
    }

    /// Wraps a failure to get a connection from the blocking pool: the pool's own
    /// redis-rs error when the backend failed, else one that says what the pool reported
    /// (a timeout, a closed pool).
    pub fn from_pool(url: &str, e: deadpool_redis::PoolError) -> RedisError {
        let source = match e {
            deadpool_redis::PoolError::Backend(e) => e,
            other => redis::RedisError::from((
                redis::ErrorKind::Io,
                "no connection from the pool",
                other.to_string(),
            )),
        };
        RedisError::from_redis(url, source)
    }

    /// A reply that Redis (or a script) should not have given: a protocol mismatch between
    /// this build and the scripts or data in Redis.
    pub fn unexpected(url: &str, what: String) -> RedisError {
        RedisError::from_redis(
            url,
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "unexpected reply",
                what,
            )),
        )
    }
}

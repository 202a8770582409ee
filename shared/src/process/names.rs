//! The names of Weir's metrics (Prometheus conventions: `weir_` prefix, `_total` for
//! counters, base units in the name).

/// Counter `{definition}`: instances started (coordinator).
pub const INSTANCES_STARTED: &str = "weir_instances_started_total";
/// Counter `{definition}`: instances completed (coordinator).
pub const INSTANCES_COMPLETED: &str = "weir_instances_completed_total";
/// Counter `{definition}`: instances failed (coordinator).
pub const INSTANCES_FAILED: &str = "weir_instances_failed_total";
/// Counter `{definition}`: instances canceled (coordinator).
pub const INSTANCES_CANCELED: &str = "weir_instances_canceled_total";
/// Counter `{handler,queue}`: step attempts dispatched to a queue (coordinator).
pub const STEPS_DISPATCHED: &str = "weir_steps_dispatched_total";
/// Counter `{handler,queue}`: steps that finished successfully (coordinator).
pub const STEPS_SUCCEEDED: &str = "weir_steps_succeeded_total";
/// Counter `{handler,queue}`: steps that failed for good (coordinator).
pub const STEPS_FAILED: &str = "weir_steps_failed_total";
/// Counter `{handler,queue}`: failed attempts that will be retried (coordinator).
pub const STEPS_RETRIED: &str = "weir_steps_retried_total";
/// Counter `{handler,queue}`: attempts that exceeded their timeout (coordinator).
pub const STEPS_TIMED_OUT: &str = "weir_steps_timed_out_total";
/// Counter: inputs applied to instances, i.e. transitions (coordinator).
pub const TRANSITIONS: &str = "weir_transitions_total";
/// Histogram: inputs per committed batch (coordinator).
pub const BATCH_SIZE: &str = "weir_batch_size";
/// Counter: client commands discarded unapplied because their deadline had passed (no
/// coordinator applied them in time; their callers were told nothing changed).
pub const COMMANDS_EXPIRED: &str = "weir_commands_expired_total";
/// Counter: stale results and timers dropped (coordinator).
pub const STALE_RESULTS: &str = "weir_stale_results_total";
/// Gauge: partition leases this coordinator holds.
pub const LEASES_HELD: &str = "weir_leases_held";
/// Gauge `{queue}`: entries in the step streams of this coordinator's partitions.
pub const QUEUE_DEPTH: &str = "weir_queue_depth";
/// Gauge `{stream}`: entries delivered but not acknowledged (`XPENDING`), by stream kind
/// (`queue:NAME`, `commands`, `results`), over this coordinator's partitions.
pub const PENDING: &str = "weir_pending";
/// Gauge: entries in the dead-letter streams of this coordinator's partitions.
pub const DLQ_SIZE: &str = "weir_dlq_size";
/// Counter `{handler,outcome}`: attempts a worker ran (`outcome` = `ok` or `error`).
pub const ATTEMPTS: &str = "weir_attempts_total";
/// Histogram `{handler}`: how long a handler ran (worker).
pub const STEP_DURATION: &str = "weir_step_duration_seconds";
/// Histogram `{handler}`: from dispatch (coordinator's Redis clock) to pickup (worker's
/// clock), a proxy of step-to-step latency.
pub const STEP_TO_STEP_LATENCY: &str = "weir_step_to_step_latency_seconds";
/// Counter: step entries reclaimed from dead or hung workers (worker).
pub const RECLAIMED: &str = "weir_reclaimed_total";
/// Counter: messages moved to a dead-letter stream (coordinator and worker).
pub const DEAD_LETTERED: &str = "weir_dead_lettered_total";
/// Counter: old dead letters dropped by the dead-letter stream's cap (`MAXLEN`) (worker).
/// Any increase means dead letters were lost to a burst: raise the cap or drain the DLQ.
pub const DLQ_TRIMMED: &str = "weir_dlq_trimmed_total";
/// Counter `{reason}`: results a worker did not deliver: `disowned` (its entry had been
/// reclaimed by another worker, whose run decides) or `refused` (Redis kept refusing it;
/// the entry is run again after the visibility timeout).
pub const RESULTS_DROPPED: &str = "weir_results_dropped_total";
/// Counter `{component}`: Redis commands that failed (`component` = `coordinator` or
/// `worker`). Connections reconnect by themselves; a rising rate means Redis is away.
pub const REDIS_ERRORS: &str = "weir_redis_errors_total";
/// Schedule slots that started (or found) an instance.
pub const SCHEDULE_FIRED: &str = "weir_schedule_fired_total";
/// Schedule slots skipped as missed (no coordinator ran at their time).
pub const SCHEDULE_MISSED: &str = "weir_schedule_missed_total";
/// Schedule slots skipped by the overlap rule.
pub const SCHEDULE_SKIPPED: &str = "weir_schedule_skipped_total";

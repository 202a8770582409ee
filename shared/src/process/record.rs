//! Installing the Prometheus recorder, and recording Weir's metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::definition::{CompiledKind, Workflow};
use crate::model::EventKind;
use crate::redis::health::partition_backlog;
use crate::redis::Connections;
use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::names::*;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Buckets of the `_seconds` histograms: 1 ms to 60 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of the batch size histogram.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Installs the Prometheus recorder as the process's global `metrics` recorder, once; later
/// calls return the same handle. Fails when another global recorder was installed first.
pub fn install_recorder() -> Result<PrometheusHandle, String> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), BATCH_BUCKETS))
        .map_err(|e| format!("metrics buckets: {e}"))?;
    let handle = builder
        .install_recorder()
        .map_err(|e| format!("could not install the metrics recorder: {e}"))?;
    describe_all();
    let _ = HANDLE.set(handle.clone());
    INSTALLED.store(true, Ordering::Release);
    Ok(handle)
}

/// Whether a recorder was installed by [`install_recorder`] (recording is skipped before).
fn enabled() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

fn describe_all() {
    describe_counter!(
        INSTANCES_STARTED,
        "Workflow instances started, by definition."
    );
    describe_counter!(
        INSTANCES_COMPLETED,
        "Workflow instances completed, by definition."
    );
    describe_counter!(
        INSTANCES_FAILED,
        "Workflow instances failed, by definition."
    );
    describe_counter!(
        INSTANCES_CANCELED,
        "Workflow instances canceled, by definition."
    );
    describe_counter!(STEPS_DISPATCHED, "Step attempts dispatched to a queue.");
    describe_counter!(STEPS_SUCCEEDED, "Steps that finished successfully.");
    describe_counter!(STEPS_FAILED, "Steps that failed for good.");
    describe_counter!(STEPS_RETRIED, "Failed step attempts scheduled for a retry.");
    describe_counter!(
        STEPS_TIMED_OUT,
        "Step attempts that exceeded their timeout."
    );
    describe_counter!(TRANSITIONS, "Inputs applied to instances (transitions).");
    describe_histogram!(BATCH_SIZE, "Inputs per committed coordinator batch.");
    describe_counter!(STALE_RESULTS, "Stale results and timers dropped.");
    describe_gauge!(LEASES_HELD, "Partition leases this coordinator holds.");
    describe_gauge!(
        QUEUE_DEPTH,
        "Entries in the step streams of this coordinator's partitions."
    );
    describe_gauge!(
        PENDING,
        "Delivered but unacknowledged entries, by stream kind."
    );
    describe_gauge!(
        DLQ_SIZE,
        "Entries in the dead-letter streams of this coordinator's partitions."
    );
    describe_counter!(
        ATTEMPTS,
        "Step attempts a worker ran, by handler and outcome."
    );
    describe_histogram!(STEP_DURATION, ::metrics::Unit::Seconds, "Handler run time.");
    describe_histogram!(
        STEP_TO_STEP_LATENCY,
        ::metrics::Unit::Seconds,
        "From dispatch (coordinator, Redis clock) to pickup by a worker (its clock)."
    );
    describe_counter!(
        RECLAIMED,
        "Step entries reclaimed from dead or hung workers."
    );
    describe_counter!(DEAD_LETTERED, "Messages moved to a dead-letter stream.");
    describe_counter!(
        DLQ_TRIMMED,
        "Old dead letters dropped by the dead-letter stream's cap."
    );
    describe_counter!(
        RESULTS_DROPPED,
        "Results a worker did not deliver, by reason (disowned, refused)."
    );
    describe_counter!(
        COMMANDS_EXPIRED,
        "Client commands discarded unapplied past their deadline."
    );
    describe_counter!(REDIS_ERRORS, "Redis commands that failed.");
    describe_counter!(
        SCHEDULE_FIRED,
        "Schedule slots that started (or found) an instance."
    );
    describe_counter!(
        SCHEDULE_MISSED,
        "Schedule slots skipped as missed (no coordinator ran at their time)."
    );
    describe_counter!(
        SCHEDULE_SKIPPED,
        "Schedule slots skipped by the overlap rule."
    );
}

/// A schedule fired: slots `fired`, `missed` and `skipped` (overlap).
pub fn schedule_fired(fired: u64, missed: u64, skipped: u64) {
    if !enabled() {
        return;
    }
    for (name, n) in [
        (SCHEDULE_FIRED, fired),
        (SCHEDULE_MISSED, missed),
        (SCHEDULE_SKIPPED, skipped),
    ] {
        if n > 0 {
            counter!(name).increment(n);
        }
    }
}

/// How an instance ended (or that it started), for [`Tally`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceOutcome {
    /// A new instance was created.
    Started,
    /// It reached an end step.
    Completed,
    /// It failed: a step failed for good or the engine could not go on.
    Failed,
    /// It was canceled.
    Canceled,
}

#[derive(Debug)]
enum Entry {
    Instance(InstanceOutcome, Arc<str>),
    Step(&'static str, Arc<str>, Arc<str>),
    Count(&'static str),
}

/// What one coordinator batch did, kept until the batch is committed: a batch that fails to
/// commit is read and applied again, and must not be counted twice.
#[derive(Debug, Default)]
pub struct Tally {
    entries: Vec<Entry>,
}

impl Tally {
    /// A client command was discarded unapplied: its deadline had passed.
    pub fn command_expired(&mut self) {
        if enabled() {
            self.entries.push(Entry::Count(COMMANDS_EXPIRED));
        }
    }

    /// A step attempt was dispatched.
    pub fn dispatched(&mut self, handler: &Arc<str>, queue: &Arc<str>) {
        if enabled() {
            self.entries.push(Entry::Step(
                STEPS_DISPATCHED,
                handler.clone(),
                queue.clone(),
            ));
        }
    }

    /// An event was emitted by an instance of `wf` (named `definition`).
    pub fn event(&mut self, wf: &Workflow, definition: &Arc<str>, event: &EventKind) {
        if !enabled() {
            return;
        }
        let (name, step) = match event {
            EventKind::WorkflowStarted { .. } => {
                return self.instance(InstanceOutcome::Started, definition)
            }
            EventKind::WorkflowCompleted => {
                return self.instance(InstanceOutcome::Completed, definition)
            }
            EventKind::WorkflowFailed { .. } => {
                return self.instance(InstanceOutcome::Failed, definition)
            }
            EventKind::WorkflowCanceled { .. } => {
                return self.instance(InstanceOutcome::Canceled, definition)
            }
            EventKind::StepExecuted { step, .. } => (STEPS_SUCCEEDED, step),
            EventKind::StepFailed { step, .. } => (STEPS_FAILED, step),
            EventKind::StepRetrying { step, .. } => (STEPS_RETRIED, step),
            EventKind::StepTimedOut { step, .. } => (STEPS_TIMED_OUT, step),
            _ => return,
        };
        let (handler, queue) = match wf.step_id(step).map(|s| &wf.step(s).kind) {
            Some(CompiledKind::Machine { handler, queue, .. }) => (handler.clone(), queue.clone()),
            _ => (Arc::from(""), Arc::from("")),
        };
        self.entries.push(Entry::Step(name, handler, queue));
    }

    /// An instance started or ended.
    pub fn instance(&mut self, outcome: InstanceOutcome, definition: &Arc<str>) {
        if enabled() {
            self.entries
                .push(Entry::Instance(outcome, definition.clone()));
        }
    }

    /// Records everything tallied (call once the batch is committed) and empties the tally.
    pub fn publish(&mut self) {
        for e in self.entries.drain(..) {
            match e {
                Entry::Instance(outcome, definition) => {
                    let name = match outcome {
                        InstanceOutcome::Started => INSTANCES_STARTED,
                        InstanceOutcome::Completed => INSTANCES_COMPLETED,
                        InstanceOutcome::Failed => INSTANCES_FAILED,
                        InstanceOutcome::Canceled => INSTANCES_CANCELED,
                    };
                    counter!(name, "definition" => definition.to_string()).increment(1);
                }
                Entry::Step(name, handler, queue) => {
                    counter!(name, "handler" => handler.to_string(), "queue" => queue.to_string())
                        .increment(1);
                }
                Entry::Count(name) => counter!(name).increment(1),
            }
        }
    }
}

/// A coordinator committed a batch of `inputs` inputs: `applied` transitions, `stale`
/// inputs dropped, `dead` messages dead-lettered.
pub fn batch_committed(inputs: usize, applied: u64, stale: u64, dead: u64) {
    if !enabled() {
        return;
    }
    histogram!(BATCH_SIZE).record(inputs as f64);
    counter!(TRANSITIONS).increment(applied);
    if stale > 0 {
        counter!(STALE_RESULTS).increment(stale);
    }
    if dead > 0 {
        counter!(DEAD_LETTERED).increment(dead);
    }
}

/// Stale results or timers dropped outside a batch.
pub fn stale_dropped(n: u64) {
    if enabled() {
        counter!(STALE_RESULTS).increment(n);
    }
}

/// Messages dead-lettered (by a worker).
pub fn dead_lettered(n: u64) {
    if enabled() {
        counter!(DEAD_LETTERED).increment(n);
    }
}

/// Old dead letters dropped by the dead-letter stream's cap.
pub fn dead_letters_trimmed(n: u64) {
    if enabled() {
        counter!(DLQ_TRIMMED).increment(n);
    }
}

/// Results not delivered, for `reason` (`disowned` or `refused`).
pub fn results_dropped(reason: &'static str, n: u64) {
    if enabled() {
        counter!(RESULTS_DROPPED, "reason" => reason).increment(n);
    }
}

/// Entries reclaimed from other workers.
pub fn reclaimed(n: u64) {
    if enabled() {
        counter!(RECLAIMED).increment(n);
    }
}

/// A Redis command failed in `component` (`coordinator` or `worker`).
pub fn redis_error(component: &'static str) {
    if enabled() {
        counter!(REDIS_ERRORS, "component" => component).increment(1);
    }
}

/// The number of leases this coordinator holds now.
pub fn leases_held(n: usize) {
    if enabled() {
        gauge!(LEASES_HELD).set(n as f64);
    }
}

/// A worker picked up an attempt of `handler` dispatched at `dispatched_at_ms` (the
/// coordinator's Redis clock) at `now_ms` (its own clock). Clock skew shows up here.
pub fn attempt_picked_up(handler: &str, dispatched_at_ms: i64, now_ms: i64) {
    if enabled() {
        let secs = (now_ms - dispatched_at_ms).max(0) as f64 / 1000.0;
        histogram!(STEP_TO_STEP_LATENCY, "handler" => handler.to_string()).record(secs);
    }
}

/// A worker's handler ran for `took`, successfully or not.
pub fn attempt_finished(handler: &str, took: Duration, ok: bool) {
    if enabled() {
        let handler = handler.to_string();
        histogram!(STEP_DURATION, "handler" => handler.clone()).record(took.as_secs_f64());
        let outcome = if ok { "ok" } else { "error" };
        counter!(ATTEMPTS, "handler" => handler, "outcome" => outcome).increment(1);
    }
}

/// Samples the queue depth, pending counts and dead-letter size of `partitions` (a
/// coordinator's leased partitions) into gauges. Labels seen before but absent now are set
/// to 0. Errors are counted and logged, never returned: sampling is best effort.
pub async fn sample_partitions(conns: Connections, partitions: Vec<u16>) {
    if !enabled() {
        return;
    }
    static SEEN: Mutex<(BTreeSet<String>, BTreeSet<String>)> =
        Mutex::new((BTreeSet::new(), BTreeSet::new()));
    let mut depth: BTreeMap<String, u64> = BTreeMap::new();
    let mut pending: BTreeMap<String, u64> = BTreeMap::new();
    let mut dlq = 0u64;
    let mut conn = conns.conn.clone();
    for p in partitions {
        let backlog = match partition_backlog(&mut conn, &conns.keys.part(p)).await {
            Ok(b) => b,
            Err(e) => {
                redis_error("coordinator");
                tracing::debug!(error = %e, "sampling queues failed");
                return;
            }
        };
        for (queue, stream) in backlog.queues {
            *depth.entry(queue.clone()).or_default() += stream.len;
            *pending.entry(format!("queue:{queue}")).or_default() += stream.pending;
        }
        *pending.entry("commands".into()).or_default() += backlog.commands.pending;
        *pending.entry("results".into()).or_default() += backlog.results.pending;
        dlq += backlog.dead_letters;
    }
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    for q in seen.0.iter() {
        depth.entry(q.clone()).or_default();
    }
    for s in seen.1.iter() {
        pending.entry(s.clone()).or_default();
    }
    for (q, n) in depth {
        gauge!(QUEUE_DEPTH, "queue" => q.clone()).set(n as f64);
        seen.0.insert(q);
    }
    for (s, n) in pending {
        gauge!(PENDING, "stream" => s.clone()).set(n as f64);
        seen.1.insert(s);
    }
    gauge!(DLQ_SIZE).set(dlq as f64);
}

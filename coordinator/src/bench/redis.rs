//! The distributed benchmark: one coordinator and two workers against a Redis of this
//! machine, measured in one run (`weir bench redis`):
//! - steps per second for 1,000 instances of a 10-step linear workflow of `noop` steps,
//!   and for a 1 -> 8 -> 1 fan-out/join;
//! - p50/p99 latency from a step's end to the next step's start, at half that load;
//! - Redis memory per running and per finished instance;
//! - start throughput from one client process, with no coordinator (a start is one script
//!   call that stores it, pending): single starts by 64 concurrent callers, and batched
//!   starts (batches of 100, each one script call: the client draws a batch's ids in one
//!   partition);
//! - retention: with a retention of zero, whether the coordinator deletes finished
//!   instances as fast as they complete (deleted per second, the largest backlog, the lag
//!   after the last completion; namespace `weir-bench-retention`);
//! - beside them, the raw `redis-benchmark` figure of pipelined XADD on the same server.
//!
//! The linear figure is end to end: 32 producers start the 10-step chains while the
//! coordinator and workers drain them, and the clock stops when the last one completed.
//!
//! By default it starts its own `redis-server` on a free loopback port (no persistence), so
//! it measures the engine, not a shared server's load. With `--redis URL` it uses the
//! namespaces `weir-bench` and `weir-bench-starts` there, and removes their keys before and
//! after with `SCAN` + `UNLINK` (never `KEYS`, which would block a shared server).

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use weir::model::{Definition, HumanStep, InstanceStatus, StepDef};
use weir::redis::{server, RedisConfig, WeirClient};
use weir::Engine;
use weir::{StartOptions, Step, StepContext, StepError};

use super::engines::Engines;
use super::report::percentile;
use super::workloads;
use crate::service::CoordinatorConfig;

/// What to run.
#[derive(Debug, Clone)]
pub struct RedisBenchOptions {
    /// An existing Redis to use (its namespace `weir-bench` is wiped first); `None` starts a
    /// private `redis-server`.
    pub url: Option<String>,
    /// Instances per throughput workload.
    pub instances: usize,
    /// How long the latency phase runs.
    pub latency_seconds: f64,
    /// Workers' concurrency each.
    pub concurrency: usize,
    /// Single starts in the start-throughput phase.
    pub single_starts: usize,
    /// Starts in the batched phase (in batches of [`START_BATCH`]).
    pub batched_starts: usize,
    /// Instances of the retention phase (a 2-step chain each, deleted as they finish).
    pub retention_instances: usize,
}

/// Concurrent callers of the single-start phase.
pub const START_CALLERS: usize = 64;
/// Starts per batch in the batched phase.
pub const START_BATCH: usize = 100;
/// Concurrent batch callers in the batched phase.
pub const BATCH_CALLERS: usize = 8;

impl RedisBenchOptions {
    /// The full run the README reports.
    pub fn full() -> RedisBenchOptions {
        RedisBenchOptions {
            url: None,
            instances: 1000,
            latency_seconds: 5.0,
            concurrency: 64,
            single_starts: 60_000,
            batched_starts: 200_000,
            retention_instances: 20_000,
        }
    }

    /// A quick run for CI: the same code paths, small numbers.
    pub fn smoke() -> RedisBenchOptions {
        RedisBenchOptions {
            url: None,
            instances: 40,
            latency_seconds: 0.5,
            concurrency: 16,
            single_starts: 640,
            batched_starts: 1_000,
            retention_instances: 500,
        }
    }
}

/// The figures of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RedisBenchReport {
    /// Machine description.
    pub machine: String,
    /// Redis version.
    pub redis_version: String,
    /// Linear workload, end to end (producers start the chains while workers drain them):
    /// steps per second, starts included.
    pub linear_steps_per_second: f64,
    /// Single starts per second (64 concurrent callers, one client process, no
    /// coordinator: each start is one script call).
    pub single_starts_per_second: f64,
    /// Batched starts per second (batches of 100 by 8 concurrent callers).
    pub batched_starts_per_second: f64,
    /// Redis server CPU time per single start, microseconds.
    pub redis_cpu_us_per_single_start: f64,
    /// Redis server CPU time per batched start, microseconds.
    pub redis_cpu_us_per_batched_start: f64,
    /// Fan-out workload: steps per second.
    pub fanout_steps_per_second: f64,
    /// Latency phase: instances started per second.
    pub latency_load_steps_per_second: f64,
    /// Step end to next step start, median.
    pub latency_p50_ms: f64,
    /// Step end to next step start, 99th percentile.
    pub latency_p99_ms: f64,
    /// Samples behind the percentiles.
    pub latency_samples: usize,
    /// Redis memory per finished 10-step instance (instance, history, indexes), bytes.
    pub bytes_per_finished_instance: f64,
    /// Redis memory per running instance (waiting on a task), bytes.
    pub bytes_per_running_instance: f64,
    /// The capped event streams' memory at the end, bytes (a fixed ceiling, not per instance).
    pub event_stream_bytes: u64,
    /// `redis-benchmark` pipelined XADD on the same server, requests per second.
    pub redis_benchmark_xadd_per_second: Option<f64>,
    /// Linear workload: Redis server CPU time per step, microseconds (`INFO cpu`). With the
    /// next figure, where the two cores go, independent of other load on the machine.
    pub linear_redis_cpu_us_per_step: f64,
    /// Linear workload: this process's CPU time (coordinator, workers and the client
    /// starting instances) per step, microseconds.
    pub linear_engine_cpu_us_per_step: f64,
    /// Retention phase: what it measured (see [`RetentionFigures`]).
    pub retention: RetentionFigures,
}

/// The retention phase: a coordinator with a retention of zero (every finished instance is
/// due for deletion at once) while instances are started in batches and completed as fast
/// as the engine goes; retention must delete them as fast as they finish.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RetentionFigures {
    /// Instances started (and, by the end, deleted).
    pub instances: u64,
    /// Completions per second: instances over the time until none was left unfinished.
    pub completed_per_second: f64,
    /// Deletions per second: instances over the time until none was left at all.
    pub deleted_per_second: f64,
    /// The most finished instances seen waiting for deletion at once (sampled every 50 ms).
    pub max_backlog: u64,
    /// How long after the last completion the last deletion came, seconds.
    pub lag_seconds: f64,
    /// Retention kept up: the backlog never grew past about what one second of completions
    /// makes (a generous bound: sweeps follow completions every 100 ms, see
    /// `service::retention`), and it was empty within 2 s of the last completion.
    pub kept_up: bool,
}

impl std::fmt::Display for RedisBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "machine:                          {}", self.machine)?;
        writeln!(
            f,
            "redis:                            {}",
            self.redis_version
        )?;
        writeln!(
            f,
            "linear 10 x noop, starts included: {:>9.0} steps/s",
            self.linear_steps_per_second
        )?;
        writeln!(
            f,
            "single starts (64 callers):       {:>10.0} starts/s (redis {:.1} us each)",
            self.single_starts_per_second, self.redis_cpu_us_per_single_start
        )?;
        writeln!(
            f,
            "batched starts (100 a batch):     {:>10.0} starts/s (redis {:.1} us each)",
            self.batched_starts_per_second, self.redis_cpu_us_per_batched_start
        )?;
        writeln!(
            f,
            "fan-out 1 -> 8 -> 1:              {:>10.0} steps/s",
            self.fanout_steps_per_second
        )?;
        writeln!(
            f,
            "step-to-step latency at {:.0} steps/s: p50 {:.2} ms, p99 {:.2} ms ({} samples)",
            self.latency_load_steps_per_second,
            self.latency_p50_ms,
            self.latency_p99_ms,
            self.latency_samples
        )?;
        writeln!(
            f,
            "memory per finished instance:     {:>10.0} bytes",
            self.bytes_per_finished_instance
        )?;
        writeln!(
            f,
            "memory per running instance:      {:>10.0} bytes",
            self.bytes_per_running_instance
        )?;
        writeln!(
            f,
            "event streams (capped):           {:>10} bytes",
            self.event_stream_bytes
        )?;
        writeln!(
            f,
            "linear CPU per step:              redis {:.1} us, coordinator+workers+client {:.1} us",
            self.linear_redis_cpu_us_per_step, self.linear_engine_cpu_us_per_step
        )?;
        let r = &self.retention;
        writeln!(
            f,
            "retention (retention 0):          {:>10.0} deleted/s, {:.0} completed/s, backlog at most {}, last deletion {:.2} s after the last completion: {}",
            r.deleted_per_second,
            r.completed_per_second,
            r.max_backlog,
            r.lag_seconds,
            if r.kept_up { "kept up" } else { "FELL BEHIND" }
        )?;
        match self.redis_benchmark_xadd_per_second {
            Some(x) => writeln!(f, "redis-benchmark XADD -P 100:      {x:>10.0} requests/s"),
            None => writeln!(f, "redis-benchmark XADD:             not available"),
        }
    }
}

/// Records when each step of each instance started and ended (the latency probe).
#[derive(Default)]
struct Probe {
    marks: Mutex<HashMap<(String, String), (Instant, Instant)>>,
    on: std::sync::atomic::AtomicBool,
}

struct ProbeStep(Arc<Probe>);

#[async_trait]
impl Step for ProbeStep {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        if self.0.on.load(std::sync::atomic::Ordering::Relaxed) {
            let now = Instant::now();
            let key = (ctx.instance_id().to_string(), ctx.step().to_string());
            self.0
                .marks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, (now, Instant::now()));
        }
        Ok(())
    }
}

/// A private redis-server, killed on drop.
pub(super) struct OwnServer {
    child: Child,
    /// Its loopback port.
    pub(super) port: u16,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop.
    pub(super) struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OwnServer {
    /// Its URL.
    pub(super) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// A free loopback port (bound, then released).
pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts a private redis-server on a free loopback port, with no persistence and `extra`
/// arguments (`--name value` pairs), and waits until it answers.
pub(super) fn start_server(extra: &[String]) -> anyhow::Result<OwnServer> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("weir-bench-{port}"));
    std::fs::create_dir_all(&dir)?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start redis-server ({e}): install it (apt-get install redis-server) or pass --redis URL"))?;
    let server = OwnServer {
        child,
        port,
        _dir: tempdir::Dir(dir),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if server::answers_ping(&server.url()) {
            return Ok(server);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "redis-server on port {port} did not answer"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Redis memory in use, summed over the masters (one on a single server).
async fn used_memory(client: &WeirClient) -> anyhow::Result<u64> {
    let mut total = 0;
    for (node, info) in server::info_per_master(&client.connections().conn, "memory").await? {
        total += server::info_field(&info, "used_memory")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| anyhow::anyhow!("INFO memory of {node} has no used_memory"))?;
    }
    Ok(total)
}

/// Each master's CPU time so far (user + system), seconds, by address (one entry on a
/// single server).
pub(super) async fn redis_cpu_per_master(
    client: &WeirClient,
) -> anyhow::Result<Vec<(String, f64)>> {
    let infos = server::info_per_master(&client.connections().conn, "cpu").await?;
    Ok(infos
        .into_iter()
        .map(|(node, info)| {
            let field = |name: &str| {
                server::info_field(&info, name)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            (node, field("used_cpu_user") + field("used_cpu_sys"))
        })
        .collect())
}

/// The Redis servers' CPU time so far (user + system, summed over the masters), seconds.
pub(super) async fn redis_cpu(client: &WeirClient) -> anyhow::Result<f64> {
    Ok(redis_cpu_per_master(client)
        .await?
        .iter()
        .map(|(_, cpu)| cpu)
        .sum())
}

/// This process's CPU time so far (user + system), seconds; 0 where `/proc` is missing.
pub(super) fn own_cpu() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second on Linux); the
    // command name (field 2) may hold spaces, so count from its closing parenthesis.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

async fn count_status(client: &WeirClient, status: InstanceStatus) -> anyhow::Result<u64> {
    let c = client.connections();
    Ok(server::count_with_status(&mut c.conn.clone(), &c.keys, status).await?)
}

/// Starts `n` instances with `parallel` concurrent starters; returns their ids.
pub(super) async fn start_many(
    client: &WeirClient,
    name: &str,
    n: usize,
    parallel: usize,
) -> anyhow::Result<Vec<String>> {
    let mut tasks = Vec::new();
    let per = n.div_ceil(parallel.max(1));
    for t in 0..parallel.max(1) {
        let client = client.clone();
        let name = name.to_string();
        let count = per.min(n.saturating_sub(t * per));
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                ids.push(
                    client
                        .start_workflow(&name, StartOptions::default())
                        .await?
                        .id,
                );
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for t in tasks {
        ids.extend(t.await??);
    }
    Ok(ids)
}

/// Starts `n` instances in batches of `batch` with `callers` concurrent batch callers.
async fn start_batches(
    client: &WeirClient,
    name: &str,
    n: usize,
    batch: usize,
    callers: usize,
) -> anyhow::Result<()> {
    let batches = n.div_ceil(batch.max(1));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..callers.max(1) {
        let (client, name, next) = (client.clone(), name.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if b >= batches {
                    return anyhow::Ok(());
                }
                let size = batch.min(n - b * batch);
                let starts = vec![StartOptions::default(); size];
                for r in client.start_workflows(&name, starts).await? {
                    r?;
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// The start phases' figures (see [`start_throughput`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StartFigures {
    /// Single starts per second ([`START_CALLERS`] concurrent callers).
    pub single_per_second: f64,
    /// Batched starts per second (batches of [`START_BATCH`] by [`BATCH_CALLERS`] callers).
    pub batched_per_second: f64,
    /// Redis server CPU time per single start, microseconds (`INFO cpu`).
    pub redis_cpu_us_per_single_start: f64,
    /// Redis server CPU time per batched start, microseconds (`INFO cpu`).
    pub redis_cpu_us_per_batched_start: f64,
    /// This process's CPU time per batched start (the client), microseconds.
    pub client_cpu_us_per_batched_start: f64,
    /// The batched phase's Redis commands by `INFO commandstats` (summed over the masters):
    /// per command, calls and microseconds per start. The `evalsha` line is the whole of
    /// `start.lua`, the others are the commands it runs (inside that time).
    pub batched_commands: Vec<CommandCost>,
}

/// One command's share of a phase, from `INFO commandstats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CommandCost {
    /// The command (lower case, as `INFO` names it).
    pub command: String,
    /// Calls per start.
    pub calls_per_start: f64,
    /// Microseconds of Redis time per start.
    pub us_per_start: f64,
}

impl std::fmt::Display for StartFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "single starts (64 callers):       {:>10.0} starts/s (redis {:.1} us each)",
            self.single_per_second, self.redis_cpu_us_per_single_start
        )?;
        writeln!(
            f,
            "batched starts (100 a batch):     {:>10.0} starts/s (redis {:.1} us each, client {:.1} us each)",
            self.batched_per_second,
            self.redis_cpu_us_per_batched_start,
            self.client_cpu_us_per_batched_start
        )?;
        for c in &self.batched_commands {
            writeln!(
                f,
                "  batched, INFO commandstats {:<8} {:>6.2} calls, {:>5.2} us per start",
                c.command, c.calls_per_start, c.us_per_start
            )?;
        }
        Ok(())
    }
}

/// Each command's (calls, usec) so far by `INFO commandstats`, summed over the masters.
pub(super) async fn command_stats(
    client: &WeirClient,
) -> anyhow::Result<HashMap<String, (u64, u64)>> {
    let mut stats: HashMap<String, (u64, u64)> = HashMap::new();
    for (_, info) in server::info_per_master(&client.connections().conn, "commandstats").await? {
        for line in info.lines() {
            // cmdstat_zadd:calls=359913,usec=584601,usec_per_call=1.62,...
            let Some((name, rest)) = line.trim().split_once(':') else {
                continue;
            };
            let Some(command) = name.strip_prefix("cmdstat_") else {
                continue;
            };
            let field = |key: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let entry = stats.entry(command.to_string()).or_default();
            entry.0 += field("calls");
            entry.1 += field("usec");
        }
    }
    Ok(stats)
}

/// The commands that ran between two [`command_stats`], per start, `evalsha` first, then by
/// time.
pub(super) fn command_costs(
    before: &HashMap<String, (u64, u64)>,
    after: &HashMap<String, (u64, u64)>,
    starts: usize,
) -> Vec<CommandCost> {
    let per = starts.max(1) as f64;
    let mut costs: Vec<CommandCost> = after
        .iter()
        // `info` is the benchmark's own reading of these figures.
        .filter(|(command, _)| command.as_str() != "info")
        .filter_map(|(command, &(calls, usec))| {
            let (c0, u0) = before.get(command).copied().unwrap_or_default();
            let calls = calls.saturating_sub(c0);
            (calls > 0).then(|| CommandCost {
                command: command.clone(),
                calls_per_start: calls as f64 / per,
                us_per_start: usec.saturating_sub(u0) as f64 / per,
            })
        })
        .filter(|c| c.calls_per_start >= 0.001)
        .collect();
    costs.sort_by(|a, b| {
        (b.command == "evalsha")
            .cmp(&(a.command == "evalsha"))
            .then(b.us_per_start.total_cmp(&a.us_per_start))
    });
    costs
}

/// Start throughput with no coordinator, in its own namespace (wiped after): single starts
/// by [`START_CALLERS`] callers, then batched ones.
async fn start_throughput(url: &str, opts: &RedisBenchOptions) -> anyhow::Result<StartFigures> {
    let ns = "weir-bench-starts";
    let client = WeirClient::connect(&RedisConfig::new(url, ns)).await?;
    let def = workloads::linear(10);
    client.register_definition(def.clone()).await?;
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;

    let cpu = redis_cpu(&client).await?;
    let t = Instant::now();
    start_many(&client, &def.name, opts.single_starts, START_CALLERS).await?;
    let single = opts.single_starts as f64 / t.elapsed().as_secs_f64();
    let single_cpu = (redis_cpu(&client).await? - cpu) * 1e6 / opts.single_starts as f64;
    let pending = count_status(&client, InstanceStatus::Pending).await?;
    anyhow::ensure!(
        pending == opts.single_starts as u64,
        "{pending} pending instances after {} single starts",
        opts.single_starts
    );
    server::wipe_namespace(&mut conn, ns).await?;

    client.register_definition(def.clone()).await?;
    let stats = command_stats(&client).await?;
    let (cpu, own) = (redis_cpu(&client).await?, own_cpu());
    let t = Instant::now();
    start_batches(
        &client,
        &def.name,
        opts.batched_starts,
        START_BATCH,
        BATCH_CALLERS,
    )
    .await?;
    let batched = opts.batched_starts as f64 / t.elapsed().as_secs_f64();
    let batched_cpu = (redis_cpu(&client).await? - cpu) * 1e6 / opts.batched_starts as f64;
    let client_cpu = (own_cpu() - own) * 1e6 / opts.batched_starts as f64;
    let batched_commands =
        command_costs(&stats, &command_stats(&client).await?, opts.batched_starts);
    let pending = count_status(&client, InstanceStatus::Pending).await?;
    anyhow::ensure!(
        pending == opts.batched_starts as u64,
        "{pending} pending instances after {} batched starts",
        opts.batched_starts
    );
    server::wipe_namespace(&mut conn, ns).await?;
    Ok(StartFigures {
        single_per_second: single,
        batched_per_second: batched,
        redis_cpu_us_per_single_start: single_cpu,
        redis_cpu_us_per_batched_start: batched_cpu,
        client_cpu_us_per_batched_start: client_cpu,
        batched_commands,
    })
}

pub(super) async fn wait_completed(
    client: &WeirClient,
    target: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let done = count_status(client, InstanceStatus::Completed).await?;
        if done >= target {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {done} of {target} instances completed in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The retention phase (see [`RetentionFigures`]), in its own namespace with its own
/// coordinator (retention zero) and two workers.
async fn retention_phase(url: &str, opts: &RedisBenchOptions) -> anyhow::Result<RetentionFigures> {
    let ns = "weir-bench-retention";
    let config = RedisConfig::new(url, ns);
    let mut cc = CoordinatorConfig::new(config.clone());
    cc.retention = Duration::ZERO;
    let engines =
        Engines::start(cc, &config, opts.concurrency, weir_worker::builtin_handlers).await?;
    let client = WeirClient::connect(&config).await?;
    let def = workloads::linear(2);
    client.register_definition(def.clone()).await?;
    let n = opts.retention_instances as u64;
    let t = Instant::now();
    let starter = {
        let (client, name) = (client.clone(), def.name.clone());
        let n = opts.retention_instances;
        tokio::spawn(async move { start_batches(&client, &name, n, START_BATCH, 2).await })
    };
    let (mut completed_at, mut deleted_at, mut max_backlog) = (None, None, 0u64);
    let deadline = t + Duration::from_secs(120);
    let mut conn = client.connections().conn.clone();
    let keys = client.connections().keys.clone();
    while deleted_at.is_none() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "retention phase: not every instance was deleted within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = starter.is_finished();
        let left = server::count_instances(&mut conn, &keys).await?;
        let backlog = count_status(&client, InstanceStatus::Completed).await?;
        max_backlog = max_backlog.max(backlog);
        if started && completed_at.is_none() && left == backlog {
            completed_at = Some(t.elapsed());
        }
        if started && left == 0 {
            deleted_at = Some(t.elapsed());
        }
    }
    starter.await??;
    engines.stop().await;
    let mut wipe = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    server::wipe_namespace(&mut wipe, ns).await?;
    let deleted_at = deleted_at.unwrap_or_default();
    let completed_at = completed_at.unwrap_or(deleted_at);
    let completed_per_second = n as f64 / completed_at.as_secs_f64().max(1e-3);
    let lag = deleted_at.saturating_sub(completed_at);
    Ok(RetentionFigures {
        instances: n,
        completed_per_second,
        deleted_per_second: n as f64 / deleted_at.as_secs_f64().max(1e-3),
        max_backlog,
        lag_seconds: lag.as_secs_f64(),
        kept_up: lag <= Duration::from_secs(2)
            && (max_backlog as f64) <= completed_per_second * 1.5 + START_BATCH as f64,
    })
}

/// The Redis to run against: the one given, or a private `redis-server` (returned, so that
/// it lives as long as the run).
fn bench_redis(opts: &RedisBenchOptions) -> anyhow::Result<(Option<OwnServer>, String)> {
    Ok(match &opts.url {
        Some(u) => (None, u.clone()),
        None => {
            let own = start_server(&[])?;
            let url = own.url();
            (Some(own), url)
        }
    })
}

/// A phase of the benchmark that can run alone (`weir bench redis --only PHASE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Start throughput: single and batched starts, no coordinator.
    Starts,
    /// Retention: deletions keep up with completions.
    Retention,
}

impl std::str::FromStr for Phase {
    type Err = String;

    fn from_str(s: &str) -> Result<Phase, String> {
        match s {
            "starts" => Ok(Phase::Starts),
            "retention" => Ok(Phase::Retention),
            other => Err(format!(
                "no benchmark phase {other:?}: write starts or retention"
            )),
        }
    }
}

/// What a phase run alone measured.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseReport {
    /// [`Phase::Starts`].
    Starts(StartFigures),
    /// [`Phase::Retention`].
    Retention(RetentionFigures),
}

impl std::fmt::Display for PhaseReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "machine:                          {}",
            super::report::machine()
        )?;
        match self {
            PhaseReport::Starts(s) => write!(f, "{s}"),
            PhaseReport::Retention(r) => writeln!(
                f,
                "retention (retention 0):          {:>10.0} deleted/s, {:.0} completed/s, backlog at most {}, last deletion {:.2} s after the last completion: {}",
                r.deleted_per_second,
                r.completed_per_second,
                r.max_backlog,
                r.lag_seconds,
                if r.kept_up { "kept up" } else { "FELL BEHIND" }
            ),
        }
    }
}

/// Runs one phase of the benchmark alone, with the same numbers as in the whole run.
pub async fn run_phase(opts: RedisBenchOptions, phase: Phase) -> anyhow::Result<PhaseReport> {
    let (_own, url) = bench_redis(&opts)?;
    let mut wipe_conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    Ok(match phase {
        Phase::Starts => {
            server::wipe_namespace(&mut wipe_conn, "weir-bench-starts").await?;
            PhaseReport::Starts(start_throughput(&url, &opts).await?)
        }
        Phase::Retention => {
            server::wipe_namespace(&mut wipe_conn, "weir-bench-retention").await?;
            PhaseReport::Retention(retention_phase(&url, &opts).await?)
        }
    })
}

/// Runs the benchmark.
pub async fn run(opts: RedisBenchOptions) -> anyhow::Result<RedisBenchReport> {
    let (own, url) = bench_redis(&opts)?;
    let ns = "weir-bench";
    let config = RedisConfig::new(&url, ns);
    // Fresh namespaces each run.
    let mut wipe_conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    server::wipe_namespace(&mut wipe_conn, ns).await?;
    server::wipe_namespace(&mut wipe_conn, "weir-bench-starts").await?;

    // Start throughput first, with no coordinator running (and none of its CPU use).
    let starts = start_throughput(&url, &opts).await?;

    let probe = Arc::new(Probe::default());
    let engines = Engines::builtin_and(
        &config,
        opts.concurrency,
        "probe",
        Arc::new(ProbeStep(probe.clone())),
    )
    .await?;
    let client = WeirClient::connect(&config).await?;
    let server_info = server::info(&mut client.connections().conn.clone(), "server").await?;
    let redis_version = server::info_field(&server_info, "redis_version")
        .unwrap_or("?")
        .to_string();

    let linear = workloads::linear(10);
    let fanout = workloads::fan_out(8);
    client.register_definition(linear.clone()).await?;
    client.register_definition(fanout.clone()).await?;
    let mut probe_def = workloads::linear(10);
    probe_def.name = "bench_probe".into();
    for step in probe_def.steps.values_mut() {
        if let StepDef::Machine(m) = step {
            m.handler = "probe".into();
        }
    }
    client.register_definition(probe_def.clone()).await?;
    let mut waiting_def: Definition = workloads::linear(9);
    waiting_def.name = "bench_waiting".into();
    waiting_def.steps.insert(
        "s9".into(),
        StepDef::Human(HumanStep {
            title: Some("approve".into()),
            description: None,
            assignee: Some("bench".into()),
            candidates: vec![],
            candidate_groups: vec![],
            assignee_expr: None,
            candidates_expr: None,
            form: None,
            due: None,
            ..HumanStep::default()
        }),
    );
    waiting_def.edges.push(weir::model::EdgeDef {
        from: "s8".into(),
        to: "s9".into(),
        condition: None,
        default: false,
        on: Default::default(),
    });
    client.register_definition(waiting_def.clone()).await?;

    let parallel = 32;
    let timeout = Duration::from_secs(120);
    let mem_before = used_memory(&client).await?;

    // Throughput: linear.
    let (redis_cpu_before, own_cpu_before) = (redis_cpu(&client).await?, own_cpu());
    let t = Instant::now();
    start_many(&client, &linear.name, opts.instances, parallel).await?;
    wait_completed(&client, opts.instances as u64, timeout).await?;
    let linear_sps = (opts.instances * 10) as f64 / t.elapsed().as_secs_f64();
    let linear_steps = (opts.instances * 10) as f64;
    let linear_redis_cpu_us_per_step =
        (redis_cpu(&client).await? - redis_cpu_before) * 1e6 / linear_steps;
    let linear_engine_cpu_us_per_step = (own_cpu() - own_cpu_before) * 1e6 / linear_steps;
    let mem_after_linear = used_memory(&client).await?;

    // Throughput: fan-out.
    let t = Instant::now();
    start_many(&client, &fanout.name, opts.instances, parallel).await?;
    wait_completed(&client, 2 * opts.instances as u64, timeout).await?;
    let fanout_sps = (opts.instances * 10) as f64 / t.elapsed().as_secs_f64();

    // Memory per finished instance: the linear phase's growth, less the event streams.
    let event_streams: Vec<String> = client
        .connections()
        .keys
        .all_parts()
        .map(|part| part.events())
        .collect();
    let event_bytes =
        server::memory_usage(&mut client.connections().conn.clone(), &event_streams).await?;
    let event_stream_bytes: u64 = event_bytes.iter().flatten().sum();
    // The event streams grew during both phases; charge the linear phase half of them.
    let finished_bytes = (mem_after_linear.saturating_sub(mem_before) as f64
        - event_stream_bytes as f64 / 2.0)
        / opts.instances as f64;

    // Memory per running instance: instances waiting on a task.
    let running_n = opts.instances.min(500);
    let before = used_memory(&client).await?;
    let ids = start_many(&client, &waiting_def.name, running_n, parallel).await?;
    let deadline = Instant::now() + timeout;
    while count_status(&client, InstanceStatus::Waiting).await? < running_n as u64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "instances did not reach their task in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = used_memory(&client).await?;
    let running_bytes = after.saturating_sub(before) as f64 / ids.len().max(1) as f64;

    // Latency at half the linear throughput: steady starts, probe on.
    probe.on.store(true, std::sync::atomic::Ordering::Relaxed);
    let load = linear_sps / 2.0;
    let per_second = (load / 10.0).max(1.0);
    let total = ((per_second * opts.latency_seconds).ceil() as usize).max(1);
    let gap = Duration::from_secs_f64(1.0 / per_second);
    let t = Instant::now();
    let done_before = count_status(&client, InstanceStatus::Completed).await?;
    let mut starters = Vec::new();
    for i in 0..total {
        let due = t + gap * i as u32;
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let client = client.clone();
        starters.push(tokio::spawn(async move {
            client
                .start_workflow("bench_probe", StartOptions::default())
                .await
                .map(|v| v.id)
        }));
    }
    let mut probe_ids = Vec::new();
    for s in starters {
        probe_ids.push(s.await??);
    }
    wait_completed(&client, done_before + total as u64, timeout).await?;
    let marks = probe
        .marks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut samples = Vec::new();
    for id in &probe_ids {
        for k in 0..9 {
            let prev = marks.get(&(id.clone(), format!("s{k}")));
            let next = marks.get(&(id.clone(), format!("s{}", k + 1)));
            if let (Some((_, end)), Some((start, _))) = (prev, next) {
                samples.push(start.saturating_duration_since(*end));
            }
        }
    }
    samples.sort();

    engines.stop().await;
    // Retention last, with the main coordinator and workers stopped.
    let retention = retention_phase(&url, &opts).await?;
    let xadd = own.as_ref().and_then(|s| redis_benchmark_xadd(s.port));
    if own.is_none() {
        server::wipe_namespace(&mut wipe_conn, ns).await?;
    }
    Ok(RedisBenchReport {
        machine: super::report::machine(),
        redis_version,
        linear_steps_per_second: linear_sps,
        single_starts_per_second: starts.single_per_second,
        batched_starts_per_second: starts.batched_per_second,
        redis_cpu_us_per_single_start: starts.redis_cpu_us_per_single_start,
        redis_cpu_us_per_batched_start: starts.redis_cpu_us_per_batched_start,
        fanout_steps_per_second: fanout_sps,
        latency_load_steps_per_second: per_second * 10.0,
        latency_p50_ms: percentile(&samples, 50.0).as_secs_f64() * 1000.0,
        latency_p99_ms: percentile(&samples, 99.0).as_secs_f64() * 1000.0,
        latency_samples: samples.len(),
        bytes_per_finished_instance: finished_bytes,
        bytes_per_running_instance: running_bytes,
        event_stream_bytes,
        redis_benchmark_xadd_per_second: xadd,
        linear_redis_cpu_us_per_step,
        linear_engine_cpu_us_per_step,
        retention,
    })
}

/// `redis-benchmark` pipelined XADD against the same server, if the tool is installed.
fn redis_benchmark_xadd(port: u16) -> Option<f64> {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-n",
            "200000",
            "-P",
            "100",
            "-q",
        ])
        .args([
            "XADD",
            "weir-bench-xadd",
            "MAXLEN",
            "~",
            "10000",
            "*",
            "m",
            "payload-of-some-bytes",
        ])
        .output()
        .ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // "XADD ...: 312500.00 requests per second, p50=..." (the last report line)
    text.rsplit('\r').chain(text.lines()).find_map(|l| {
        let (_, rest) = l.split_once(": ")?;
        rest.split_whitespace().next()?.parse::<f64>().ok()
    })
}

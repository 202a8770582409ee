//! Correlated message delivery on Redis (`weir bench redis --messages`, also part of the
//! default `weir bench redis` run): one coordinator and two workers of this process, many
//! instances each waiting on an event step with a key of its own, messages sent by
//! concurrent senders through [`Engine::send_message`].
//!
//! - **Throughput**: `instances` instances wait (each on its own key); [`SENDERS`] senders
//!   send one message per key as fast as they can; the clock runs from the first send
//!   until every instance completed (its step after the event step ran). Messages per
//!   second, end to end.
//! - **Latency**, send to next step: the time from just before `send_message` to the start
//!   of the step after the event step on a worker (a probe handler of this process, so both
//!   ends read one clock), p50 and p99, at full rate (the throughput phase) and at half that
//!   rate (messages sent at a steady pace to instances already waiting, for
//!   `latency_seconds`).
//!
//! - **Costs** of each phase, per message, measured around it (not inside the timed
//!   part): the Redis server's CPU time (`INFO cpu`), this process's CPU time (the
//!   coordinator, both workers and the senders share it), and the Redis commands run
//!   (`INFO commandstats`: calls and microseconds per message; `evalsha` is every script,
//!   the other lines include the commands scripts ran). Also, at half rate, how long
//!   `send_message` took to answer (the sender's share of the latency).
//!
//! Every message must be received: the phase fails if an instance does not complete.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use weir::model::{InstanceStatus, MessageOutcome, SendMessage};
use weir::redis::{server, RedisConfig, WeirClient};
use weir::{Engine, StartOptions, Step, StepContext, StepError};

use super::engines::Engines;
use super::redis::{command_costs, command_stats, own_cpu, redis_cpu, start_server, CommandCost};
use super::report::percentile;

/// The namespace of the phase (wiped before and after).
pub const NAMESPACE: &str = "weir-bench-messages";
/// Concurrent senders in the throughput phase.
pub const SENDERS: usize = 32;
/// The message name the bench's event step waits on.
const EVENT: &str = "bench_paid";
/// Starts per batch while instances are set up.
const START_BATCH: usize = 500;

/// What to run.
#[derive(Debug, Clone)]
pub struct MessageBenchOptions {
    /// An existing Redis (its namespace [`NAMESPACE`] is wiped first); `None` starts a
    /// private `redis-server`.
    pub url: Option<String>,
    /// Instances (and messages) of the throughput phase.
    pub instances: usize,
    /// How long the half-rate latency phase sends.
    pub latency_seconds: f64,
    /// Workers' concurrency each.
    pub concurrency: usize,
}

impl MessageBenchOptions {
    /// The full run the README reports.
    pub fn full() -> MessageBenchOptions {
        MessageBenchOptions {
            url: None,
            instances: 10_000,
            latency_seconds: 5.0,
            concurrency: 64,
        }
    }

    /// A quick run for CI: the same code paths, small numbers.
    pub fn smoke() -> MessageBenchOptions {
        MessageBenchOptions {
            url: None,
            instances: 200,
            latency_seconds: 0.5,
            concurrency: 16,
        }
    }
}

/// The figures of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MessageBenchReport {
    /// Messages (one per waiting instance) of the throughput phase.
    pub messages: usize,
    /// Throughput: messages per second from the first send until every instance completed.
    pub messages_per_second: f64,
    /// Of the throughput phase's sends: how many answered `delivered` (the others `kept`:
    /// the instance's wait had not reached the correlation table yet; it received it then).
    pub delivered: usize,
    /// Send to next step, at full rate, median, ms.
    pub full_p50_ms: f64,
    /// Send to next step, at full rate, 99th percentile, ms.
    pub full_p99_ms: f64,
    /// The half-rate phase's pace, messages per second.
    pub half_rate: f64,
    /// Send to next step, at half rate, median, ms.
    pub half_p50_ms: f64,
    /// Send to next step, at half rate, 99th percentile, ms.
    pub half_p99_ms: f64,
    /// Samples of the half-rate phase.
    pub half_samples: usize,
    /// At half rate, how long `send_message` took to answer, median, ms.
    pub half_send_p50_ms: f64,
    /// At half rate, how long `send_message` took to answer, 99th percentile, ms.
    pub half_send_p99_ms: f64,
    /// What the throughput phase cost per message.
    pub full_costs: Costs,
    /// What the half-rate phase cost per message.
    pub half_costs: Costs,
}

/// What a phase cost per message (measured around the phase, so it includes its waits for
/// the last instances to complete).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Costs {
    /// The Redis server's CPU time (user + system), microseconds per message.
    pub redis_cpu_us: f64,
    /// This process's CPU time (coordinator, workers and senders), microseconds per message.
    pub process_cpu_us: f64,
    /// The Redis commands run, per message (`calls_per_start` and `us_per_start` are per
    /// message here).
    pub commands: Vec<CommandCost>,
}

/// The readings [`Costs`] are the difference of.
struct CostMark {
    redis_cpu: f64,
    own_cpu: f64,
    stats: HashMap<String, (u64, u64)>,
}

impl CostMark {
    async fn read(client: &WeirClient) -> anyhow::Result<CostMark> {
        Ok(CostMark {
            stats: command_stats(client).await?,
            redis_cpu: redis_cpu(client).await?,
            own_cpu: own_cpu(),
        })
    }

    /// The costs from `self` to now, per message of `messages`.
    async fn since(&self, client: &WeirClient, messages: usize) -> anyhow::Result<Costs> {
        let now = CostMark::read(client).await?;
        let per = messages.max(1) as f64;
        Ok(Costs {
            redis_cpu_us: (now.redis_cpu - self.redis_cpu) * 1e6 / per,
            process_cpu_us: (now.own_cpu - self.own_cpu) * 1e6 / per,
            commands: command_costs(&self.stats, &now.stats, messages),
        })
    }
}

impl std::fmt::Display for Costs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "  per message: redis cpu {:.1} us, this process (coordinator, workers, senders) {:.1} us",
            self.redis_cpu_us, self.process_cpu_us
        )?;
        for c in &self.commands {
            writeln!(
                f,
                "  per message, INFO commandstats {:<12} {:>6.2} calls, {:>6.2} us",
                c.command, c.calls_per_start, c.us_per_start
            )?;
        }
        Ok(())
    }
}

impl std::fmt::Display for MessageBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "correlated messages ({} senders):  {:>9.0} messages/s ({} messages to as many waiting instances, {} answered delivered)",
            SENDERS, self.messages_per_second, self.messages, self.delivered
        )?;
        writeln!(
            f,
            "message send -> next step at full rate: p50 {:.2} ms, p99 {:.2} ms",
            self.full_p50_ms, self.full_p99_ms
        )?;
        write!(f, "{}", self.full_costs)?;
        writeln!(
            f,
            "message send -> next step at {:.0} messages/s: p50 {:.2} ms, p99 {:.2} ms ({} samples)",
            self.half_rate, self.half_p50_ms, self.half_p99_ms, self.half_samples
        )?;
        writeln!(
            f,
            "  of which send_message answered: p50 {:.2} ms, p99 {:.2} ms",
            self.half_send_p50_ms, self.half_send_p99_ms
        )?;
        write!(f, "{}", self.half_costs)
    }
}

/// When the step after the event step started, by instance id.
#[derive(Default)]
struct Probe {
    started: Mutex<HashMap<String, Instant>>,
}

struct ProbeStep(Arc<Probe>);

#[async_trait]
impl Step for ProbeStep {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let now = Instant::now();
        self.0
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(ctx.instance_id().to_string())
            .or_insert(now);
        Ok(())
    }
}

/// The bench workflow: wait for `bench_paid` keyed by `context.k`, then the probe step.
fn workflow() -> anyhow::Result<weir::model::Definition> {
    let text = json!({
        "name": "bench_message",
        "version": "1.0.0",
        "description": "wait for a message by key, then one machine step",
        "steps": {
            "wait": { "type": "event", "event": EVENT, "correlation": "context.k", "output": "paid" },
            "after": { "type": "machine", "handler": "bench_message_probe" }
        },
        "edges": [ { "from": "wait", "to": "after" } ]
    })
    .to_string();
    Ok(weir::parse_definition(&text)?)
}

/// Starts one instance per key (`{prefix}-{i}`), in batches; returns their ids in key order.
async fn start_waiting(client: &WeirClient, prefix: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    for first in (0..n).step_by(START_BATCH) {
        let starts = (first..n.min(first + START_BATCH))
            .map(|i| StartOptions {
                initial_data: json!({ "k": format!("{prefix}-{i}") })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                ..StartOptions::default()
            })
            .collect();
        for r in client.start_workflows("bench_message", starts).await? {
            ids.push(r?.view.id);
        }
    }
    Ok(ids)
}

async fn count(client: &WeirClient, status: InstanceStatus) -> anyhow::Result<u64> {
    let c = client.connections();
    Ok(server::count_with_status(&mut c.conn.clone(), &c.keys, status).await?)
}

/// Waits until `target` instances have `status`.
async fn wait_count(
    client: &WeirClient,
    status: InstanceStatus,
    target: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let n = count(client, status).await?;
        if n >= target {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {n} of {target} instances are {status} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Send-to-next-step samples of instances `ids` whose message was sent at `sent[i]`.
fn samples(probe: &Probe, ids: &[String], sent: &[Option<Instant>]) -> Vec<Duration> {
    let started = probe.started.lock().unwrap_or_else(|e| e.into_inner());
    let mut out: Vec<Duration> = ids
        .iter()
        .zip(sent)
        .filter_map(|(id, at)| Some(started.get(id)?.saturating_duration_since((*at)?)))
        .collect();
    out.sort();
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the benchmark.
pub async fn run(opts: MessageBenchOptions) -> anyhow::Result<MessageBenchReport> {
    let own = match &opts.url {
        Some(_) => None,
        None => Some(start_server(&[])?),
    };
    let url = match (&opts.url, &own) {
        (Some(u), _) => u.clone(),
        (None, Some(s)) => s.url(),
        (None, None) => anyhow::bail!("no Redis to run on"),
    };
    let mut wipe = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    server::wipe_namespace(&mut wipe, NAMESPACE).await?;
    let config = RedisConfig::new(&url, NAMESPACE);
    let probe = Arc::new(Probe::default());
    let engines = Engines::builtin_and(
        &config,
        opts.concurrency,
        "bench_message_probe",
        Arc::new(ProbeStep(probe.clone())),
    )
    .await?;
    let outcome = phases(&config, &opts, &probe).await;
    engines.stop().await;
    server::wipe_namespace(&mut wipe, NAMESPACE).await?;
    drop(own);
    outcome
}

async fn phases(
    config: &RedisConfig,
    opts: &MessageBenchOptions,
    probe: &Arc<Probe>,
) -> anyhow::Result<MessageBenchReport> {
    let client = WeirClient::connect(config).await?;
    client.register_definition(workflow()?).await?;
    let timeout = Duration::from_secs(180);

    // Throughput (and latency at full rate): every instance waits, then every message.
    let n = opts.instances.max(1);
    let ids = start_waiting(&client, "full", n).await?;
    wait_count(&client, InstanceStatus::Waiting, n as u64, timeout).await?;
    let sent: Arc<Vec<Mutex<Option<Instant>>>> =
        Arc::new((0..n).map(|_| Mutex::new(None)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    let mark = CostMark::read(&client).await?;
    let t = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (client, sent, next, delivered) = (
            client.clone(),
            sent.clone(),
            next.clone(),
            delivered.clone(),
        );
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let message = SendMessage::new(EVENT, format!("full-{i}"), json!({ "i": i }));
                if let Some(slot) = sent.get(i) {
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                }
                if client.send_message(message).await?.outcome == MessageOutcome::Delivered {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for s in senders {
        s.await??;
    }
    wait_count(&client, InstanceStatus::Completed, n as u64, timeout).await?;
    let messages_per_second = n as f64 / t.elapsed().as_secs_f64();
    let full_costs = mark.since(&client, n).await?;
    let sent_at: Vec<Option<Instant>> = sent
        .iter()
        .map(|s| *s.lock().unwrap_or_else(|e| e.into_inner()))
        .collect();
    let full = samples(probe, &ids, &sent_at);

    // Latency at half the rate: instances already waiting, messages at a steady pace.
    let rate = (messages_per_second / 2.0).max(1.0);
    let m = ((rate * opts.latency_seconds).ceil() as usize).clamp(1, 50_000);
    let ids = start_waiting(&client, "half", m).await?;
    wait_count(&client, InstanceStatus::Waiting, m as u64, timeout).await?;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let mark = CostMark::read(&client).await?;
    let t = Instant::now();
    let mut sends = Vec::with_capacity(m);
    for i in 0..m {
        tokio::time::sleep_until(tokio::time::Instant::from_std(t + gap * i as u32)).await;
        let client = client.clone();
        sends.push(tokio::spawn(async move {
            let at = Instant::now();
            client
                .send_message(SendMessage::new(
                    EVENT,
                    format!("half-{i}"),
                    json!({ "i": i }),
                ))
                .await
                .map(|_| (at, at.elapsed()))
        }));
    }
    let mut half_sent = Vec::with_capacity(m);
    let mut answered = Vec::with_capacity(m);
    for s in sends {
        let (at, took) = s.await??;
        half_sent.push(Some(at));
        answered.push(took);
    }
    answered.sort();
    wait_count(&client, InstanceStatus::Completed, (n + m) as u64, timeout).await?;
    let half_costs = mark.since(&client, m).await?;
    let half = samples(probe, &ids, &half_sent);

    Ok(MessageBenchReport {
        messages: n,
        messages_per_second,
        delivered: delivered.load(Ordering::Relaxed),
        full_p50_ms: ms(percentile(&full, 50.0)),
        full_p99_ms: ms(percentile(&full, 99.0)),
        half_rate: rate,
        half_p50_ms: ms(percentile(&half, 50.0)),
        half_p99_ms: ms(percentile(&half, 99.0)),
        half_samples: half.len(),
        half_send_p50_ms: ms(percentile(&answered, 50.0)),
        half_send_p99_ms: ms(percentile(&answered, 99.0)),
        full_costs,
        half_costs,
    })
}

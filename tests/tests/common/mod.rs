//! Helpers shared by the fault and semantics tests: a probe handler that counts its
//! executions, raw Redis access, history and event counts, and short-timeout configs.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use weir::model::MessageFilter;
use weir::model::{AttemptStatus, Event, EventKind};
use weir::redis::client::EventCursor;
use weir::redis::{admin, Keys, WeirClient};
use weir::{Engine, InstanceView};
use weir::{Step, StepContext, StepError};
use weir_coordinator::service::CoordinatorConfig;
use weir_tests::cluster::redis_config;
use weir_tests::{wait_for_async, wait_until_async};
use weir_worker::WorkerConfig;

/// How long a probe execution sleeps: given the attempt number and the execution number
/// (1 for the first execution of the handler in this test, counted over all workers).
pub type Plan = dyn Fn(u32, u32) -> Duration + Send + Sync;

/// A machine step handler that counts executions and records the idempotency keys it saw.
/// Each execution sleeps as its plan says, then writes `probe: <execution number>`.
pub struct Probe {
    /// Executions started.
    pub started: AtomicU32,
    /// Executions that ran to the end (not canceled by a timeout or a kill).
    pub finished: AtomicU32,
    /// The idempotency key of every execution, in start order.
    pub keys: Mutex<Vec<String>>,
    plan: Box<Plan>,
}

impl Probe {
    /// A probe with a plan.
    pub fn new(plan: impl Fn(u32, u32) -> Duration + Send + Sync + 'static) -> Arc<Probe> {
        Arc::new(Probe {
            started: AtomicU32::new(0),
            finished: AtomicU32::new(0),
            keys: Mutex::new(Vec::new()),
            plan: Box::new(plan),
        })
    }

    /// Executions started so far.
    pub fn started(&self) -> u32 {
        self.started.load(Ordering::SeqCst)
    }

    /// Executions finished so far.
    pub fn finished(&self) -> u32 {
        self.finished.load(Ordering::SeqCst)
    }

    /// The idempotency keys seen.
    pub fn keys(&self) -> Vec<String> {
        self.keys.lock().unwrap().clone()
    }

    /// Handlers: the built-ins plus this probe as `probe`.
    pub fn handlers(self: &Arc<Self>) -> weir::Handlers {
        let mut h = weir_worker::builtin_handlers();
        h.register_arc("probe", Arc::new(ProbeStep(self.clone())));
        h
    }
}

struct ProbeStep(Arc<Probe>);

#[async_trait]
impl Step for ProbeStep {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let n = self.0.started.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.keys.lock().unwrap().push(ctx.idempotency_key());
        tokio::time::sleep((self.0.plan)(ctx.attempt(), n)).await;
        self.0.finished.fetch_add(1, Ordering::SeqCst);
        ctx.set("probe", json!(n));
        Ok(())
    }
}

/// A coordinator config with a 1 s lease.
pub fn coordinator_config(url: &str, ns: &str) -> CoordinatorConfig {
    let mut c = CoordinatorConfig::new(redis_config(url, ns));
    c.lease = Duration::from_secs(1);
    c
}

/// A worker config with the given visibility timeout and a 1 s grace.
pub fn worker_config(url: &str, ns: &str, visibility: Duration) -> WorkerConfig {
    let mut c = WorkerConfig::new(redis_config(url, ns));
    c.visibility_timeout = visibility;
    c.grace = Duration::from_secs(1);
    c
}

/// A plain multiplexed connection for raw commands.
pub async fn raw(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?)
}

/// The key names of the client's namespace.
pub fn keys(client: &WeirClient) -> Keys {
    client.connections().keys.clone()
}

/// How many `completed` history records `step` of the instance has.
pub async fn completed_records(client: &WeirClient, id: &str, step: &str) -> anyhow::Result<usize> {
    Ok(client
        .history(id)
        .await?
        .iter()
        .filter(|r| &*r.step == step && r.status == AttemptStatus::Completed)
        .count())
}

/// Every event still in the streams, oldest first.
pub async fn all_events(client: &WeirClient) -> anyhow::Result<Vec<Event>> {
    let mut cursor = EventCursor::default();
    let mut out = Vec::new();
    loop {
        let (batch, next) = client.read_events(&cursor, 1000, None).await?;
        if batch.is_empty() {
            return Ok(out);
        }
        out.extend(batch);
        cursor = next;
    }
}

/// How many events of the instance have the given type name (e.g. `WorkflowStarted`).
pub fn count_events(events: &[Event], id: &str, type_name: &str) -> usize {
    events
        .iter()
        .filter(|e| &*e.instance_id == id && e.kind.type_name() == type_name)
        .count()
}

/// Whether the event is a `StepExecuted` of `step`.
pub fn is_executed(e: &Event, step: &str) -> bool {
    matches!(&e.kind, EventKind::StepExecuted { step: s, .. } if &**s == step)
}

/// Fields of the entries of a stream, as (id, field -> bytes).
pub async fn stream_entries(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> anyhow::Result<Vec<(String, std::collections::HashMap<String, Vec<u8>>)>> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await?;
    Ok(reply
        .ids
        .into_iter()
        .map(|e| {
            let fields = e
                .map
                .iter()
                .filter_map(|(k, v)| {
                    redis::from_redis_value_ref::<Vec<u8>>(v)
                        .ok()
                        .map(|b| (k.clone(), b))
                })
                .collect();
            (e.id, fields)
        })
        .collect())
}

/// `calls` of each command in `INFO commandstats` (e.g. `"zadd"`).
pub async fn command_calls<C: redis::aio::ConnectionLike>(
    conn: &mut C,
) -> anyhow::Result<std::collections::HashMap<String, u64>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    Ok(info
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.trim().split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.strip_prefix("cmdstat_")?.to_string(), calls))
        })
        .collect())
}

/// XLEN of a stream.
pub async fn xlen(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> anyhow::Result<u64> {
    Ok(redis::cmd("XLEN").arg(key).query_async(conn).await?)
}

/// How many entries of a stream's group are pending (read, not acknowledged).
pub async fn pending(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    group: &str,
) -> anyhow::Result<u64> {
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .query_async(conn)
        .await?;
    match reply {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => Ok(*n as u64),
            _ => Ok(0),
        },
        _ => Ok(0),
    }
}

/// An instance id that falls in partition `p`.
pub fn id_in_partition(keys: &Keys, p: u16, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| keys.partition_of(id) == p)
        .unwrap()
}

/// Ids in partitions the given coordinator leases now.
pub async fn leased_by(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
    coordinator: &str,
) -> anyhow::Result<Vec<u16>> {
    let mut out = Vec::new();
    for p in 0..keys.partitions() {
        let holder: Option<String> = redis::cmd("GET")
            .arg(keys.part(p).lease())
            .query_async(conn)
            .await?;
        if holder.as_deref() == Some(coordinator) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Waits until every one of `ids` is completed.
pub async fn wait_all_completed(
    client: &WeirClient,
    ids: &[String],
    deadline: Duration,
) -> anyhow::Result<()> {
    weir_tests::wait_until_async(deadline, "every instance completes", async || {
        for id in ids {
            let done = client
                .get_instance(id)
                .await
                .is_ok_and(|v| v.status == weir::model::InstanceStatus::Completed);
            if !done {
                return false;
            }
        }
        true
    })
    .await
}

/// Each of `ids` ran every one of `steps` exactly once (history and `StepExecuted` events),
/// and was started and completed once.
pub async fn assert_each_step_once(
    client: &WeirClient,
    ids: &[String],
    steps: &[&str],
) -> anyhow::Result<()> {
    let events = all_events(client).await?;
    for id in ids {
        for step in steps {
            assert_eq!(
                completed_records(client, id, step).await?,
                1,
                "{id}: step {step} must complete exactly once in history"
            );
            let executed = events
                .iter()
                .filter(|e| &*e.instance_id == id.as_str() && is_executed(e, step))
                .count();
            assert_eq!(executed, 1, "{id}: one StepExecuted for {step}");
        }
        assert_eq!(count_events(&events, id, "WorkflowStarted"), 1, "{id}");
        assert_eq!(count_events(&events, id, "WorkflowCompleted"), 1, "{id}");
    }
    Ok(())
}

/// Entries on the command streams of every partition (what a coordinator has yet to handle).
pub async fn queued_commands(client: &WeirClient) -> anyhow::Result<u64> {
    let mut pipe = redis::pipe();
    for part in client.connections().keys.all_parts() {
        pipe.cmd("XLEN").arg(part.commands());
    }
    let lens: Vec<u64> = pipe
        .query_async(&mut client.connections().conn.clone())
        .await?;
    Ok(lens.iter().sum())
}

/// How long the message tests wait for hops to settle and instances to finish.
pub const MESSAGE_WAIT: Duration = Duration::from_secs(30);

/// Waits until every hop between partitions was relayed.
pub async fn hops_settled(client: &WeirClient) -> anyhow::Result<()> {
    wait_until_async(MESSAGE_WAIT, "every outbox relayed", async || {
        admin::stats(client.connections()).await.is_ok_and(|s| {
            s.outbox == 0
                && s.streams
                    .iter()
                    .all(|x| x.kind != "commands" || x.length == 0)
        })
    })
    .await
}

/// Waits until the message `id` is kept (none waits for it, or it came back refused).
pub async fn kept(client: &WeirClient, id: &str) -> anyhow::Result<()> {
    wait_until_async(MESSAGE_WAIT, "the message is kept", async || {
        client
            .list_messages(&MessageFilter::default())
            .await
            .is_ok_and(|k| k.iter().any(|m| m.id == id))
    })
    .await
}

/// Waits until the instance finished.
pub async fn finished(client: &WeirClient, id: &str) -> anyhow::Result<InstanceView> {
    wait_for_async(MESSAGE_WAIT, "the instance finishes", async || {
        let view = client.get_instance(id).await.ok()?;
        view.status.is_terminal().then_some(view)
    })
    .await
}

/// The message ids the instance received (its history's notes).
pub async fn received_messages(client: &WeirClient, id: &str) -> anyhow::Result<Vec<String>> {
    Ok(client
        .history(id)
        .await?
        .iter()
        .filter_map(|r| {
            r.note
                .as_deref()?
                .strip_prefix("message ")
                .map(str::to_string)
        })
        .collect())
}

//! Worker hardening (issue 15): a small worker beside a busy sibling never runs a step twice
//! without a failure; a panicking handler, a dead-lettered entry and an oversized message
//! fail their step instead of hanging it; workers recreate their groups after Redis lost
//! its data; secret references resolve on the worker; dead workers' consumers are removed;
//! `/readyz` does not tell strangers where Redis is. A report takes only the results whose
//! entry the worker still holds.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{coordinator_config, keys, raw, worker_config};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use weir::model::{Context, InstanceStatus};
use weir::redis::keys::WORKER_GROUP;
use weir::redis::WeirClient;
use weir::Engine;
use weir::{parse_definition, StartOptions, Step, StepContext, StepError};
use weir_tests::cluster::{
    client, init_logs, redis_config, start_builtin_worker, start_coordinator_with,
    start_worker_counted, start_worker_with, Service,
};
use weir_tests::{wait_for_async, wait_until_async, RedisServer};

fn with_data(id: &str, data: serde_json::Value) -> StartOptions {
    let initial_data: Context = match data {
        serde_json::Value::Object(m) => m,
        _ => Context::new(),
    };
    StartOptions {
        id: Some(id.into()),
        initial_data,
        ..StartOptions::default()
    }
}

/// An HTTP server on 127.0.0.1 that counts the requests per path and answers each after
/// `delay` with `200 ok`.
async fn counting_server(
    delay: Duration,
) -> anyhow::Result<(SocketAddr, Arc<Mutex<HashMap<String, u32>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let counts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let seen = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                let path = text.split(' ').nth(1).unwrap_or("").to_string();
                *seen.lock().unwrap().entry(path).or_default() += 1;
                tokio::time::sleep(delay).await;
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok((addr, counts))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_worker_beside_another_never_runs_a_step_twice() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let (addr, counts) = counting_server(Duration::from_millis(200)).await?;
    let _coordinator = start_coordinator_with(coordinator_config(&url, "t")).await?;
    let flow = format!(
        r#"
name: calls
version: "1.0.0"
steps:
  call:
    type: machine
    handler: http
    retry: {{ max_attempts: 1 }}
    config: {{ url: "http://{addr}/call/{{n}}" }}
"#
    );
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(&flow)?).await?;
    let n = 64;
    for i in 0..n {
        client
            .start_workflow("calls", with_data(&format!("call-{i}"), json!({ "n": i })))
            .await?;
    }
    // Every step waits in its partition's stream before any worker reads.
    let keys = keys(&client);
    let conn = raw(&url).await?;
    wait_until_async(
        Duration::from_secs(20),
        "all steps dispatched",
        async || {
            let mut total = 0;
            for part in keys.all_parts() {
                total += common::xlen(&mut conn.clone(), &part.queue("default"))
                    .await
                    .unwrap_or(0);
            }
            total == n as u64
        },
    )
    .await?;
    // Concurrency 2 and a 1 s visibility timeout: a worker that read more entries than it
    // can start (one read over 16 partitions) leaves them idle long enough for its sibling,
    // which has room to spare, to reclaim and run them too.
    let mut small = worker_config(&url, "t", Duration::from_secs(1));
    small.concurrency = 2;
    let (_w1, c1) = start_builtin_worker(small).await?;
    wait_until_async(
        Duration::from_secs(10),
        "the small worker has started",
        async || !counts.lock().unwrap().is_empty(),
    )
    .await?;
    let mut other = worker_config(&url, "t", Duration::from_secs(1));
    other.concurrency = 8;
    let (_w2, c2) = start_builtin_worker(other).await?;
    for i in 0..n {
        let done = client
            .wait(&format!("call-{i}"), Duration::from_secs(60))
            .await?;
        assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    }
    let counts = counts.lock().unwrap().clone();
    assert_eq!(counts.len(), n, "every step called: {counts:?}");
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        twice.is_empty(),
        "steps called more than once, with no failure: {twice:?}"
    );
    assert_eq!(
        c1.reclaimed.load(Ordering::SeqCst) + c2.reclaimed.load(Ordering::SeqCst),
        0,
        "no live worker's entry was reclaimed"
    );
    Ok(())
}

/// Panics on every call.
struct Panics;

#[async_trait]
impl Step for Panics {
    async fn execute(&self, _ctx: &mut StepContext) -> Result<(), StepError> {
        panic!("the handler's bug");
    }
}

const PANICS: &str = r#"
name: panics
version: "1.0.0"
steps:
  boom: { type: machine, handler: panics, retry: { max_attempts: 3 } }
  recover: { type: machine, handler: set, config: { recovered: true } }
edges:
  - { from: boom, to: recover, on: failure }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_step_once_and_frees_its_slot() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator_with(coordinator_config(&url, "t")).await?;
    let mut handlers = weir_worker::builtin_handlers();
    handlers.register("panics", Panics);
    // One slot: were it pinned by the panic, the second instance could never run.
    let mut config = worker_config(&url, "t", Duration::from_secs(30));
    config.concurrency = 1;
    let (_worker, counters) = start_worker_counted(config, handlers).await?;
    let client = client(&url, "t").await?;
    client
        .register_definition(parse_definition(PANICS)?)
        .await?;
    for id in ["p-1", "p-2"] {
        client
            .start_workflow("panics", with_data(id, json!({})))
            .await?;
        let done = client.wait(id, Duration::from_secs(15)).await?;
        assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
        assert_eq!(done.context["recovered"], json!(true));
        assert_eq!(
            done.context["error"]["kind"],
            json!("panic"),
            "{:?}",
            done.context
        );
        assert!(
            done.context["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("the handler's bug")),
            "{:?}",
            done.context
        );
    }
    // Not retried: the same input panics again.
    assert_eq!(counters.failed.load(Ordering::SeqCst), 2);
    Ok(())
}

/// Never finishes.
struct Hangs;

#[async_trait]
impl Step for Hangs {
    async fn execute(&self, _ctx: &mut StepContext) -> Result<(), StepError> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

const HANGS: &str = r#"
name: hangs
version: "1.0.0"
steps:
  stuck: { type: machine, handler: hangs }
  recover: { type: machine, handler: set, config: { recovered: true } }
edges:
  - { from: stuck, to: recover, on: failure }
"#;

/// A deployment where the `stuck` step of a `hangs` instance `id` was delivered to a worker
/// that was then killed. Returns the coordinator (keep it), a client, the handlers (with
/// `hangs`), the step stream and the abandoned entry's id.
async fn abandoned_step(
    url: &str,
    id: &str,
) -> anyhow::Result<(Service, WeirClient, weir::Handlers, String, String)> {
    let coordinator = start_coordinator_with(coordinator_config(url, "t")).await?;
    let mut handlers = weir_worker::builtin_handlers();
    handlers.register("hangs", Hangs);
    let first = start_worker_with(
        worker_config(url, "t", Duration::from_secs(30)),
        handlers.clone(),
    )
    .await?;
    let client = client(url, "t").await?;
    client.register_definition(parse_definition(HANGS)?).await?;
    client
        .start_workflow("hangs", with_data(id, json!({})))
        .await?;
    let queue = keys(&client).part_of(id).queue("default");
    let conn = raw(url).await?;
    let entry = wait_for_async(
        Duration::from_secs(10),
        "the step entry is delivered",
        async || {
            let reply: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
                .arg(&queue)
                .arg(WORKER_GROUP)
                .arg("-")
                .arg("+")
                .arg(1)
                .query_async(&mut conn.clone())
                .await
                .ok()?;
            reply.ids.first().map(|p| p.id.clone())
        },
    )
    .await?;
    first.kill();
    Ok((coordinator, client, handlers, queue, entry))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_dead_lettered_after_max_deliveries_fails_its_step() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let id = "dl-1";
    let (_coordinator, client, handlers, queue, entry) = abandoned_step(&url, id).await?;
    // Make the abandoned entry look like it has already killed many workers.
    let mut conn = raw(&url).await?;
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&queue)
        .arg(WORKER_GROUP)
        .arg("gone")
        .arg(0)
        .arg(&entry)
        .arg("RETRYCOUNT")
        .arg(9)
        .arg("JUSTID")
        .query_async(&mut conn)
        .await?;
    let mut config = worker_config(&url, "t", Duration::from_millis(300));
    config.max_deliveries = 5;
    let (_second, counters) = start_worker_counted(config, handlers).await?;

    let done = client.wait(id, Duration::from_secs(15)).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(done.context["recovered"], json!(true));
    assert_eq!(
        done.context["error"]["kind"],
        json!("dead_lettered"),
        "{:?}",
        done.context
    );
    assert_eq!(counters.dead_lettered.load(Ordering::SeqCst), 1);
    let dlq = keys(&client).part_of(id).dlq();
    assert_eq!(
        common::xlen(&mut conn, &dlq).await?,
        1,
        "the entry is kept as a dead letter"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_dead_letter_stream_counts_what_its_cap_drops() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let mut config = worker_config(&url, "t", Duration::from_secs(30));
    config.dlq_cap = 10;
    let (_worker, counters) = start_builtin_worker(config).await?;
    let client = client(&url, "t").await?;
    let part = keys(&client).part_of("x");
    let queue = part.queue("default");
    let mut conn = raw(&url).await?;
    // A burst of garbage on one step stream: each entry is dead-lettered.
    let burst = 400;
    for i in 0..burst {
        let _: String = redis::cmd("XADD")
            .arg(&queue)
            .arg("*")
            .arg("m")
            .arg(format!("garbage {i}"))
            .query_async(&mut conn)
            .await?;
    }
    wait_until_async(
        Duration::from_secs(20),
        "the burst is dead-lettered",
        async || counters.dead_lettered.load(Ordering::SeqCst) == burst,
    )
    .await?;
    let kept = common::xlen(&mut conn, &part.dlq()).await?;
    let trimmed = counters.dead_letters_trimmed.load(Ordering::SeqCst);
    assert!(trimmed > 0, "the cap dropped letters: {kept} kept");
    assert_eq!(
        kept + trimmed,
        burst,
        "every letter is kept or counted as dropped"
    );
    let stats: Option<u64> = redis::cmd("HGET")
        .arg(part.stats())
        .arg("dlq_trimmed")
        .query_async(&mut conn)
        .await?;
    assert_eq!(stats, Some(trimmed));
    Ok(())
}

/// Writes a context value of 5 MB.
struct Huge;

#[async_trait]
impl Step for Huge {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        ctx.set("blob", json!("x".repeat(5 << 20)));
        Ok(())
    }
}

const HUGE: &str = r#"
name: huge
version: "1.0.0"
steps:
  grow: { type: machine, handler: huge }
  next: { type: machine, handler: noop }
  recover: { type: machine, handler: set, config: { recovered: true } }
edges:
  - { from: grow, to: next }
  - { from: grow, to: recover, on: failure }
  - { from: next, to: recover, on: failure }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_message_too_large_fails_its_step_instead_of_hanging() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator_with(coordinator_config(&url, "t")).await?;
    let mut handlers = weir_worker::builtin_handlers();
    handlers.register("huge", Huge);
    let _worker =
        start_worker_with(worker_config(&url, "t", Duration::from_secs(5)), handlers).await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(HUGE)?).await?;
    client
        .start_workflow("huge", with_data("big-1", json!({})))
        .await?;
    // Whether the 5 MB is refused where it enters (the step's output) or where it no longer
    // fits (the next step's message), the step fails with kind too_large and the failure
    // edge runs: the instance never hangs RUNNING.
    let done = client.wait("big-1", Duration::from_secs(30)).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{:?}", done.status);
    assert_eq!(done.context["recovered"], json!(true));
    assert_eq!(
        done.context["error"]["kind"],
        json!("too_large"),
        "{:?}",
        done.context["error"]
    );
    Ok(())
}

const QUICK: &str = r#"
name: quick
version: "1.0.0"
steps:
  a: { type: machine, handler: set, config: { a: 1 } }
  b: { type: machine, handler: set, config: { b: 2 } }
edges:
  - { from: a, to: b }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_flushall_under_load_workers_recreate_their_groups_and_new_work_completes(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator_with(coordinator_config(&url, "t")).await?;
    let (_worker, _) =
        start_builtin_worker(worker_config(&url, "t", Duration::from_secs(2))).await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(QUICK)?).await?;
    for i in 0..50 {
        client
            .start_workflow("quick", with_data(&format!("before-{i}"), json!({})))
            .await?;
    }
    let mut conn = raw(&url).await?;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    // Redis lost everything: the definition is registered again and new work started.
    wait_until_async(
        Duration::from_secs(20),
        "the definition registers again",
        async || {
            client
                .register_definition(parse_definition(QUICK).unwrap())
                .await
                .is_ok()
        },
    )
    .await?;
    for i in 0..20 {
        let id = format!("after-{i}");
        client
            .start_workflow("quick", with_data(&id, json!({})))
            .await?;
    }
    for i in 0..20 {
        let done = client
            .wait(&format!("after-{i}"), Duration::from_secs(30))
            .await?;
        assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
        assert_eq!(done.context["b"], json!(2));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_references_resolve_on_the_worker_and_a_missing_one_fails_the_step(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator_with(coordinator_config(&url, "t")).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("secrets.env");
    std::fs::write(&file, "# payments\nPAY_TOKEN=s3cr3t-from-file\n")?;
    let mut config = worker_config(&url, "t", Duration::from_secs(5));
    config.secrets = weir_worker::runtime::secrets::Secrets::from_file(&file)?;
    let (_worker, _) = start_builtin_worker(config).await?;
    let client = client(&url, "t").await?;
    let flow = r#"
name: secrets
version: "1.0.0"
steps:
  use: { type: machine, handler: set, config: { token: "Bearer {secret:PAY_TOKEN}", home: "{env:PATH}" } }
  missing: { type: machine, handler: set, config: { x: "{env:WEIR_TEST_NO_SUCH_VARIABLE_7}" } }
  recover: { type: machine, handler: noop }
edges:
  - { from: use, to: missing }
  - { from: missing, to: recover, on: failure }
"#;
    client.register_definition(parse_definition(flow)?).await?;
    let stored: Vec<String> = redis::cmd("HVALS")
        .arg(keys(&client).definitions())
        .query_async(&mut raw(&url).await?)
        .await?;
    let stored = stored.join("\n");
    assert!(stored.contains("{secret:PAY_TOKEN}"), "{stored}");
    assert!(!stored.contains("s3cr3t"), "no secret in the definition");
    client
        .start_workflow("secrets", with_data("s-1", json!({})))
        .await?;
    let done = client.wait("s-1", Duration::from_secs(15)).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(done.context["token"], json!("Bearer s3cr3t-from-file"));
    assert_eq!(done.context["home"], json!(std::env::var("PATH")?));
    assert_eq!(
        done.context["error"]["kind"],
        json!("secret"),
        "{:?}",
        done.context
    );
    let message = done.context["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("WEIR_TEST_NO_SUCH_VARIABLE_7"),
        "{message}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_and_heartbeats_of_workers_gone_for_good_are_removed() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    let keys = keys(&client);
    let queue = keys.part_of("x").queue("default");
    // Cleanup runs in the heartbeat loop (every third of the visibility timeout).
    let mut config = worker_config(&url, "t", Duration::from_secs(3));
    config.stale_consumer_idle = Duration::from_secs(1);
    let (worker, counters) = start_builtin_worker(config).await?;
    let mut conn = raw(&url).await?;
    // A consumer of a worker long gone, with nothing pending, and its old heartbeat.
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(&queue)
        .arg(WORKER_GROUP)
        .arg("worker-long-gone")
        .query_async(&mut conn)
        .await?;
    let _: i64 = redis::cmd("ZADD")
        .arg(keys.workers())
        .arg(1_000)
        .arg("worker-long-gone")
        .query_async(&mut conn)
        .await?;
    wait_until_async(
        Duration::from_secs(15),
        "the stale consumer is removed",
        async || {
            let consumers: Option<redis::streams::StreamInfoConsumersReply> = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&queue)
                .arg(WORKER_GROUP)
                .query_async(&mut conn.clone())
                .await
                .ok();
            let heartbeat: Option<f64> = redis::cmd("ZSCORE")
                .arg(keys.workers())
                .arg("worker-long-gone")
                .query_async(&mut conn.clone())
                .await
                .unwrap_or(Some(0.0));
            consumers.is_some_and(|c| c.consumers.iter().all(|c| c.name != "worker-long-gone"))
                && heartbeat.is_none()
        },
    )
    .await?;
    assert!(counters.consumers_removed.load(Ordering::SeqCst) >= 1);
    // The live worker's own heartbeat stays.
    let own: Option<f64> = redis::cmd("ZSCORE")
        .arg(keys.workers())
        .arg(&worker.id)
        .query_async(&mut conn)
        .await?;
    assert!(own.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_neither_the_redis_host_nor_its_user() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let port = redis
        .url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    let url = format!("redis://zorro:wrong-pass@127.0.0.1:{port}/");
    let ready = weir::process::redis_readiness(&redis_config(&url, "r"))?;
    let reason = ready().await.expect_err("a wrong user cannot be ready");
    assert!(reason.contains("Redis"), "{reason}");
    for secret in ["zorro", "wrong-pass", "127.0.0.1", port.as_str()] {
        assert!(!reason.contains(secret), "{secret:?} in {reason:?}");
    }
    Ok(())
}

/// A step message for a `noop` attempt of instance `id`.
fn noop_message(id: &str) -> Vec<u8> {
    weir::redis::wire::encode(&weir::redis::wire::StepMessage {
        instance_id: id.into(),
        step: "a".into(),
        attempt: 1,
        token: 1,
        handler: "noop".into(),
        config: serde_json::Value::Null,
        context: Context::new(),
        timeout_ms: None,
        dispatched_at: weir::Timestamp(0),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_redis_keeps_refusing_is_dropped_counted_and_blocks_no_other() -> anyhow::Result<()>
{
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    let keys = keys(&client);
    let bad = common::id_in_partition(&keys, 1, "bad");
    let good = common::id_in_partition(&keys, 2, "good");
    let mut conn = raw(&url).await?;
    // Partition 1's results stream is not a stream: Redis refuses every result there.
    let _: () = redis::cmd("SET")
        .arg(keys.part_of(&bad).results())
        .arg("not a stream")
        .query_async(&mut conn)
        .await?;
    let (_worker, counters) =
        start_builtin_worker(worker_config(&url, "t", Duration::from_secs(30))).await?;
    let bad_queue = keys.part_of(&bad).queue("default");
    let _: String = redis::cmd("XADD")
        .arg(&bad_queue)
        .arg("*")
        .arg("m")
        .arg(noop_message(&bad))
        .query_async(&mut conn)
        .await?;
    wait_until_async(
        Duration::from_secs(10),
        "the refused result is dropped",
        async || counters.results_refused.load(Ordering::SeqCst) == 1,
    )
    .await?;
    // Results of other partitions still go through.
    let _: String = redis::cmd("XADD")
        .arg(keys.part_of(&good).queue("default"))
        .arg("*")
        .arg("m")
        .arg(noop_message(&good))
        .query_async(&mut conn)
        .await?;
    let good_results = keys.part_of(&good).results();
    wait_until_async(
        Duration::from_secs(10),
        "the other result is reported",
        async || common::xlen(&mut conn.clone(), &good_results).await.ok() == Some(1),
    )
    .await?;
    // The refused result's entry is still pending, to run again after the visibility
    // timeout: not lost.
    assert_eq!(
        common::pending(&mut conn, &bad_queue, WORKER_GROUP).await?,
        1
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_message_over_the_wire_limit_is_dead_lettered_and_fails_its_step(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let id = "big-msg";
    // The attempt was delivered to a worker, which is gone.
    let (_coordinator, client, handlers, queue, _) = abandoned_step(&url, id).await?;
    let (token, attempt) = wait_for_async(Duration::from_secs(10), "the step runs", async || {
        let s = weir::redis::store::load_instance(client.connections(), id)
            .await
            .ok()??;
        // Only `stuck` runs: `recover` waits for its failure.
        s.instance
            .steps
            .iter()
            .find(|st| st.status == weir::model::StepStatus::Running)
            .map(|st| (st.token, st.attempt))
    })
    .await?;
    let mut conn = raw(&url).await?;
    // Its entry is replaced by the same attempt carrying a context over the 4 MiB limit.
    let old: Vec<(String, HashMap<String, Vec<u8>>)> =
        common::stream_entries(&mut conn, &queue).await?;
    for (entry, _) in &old {
        let _: i64 = redis::cmd("XACK")
            .arg(&queue)
            .arg(WORKER_GROUP)
            .arg(entry)
            .query_async(&mut conn)
            .await?;
        let _: i64 = redis::cmd("XDEL")
            .arg(&queue)
            .arg(entry)
            .query_async(&mut conn)
            .await?;
    }
    let mut context = Context::new();
    context.insert("blob".into(), json!("x".repeat(5 << 20)));
    let big = weir::redis::wire::encode(&weir::redis::wire::StepMessage {
        instance_id: id.into(),
        step: "stuck".into(),
        attempt,
        token,
        handler: "hangs".into(),
        config: serde_json::Value::Null,
        context,
        timeout_ms: None,
        dispatched_at: weir::Timestamp(0),
    });
    assert!(big.len() > weir::redis::wire::MAX_MESSAGE_BYTES);
    let _: String = redis::cmd("XADD")
        .arg(&queue)
        .arg("*")
        .arg("m")
        .arg(big)
        .query_async(&mut conn)
        .await?;
    let (_second, counters) =
        start_worker_counted(worker_config(&url, "t", Duration::from_secs(30)), handlers).await?;
    let done = client.wait(id, Duration::from_secs(15)).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{:?}", done.status);
    assert_eq!(done.context["recovered"], json!(true));
    assert_eq!(
        done.context["error"]["kind"],
        json!("too_large"),
        "{:?}",
        done.context["error"]
    );
    assert_eq!(counters.dead_lettered.load(Ordering::SeqCst), 1);
    assert_eq!(
        counters.executed.load(Ordering::SeqCst),
        1,
        "only `recover` ran here"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaiming_walks_a_long_pending_list_instead_of_rescanning_its_start() -> anyhow::Result<()>
{
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    let part = keys(&client).part_of("ghost");
    let queue = part.queue("default");
    let mut conn = raw(&url).await?;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&queue)
        .arg(WORKER_GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await?;
    // 30 entries a live worker holds (kept fresh below), then one a dead worker left.
    let mut live = Vec::new();
    for i in 0..30 {
        let id: String = redis::cmd("XADD")
            .arg(&queue)
            .arg("*")
            .arg("m")
            .arg(format!("held {i}"))
            .query_async(&mut conn)
            .await?;
        live.push(id);
    }
    let _: String = redis::cmd("XADD")
        .arg(&queue)
        .arg("*")
        .arg("m")
        .arg(noop_message("ghost"))
        .query_async(&mut conn)
        .await?;
    for (consumer, count) in [("live-worker", 30), ("dead-worker", 1)] {
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(WORKER_GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(&queue)
            .arg(">")
            .query_async(&mut conn)
            .await?;
    }
    // One slot: each XAUTOCLAIM asks for 1 entry and so scans at most 10. Restarting at
    // the list's start every pass would never get past the live worker's entries.
    let mut config = worker_config(&url, "t", Duration::from_millis(900));
    config.concurrency = 1;
    let (_worker, counters) = start_builtin_worker(config).await?;
    let results = part.results();
    wait_until_async(
        Duration::from_secs(15),
        "the dead worker's entry is reclaimed and run",
        async || {
            // The live worker heartbeats its entries.
            let mut c = conn.clone();
            let mut claim = redis::cmd("XCLAIM");
            claim
                .arg(&queue)
                .arg(WORKER_GROUP)
                .arg("live-worker")
                .arg(0);
            for id in &live {
                claim.arg(id);
            }
            claim.arg("JUSTID");
            let _: Result<redis::Value, _> = claim.query_async(&mut c).await;
            common::xlen(&mut c, &results).await.ok() == Some(1)
        },
    )
    .await?;
    assert_eq!(counters.reclaimed.load(Ordering::SeqCst), 1);
    Ok(())
}

/// XADD of an entry to `stream`; its id.
async fn add_entry(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> anyhow::Result<String> {
    Ok(redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("m")
        .arg("x")
        .query_async(conn)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_takes_only_results_whose_entry_this_worker_still_holds_once_each_in_order(
) -> anyhow::Result<()> {
    use weir::redis::steps::{report, StepReport};
    let redis = RedisServer::start()?;
    let mut conn = raw(&redis.url()).await?;
    let part = weir::redis::Keys::new("t", 8).part(0);
    let (q1, q2, results) = (part.queue("a"), part.queue("b"), part.results());
    for q in [&q1, &q2] {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(q)
            .arg(WORKER_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await?;
    }
    let mut a = Vec::new();
    for _ in 0..4 {
        a.push(add_entry(&mut conn, &q1).await?);
    }
    let b = add_entry(&mut conn, &q2).await?;
    for q in [&q1, &q2] {
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(WORKER_GROUP)
            .arg("me")
            .arg("STREAMS")
            .arg(q)
            .arg(">")
            .query_async(&mut conn)
            .await?;
    }
    // a[1] was reclaimed by another worker, a[2] acknowledged already.
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&q1)
        .arg(WORKER_GROUP)
        .arg("other")
        .arg(0)
        .arg(&a[1])
        .query_async(&mut conn)
        .await?;
    let _: () = redis::cmd("XACK")
        .arg(&q1)
        .arg(WORKER_GROUP)
        .arg(&a[2])
        .query_async(&mut conn)
        .await?;
    let r = |stream: &str, id: &str, result: &'static [u8]| {
        (stream.to_string(), id.to_string(), result)
    };
    let given = [
        r(&q1, &a[3], b"r3"),
        r(&q2, &b, b"rb"),
        r(&q1, &a[1], b"r1"),
        r(&q1, &a[0], b"r0"),
        r(&q1, &a[2], b"r2"),
        r(&q1, &a[3], b"r3 again"),
        r(&q1, "not-an-id", b"bad"),
    ];
    let reports: Vec<StepReport<'_>> = given
        .iter()
        .map(|(stream, id, result)| StepReport { stream, id, result })
        .collect();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await?;
    let appended = report(&mut conn, &results, "me", &reports).await?;
    assert_eq!(appended, 3);
    // One XPENDING per step stream, whatever the number of results.
    let calls = common::command_calls(&mut conn).await?;
    assert_eq!(calls.get("xpending").copied(), Some(2), "{calls:?}");
    let got: Vec<Vec<u8>> = common::stream_entries(&mut conn, &results)
        .await?
        .into_iter()
        .filter_map(|(_, mut fields)| fields.remove("m"))
        .collect();
    assert_eq!(got, [b"r3".to_vec(), b"rb".to_vec(), b"r0".to_vec()]);
    // Taken entries leave their streams; the reclaimed one stays, pending to the other.
    let left: Vec<String> = common::stream_entries(&mut conn, &q1)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, [a[1].clone(), a[2].clone()]);
    assert_eq!(common::xlen(&mut conn, &q2).await?, 0);
    assert_eq!(common::pending(&mut conn, &q1, WORKER_GROUP).await?, 1);
    Ok(())
}

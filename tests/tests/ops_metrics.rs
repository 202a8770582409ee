//! The ops server of a real coordinator and worker: `/metrics` counts what a workflow did,
//! `/healthz` answers, and `/readyz` follows Redis going away and coming back.
//!
//! The metrics recorder is global to the process, so this file holds the only test that
//! runs workflows; the readiness test starts none.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use weir::process::{self, Shutdown};
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_coordinator::service::CoordinatorConfig;
use weir_tests::cluster::{client, init_logs, redis_config, start_coordinator_with, start_worker};
use weir_tests::{wait_for_async, wait_until_async, RedisServer};

const TWO_STEPS: &str = r#"
name: two
version: "1.0.0"
steps:
  a: { type: machine, handler: noop }
  b: { type: machine, handler: noop }
edges:
  - { from: a, to: b }
"#;

/// `GET http://addr/path` over a real socket: (status, body).
async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// Sample lines of the Prometheus text format: `name{labels}` -> value.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The sum of every sample of metric `name` (any labels).
fn total(s: &BTreeMap<String, f64>, name: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_a_workflow_did() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let mut config = CoordinatorConfig::new(redis_config(&url, "m"));
    config.lease = Duration::from_secs(1);
    let ready = process::coordinator_readiness(&config.redis, &config.id, config.lease)?;
    let shutdown = Shutdown::new();
    let server = process::serve("127.0.0.1:0".parse()?, ready, shutdown.listener()).await?;
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);

    let coordinator = start_coordinator_with(config).await?;
    let worker = start_worker(&url, "m").await?;
    let client = client(&url, "m").await?;
    client
        .register_definition(parse_definition(TWO_STEPS)?)
        .await?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            client
                .start_workflow("two", StartOptions::default())
                .await?
                .id,
        );
    }
    for id in &ids {
        let done = client.wait(id, Duration::from_secs(10)).await?;
        assert_eq!(done.status, weir::InstanceStatus::Completed, "{done:?}");
    }

    // Counters are published right after the commit that the client saw: poll briefly.
    let s = wait_for_async(
        Duration::from_secs(5),
        "the counters to be published",
        async || {
            let (status, body) = get(addr, "/metrics").await.ok()?;
            let s = samples(&body);
            (status == 200
                && s.get("weir_instances_completed_total{definition=\"two\"}") == Some(&3.0)
                && total(&s, "weir_steps_succeeded_total") == 6.0)
                .then_some(s)
        },
    )
    .await?;
    assert_eq!(s["weir_instances_started_total{definition=\"two\"}"], 3.0);
    assert_eq!(
        s["weir_steps_dispatched_total{handler=\"noop\",queue=\"default\"}"],
        6.0
    );
    assert_eq!(
        s["weir_steps_succeeded_total{handler=\"noop\",queue=\"default\"}"],
        6.0
    );
    assert_eq!(total(&s, "weir_instances_failed_total"), 0.0);
    assert_eq!(total(&s, "weir_steps_failed_total"), 0.0);
    // Start + two results per instance.
    assert_eq!(s["weir_transitions_total"], 9.0);
    assert_eq!(s["weir_step_duration_seconds_count{handler=\"noop\"}"], 6.0);
    assert_eq!(
        s["weir_step_to_step_latency_seconds_count{handler=\"noop\"}"],
        6.0
    );
    assert_eq!(
        s["weir_attempts_total{handler=\"noop\",outcome=\"ok\"}"],
        6.0
    );
    assert!(s["weir_batch_size_count"] >= 1.0);
    assert!(s.contains_key("weir_step_duration_seconds_bucket{handler=\"noop\",le=\"0.001\"}"));
    assert!(s["weir_leases_held"] >= 1.0);
    // Sampled every 5 s: the queue is drained.
    let depth = wait_for_async(Duration::from_secs(10), "queue depth sampled", async || {
        let (_, body) = get(addr, "/metrics").await.ok()?;
        samples(&body)
            .get("weir_queue_depth{queue=\"default\"}")
            .copied()
    })
    .await?;
    assert_eq!(depth, 0.0);

    let (status, body) = get(addr, "/healthz").await?;
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = get(addr, "/readyz").await?;
    assert_eq!(status, 200, "{body}");

    worker.stop().await;
    coordinator.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_redis() -> anyhow::Result<()> {
    init_logs();
    let mut redis = RedisServer::builder().aof(true).start()?;
    let url = redis.url();
    let ready = process::redis_readiness(&redis_config(&url, "r"))?;
    let shutdown = Shutdown::new();
    let server = process::serve("127.0.0.1:0".parse()?, ready, shutdown.listener()).await?;
    let addr = server.local_addr();

    let (status, body) = get(addr, "/readyz").await?;
    assert_eq!(status, 200, "{body}");

    redis.stop()?;
    let (status, body) = get(addr, "/readyz").await?;
    assert_eq!(status, 503, "{body}");
    let reason: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(reason["ready"], false);
    assert!(
        reason["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Redis")),
        "{body}"
    );
    // Alive all the same.
    assert_eq!(get(addr, "/healthz").await?.0, 200);

    redis.restart()?;
    wait_until_async(Duration::from_secs(10), "ready again", async || {
        matches!(get(addr, "/readyz").await, Ok((200, _)))
    })
    .await?;

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), server.wait()).await?;
    Ok(())
}

//! The coordinator's upkeep (issue 15, lows): retention keeps up with a high completion
//! rate (it is measured here), follows a steady stream of completions closely, and
//! heartbeats of coordinators gone for `lease::FORGET_AFTER` are removed.

mod common;

use std::time::{Duration, Instant};

use common::{keys, raw};
use weir::{parse_definition, Engine, StartOptions};
use weir_coordinator::service::lease::FORGET_AFTER;
use weir_coordinator::service::retention::{FOLLOW_INTERVAL, IDLE_INTERVAL};
use weir_tests::cluster::{
    client, init_logs, start_builtin_worker, start_coordinator, start_coordinator_with,
};
use weir_tests::{wait_until_async, RedisServer};

async fn server_ms(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<i64> {
    let (s, us): (i64, i64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(s * 1000 + us / 1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_a_backlog_of_finished_instances_quickly() -> anyhow::Result<()> {
    init_logs();
    const N: usize = 20_000;
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    let keys = keys(&client);
    let mut conn = raw(&url).await?;
    // N instances that finished two hours ago, as the coordinator writes them.
    let finished = server_ms(&mut conn).await? - 2 * 3600 * 1000;
    for chunk in (0..N).collect::<Vec<_>>().chunks(2000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            let id = format!("old-{i}");
            let part = keys.part_of(&id);
            pipe.cmd("HSET")
                .arg(part.instance(&id))
                .arg(&[
                    "state",
                    "x",
                    "rev",
                    "3",
                    "status",
                    "completed",
                    "def",
                    "flow",
                ])
                .ignore()
                .cmd("RPUSH")
                .arg(part.history(&id))
                .arg("attempt")
                .ignore();
            for index in [
                part.index_status("completed"),
                part.index_definition("flow"),
            ] {
                pipe.cmd("ZADD")
                    .arg(index)
                    .arg(finished - 1000)
                    .arg(&id)
                    .ignore();
            }
            pipe.cmd("ZADD")
                .arg(part.index_finished())
                .arg(finished)
                .arg(&id)
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await?;
    }
    let mut config = common::coordinator_config(&url, "t");
    config.retention = Duration::from_secs(3600);
    let began = Instant::now();
    let _coordinator = start_coordinator_with(config).await?;
    wait_until_async(
        Duration::from_secs(10),
        "every finished instance is deleted",
        async || {
            let mut pipe = redis::pipe();
            for part in keys.all_parts() {
                pipe.cmd("ZCARD").arg(part.index_finished());
            }
            pipe.query_async::<Vec<u64>>(&mut conn.clone())
                .await
                .is_ok_and(|counts| counts.iter().all(|n| *n == 0))
        },
    )
    .await?;
    let took = began.elapsed();
    eprintln!(
        "retention: {N} instances deleted in {took:?} ({:.0}/s, including the coordinator's start)",
        N as f64 / took.as_secs_f64()
    );
    // Everything of theirs is gone.
    let left: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await?;
    assert!(left < 100, "{left} keys left");
    for part in keys.all_parts() {
        for index in [
            part.index_status("completed"),
            part.index_definition("flow"),
        ] {
            let n: u64 = redis::cmd("ZCARD")
                .arg(&index)
                .query_async(&mut conn)
                .await?;
            assert_eq!(n, 0, "{index}");
        }
    }
    Ok(())
}

/// With a retention of zero, while instances finish steadily, the oldest finished instance
/// still awaiting deletion is never older than a few sweep intervals: retention sweeps again
/// soon after a sweep that deleted something, and every `IDLE_INTERVAL` otherwise, instead of
/// once a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_follows_a_steady_stream_of_completions() -> anyhow::Result<()> {
    init_logs();
    const FLOW: &str = r#"
name: short
version: "1.0.0"
steps:
  one: { type: machine, handler: set, config: { one: true } }
"#;
    // The oldest a finished instance may wait for deletion: under the old cadence's one
    // second (which this test failed at 1.08 s), with room for a loaded 2-core machine.
    let limit = Duration::from_millis(750);
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let keys = keys(&client);
    let mut conn = raw(&url).await?;
    let mut config = common::coordinator_config(&url, "t");
    config.retention = Duration::ZERO;
    let _coordinator = start_coordinator_with(config).await?;
    let _worker =
        start_builtin_worker(common::worker_config(&url, "t", Duration::from_secs(30))).await?;

    // About 100 instances a second for 4 s, sampling the oldest finished instance's age.
    let mut oldest = Duration::ZERO;
    let mut samples = 0;
    let began = Instant::now();
    let mut started = 0;
    while began.elapsed() < Duration::from_secs(4) {
        for _ in 0..5 {
            client
                .start_workflow("short", StartOptions::default())
                .await?;
            started += 1;
        }
        let now = server_ms(&mut conn).await?;
        let mut pipe = redis::pipe();
        for part in keys.all_parts() {
            pipe.cmd("ZRANGE")
                .arg(part.index_finished())
                .arg(0)
                .arg(0)
                .arg("WITHSCORES");
        }
        let firsts: Vec<Vec<(String, i64)>> = pipe.query_async(&mut conn).await?;
        for (_, finished) in firsts.into_iter().flatten() {
            oldest = oldest.max(Duration::from_millis((now - finished).max(0) as u64));
        }
        samples += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every one finishes and is deleted.
    wait_until_async(
        Duration::from_secs(20),
        "every instance finished and was deleted",
        async || {
            weir::redis::server::count_instances(&mut conn.clone(), &keys)
                .await
                .is_ok_and(|n| n == 0)
        },
    )
    .await?;
    eprintln!(
        "retention: {started} instances, {samples} samples, the oldest finished instance \
         awaiting deletion was {oldest:?} old (sweeps every {FOLLOW_INTERVAL:?} while deleting, {IDLE_INTERVAL:?} idle)"
    );
    assert!(samples >= 20, "only {samples} samples");
    assert!(
        oldest < limit,
        "a finished instance waited {oldest:?} for deletion (limit {limit:?})"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_of_long_gone_coordinators_are_removed() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    let keys = keys(&client);
    let mut conn = raw(&url).await?;
    let now = server_ms(&mut conn).await?;
    let long_gone = now - FORGET_AFTER.as_millis() as i64 - 60_000;
    let recent = now - 60_000;
    let _: () = redis::cmd("ZADD")
        .arg(keys.coordinators())
        .arg(long_gone)
        .arg("long-gone")
        .arg(recent)
        .arg("recently-gone")
        .query_async(&mut conn)
        .await?;
    let coordinator = start_coordinator(&url, "t").await?;
    wait_until_async(
        Duration::from_secs(5),
        "the long-gone heartbeat is removed",
        async || {
            redis::cmd("ZSCORE")
                .arg(keys.coordinators())
                .arg("long-gone")
                .query_async::<Option<f64>>(&mut conn.clone())
                .await
                .is_ok_and(|s| s.is_none())
        },
    )
    .await?;
    let kept: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys.coordinators())
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await?;
    assert!(kept.contains(&"recently-gone".to_string()), "{kept:?}");
    assert!(kept.contains(&coordinator.id), "{kept:?}");
    Ok(())
}

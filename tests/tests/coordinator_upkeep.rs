//! The coordinator's upkeep (issue 15, lows): retention keeps up with a high completion
//! rate (it is measured here), and heartbeats of coordinators gone for
//! `lease::FORGET_AFTER` are removed.

mod common;

use std::time::{Duration, Instant};

use common::{keys, raw};
use weir_coordinator::service::lease::FORGET_AFTER;
use weir_tests::cluster::{client, init_logs, start_coordinator, start_coordinator_with};
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
                part.index_all(),
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
            part.index_all(),
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

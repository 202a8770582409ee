//! No "error now, applied later": a command on an existing instance carries a deadline by
//! the Redis clock, and a command no coordinator applied by then is never applied.

use std::time::Duration;

use serde_json::json;
use weir::model::InstanceStatus;
use weir::redis::batch::{Batch, CommitError, DEADLINE_PASSED};
use weir::Engine;
use weir::{parse_definition, EngineError, StartOptions, TaskFilter};
use weir_tests::cluster::{client, init_logs, start_coordinator, start_worker};
use weir_tests::{wait_until_async, RedisServer};

mod common;
use common::queued_commands;

const FLOW: &str = r#"
name: approval
version: "1.0.0"
steps:
  prepare: { type: machine, handler: set, config: { prepared: true } }
  approve: { type: human, assignee: boss }
  done: { type: machine, handler: set, config: { finished: true } }
edges:
  - { from: prepare, to: approve }
  - { from: approve, to: done }
"#;

const WAIT: Duration = Duration::from_secs(30);

async fn redis_now_ms(client: &weir::redis::WeirClient) -> anyhow::Result<i64> {
    let (s, us): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut client.connections().conn.clone())
        .await?;
    Ok(s * 1000 + us / 1000)
}

async fn stat(client: &weir::redis::WeirClient, field: &str) -> anyhow::Result<i64> {
    let mut pipe = redis::pipe();
    for part in client.connections().keys.all_parts() {
        pipe.cmd("HGET").arg(part.stats()).arg(field);
    }
    let values: Vec<Option<i64>> = pipe
        .query_async(&mut client.connections().conn.clone())
        .await?;
    Ok(values.into_iter().flatten().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_no_coordinator_applied_in_time_is_never_applied() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let coordinator = start_coordinator(&url, "t").await?;
    let worker = start_worker(&url, "t").await?;
    let client = client(&url, "t")
        .await?
        .with_reply_timeout(Duration::from_secs(1));
    client.register_definition(parse_definition(FLOW)?).await?;
    let id = client
        .start_workflow("approval", StartOptions::default())
        .await?
        .id;
    let waiting = client.wait(&id, WAIT).await?;
    assert_eq!(waiting.status, InstanceStatus::Waiting, "{waiting:?}");

    // Every coordinator stops; the completion is queued and times out.
    coordinator.stop().await;
    let err = client
        .complete_human_task(&id, "approve", "boss", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NotApplied(_)), "{err}");
    assert!(err.to_string().contains("nothing changed"), "{err}");
    // Past the deadline by the Redis clock (the call already waited past it).
    let past = redis_now_ms(&client).await? + 200;
    wait_until_async(WAIT, "the Redis clock passed the deadline", async || {
        redis_now_ms(&client).await.is_ok_and(|now| now > past)
    })
    .await?;

    // A coordinator starts: it discards the expired command, and counts it.
    let coordinator = start_coordinator(&url, "t").await?;
    wait_until_async(
        WAIT,
        "the coordinator handled the queued command",
        async || queued_commands(&client).await.ok() == Some(0),
    )
    .await?;
    let still = client.get_instance(&id).await?;
    assert_eq!(still.status, InstanceStatus::Waiting, "{still:?}");
    assert_eq!(still.current_steps, vec!["approve"]);
    let tasks = client
        .list_tasks(&TaskFilter {
            instance_id: Some(id.clone()),
            ..TaskFilter::default()
        })
        .await?;
    assert_eq!(tasks.len(), 1, "the task is still open");
    assert_eq!(stat(&client, "commands_expired").await?, 1);

    // Sent again with a coordinator running, it is applied.
    let client = client.with_reply_timeout(Duration::from_secs(10));
    client
        .complete_human_task(&id, "approve", "boss", json!({}))
        .await?;
    let done = client.wait(&id, WAIT).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    worker.stop().await;
    coordinator.stop().await;
    Ok(())
}

/// The deadline is checked inside the commit, by the Redis clock: a batch holding a command
/// past its deadline writes nothing, even when the coordinator built it in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_past_a_commands_deadline_writes_nothing() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let client = client(&redis.url(), "t").await?;
    let part = client.connections().keys.part(0);
    let mut conn = client.connections().conn.clone();
    let _: () = redis::cmd("SET")
        .arg(part.lease())
        .arg("me")
        .query_async(&mut conn)
        .await?;
    let now = redis_now_ms(&client).await?;
    let key = format!("{}:probe", part.tag());

    let mut late = Batch::new(part.lease());
    late.hset(&key, &[("written", b"late")]);
    late.check_deadline(now + 60_000);
    late.check_deadline(now - 1);
    match late.commit(&mut conn, "me").await {
        Err(CommitError::Conflict(why)) => assert_eq!(why, DEADLINE_PASSED),
        other => panic!("expected a deadline refusal, got {other:?}"),
    }
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await?;
    assert!(!exists, "a batch past its deadline wrote");

    let mut on_time = Batch::new(part.lease());
    on_time.hset(&key, &[("written", b"on time")]);
    on_time.check_deadline(now + 60_000);
    on_time.commit(&mut conn, "me").await?;
    let written: Option<String> = redis::cmd("HGET")
        .arg(&key)
        .arg("written")
        .query_async(&mut conn)
        .await?;
    assert_eq!(written.as_deref(), Some("on time"));
    Ok(())
}

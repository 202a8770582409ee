//! Poison and stale input (ARCHITECTURE.md invariants 4 and 5): garbage bytes, undecodable, field-less
//! and oversized entries on step, result and command streams go to the partition's
//! dead-letter stream with their error and block nothing; results from an old attempt, a
//! duplicate delivery, an unknown instance or a canceled one are dropped, counted, and
//! acknowledged, and change nothing.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use common::{
    coordinator_config, id_in_partition, keys, pending, raw, stream_entries, worker_config, xlen,
};
use serde_json::json;
use weir::core::StepError;
use weir::model::{Context, InstanceStatus, StepStatus};
use weir::redis::keys::{COORDINATOR_GROUP, WORKER_GROUP};
use weir::redis::store;
use weir::redis::wire::{self, Command, CommandMessage, Outcome, ResultMessage};
use weir::redis::WeirClient;
use weir::Engine;
use weir::{parse_definition, StartOptions, Step, StepContext, Timestamp};
use weir_tests::cluster::{
    client, init_logs, start_builtin_worker, start_coordinator, start_coordinator_counted,
    start_worker_with,
};
use weir_tests::{wait_for_async, RedisServer};

type Conn = redis::aio::MultiplexedConnection;
type Entry = (String, HashMap<String, Vec<u8>>);

const QUICK: &str = r#"
name: quick
version: "1.0.0"
steps:
  a: { type: machine, handler: set, config: { a: 1 } }
  b: { type: machine, handler: set, config: { b: 2 } }
edges:
  - { from: a, to: b }
"#;

fn with_id(id: &str) -> StartOptions {
    StartOptions {
        id: Some(id.into()),
        ..StartOptions::default()
    }
}

async fn xadd(conn: &mut Conn, stream: &str, field: &str, value: &[u8]) -> anyhow::Result<()> {
    let _: String = redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg(field)
        .arg(value)
        .query_async(conn)
        .await?;
    Ok(())
}

async fn wait_for_dlq(conn: &Conn, dlq: &str, n: usize) -> anyhow::Result<Vec<Entry>> {
    wait_for_async(Duration::from_secs(10), "dead letters", async || {
        let entries = stream_entries(&mut conn.clone(), dlq).await.ok()?;
        (entries.len() >= n).then_some(entries)
    })
    .await
}

fn text(entry: &Entry, field: &str) -> String {
    String::from_utf8_lossy(entry.1.get(field).map(Vec::as_slice).unwrap_or_default()).into()
}

/// Starts `n` good instances in partition `p` (and as many elsewhere) and waits until all
/// complete with both steps applied once.
async fn good_instances_complete(client: &WeirClient, p: u16, n: usize) -> anyhow::Result<()> {
    let keys = keys(client);
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(id_in_partition(&keys, p, &format!("good-{i}")));
        ids.push(format!("elsewhere-{i}"));
    }
    for id in &ids {
        client.start_workflow("quick", with_id(id)).await?;
    }
    for id in &ids {
        let done = client.wait(id, Duration::from_secs(10)).await?;
        assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
        assert_eq!(common::completed_records(client, id, "a").await?, 1);
    }
    Ok(())
}

fn a_result(instance_id: &str, step: &str, attempt: u32, token: u64, outcome: Outcome) -> Vec<u8> {
    wire::encode(&ResultMessage {
        instance_id: instance_id.into(),
        step: step.into(),
        attempt,
        token,
        worker: "ghost".into(),
        outcome,
        started_at: Timestamp(0),
        finished_at: Timestamp(0),
    })
}

fn ok(key: &str) -> Outcome {
    let mut c = Context::new();
    c.insert(key.into(), json!(true));
    Outcome::Ok(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_in_a_step_stream_is_dead_lettered_and_blocks_nothing() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let (_worker, counters) =
        start_builtin_worker(worker_config(&url, "t", Duration::from_secs(2))).await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(QUICK)?).await?;
    let part = keys(&client).part(2);
    let q = part.queue("default");
    let mut conn = raw(&url).await?;

    let garbage: &[u8] = b"\xc1\xff\x00 not msgpack at all";
    let wrong_shape = a_result("x", "a", 1, 1, ok("x"));
    let oversized = vec![0x90u8; wire::MAX_MESSAGE_BYTES + 1];
    xadd(&mut conn, &q, "m", garbage).await?;
    xadd(&mut conn, &q, "other", b"no m field").await?;
    xadd(&mut conn, &q, "m", &wrong_shape).await?;
    xadd(&mut conn, &q, "m", &oversized).await?;
    good_instances_complete(&client, 2, 3).await?;

    let dead = wait_for_dlq(&conn, &part.dlq(), 4).await?;
    assert_eq!(dead.len(), 4);
    for entry in &dead {
        assert_eq!(text(entry, "source"), q);
        assert_eq!(text(entry, "group"), WORKER_GROUP);
        assert!(!text(entry, "error").is_empty());
    }
    assert!(
        text(&dead[0], "error").contains("undecodable"),
        "{}",
        text(&dead[0], "error")
    );
    assert_eq!(
        dead[0].1["m"], garbage,
        "the raw bytes are kept for inspection and replay"
    );
    assert!(
        text(&dead[1], "error").contains("no `m` field"),
        "{}",
        text(&dead[1], "error")
    );
    assert!(
        text(&dead[2], "error").contains("undecodable"),
        "{}",
        text(&dead[2], "error")
    );
    assert!(
        text(&dead[3], "error").contains("over the limit"),
        "{}",
        text(&dead[3], "error")
    );
    assert_eq!(xlen(&mut conn, &q).await?, 0, "poison left its stream");
    assert_eq!(pending(&mut conn, &q, WORKER_GROUP).await?, 0);
    assert_eq!(counters.dead_lettered.load(Ordering::SeqCst), 4);
    let stat: Option<u64> = redis::cmd("HGET")
        .arg(part.stats())
        .arg("dead_lettered")
        .query_async(&mut conn)
        .await?;
    assert_eq!(stat, Some(4));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_in_result_and_command_streams_is_dead_lettered_by_the_coordinator(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let (_coordinator, counters) = start_coordinator_counted(coordinator_config(&url, "t")).await?;
    let (_worker, _) =
        start_builtin_worker(worker_config(&url, "t", Duration::from_secs(2))).await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(QUICK)?).await?;
    let part = keys(&client).part(5);
    let (results, commands) = (part.results(), part.commands());
    let mut conn = raw(&url).await?;

    let command = wire::encode(&CommandMessage {
        instance_id: "x".into(),
        reply_to: None,
        command: Command::Cancel { reason: None },
    });
    let result = a_result("x", "a", 1, 1, ok("x"));
    xadd(&mut conn, &results, "m", b"\x00garbage").await?;
    xadd(&mut conn, &results, "nope", b"").await?;
    xadd(&mut conn, &results, "m", &command).await?;
    xadd(&mut conn, &commands, "m", b"\xffgarbage").await?;
    xadd(&mut conn, &commands, "nope", b"").await?;
    xadd(&mut conn, &commands, "m", &result).await?;
    xadd(
        &mut conn,
        &commands,
        "m",
        &vec![0x90u8; wire::MAX_MESSAGE_BYTES + 1],
    )
    .await?;
    good_instances_complete(&client, 5, 3).await?;

    let dead = wait_for_dlq(&conn, &part.dlq(), 7).await?;
    assert_eq!(dead.len(), 7);
    let from = |stream: &str| dead.iter().filter(|e| text(e, "source") == stream).count();
    assert_eq!(from(&results), 3);
    assert_eq!(from(&commands), 4);
    for entry in &dead {
        assert_eq!(text(entry, "group"), COORDINATOR_GROUP);
        assert!(!text(entry, "error").is_empty(), "{entry:?}");
    }
    assert!(dead
        .iter()
        .any(|e| text(e, "error").contains("over the limit")));
    for stream in [&results, &commands] {
        assert_eq!(xlen(&mut conn, stream).await?, 0, "{stream}");
        assert_eq!(pending(&mut conn, stream, COORDINATOR_GROUP).await?, 0);
    }
    assert_eq!(counters.dead_lettered.load(Ordering::SeqCst), 7);
    let stat: Option<u64> = redis::cmd("HGET")
        .arg(part.stats())
        .arg("dead_lettered")
        .query_async(&mut conn)
        .await?;
    assert_eq!(stat, Some(7));
    Ok(())
}

/// Fails attempt 1 at once (retryable); later attempts take 1.5 s and write `attempt`.
struct FlakyThenSlow;

#[async_trait]
impl Step for FlakyThenSlow {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        if ctx.attempt() == 1 {
            return Err(StepError::retryable("first attempt fails"));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ctx.set("attempt", json!(ctx.attempt()));
        Ok(())
    }
}

const RETRIED: &str = r#"
name: retried
version: "1.0.0"
steps:
  a:
    type: machine
    handler: flaky
    retry: { max_attempts: 2, initial_interval: 100ms, jitter: false }
  b: { type: human }
edges:
  - { from: a, to: b }
"#;

/// The instance's `rev` field.
async fn rev(conn: &mut Conn, client: &WeirClient, id: &str) -> anyhow::Result<u64> {
    Ok(redis::cmd("HGET")
        .arg(keys(client).part_of(id).instance(id))
        .arg("rev")
        .query_async(conn)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_duplicate_and_late_results_are_dropped_counted_and_change_nothing(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let (_coordinator, counters) = start_coordinator_counted(coordinator_config(&url, "t")).await?;
    let mut handlers = weir_worker::builtin_handlers();
    handlers.register("flaky", FlakyThenSlow);
    let _worker =
        start_worker_with(worker_config(&url, "t", Duration::from_secs(5)), handlers).await?;
    let client = client(&url, "t").await?;
    client
        .register_definition(parse_definition(RETRIED)?)
        .await?;
    let id = "stale-1";
    let part = keys(&client).part_of(id);
    let results = part.results();
    let mut conn = raw(&url).await?;
    client
        .start_workflow_created("retried", with_id(id), Duration::from_secs(10))
        .await?;

    // Attempt 2 runs; attempt 1's token is older.
    let token2 = wait_for_async(Duration::from_secs(5), "attempt 2 runs", async || {
        let s = store::load_instance(client.connections(), id)
            .await
            .ok()??;
        let st = &s.instance.steps[0];
        (st.attempt == 2 && st.status == StepStatus::Running).then_some(st.token)
    })
    .await?;
    let before = rev(&mut conn, &client, id).await?;
    let drained = async |conn: &Conn| {
        wait_for_async(
            Duration::from_secs(5),
            "the results stream drained",
            async || {
                let mut c = conn.clone();
                (xlen(&mut c, &results).await.ok()? == 0
                    && pending(&mut c, &results, COORDINATOR_GROUP).await.ok()? == 0)
                    .then_some(())
            },
        )
        .await
    };
    // A late success of attempt 1, and a late failure with the retry timer's token.
    xadd(
        &mut conn,
        &results,
        "m",
        &a_result(id, "a", 1, token2 - 2, ok("stale")),
    )
    .await?;
    let fatal = Outcome::Err(StepError::fatal("boom", "late failure"));
    xadd(
        &mut conn,
        &results,
        "m",
        &a_result(id, "a", 1, token2 - 1, fatal),
    )
    .await?;
    // A result for an instance that does not exist.
    xadd(
        &mut conn,
        &results,
        "m",
        &a_result("ghost-9", "a", 1, 1, ok("ghost")),
    )
    .await?;
    drained(&conn).await?;
    assert_eq!(
        rev(&mut conn, &client, id).await?,
        before,
        "nothing written"
    );
    let view = client.get_instance(id).await?;
    assert_eq!(view.status, InstanceStatus::Running);
    assert!(view.context.get("stale").is_none());
    assert_eq!(
        client.get_instance("ghost-9").await.unwrap_err().kind(),
        "not_found"
    );

    // Attempt 2 finishes normally; then its result arrives again (a duplicate delivery).
    let waiting = client.wait(id, Duration::from_secs(10)).await?;
    assert_eq!(waiting.status, InstanceStatus::Waiting, "{waiting:?}");
    assert_eq!(waiting.context["attempt"], json!(2));
    let before = rev(&mut conn, &client, id).await?;
    xadd(
        &mut conn,
        &results,
        "m",
        &a_result(id, "a", 2, token2, ok("dup")),
    )
    .await?;
    drained(&conn).await?;
    assert_eq!(rev(&mut conn, &client, id).await?, before);
    assert!(client.get_instance(id).await?.context.get("dup").is_none());

    // A result for a canceled instance.
    client.cancel_workflow(id, Some("test")).await?;
    let before = rev(&mut conn, &client, id).await?;
    xadd(
        &mut conn,
        &results,
        "m",
        &a_result(id, "a", 2, token2, ok("late")),
    )
    .await?;
    drained(&conn).await?;
    assert_eq!(rev(&mut conn, &client, id).await?, before);
    let canceled = client.get_instance(id).await?;
    assert_eq!(canceled.status, InstanceStatus::Canceled);
    assert!(canceled.context.get("late").is_none());

    assert_eq!(counters.stale.load(Ordering::SeqCst), 5, "each is counted");
    // ... also in Redis, where operators (and `weir stats`) read it.
    let stat: Option<u64> = redis::cmd("HGET")
        .arg(part.stats())
        .arg("stale_dropped")
        .query_async(&mut conn)
        .await?;
    assert_eq!(stat, Some(5));
    assert_eq!(common::completed_records(&client, id, "a").await?, 1);
    Ok(())
}

const TASK_ONLY: &str = r#"
name: task_only
version: "1.0.0"
steps:
  approve: { type: human }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_with_a_foreign_reply_key_is_applied_whole_and_writes_only_its_partition(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let client = client(&url, "t").await?;
    client
        .register_definition(parse_definition(TASK_ONLY)?)
        .await?;
    let keys = keys(&client);
    let mut conn = raw(&url).await?;
    let (a, b) = (
        id_in_partition(&keys, 1, "a"),
        id_in_partition(&keys, 1, "b"),
    );
    for id in [&a, &b] {
        client.start_workflow("task_only", with_id(id)).await?;
        assert_eq!(
            client.wait(id, Duration::from_secs(5)).await?.status,
            InstanceStatus::Waiting
        );
    }
    let commands = keys.part(1).commands();
    // A reply key of the wrong type (the namespace's meta hash), and one in another
    // partition's slot: a script must neither fail half-way nor cross slots.
    let foreign = keys.part(2).reply("forged");
    for (id, reply_to) in [(&a, keys.meta()), (&b, foreign.clone())] {
        let msg = CommandMessage {
            instance_id: id.to_string(),
            reply_to: Some(reply_to),
            command: Command::Cancel {
                reason: Some("forged".into()),
            },
        };
        xadd(&mut conn, &commands, "m", &wire::encode(&msg)).await?;
    }
    for id in [&a, &b] {
        wait_for_async(
            Duration::from_secs(5),
            &format!("{id} canceled"),
            async || {
                let v = client.get_instance(id).await.ok()?;
                (v.status == InstanceStatus::Canceled).then_some(())
            },
        )
        .await?;
    }
    let partitions: Option<String> = redis::cmd("HGET")
        .arg(keys.meta())
        .arg("partitions")
        .query_async(&mut conn)
        .await?;
    assert_eq!(
        partitions.as_deref(),
        Some("8"),
        "the meta hash is untouched"
    );
    let exists: u64 = redis::cmd("EXISTS")
        .arg(&foreign)
        .query_async(&mut conn)
        .await?;
    assert_eq!(exists, 0, "nothing written outside the partition");
    let events = common::all_events(&client).await?;
    for id in [&a, &b] {
        assert_eq!(common::count_events(&events, id, "WorkflowCanceled"), 1);
    }
    assert!(client.list_tasks(&Default::default()).await?.is_empty());
    assert_eq!(xlen(&mut conn, &commands).await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_sent_to_the_wrong_partition_is_refused_and_creates_nothing() -> anyhow::Result<()>
{
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let client = client(&url, "t").await?;
    client
        .register_definition(parse_definition(TASK_ONLY)?)
        .await?;
    let keys = keys(&client);
    let mut conn = raw(&url).await?;
    let id = id_in_partition(&keys, 3, "misrouted");
    let wrong = keys.part(4);
    let reply = wrong.reply("misrouted-reply");
    let msg = CommandMessage {
        instance_id: id.clone(),
        reply_to: Some(reply.clone()),
        command: Command::Start {
            definition: "task_only".into(),
            version: "1.0.0".into(),
            initial_data: Context::new(),
            tenant_id: None,
            created_by: None,
        },
    };
    xadd(&mut conn, &wrong.commands(), "m", &wire::encode(&msg)).await?;
    let (_, bytes): (String, Vec<u8>) = redis::cmd("BLPOP")
        .arg(&reply)
        .arg(5)
        .query_async(&mut conn)
        .await?;
    match wire::decode::<wire::Reply>(&bytes)? {
        wire::Reply::Refused {
            kind,
            message,
            refusal,
        } => {
            assert_eq!(kind, "bad_request", "{message}");
            assert_eq!(
                refusal, None,
                "the coordinator's own refusal, not the core's"
            );
            assert!(message.contains("partition"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let exists: u64 = redis::cmd("EXISTS")
        .arg(wrong.instance(&id))
        .arg(keys.part(3).instance(&id))
        .query_async(&mut conn)
        .await?;
    assert_eq!(exists, 0, "no instance created in the wrong partition");
    assert_eq!(
        client.get_instance(&id).await.unwrap_err().kind(),
        "not_found"
    );
    Ok(())
}

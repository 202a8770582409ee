//! Batched starts: many starts of one workflow in one call (one script call per partition),
//! checked first as a whole, then stored start by start.

mod common;

use std::time::Duration;

use serde_json::json;
use weir::model::InstanceStatus;
use weir::Engine;
use weir::{parse_definition, EngineError, InstanceFilter, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator, start_worker};
use weir_tests::{wait_until_async, RedisServer};

const FLOW: &str = r#"
name: sync
version: "1.0.0"
steps:
  fetch: { type: machine, handler: set, config: { fetched: true } }
"#;

const OTHER: &str = r#"
name: other
version: "1.0.0"
steps:
  only: { type: machine, handler: noop }
"#;

const WAIT: Duration = Duration::from_secs(60);

fn item(n: usize) -> StartOptions {
    StartOptions {
        initial_data: json!({ "n": n }).as_object().cloned().unwrap_or_default(),
        ..StartOptions::default()
    }
}

async fn count(client: &weir::redis::WeirClient, status: InstanceStatus) -> anyhow::Result<u64> {
    let mut pipe = redis::pipe();
    for part in client.connections().keys.all_parts() {
        pipe.cmd("ZCARD").arg(part.index_status(status.as_str()));
    }
    let n: Vec<u64> = pipe
        .query_async(&mut client.connections().conn.clone())
        .await?;
    Ok(n.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_checked_whole_then_stored_start_by_start() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    client.register_definition(parse_definition(OTHER)?).await?;
    client
        .start_workflow(
            "other",
            StartOptions {
                id: Some("taken".into()),
                ..StartOptions::default()
            },
        )
        .await?;

    // One bad start refuses the whole batch: nothing stored, and the error names it.
    let mut bad: Vec<StartOptions> = (0..50).map(item).collect();
    bad[37].id = Some("no spaces allowed".into());
    let err = client.start_workflows("sync", bad).await.unwrap_err();
    assert_eq!(err.index, 37, "{err}");
    assert_eq!(err.error.kind(), "bad_request", "{err}");
    assert_eq!(count(&client, InstanceStatus::Pending).await?, 1);

    // 300 starts over every partition, one of them on an id another workflow took, and one
    // repeated: each gets its own result, in order.
    let mut starts: Vec<StartOptions> = (0..300).map(item).collect();
    starts[10].id = Some("taken".into());
    starts[20].id = Some("twice".into());
    starts[21].id = Some("twice".into());
    let results = client.start_workflows("sync", starts).await?;
    assert_eq!(results.len(), 300);
    for (n, r) in results.iter().enumerate() {
        match n {
            10 => assert!(
                matches!(r, Err(EngineError::IdTaken(id)) if id == "taken"),
                "{r:?}"
            ),
            21 => {
                let s = r.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
                assert!(!s.stored, "the second start of `twice` stored something");
                assert_eq!(s.view.id, "twice");
            }
            _ => {
                let s = r.as_ref().map_err(|e| anyhow::anyhow!("{n}: {e}"))?;
                assert!(s.stored);
                assert_eq!(s.view.status, InstanceStatus::Pending);
                assert_eq!(s.view.context["n"], n, "results are in order");
            }
        }
    }
    assert_eq!(count(&client, InstanceStatus::Pending).await?, 1 + 298);

    // A coordinator runs them all.
    let coordinator = start_coordinator(&url, "t").await?;
    let worker = start_worker(&url, "t").await?;
    wait_until_async(WAIT, "every start completed", async || {
        count(&client, InstanceStatus::Completed).await.ok() == Some(299)
    })
    .await?;
    let done = client
        .list_instances(&InstanceFilter {
            definition: Some("sync".into()),
            limit: Some(1000),
            ..InstanceFilter::default()
        })
        .await?;
    assert_eq!(done.len(), 298);
    assert!(done
        .iter()
        .all(|v| v.status == InstanceStatus::Completed && v.context["fetched"] == true));
    worker.stop().await;
    coordinator.stop().await;
    Ok(())
}

const SYNC_2: &str = r#"
name: sync
version: "2.0.0"
steps:
  fetch: { type: machine, handler: set, config: { fetched: 2 } }
"#;

/// A start's outcome as the test names it.
fn outcome(r: &Result<weir::api::Started, EngineError>) -> String {
    match r {
        Ok(s) if s.stored => format!("stored {}", s.view.id),
        Ok(s) => format!("same {}", s.view.id),
        Err(EngineError::IdTaken(id)) => format!("taken {id}"),
        Err(e) => format!("error {e}"),
    }
}

/// Sizes of raw keys of partition 0.
async fn sizes(
    client: &weir::redis::WeirClient,
    keys: &[(&str, String)],
) -> anyhow::Result<Vec<(String, u64)>> {
    let mut pipe = redis::pipe();
    for (kind, key) in keys {
        pipe.cmd(if *kind == "stream" { "XLEN" } else { "ZCARD" })
            .arg(key);
    }
    let n: Vec<u64> = pipe
        .query_async(&mut client.connections().conn.clone())
        .await?;
    Ok(keys.iter().map(|(_, k)| k.clone()).zip(n).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_decides_new_ids_repeats_taken_ids_tenants_and_delays_each_on_its_own(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    // One partition: the whole batch is one start.lua call.
    let config = weir::redis::RedisConfig::new(&url, "one").with_partitions(1);
    let client = weir::redis::WeirClient::connect(&config).await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    client
        .register_definition(parse_definition(SYNC_2)?)
        .await?;
    client.register_definition(parse_definition(OTHER)?).await?;
    let with = |id: Option<&str>, version: Option<&str>, tenant: Option<&str>| StartOptions {
        id: id.map(str::to_string),
        version: version.map(str::to_string),
        tenant_id: tenant.map(str::to_string),
        ..StartOptions::default()
    };
    client
        .start_workflow("other", with(Some("taken"), None, None))
        .await?;
    client
        .start_workflow("sync", with(Some("before"), Some("1.0.0"), None))
        .await?;

    let starts = vec![
        with(None, None, None),                    // 0: new
        with(Some("taken"), None, None),           // 1: another workflow's id
        with(Some("before"), None, None),          // 2: the same start (any version)
        with(Some("before"), Some("2.0.0"), None), // 3: another version asked
        with(Some("dup"), None, None),             // 4: new
        with(Some("dup"), None, None),             // 5: the same as 4, in this call
        with(Some("dup"), Some("1.0.0"), None),    // 6: 4 is version 2.0.0
        StartOptions {
            created_by: Some("ann".into()),
            ..with(Some("x"), None, Some("acme")) // 7: new, acme:x
        },
        with(Some("x"), None, None),         // 8: new, x (no tenant)
        with(Some("x"), None, Some("acme")), // 9: the same as 7
        StartOptions {
            start_delay_ms: Some(3_600_000),
            ..with(None, None, Some("acme")) // 10: new, delayed
        },
        with(None, None, None), // 11: new
    ];
    let results = client.start_workflows("sync", starts).await?;
    let got: Vec<String> = results.iter().map(outcome).collect();
    let id = |n: usize| {
        results[n]
            .as_ref()
            .map(|s| s.view.id.clone())
            .unwrap_or_default()
    };
    let want = vec![
        format!("stored {}", id(0)),
        "taken taken".to_string(),
        "same before".to_string(),
        "taken before".to_string(),
        "stored dup".to_string(),
        "same dup".to_string(),
        "taken dup".to_string(),
        "stored acme:x".to_string(),
        "stored x".to_string(),
        "same acme:x".to_string(),
        format!("stored {}", id(10)),
        format!("stored {}", id(11)),
    ];
    assert_eq!(got, want);
    let same_before = results[2].as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(
        same_before.view.version, "1.0.0",
        "the stored start is answered"
    );
    let delayed = results[10].as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(delayed.view.start_at.is_some(), "{:?}", delayed.view);

    // Each stored start wrote its record, its pending index entry and its Start command
    // once; nothing else was written. The indexes of its workflow, tenant and creator take
    // it once it leaves `pending` (below).
    let part = client.connections().keys.part(0);
    let origin_indexes = [
        ("zset", part.index_definition("sync")),
        ("zset", part.index_definition("other")),
        ("zset", part.index_tenant("acme")),
        ("zset", part.index_creator("ann")),
    ];
    let raw = sizes(
        &client,
        &[
            ("stream", part.commands()),
            ("zset", part.due_starts()),
            ("zset", part.index_status("pending")),
        ],
    )
    .await?;
    let n: Vec<u64> = raw.iter().map(|(_, n)| *n).collect();
    // taken, before, then 0, 4, 7, 8, 11 on the stream; 10 waits in the due set.
    assert_eq!(n, vec![7, 1, 8], "{raw:?}");
    let raw = sizes(&client, &origin_indexes).await?;
    assert!(raw.iter().all(|(_, n)| *n == 0), "{raw:?}");
    let record: std::collections::HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(part.instance("acme:x"))
        .query_async(&mut client.connections().conn.clone())
        .await?;
    for (field, value) in [
        ("status", "pending"),
        ("def", "sync"),
        ("ver", "2.0.0"),
        ("tenant", "acme"),
        ("creator", "ann"),
    ] {
        assert_eq!(
            record.get(field).map(Vec::as_slice),
            Some(value.as_bytes()),
            "{field}"
        );
    }
    assert!(record.contains_key("start"));
    assert!(!record.contains_key("start_at"));
    let delayed_at: Option<i64> = redis::cmd("HGET")
        .arg(part.instance(&id(10)))
        .arg("start_at")
        .query_async(&mut client.connections().conn.clone())
        .await?;
    assert!(delayed_at.is_some());

    // A batch over the 500-start chunk: several calls, each start decided once; a repeat
    // in a later chunk is the same start.
    let mut many: Vec<StartOptions> = (0..1100).map(item).collect();
    many[3].id = Some("c3".into());
    many[700].id = Some("c3".into());
    let results = client.start_workflows("sync", many).await?;
    let stored = results
        .iter()
        .filter(|r| matches!(r, Ok(s) if s.stored))
        .count();
    assert_eq!(stored, 1099);
    assert!(results.iter().all(|r| r.is_ok()));
    assert!(results[3].as_ref().is_ok_and(|s| s.stored));
    assert!(results[700]
        .as_ref()
        .is_ok_and(|s| !s.stored && s.view.id == "c3"));

    // A coordinator creates and runs every start due now from those records.
    let coordinator = start_coordinator(&url, "one").await?;
    let worker = start_worker(&url, "one").await?;
    wait_until_async(WAIT, "every start due now completed", async || {
        count(&client, InstanceStatus::Completed).await.ok() == Some(7 + 1099)
    })
    .await?;
    assert_eq!(count(&client, InstanceStatus::Pending).await?, 1);
    // Created, they are in the indexes of their origin; the delayed start is not yet.
    let raw = sizes(&client, &origin_indexes).await?;
    let n: Vec<u64> = raw.iter().map(|(_, n)| *n).collect();
    assert_eq!(n, vec![6 + 1099, 1, 1, 1], "{raw:?}");
    worker.stop().await;
    coordinator.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_start_costs_redis_one_hset_and_one_xadd_and_its_indexes_go_per_call(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    // The script is loaded and the definition cached before counting.
    client.start_workflows("sync", vec![item(0)]).await?;
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(&mut client.connections().conn.clone())
        .await?;
    let results = client
        .start_workflows("sync", (0..800).map(item).collect())
        .await?;
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|s| s.stored)));
    let calls = common::command_calls(&mut client.connections().conn.clone()).await?;
    let n = |c: &str| calls.get(c).copied().unwrap_or(0);
    let scripts = n("evalsha");
    // The ids the client draws go in one partition per 500 (the most a call takes): two
    // calls, not one per partition.
    assert_eq!(scripts, 2, "{calls:?}");
    // Per start: the pending record and the Start command, nothing more.
    assert_eq!(n("hset"), 800, "{calls:?}");
    assert_eq!(n("xadd"), 800, "{calls:?}");
    // Per call: one EXISTS for the caller-id rule (no id existed: no HMGET), one ZADD of
    // the pending index (the only index a pending start is in).
    assert_eq!(n("exists"), scripts, "{calls:?}");
    assert_eq!(n("hmget"), 0, "{calls:?}");
    assert_eq!(n("zadd"), scripts, "{calls:?}");
    assert_eq!(count(&client, InstanceStatus::Pending).await?, 801);

    // Ids the caller names go where they hash: one call per partition (800 reach all 8).
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(&mut client.connections().conn.clone())
        .await?;
    let named = (0..800)
        .map(|i| StartOptions {
            id: Some(format!("named-{i}")),
            ..item(i)
        })
        .collect();
    let results = client.start_workflows("sync", named).await?;
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|s| s.stored)));
    let calls = common::command_calls(&mut client.connections().conn.clone()).await?;
    assert_eq!(calls.get("evalsha").copied(), Some(8), "{calls:?}");
    assert_eq!(count(&client, InstanceStatus::Pending).await?, 1601);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_drawn_ids_spread_over_the_partitions() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let keys = client.connections().keys.clone();
    let mut per_partition = vec![0usize; usize::from(keys.partitions())];
    for _ in 0..128 {
        let results = client
            .start_workflows("sync", (0..10).map(item).collect())
            .await?;
        let mut parts = std::collections::HashSet::new();
        for r in results {
            let id = r?.view.id;
            parts.insert(keys.partition_of(&id));
        }
        assert_eq!(
            parts.len(),
            1,
            "a batch of 10 drawn ids is in one partition"
        );
        for p in parts {
            per_partition[usize::from(p)] += 1;
        }
    }
    // 128 batches over 8 partitions: each gets some (by chance, one partition gets none
    // with a probability under one in a million).
    assert!(
        per_partition.iter().all(|n| *n > 0),
        "batches per partition: {per_partition:?}"
    );
    Ok(())
}

//! Batched starts: many starts of one workflow in one call (one script call per partition),
//! checked first as a whole, then stored start by start.

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

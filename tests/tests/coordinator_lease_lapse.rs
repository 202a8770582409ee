//! A coordinator whose lease lapsed while another held it, and which then took it back
//! without seeing it lost, decides from fresh state, not from the copies its partition loop
//! cached before (ARCHITECTURE.md invariant 2: caches are copies, guarded by revisions).
//!
//! Found under load on a Redis Cluster (`cluster_load.rs`): while a failover stops the
//! cluster, every lease lapses; a coordinator that takes a partition for a moment and loses
//! it again, and the first holder taking it back by its next renewal, left the first
//! holder's loop with its cache from before. It then judged a current step result stale
//! against its old copy, acknowledged it, and the instance waited for ever on a step that
//! had run. Here the same with a human task, step by step: A is frozen (SIGSTOP) with the
//! instance cached, B takes over and completes the first task, B dies, its lease expires,
//! A resumes and renews into a free lease; the second task's completion must be applied,
//! not refused as "not open" against A's old copy. `cargo build --workspace --bins` first.

mod common;
mod procs;

use std::time::Duration;

use common::{keys, raw};
use procs::CoordinatorProcess;
use serde_json::json;
use weir::model::InstanceStatus;
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator};
use weir_tests::{wait_until_async, RedisServer};

const FLOW: &str = r#"
name: two_tasks
version: "1.0.0"
steps:
  first: { type: human, assignee: ann }
  second: { type: human, assignee: ann }
edges:
  - { from: first, to: second }
"#;

const LEASE: Duration = Duration::from_secs(1);

/// Who holds the lease of the instance's partition now.
async fn holder(
    conn: &mut redis::aio::MultiplexedConnection,
    lease_key: &str,
) -> anyhow::Result<Option<String>> {
    Ok(redis::cmd("GET").arg(lease_key).query_async(conn).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_that_takes_a_lapsed_lease_back_decides_from_fresh_state(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let mut conn = raw(&url).await?;
    let a = CoordinatorProcess::start(&url, "t", "coord-a", LEASE)?;
    let client = client(&url, "t")
        .await?
        .with_reply_timeout(Duration::from_secs(20));
    client.register_definition(parse_definition(FLOW)?).await?;
    let options = StartOptions {
        id: Some("order-1".into()),
        ..StartOptions::default()
    };
    let id = client.start_workflow("two_tasks", options).await?.id;
    let view = client.wait(&id, Duration::from_secs(20)).await?;
    assert_eq!(view.status, InstanceStatus::Waiting, "{view:?}");
    let lease_key = keys(&client).part_of(&id).lease();
    assert_eq!(
        holder(&mut conn, &lease_key).await?.as_deref(),
        Some("coord-a")
    );

    // A freezes with the instance cached (it created it); B takes the partition over once
    // A's lease expires, and completes the first task.
    a.signal("STOP")?;
    let b = start_coordinator(&url, "t").await?;
    wait_until_async(Duration::from_secs(20), "B holds the lease", async || {
        holder(&mut conn.clone(), &lease_key)
            .await
            .is_ok_and(|h| h.as_deref() == Some(b.id.as_str()))
    })
    .await?;
    client
        .complete_human_task(&id, "first", "ann", json!({}))
        .await?;
    let view = client.get_instance(&id).await?;
    assert_eq!(view.current_steps, vec!["second".to_string()], "{view:?}");

    // B dies without releasing its lease; once the lease has expired, A resumes, and its
    // next renewal takes the free lease back.
    b.kill();
    wait_until_async(Duration::from_secs(20), "B's lease expires", async || {
        holder(&mut conn.clone(), &lease_key)
            .await
            .is_ok_and(|h| h.is_none())
    })
    .await?;
    a.signal("CONT")?;
    wait_until_async(
        Duration::from_secs(20),
        "A holds the lease again",
        async || {
            holder(&mut conn.clone(), &lease_key)
                .await
                .is_ok_and(|h| h.as_deref() == Some("coord-a"))
        },
    )
    .await?;

    // The second task is open: completing it is applied, whatever A cached before.
    client
        .complete_human_task(&id, "second", "ann", json!({}))
        .await?;
    let view = client.wait(&id, Duration::from_secs(20)).await?;
    assert_eq!(view.status, InstanceStatus::Completed, "{view:?}");
    drop(a);
    Ok(())
}

//! Failover within the lease (issue 11): a `weir coordinator` process killed with SIGKILL
//! under a steady stream of starts and steps has every one of its partitions held again by
//! the survivor within `lease + 1 s`, no start fails, nothing is lost and no transition is
//! applied twice. Needs `cargo build --workspace --bins` (it runs the real binary).

mod common;
mod procs;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{keys, leased_by, raw, worker_config};
use procs::two_coordinators_sharing;
use weir::model::InstanceStatus;
use weir::redis::WeirClient;
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_tests::cluster::{client, init_logs, start_builtin_worker};
use weir_tests::{wait_until_async, RedisServer};

const FLOW: &str = r#"
name: flow
version: "1.0.0"
steps:
  s1: { type: machine, handler: sleep, config: { duration: 30ms } }
  s2: { type: machine, handler: set, config: { two: true } }
  s3: { type: machine, handler: sleep, config: { duration: 30ms } }
edges:
  - { from: s1, to: s2 }
  - { from: s2, to: s3 }
"#;

const STEPS: [&str; 3] = ["s1", "s2", "s3"];

/// Starts instances `load-0`, `load-1`, ... every 20 ms until `stop`; every start must
/// succeed. Returns the ids started.
fn producer(
    client: WeirClient,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<anyhow::Result<Vec<String>>> {
    tokio::spawn(async move {
        let mut ids = Vec::new();
        let mut inflight = tokio::task::JoinSet::new();
        for i in 0.. {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let (client, id) = (client.clone(), format!("load-{i}"));
            inflight.spawn(async move {
                let options = StartOptions {
                    id: Some(id.clone()),
                    ..StartOptions::default()
                };
                client
                    .start_workflow("flow", options)
                    .await
                    .map(|_| id.clone())
                    .map_err(|e| anyhow::anyhow!("start {id} failed: {e}"))
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        while let Some(r) = inflight.join_next().await {
            ids.push(r??);
        }
        ids.sort();
        Ok(ids)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_coordinators_partitions_are_held_again_within_the_lease() -> anyhow::Result<()> {
    init_logs();
    let lease = Duration::from_secs(2);
    let redis = RedisServer::start()?;
    let url = redis.url();
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let keys = keys(&client);
    let n = keys.partitions() as usize;
    let conn = raw(&url).await?;
    let (mut a, b) = two_coordinators_sharing(&url, "t", &keys, lease).await?;
    let mut wc = worker_config(&url, "t", Duration::from_secs(2));
    wc.concurrency = 16;
    let (_worker, _) = start_builtin_worker(wc).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let load = producer(client.clone(), stop.clone());
    // Under load: instances are being started and advanced when A dies.
    wait_until_async(
        Duration::from_secs(20),
        "a first instance completes",
        async || {
            client
                .get_instance("load-0")
                .await
                .is_ok_and(|v| v.status == InstanceStatus::Completed)
        },
    )
    .await?;
    let a_parts = leased_by(&mut conn.clone(), &keys, &a.id).await?;
    assert_eq!(a_parts.len(), n / 2, "A holds its share when killed");
    a.kill()?;
    let killed = Instant::now();
    let mut probe = conn.clone();
    loop {
        if leased_by(&mut probe, &keys, &b.id).await?.len() == n {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "B never held every partition"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let failover = killed.elapsed();
    eprintln!(
        "failover: B held all {n} partitions {failover:?} after A was killed (lease {lease:?})"
    );
    assert!(
        failover <= lease + Duration::from_secs(1),
        "failover took {failover:?}, more than lease + 1 s"
    );

    // The load goes on a little on B alone, then stops; everything completes once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let ids = load.await??;
    assert!(ids.len() >= 50, "a steady stream: {} starts", ids.len());
    common::wait_all_completed(&client, &ids, Duration::from_secs(60)).await?;
    common::assert_each_step_once(&client, &ids, &STEPS).await?;
    drop(b);
    Ok(())
}

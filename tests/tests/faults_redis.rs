//! Redis going away and coming back, and the ways to log in to it: with AOF on, a Redis
//! crash loses nothing (timers fire, tasks can be completed, steps in flight finish, each
//! transition applied once) and every service reconnects by itself; a password, an ACL
//! user, and an ACL user confined to the namespace's keys all run end to end.

mod common;

use std::time::Duration;

use common::{all_events, completed_records, count_events, leased_by, raw, worker_config};
use serde_json::json;
use weir::model::InstanceStatus;
use weir::redis::{RedisConfig, WeirClient};
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator, start_worker, start_worker_with};
use weir_tests::{wait_for_async, RedisServer};

const TIMER: &str = r#"
name: timer
version: "1.0.0"
steps:
  wait: { type: timer, duration: 2s }
  after: { type: machine, handler: set, config: { after: true } }
edges:
  - { from: wait, to: after }
"#;

const APPROVAL: &str = r#"
name: approval
version: "1.0.0"
steps:
  approve:
    type: human
    assignee: ann
    form: { type: object, required: [ok], properties: { ok: { type: boolean } } }
  done: { type: machine, handler: set, config: { done: true } }
edges:
  - { from: approve, to: done }
"#;

const LINE: &str = r#"
name: line
version: "1.0.0"
steps:
  s1: { type: machine, handler: sleep, config: { duration: 300ms } }
  s2: { type: machine, handler: sleep, config: { duration: 300ms } }
  s3: { type: machine, handler: set, config: { done: true } }
edges:
  - { from: s1, to: s2 }
  - { from: s2, to: s3 }
"#;

fn with_id(id: &str) -> StartOptions {
    StartOptions {
        id: Some(id.into()),
        ..StartOptions::default()
    }
}

async fn wait_status(
    client: &WeirClient,
    id: &str,
    status: InstanceStatus,
    within: Duration,
) -> anyhow::Result<weir::InstanceView> {
    wait_for_async(within, &format!("{id} is {status}"), async || {
        let v = client.get_instance(id).await.ok()?;
        (v.status == status).then_some(v)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_crash_with_aof_loses_nothing_and_services_reconnect() -> anyhow::Result<()> {
    init_logs();
    let mut redis = RedisServer::builder().aof(true).start()?;
    let url = redis.url();
    let coordinator = start_coordinator(&url, "t").await?;
    let mut wc = worker_config(&url, "t", Duration::from_secs(2));
    wc.concurrency = 16;
    let _worker = start_worker_with(wc, weir_worker::builtin_handlers()).await?;
    let client = client(&url, "t").await?;
    for def in [TIMER, APPROVAL, LINE] {
        client.register_definition(parse_definition(def)?).await?;
    }
    let timer = client
        .start_workflow_created("timer", with_id("timer-1"), Duration::from_secs(10))
        .await?;
    let task = client.start_workflow("approval", with_id("task-1")).await?;
    let mut lines = Vec::new();
    for i in 0..10 {
        lines.push(
            client
                .start_workflow("line", with_id(&format!("line-{i}")))
                .await?
                .id,
        );
    }
    assert_eq!(
        client.wait(&task.id, Duration::from_secs(5)).await?.status,
        InstanceStatus::Waiting
    );
    assert_eq!(
        client.get_instance(&timer.id).await?.current_steps,
        vec!["wait"]
    );

    // Crash Redis while the timer waits, the task is open and steps are in flight; keep it
    // down for a second (the services see errors), then bring it back from its AOF.
    redis.kill()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.restart()?;

    // The same services carry on: the timer fires, the steps in flight finish.
    let fired = wait_status(
        &client,
        &timer.id,
        InstanceStatus::Completed,
        Duration::from_secs(15),
    )
    .await?;
    assert_eq!(fired.context["after"], json!(true));
    for id in &lines {
        wait_status(
            &client,
            id,
            InstanceStatus::Completed,
            Duration::from_secs(15),
        )
        .await?;
        for step in ["s1", "s2", "s3"] {
            assert_eq!(
                completed_records(&client, id, step).await?,
                1,
                "{id} {step}"
            );
        }
    }
    // The task survived and can be completed (the client reconnected too).
    let tasks = client.list_tasks(&weir::TaskFilter::default()).await?;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    client
        .complete_human_task(&task.id, "approve", "ann", json!({ "ok": true }))
        .await?;
    let done = client.wait(&task.id, Duration::from_secs(5)).await?;
    assert_eq!(done.status, InstanceStatus::Completed);
    assert_eq!(done.context["done"], json!(true));

    let events = all_events(&client).await?;
    assert_eq!(count_events(&events, &timer.id, "TimerFired"), 1);
    let mut conn = raw(&url).await?;
    let keys = common::keys(&client);
    assert_eq!(
        leased_by(&mut conn, &keys, &coordinator.id).await?.len(),
        keys.partitions() as usize,
        "the coordinator holds its leases again"
    );
    Ok(())
}

/// A flow that touches every kind of key: steps, a timer, a task.
const SMALL: &str = r#"
name: small
version: "1.0.0"
steps:
  a: { type: machine, handler: set, config: { a: 1 } }
  pause: { type: timer, duration: 100ms }
  approve: { type: human }
edges:
  - { from: a, to: pause }
  - { from: pause, to: approve }
"#;

/// Runs SMALL end to end against `url` with namespace `ns`.
async fn run_small(url: &str, ns: &str) -> anyhow::Result<()> {
    let _coordinator = start_coordinator(url, ns).await?;
    let _worker = start_worker(url, ns).await?;
    let client = client(url, ns).await?;
    client.register_definition(parse_definition(SMALL)?).await?;
    let inst = client
        .start_workflow("small", StartOptions::default())
        .await?;
    let waiting = client.wait(&inst.id, Duration::from_secs(10)).await?;
    assert_eq!(waiting.status, InstanceStatus::Waiting, "{waiting:?}");
    client
        .complete_human_task(&inst.id, "approve", "anyone", json!({}))
        .await?;
    let done = client.wait(&inst.id, Duration::from_secs(5)).await?;
    assert_eq!(done.status, InstanceStatus::Completed);
    assert_eq!(done.context["a"], json!(1));
    let (events, _) = client
        .read_events(&Default::default(), 100, Some(Duration::from_millis(10)))
        .await?;
    assert!(count_events(&events, &inst.id, "WorkflowCompleted") == 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_redis_works_and_a_wrong_password_is_a_clear_error(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::builder().password("s3cret-pw").start()?;
    let url = redis.url();
    assert!(url.contains("s3cret-pw"), "{url}");
    run_small(&url, "t").await?;

    let wrong = url.replace("s3cret-pw", "nope-pw");
    let err = WeirClient::connect(&RedisConfig::new(wrong.as_str(), "t"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        !text.contains("nope-pw"),
        "the password must be masked: {text}"
    );
    assert!(text.contains(&redis.port().to_string()), "{text}");
    let none = url.replace(":s3cret-pw@", "");
    assert!(WeirClient::connect(&RedisConfig::new(none.as_str(), "t"))
        .await
        .is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_works() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::builder().acl_user("weir", "acl-pw").start()?;
    let url = redis.url();
    assert!(url.contains("weir:acl-pw@"), "{url}");
    run_small(&url, "t").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_confined_to_the_namespace_keys_runs_everything() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::builder()
        .acl_user("admin", "admin-pw")
        .start()?;
    // An application user that may touch only keys of namespace `app` (`app:*` and the
    // partition tags `{app:*`) and may run no dangerous command: every key Weir uses must
    // be under its namespace, or a command fails with NOPERM.
    let mut admin = raw(&redis.url()).await?;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(">app-pw")
        .arg("resetkeys")
        .arg("~app:*")
        .arg("~{app:*")
        .arg("resetchannels")
        .arg("+@all")
        .arg("-@dangerous")
        .query_async(&mut admin)
        .await?;
    let url = format!("redis://app:app-pw@127.0.0.1:{}/", redis.port());
    let mut app = raw(&url).await?;
    let refused: Result<(), _> = redis::cmd("SET")
        .arg("other:key")
        .arg(1)
        .query_async(&mut app)
        .await;
    assert!(refused.is_err(), "the ACL must confine the user");
    run_small(&url, "app").await?;
    // The engine was denied nothing it needs: besides our probe, the only ACL log entry
    // allowed is the coordinator's start-up safety check (`CONFIG GET`, which is in
    // `@dangerous`; the coordinator warns that it could not check and carries on).
    let log: redis::Value = redis::cmd("ACL").arg("LOG").query_async(&mut admin).await?;
    let entries: Vec<String> = match &log {
        redis::Value::Array(entries) => entries.iter().map(|e| format!("{e:?}")).collect(),
        _ => Vec::new(),
    };
    let unexpected: Vec<&String> = entries
        .iter()
        .filter(|e| !e.contains("other:key") && !e.contains("config|get"))
        .collect();
    assert!(unexpected.is_empty(), "{log:?}");
    assert!(entries.iter().any(|e| e.contains("other:key")), "{log:?}");
    Ok(())
}

/// A coordinator and a worker asked to stop while their Redis is gone stop promptly: the
/// leases they cannot release expire by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_stop_promptly_when_redis_is_gone() -> anyhow::Result<()> {
    init_logs();
    let mut redis = RedisServer::start()?;
    let url = redis.url();
    let coordinator = start_coordinator(&url, "t").await?;
    let worker = start_worker(&url, "t").await?;
    let keys = common::keys(&client(&url, "t").await?);
    let mut conn = raw(&url).await?;
    let id = coordinator.id.clone();
    wait_for_async(Duration::from_secs(5), "the leases taken", async || {
        let leases = leased_by(&mut conn, &keys, &id).await.ok()?;
        (leases.len() == keys.partitions() as usize).then_some(())
    })
    .await?;
    redis.kill()?;
    let stopped = tokio::time::timeout(Duration::from_secs(4), async {
        tokio::join!(coordinator.stop(), worker.stop());
    })
    .await;
    assert!(
        stopped.is_ok(),
        "the services did not stop within 4 s without Redis"
    );
    Ok(())
}

//! End to end over Redis: every step kind through a coordinator and a worker.

use std::time::Duration;

use serde_json::json;
use weir::model::InstanceStatus;
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator, start_worker};
use weir_tests::RedisServer;

const FLOW: &str = r#"
name: expense
version: "1.0.0"
steps:
  submit: { type: machine, handler: set, config: { submitted: true } }
  a: { type: machine, handler: set, config: { a: 1 } }
  b: { type: machine, handler: set, config: { b: 2 } }
  skipped: { type: machine, handler: set, config: { never: true } }
  join: { type: machine, handler: set, config: { joined: true } }
  approve:
    type: human
    assignee: boss
    form: { type: object, required: [approved], properties: { approved: { type: boolean } } }
  route: { type: gateway }
  cool_off: { type: timer, duration: 300ms }
  pay: { type: machine, handler: set, config: { paid: true } }
  reject: { type: machine, handler: set, config: { rejected: true } }
edges:
  - { from: submit, to: a }
  - { from: submit, to: b }
  - { from: submit, to: skipped, condition: "context.submitted == false" }
  - { from: a, to: join }
  - { from: b, to: join }
  - { from: skipped, to: join }
  - { from: join, to: approve }
  - { from: approve, to: route }
  - { from: route, to: cool_off, condition: "context.approved == true" }
  - { from: route, to: reject, default: true }
  - { from: cool_off, to: pay }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_kind_runs_end_to_end() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let coordinator = start_coordinator(&url, "t").await?;
    let worker = start_worker(&url, "t").await?;
    let client = client(&url, "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;

    let started = client
        .start_workflow("expense", StartOptions::default())
        .await?;
    let waiting = client.wait(&started.id, Duration::from_secs(10)).await?;
    assert_eq!(waiting.status, InstanceStatus::Waiting, "{waiting:?}");
    assert_eq!(waiting.current_steps, vec!["approve"]);
    assert_eq!(waiting.context["joined"], json!(true));
    assert!(waiting.context.get("never").is_none());

    let tasks = client
        .list_tasks(&weir::TaskFilter {
            user: Some("boss".into()),
            ..Default::default()
        })
        .await?;
    assert_eq!(tasks.len(), 1);

    // Refused, nothing changed: wrong user, bad data.
    let err = client
        .complete_human_task(&started.id, "approve", "mallory", json!({"approved": true}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "forbidden", "{err}");
    let err = client
        .complete_human_task(&started.id, "approve", "boss", json!({"approved": "yes"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "invalid_data", "{err}");

    client
        .complete_human_task(&started.id, "approve", "boss", json!({"approved": true}))
        .await?;
    let done = client.wait(&started.id, Duration::from_secs(10)).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(done.context["paid"], json!(true));

    let err = client
        .complete_human_task(&started.id, "approve", "boss", json!({"approved": true}))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), "wrong_status" | "task_not_open"),
        "{err}"
    );

    let history = client.history(&started.id).await?;
    let joins = history.iter().filter(|r| &*r.step == "join").count();
    assert_eq!(joins, 1);

    worker.stop().await;
    coordinator.stop().await;
    Ok(())
}

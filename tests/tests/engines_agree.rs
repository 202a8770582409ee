//! One pure core (ARCHITECTURE.md invariant 1): the in-process LocalEngine and the Redis coordinator
//! with its workers drive the same transition function, so the same workflows with the same
//! inputs end the same way in both: status, context, failed step and error, and the history
//! of attempts (step, attempt, outcome, error).

use std::time::Duration;

use serde_json::{json, Value};
use weir::model::{AttemptRecord, InstanceStatus};
use weir::redis::WeirClient;
use weir::{parse_definition, InstanceView, LocalEngine, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator, start_worker};
use weir_tests::RedisServer;

struct Scenario {
    definition: &'static str,
    data: Value,
    /// A human task to complete when the instance waits: (step, user, data).
    task: Option<(&'static str, &'static str, Value)>,
    /// Retry the instance (from its failed step) when it fails.
    retry_on_failure: bool,
    expected: InstanceStatus,
}

const ROUTING: &str = r#"
name: routing
version: "1.0.0"
steps:
  start: { type: machine, handler: set, config: { seen: true } }
  route: { type: gateway }
  big: { type: machine, handler: set, config: { size: big } }
  small: { type: machine, handler: set, config: { size: small } }
  join: { type: machine, handler: set, config: { joined: true } }
  approve:
    type: human
    assignee: ann
    form: { type: object, required: [ok], properties: { ok: { type: boolean } } }
  cool: { type: timer, duration: 100ms }
  end: { type: machine, handler: set, config: { ended: true } }
edges:
  - { from: start, to: route }
  - { from: route, to: big, condition: "context.amount > 100" }
  - { from: route, to: small, default: true }
  - { from: big, to: join }
  - { from: small, to: join }
  - { from: join, to: approve }
  - { from: approve, to: cool, condition: "context.ok == true" }
  - { from: approve, to: end, default: true }
  - { from: cool, to: end }
"#;

const RETRIES: &str = r#"
name: retries
version: "1.0.0"
steps:
  flaky:
    type: machine
    handler: fail
    config: { times: 2, message: "not yet" }
    retry: { max_attempts: 3, initial_interval: 50ms, jitter: false }
  boom:
    type: machine
    handler: fail
    config: { times: -1, message: "always" }
    retry: { max_attempts: 2, initial_interval: 50ms, jitter: false }
  recover: { type: machine, handler: set, config: { recovered: true } }
edges:
  - { from: flaky, to: boom }
  - { from: boom, to: recover, on: failure }
"#;

const RESUME: &str = r#"
name: resume
version: "1.0.0"
steps:
  a: { type: machine, handler: set, config: { a: 1 } }
  x: { type: machine, handler: fail, config: { times: 1, message: "once" } }
  last: { type: machine, handler: set, config: { last: 2 } }
edges:
  - { from: a, to: x }
  - { from: x, to: last }
"#;

const FANOUT: &str = r#"
name: fanout
version: "1.0.0"
steps:
  a: { type: machine, handler: set, config: { a: 1 } }
  b: { type: machine, handler: set, config: { b: 1 } }
  c: { type: machine, handler: set, config: { c: 1 } }
  # The failing branch waits first, so that in both engines its siblings have finished when
  # it fails (which branches were still running when the instance failed is a race).
  pause: { type: machine, handler: sleep, config: { duration: 500ms } }
  d: { type: machine, handler: fail, config: { times: -1, retryable: false } }
  join: { type: machine, handler: set, config: { joined: true } }
edges:
  - { from: a, to: b }
  - { from: a, to: c }
  - { from: a, to: pause }
  - { from: pause, to: d }
  - { from: b, to: join }
  - { from: c, to: join }
  - { from: d, to: join }
"#;

fn scenarios() -> Vec<(&'static str, Scenario)> {
    vec![
        (
            "routing",
            Scenario {
                definition: ROUTING,
                data: json!({ "amount": 250 }),
                task: Some(("approve", "ann", json!({ "ok": true }))),
                retry_on_failure: false,
                expected: InstanceStatus::Completed,
            },
        ),
        (
            "routing",
            Scenario {
                definition: ROUTING,
                data: json!({ "amount": 5 }),
                task: Some(("approve", "ann", json!({ "ok": false }))),
                retry_on_failure: false,
                expected: InstanceStatus::Completed,
            },
        ),
        (
            "retries",
            Scenario {
                definition: RETRIES,
                data: json!({}),
                task: None,
                retry_on_failure: false,
                expected: InstanceStatus::Completed,
            },
        ),
        (
            "resume",
            Scenario {
                definition: RESUME,
                data: json!({}),
                task: None,
                retry_on_failure: true,
                expected: InstanceStatus::Completed,
            },
        ),
        (
            "fanout",
            Scenario {
                definition: FANOUT,
                data: json!({}),
                task: None,
                retry_on_failure: false,
                expected: InstanceStatus::Failed,
            },
        ),
    ]
}

/// What must agree: the view without times, and the history without times and workers,
/// sorted (parallel branches may finish in either order).
fn outcome(view: &InstanceView, history: &[AttemptRecord]) -> Value {
    let mut attempts: Vec<String> = history
        .iter()
        .map(|r| {
            format!(
                "{} #{} {:?} {}",
                r.step,
                r.attempt,
                r.status,
                r.error.as_deref().unwrap_or("")
            )
        })
        .collect();
    attempts.sort();
    json!({
        "status": view.status.as_str(),
        "context": view.context,
        "error": view.error,
        "failed_step": view.failed_step,
        "current_steps": view.current_steps,
        "attempts": attempts,
    })
}

async fn run_local(engine: &LocalEngine, id: &str, name: &str, s: &Scenario) -> Value {
    let wait = Duration::from_secs(10);
    let opts = StartOptions {
        id: Some(id.into()),
        initial_data: s.data.as_object().cloned().unwrap_or_default(),
        ..StartOptions::default()
    };
    engine.start_workflow(name, opts).await.unwrap();
    let mut view = engine.wait(id, wait).await.unwrap();
    if let (InstanceStatus::Waiting, Some((step, user, data))) = (view.status, &s.task) {
        engine
            .complete_human_task(id, step, user, data.clone())
            .await
            .unwrap();
        view = engine.wait(id, wait).await.unwrap();
    }
    if view.status == InstanceStatus::Failed && s.retry_on_failure {
        engine.retry(id, None).await.unwrap();
        view = engine.wait(id, wait).await.unwrap();
    }
    outcome(&view, &engine.history(id).await.unwrap())
}

async fn run_redis(client: &WeirClient, id: &str, name: &str, s: &Scenario) -> Value {
    let wait = Duration::from_secs(10);
    let opts = StartOptions {
        id: Some(id.into()),
        initial_data: s.data.as_object().cloned().unwrap_or_default(),
        ..StartOptions::default()
    };
    client.start_workflow(name, opts).await.unwrap();
    let mut view = client.wait(id, wait).await.unwrap();
    if let (InstanceStatus::Waiting, Some((step, user, data))) = (view.status, &s.task) {
        client
            .complete_human_task(id, step, user, data.clone())
            .await
            .unwrap();
        view = client.wait(id, wait).await.unwrap();
    }
    if view.status == InstanceStatus::Failed && s.retry_on_failure {
        client.retry(id, None).await.unwrap();
        view = client.wait(id, wait).await.unwrap();
    }
    outcome(&view, &client.history(id).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_engine_and_the_redis_engine_end_every_workflow_the_same_way(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let _worker = start_worker(&url, "t").await?;
    let client = client(&url, "t").await?;
    let local = LocalEngine::builder()
        .handlers(weir_worker::builtin_handlers())
        .build();
    for definition in [ROUTING, RETRIES, RESUME, FANOUT] {
        client
            .register_definition(parse_definition(definition)?)
            .await?;
        local.register_definition(parse_definition(definition)?)?;
    }
    for (i, (name, s)) in scenarios().into_iter().enumerate() {
        assert!(s.definition.contains(&format!("name: {name}")));
        let id = format!("{name}-{i}");
        let (l, r) = tokio::join!(
            run_local(&local, &id, name, &s),
            run_redis(&client, &id, name, &s)
        );
        assert_eq!(l["status"], json!(s.expected.as_str()), "{id}: {l:#}");
        assert_eq!(l, r, "{id}: the engines disagree");
    }
    Ok(())
}

//! The LocalEngine: the API users of the Python engine know, on the tokio clock (paused in
//! these tests, so timers jump instead of sleeping).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Flaky, FnStep, Gate, Hooked, Set, Sleep, YieldingBus};
use serde_json::json;
use weir::events::MemoryBus;
use weir::model::{AttemptStatus, EventKind, InstanceStatus};
use weir::registry::RegistryError;
use weir::Engine;
use weir::{
    parse_definition, EngineError, InstanceFilter, LocalEngine, Refusal, StartOptions, StepError,
    TaskFilter,
};

const LONG: Duration = Duration::from_secs(3600);

fn engine_with(
    yamls: &[&str],
    build: impl FnOnce(weir::local::LocalEngineBuilder) -> weir::local::LocalEngineBuilder,
) -> LocalEngine {
    let engine = build(
        LocalEngine::builder()
            .handler("set", Set)
            .handler("sleep", Sleep),
    )
    .build();
    for y in yamls {
        engine
            .registry()
            .register_definition(parse_definition(y).unwrap())
            .unwrap();
    }
    engine
}

fn engine(yamls: &[&str]) -> LocalEngine {
    engine_with(yamls, |b| b)
}

fn data(v: serde_json::Value) -> StartOptions {
    StartOptions::with_data(common::obj(v))
}

const CHAIN: &str = r#"
name: chain
version: "1.0.0"
steps:
  a: { type: machine, handler: set, config: { a: 1 } }
  route: { type: gateway }
  b: { type: machine, handler: set, config: { b: 2 } }
edges:
  - { from: a, to: route }
  - { from: route, to: b, condition: "context.a == 1" }
"#;

#[tokio::test]
async fn start_workflow_with_every_option() {
    let v2 = CHAIN
        .replace("1.0.0", "2.0.0")
        .replace("{ b: 2 }", "{ b: 22 }");
    let engine = engine(&[CHAIN, &v2]);
    let inst = engine
        .start_workflow(
            "chain",
            StartOptions {
                version: Some("1.0.0".into()),
                initial_data: common::obj(json!({ "customer_id": "cust-123", "amount": 500.0 })),
                id: Some("order-1".into()),
                tenant_id: Some("acme-corp".into()),
                created_by: Some("user@example.com".into()),
                ..StartOptions::default()
            },
        )
        .await
        .unwrap();
    // Caller ids are per tenant: the instance of a tenant's id `X` is `TENANT:X`.
    assert_eq!(inst.id, "acme-corp:order-1");
    assert_eq!(inst.definition, "chain");
    assert_eq!(inst.version, "1.0.0");
    assert_eq!(inst.status, InstanceStatus::Completed);
    assert_eq!(inst.tenant.as_deref(), Some("acme-corp"));
    assert_eq!(inst.created_by.as_deref(), Some("user@example.com"));
    assert_eq!(inst.context["customer_id"], json!("cust-123"));
    assert_eq!(inst.context["amount"], json!(500.0));
    assert_eq!(
        inst.context["b"],
        json!(2),
        "version 1.0.0 ran, not the latest"
    );
    assert!(inst.finished_at.is_some());

    // Without a version: the latest. Without an id: a fresh UUID.
    let latest = engine
        .start_workflow("chain", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(latest.version, "2.0.0");
    assert_eq!(latest.context["b"], json!(22));
    assert!(uuid::Uuid::parse_str(&latest.id).is_ok(), "{}", latest.id);
    assert_eq!(engine.get_instance(&latest.id).await.unwrap(), latest);
}

/// Issue 15, item 6: a start with a 5 MB context is refused (kind `too_large`) and
/// stores nothing.
#[tokio::test]
async fn a_start_with_a_context_over_the_limit_is_refused() {
    let engine = engine(&[CHAIN]);
    let mut options = data(json!({ "blob": "x".repeat(5_000_000) }));
    options.id = Some("big-1".into());
    let err = engine
        .start_workflow("chain", options)
        .await
        .expect_err("a 5 MB context is refused");
    assert_eq!(err.kind(), "too_large", "{err}");
    assert!(err.to_string().contains("1 MiB"), "{err}");
    assert!(matches!(
        engine.get_instance("big-1").await,
        Err(EngineError::NotFound(_))
    ));
}

/// A caller id starts at most one instance; a second start with the same workflow (and
/// version asked for, and tenant) returns it, any other start with that id is refused.
#[tokio::test]
async fn a_caller_id_is_idempotent_only_for_the_same_start() {
    let v2 = CHAIN.replace("1.0.0", "2.0.0");
    let other = CHAIN.replace("name: chain", "name: other");
    let engine = engine(&[CHAIN, &v2, &other]);
    let start = |name: &'static str, version: Option<&str>, tenant: Option<&str>| {
        let options = StartOptions {
            id: Some("order-7".into()),
            version: version.map(str::to_string),
            tenant_id: tenant.map(str::to_string),
            ..StartOptions::default()
        };
        let engine = &engine;
        async move { engine.start_workflow(name, options).await }
    };
    let first = start("chain", Some("1.0.0"), Some("acme")).await.unwrap();
    assert_eq!(start("chain", None, Some("acme")).await.unwrap(), first);
    assert_eq!(
        start("chain", Some("1.0.0"), Some("acme")).await.unwrap(),
        first
    );
    assert_eq!(first.id, "acme:order-7");
    for (name, version, tenant) in [
        ("other", None, Some("acme")),
        ("chain", Some("2.0.0"), Some("acme")),
    ] {
        let err = start(name, version, tenant).await.unwrap_err();
        assert!(
            matches!(err, EngineError::IdTaken(_)),
            "{name} {version:?} {tenant:?}: {err}"
        );
        assert_eq!(err.kind(), "id_taken");
        assert!(
            err.to_string().contains("acme:order-7"),
            "names the caller's own id: {err}"
        );
    }
    // Caller ids are per tenant: another tenant, or none, never meets acme's id.
    assert_eq!(
        start("chain", None, Some("globex")).await.unwrap().id,
        "globex:order-7"
    );
    assert_eq!(start("chain", None, None).await.unwrap().id, "order-7");
    assert_eq!(
        engine
            .list_instances(&InstanceFilter::default())
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn start_errors_are_clear_and_start_nothing() {
    let engine = engine(&[CHAIN]);
    let err = engine
        .start_workflow("nope", StartOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Registry(RegistryError::Unknown { .. })),
        "{err}"
    );
    let err = engine
        .start_workflow(
            "chain",
            StartOptions {
                version: Some("9.9.9".into()),
                ..StartOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown workflow chain@9.9.9");
    for bad in ["", "has space", "tab\there", &"x".repeat(201)] {
        let err = engine
            .start_workflow(
                "chain",
                StartOptions {
                    id: Some(bad.to_string()),
                    ..StartOptions::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::BadRequest(_)), "{bad:?}: {err}");
    }
    assert!(engine
        .list_instances(&InstanceFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        engine.get_instance("missing").await.unwrap_err(),
        EngineError::NotFound(_)
    ));
}

#[tokio::test]
async fn a_batch_of_starts_is_checked_whole_then_started_one_by_one() {
    let engine = engine(&[CHAIN]);
    let with_id = |id: &str| StartOptions {
        id: Some(id.to_string()),
        ..StartOptions::default()
    };
    // One refused start refuses the batch, naming it, and starts nothing.
    let err = engine
        .start_workflows("chain", vec![with_id("one"), with_id("has space")])
        .await
        .unwrap_err();
    assert_eq!(err.index, 1, "{err}");
    assert!(matches!(err.error, EngineError::BadRequest(_)), "{err}");
    assert!(engine
        .list_instances(&InstanceFilter::default())
        .await
        .unwrap()
        .is_empty());

    // Then each start has its own result, in order; a caller id used twice starts once.
    let results = engine
        .start_workflows(
            "chain",
            vec![with_id("one"), with_id("two"), with_id("one")],
        )
        .await
        .unwrap();
    let started: Vec<(String, bool)> = results
        .into_iter()
        .map(|r| {
            let s = r.unwrap();
            (s.view.id, s.stored)
        })
        .collect();
    assert_eq!(
        started,
        vec![
            ("one".to_string(), true),
            ("two".to_string(), true),
            ("one".to_string(), false)
        ]
    );
}

fn counting(calls: &Arc<AtomicUsize>) -> impl weir::Step + 'static {
    let calls = calls.clone();
    FnStep(move |ctx: &mut weir::StepContext| {
        calls.fetch_add(1, Ordering::SeqCst);
        ctx.set("counted", json!(true));
        Ok(())
    })
}

const COUNTED: &str = r#"
name: counted
version: "1.0.0"
steps:
  work: { type: machine, handler: count }
"#;

#[tokio::test]
async fn a_caller_id_starts_at_most_one_instance() {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = engine_with(&[COUNTED], |b| b.handler("count", counting(&calls)));
    let opts = |v: i64| StartOptions {
        id: Some("idem-1".into()),
        initial_data: common::obj(json!({ "v": v })),
        ..StartOptions::default()
    };
    let first = engine.start_workflow("counted", opts(1)).await.unwrap();
    let second = engine.start_workflow("counted", opts(2)).await.unwrap();
    assert_eq!(first, second, "the second start returns the first instance");
    assert_eq!(second.context["v"], json!(1));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        engine
            .list_instances(&InstanceFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_with_one_id_start_one_instance() {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = engine_with(&[COUNTED], |b| b.handler("count", counting(&calls)));
    for round in 0..20 {
        let id = format!("race-{round}");
        let opts = StartOptions {
            id: Some(id.clone()),
            ..StartOptions::default()
        };
        let (e1, e2) = (engine.clone(), engine.clone());
        let (o1, o2) = (opts.clone(), opts);
        let t1 = tokio::spawn(async move { e1.start_workflow("counted", o1).await });
        let t2 = tokio::spawn(async move { e2.start_workflow("counted", o2).await });
        let (a, b) = (t1.await.unwrap().unwrap(), t2.await.unwrap().unwrap());
        assert_eq!(a.id, id);
        assert_eq!(b.id, id);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 20, "one run per id");
    assert_eq!(
        engine
            .list_instances(&InstanceFilter::default())
            .await
            .unwrap()
            .len(),
        20
    );
}

const APPROVAL: &str = r#"
name: approval
version: "1.0.0"
steps:
  submit: { type: machine, handler: set, config: { submitted: true } }
  approve:
    type: human
    assignee: manager@example.com
    candidates: [deputy@example.com]
    form: { type: object, required: [approved], properties: { approved: { type: boolean } } }
  route: { type: gateway }
  pay: { type: machine, handler: set, config: { paid: true } }
  reject: { type: machine, handler: set, config: { rejected: true } }
edges:
  - { from: submit, to: approve }
  - { from: approve, to: route }
  - { from: route, to: pay, condition: "context.approved == true" }
  - { from: route, to: reject, default: true }
"#;

/// Python regression: completing a human task resumes the instance.
#[tokio::test]
async fn completing_a_human_task_resumes_the_instance() {
    let engine = engine(&[APPROVAL]);
    let inst = engine
        .start_workflow("approval", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(inst.status, InstanceStatus::Waiting);
    assert_eq!(inst.current_step(), Some("approve"));
    let done = engine
        .complete_human_task(
            &inst.id,
            "approve",
            "manager@example.com",
            json!({ "approved": true, "comments": "Approved for Q4 budget" }),
        )
        .await
        .unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
    assert_eq!(done.context["paid"], json!(true));
    assert_eq!(done.context["comments"], json!("Approved for Q4 budget"));
    assert!(done.context.get("rejected").is_none());
    assert_eq!(engine.get_instance(&inst.id).await.unwrap(), done);
    assert!(engine
        .list_tasks(&TaskFilter::default())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_reassigned_task_is_listed_for_and_completed_by_its_new_assignee() {
    let engine = engine(&[APPROVAL]);
    let inst = engine
        .start_workflow("approval", StartOptions::default())
        .await
        .unwrap();
    let to = weir::model::Assignment {
        assignee: Some("bob@example.com".into()),
        candidates: vec![],
        groups: Vec::new(),
    };
    engine
        .reassign_task(
            &inst.id,
            "approve",
            &weir::model::Actor::admin("ops@example.com"),
            to,
        )
        .await
        .unwrap();
    let for_user = |user: &str| TaskFilter {
        assignee: Some(user.into()),
        ..TaskFilter::default()
    };
    assert_eq!(
        engine
            .list_tasks(&for_user("bob@example.com"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(engine
        .list_tasks(&for_user("manager@example.com"))
        .await
        .unwrap()
        .is_empty());
    let err = engine
        .complete_human_task(
            &inst.id,
            "approve",
            "manager@example.com",
            json!({ "approved": true }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Refused(Refusal::Forbidden { .. })),
        "{err}"
    );
    let done = engine
        .complete_human_task(
            &inst.id,
            "approve",
            "bob@example.com",
            json!({ "approved": true }),
        )
        .await
        .unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
    let history = engine.history(&inst.id).await.unwrap();
    let record = history
        .iter()
        .find(|r| r.status == AttemptStatus::Reassigned)
        .unwrap();
    assert_eq!(record.worker.as_deref(), Some("ops@example.com"));
    assert_eq!(record.note.as_deref(), Some("assigned to bob@example.com"));
}

#[tokio::test]
async fn refused_completions_change_nothing() {
    let engine = engine(&[APPROVAL, CHAIN]);
    let inst = engine
        .start_workflow("approval", StartOptions::default())
        .await
        .unwrap();
    let before = engine.get_instance(&inst.id).await.unwrap();
    let history_before = engine.history(&inst.id).await.unwrap();
    let cases: Vec<(&str, &str, serde_json::Value)> = vec![
        (
            "approve",
            "intruder@example.com",
            json!({ "approved": true }),
        ),
        (
            "approve",
            "manager@example.com",
            json!({ "approved": "yes" }),
        ),
        ("approve", "manager@example.com", json!({})),
        ("nope", "manager@example.com", json!({ "approved": true })),
        ("pay", "manager@example.com", json!({ "approved": true })),
    ];
    for (step, user, payload) in cases {
        let err = engine
            .complete_human_task(&inst.id, step, user, payload.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Refused(_)),
            "{step} {user} {payload}: {err}"
        );
        assert_eq!(engine.get_instance(&inst.id).await.unwrap(), before);
        assert_eq!(engine.history(&inst.id).await.unwrap(), history_before);
        assert_eq!(
            engine
                .list_tasks(&TaskFilter::default())
                .await
                .unwrap()
                .len(),
            1
        );
    }
    let err = engine
        .complete_human_task(
            "no-such-instance",
            "approve",
            "manager@example.com",
            json!({}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NotFound(_)), "{err}");

    // Already completed.
    engine
        .complete_human_task(
            &inst.id,
            "approve",
            "deputy@example.com",
            json!({ "approved": false }),
        )
        .await
        .unwrap();
    let after = engine.get_instance(&inst.id).await.unwrap();
    let err = engine
        .complete_human_task(
            &inst.id,
            "approve",
            "manager@example.com",
            json!({ "approved": true }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Refused(Refusal::WrongStatus { .. } | Refusal::TaskNotOpen(_))
        ),
        "{err}"
    );
    assert_eq!(engine.get_instance(&inst.id).await.unwrap(), after);
    assert_eq!(after.context["rejected"], json!(true));

    // Canceled instance.
    let inst = engine
        .start_workflow("approval", StartOptions::default())
        .await
        .unwrap();
    engine
        .cancel_workflow(&inst.id, Some("stop"))
        .await
        .unwrap();
    let err = engine
        .complete_human_task(
            &inst.id,
            "approve",
            "manager@example.com",
            json!({ "approved": true }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Refused(Refusal::WrongStatus {
                status: InstanceStatus::Canceled,
                ..
            })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn list_instances_filters_by_status_definition_tenant_and_creator() {
    let engine = engine(&[APPROVAL, CHAIN]);
    let start = |name: &'static str, tenant: &'static str, by: &'static str| {
        let engine = engine.clone();
        async move {
            engine
                .start_workflow(
                    name,
                    StartOptions {
                        tenant_id: Some(tenant.into()),
                        created_by: Some(by.into()),
                        ..StartOptions::default()
                    },
                )
                .await
                .unwrap()
        }
    };
    let w1 = start("approval", "acme", "alice").await;
    let w2 = start("approval", "globex", "bob").await;
    let c1 = start("chain", "acme", "bob").await;
    let ids = |v: Vec<weir::InstanceView>| {
        let mut ids: Vec<String> = v.into_iter().map(|i| i.id).collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let all = engine
        .list_instances(&InstanceFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let waiting = InstanceFilter {
        status: Some(InstanceStatus::Waiting),
        ..InstanceFilter::default()
    };
    assert_eq!(
        ids(engine.list_instances(&waiting).await.unwrap()),
        sorted(vec![w1.id.clone(), w2.id.clone()])
    );
    let completed = InstanceFilter {
        status: Some(InstanceStatus::Completed),
        ..InstanceFilter::default()
    };
    assert_eq!(
        ids(engine.list_instances(&completed).await.unwrap()),
        vec![c1.id.clone()]
    );
    let by_def = InstanceFilter {
        definition: Some("chain".into()),
        ..InstanceFilter::default()
    };
    assert_eq!(
        ids(engine.list_instances(&by_def).await.unwrap()),
        vec![c1.id.clone()]
    );
    let acme = InstanceFilter {
        tenant_id: Some("acme".into()),
        ..InstanceFilter::default()
    };
    assert_eq!(
        ids(engine.list_instances(&acme).await.unwrap()),
        sorted(vec![w1.id.clone(), c1.id.clone()])
    );
    let bob = InstanceFilter {
        created_by: Some("bob".into()),
        ..InstanceFilter::default()
    };
    assert_eq!(
        ids(engine.list_instances(&bob).await.unwrap()),
        sorted(vec![w2.id.clone(), c1.id.clone()])
    );
    let acme_bob_waiting = InstanceFilter {
        tenant_id: Some("acme".into()),
        created_by: Some("bob".into()),
        status: Some(InstanceStatus::Waiting),
        ..InstanceFilter::default()
    };
    assert!(engine
        .list_instances(&acme_bob_waiting)
        .await
        .unwrap()
        .is_empty());
    let limited = InstanceFilter {
        limit: Some(2),
        ..InstanceFilter::default()
    };
    assert_eq!(engine.list_instances(&limited).await.unwrap().len(), 2);
}

#[tokio::test]
async fn list_tasks_filters_by_user_assignee_and_instance() {
    let open_task = r#"
name: open_task
version: "1.0.0"
steps:
  anyone: { type: human }
"#;
    let engine = engine(&[APPROVAL, open_task]);
    let a1 = engine
        .start_workflow("approval", StartOptions::default())
        .await
        .unwrap();
    let a2 = engine
        .start_workflow(
            "approval",
            StartOptions {
                tenant_id: Some("acme".into()),
                ..StartOptions::default()
            },
        )
        .await
        .unwrap();
    let o = engine
        .start_workflow("open_task", StartOptions::default())
        .await
        .unwrap();
    let list = |f: TaskFilter| {
        let engine = engine.clone();
        async move {
            let mut v: Vec<String> = engine
                .list_tasks(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|t| format!("{}/{}", t.instance_id, t.step))
                .collect();
            v.sort();
            v
        }
    };
    let mut all = vec![
        format!("{}/approve", a1.id),
        format!("{}/approve", a2.id),
        format!("{}/anyone", o.id),
    ];
    all.sort();
    assert_eq!(list(TaskFilter::default()).await, all);
    // A user sees what they may complete: assigned, candidate, or open to anyone.
    assert_eq!(
        list(TaskFilter {
            user: Some("deputy@example.com".into()),
            ..TaskFilter::default()
        })
        .await,
        all
    );
    assert_eq!(
        list(TaskFilter {
            user: Some("stranger".into()),
            ..TaskFilter::default()
        })
        .await,
        vec![format!("{}/anyone", o.id)]
    );
    let mut assigned = vec![format!("{}/approve", a1.id), format!("{}/approve", a2.id)];
    assigned.sort();
    assert_eq!(
        list(TaskFilter {
            assignee: Some("manager@example.com".into()),
            ..TaskFilter::default()
        })
        .await,
        assigned
    );
    assert_eq!(
        list(TaskFilter {
            instance_id: Some(a2.id.clone()),
            ..TaskFilter::default()
        })
        .await,
        vec![format!("{}/approve", a2.id)]
    );
    assert_eq!(
        list(TaskFilter {
            tenant_id: Some("acme".into()),
            ..TaskFilter::default()
        })
        .await,
        vec![format!("{}/approve", a2.id)]
    );
    // A completed task is no longer listed.
    engine
        .complete_human_task(
            &a1.id,
            "approve",
            "manager@example.com",
            json!({ "approved": true }),
        )
        .await
        .unwrap();
    assert_eq!(
        list(TaskFilter {
            instance_id: Some(a1.id.clone()),
            ..TaskFilter::default()
        })
        .await,
        Vec::<String>::new()
    );
}

const RETRIED: &str = r#"
name: retried
version: "1.0.0"
steps:
  a: { type: machine, handler: set, config: { a: 1 } }
  route: { type: gateway }
  b:
    type: machine
    handler: flaky
    config: { b: 2 }
    retry: { max_attempts: 3, initial_interval: 1s, jitter: false }
  ask: { type: human }
edges:
  - { from: a, to: route }
  - { from: route, to: b }
  - { from: b, to: ask }
"#;

#[tokio::test(start_paused = true)]
async fn history_has_one_completed_entry_per_step_and_retries_before_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let flaky = Flaky {
        n: 2,
        calls: calls.clone(),
    };
    let engine = engine_with(&[RETRIED], |b| b.handler("flaky", flaky));
    let t0 = tokio::time::Instant::now();
    let inst = engine
        .start_workflow("retried", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(
        inst.status,
        InstanceStatus::Running,
        "b is waiting for its retry"
    );
    let inst = engine.wait(&inst.id, LONG).await.unwrap();
    assert_eq!(inst.status, InstanceStatus::Waiting);
    // Backoff without jitter: 1s then 2s, on the paused clock.
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let history = engine.history(&inst.id).await.unwrap();
    let rows: Vec<(String, u32, AttemptStatus)> = history
        .iter()
        .map(|r| (r.step.to_string(), r.attempt, r.status))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("a".into(), 1, AttemptStatus::Completed),
            ("route".into(), 1, AttemptStatus::Completed),
            ("b".into(), 1, AttemptStatus::Retrying),
            ("b".into(), 2, AttemptStatus::Retrying),
            ("b".into(), 3, AttemptStatus::Completed),
            ("ask".into(), 1, AttemptStatus::Running),
        ]
    );
    for r in &history[..5] {
        assert!(r.started_at.is_some() && r.finished_at.is_some());
    }
    assert_eq!(history[2].worker.as_deref(), Some("local"));
    assert!(history[2].error.as_deref().unwrap().contains("flaky"));
    assert!(matches!(
        engine.history("missing").await.unwrap_err(),
        EngineError::NotFound(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn wait_returns_at_waiting_or_the_end_and_times_out_otherwise() {
    let yaml = r#"
name: slow
version: "1.0.0"
steps:
  nap: { type: machine, handler: sleep, config: { ms: 60000, set: { rested: true } } }
"#;
    let engine = engine(&[yaml]);
    let inst = engine
        .start_workflow("slow", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(inst.status, InstanceStatus::Running);
    let err = engine
        .wait(&inst.id, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::WaitTimeout(..)), "{err}");
    let done = engine.wait(&inst.id, LONG).await.unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
    assert_eq!(done.context["rested"], json!(true));
    assert!(matches!(
        engine.wait("missing", LONG).await.unwrap_err(),
        EngineError::NotFound(_)
    ));
}

const HOOKED: &str = r#"
name: hooked
version: "1.0.0"
steps:
  ok: { type: machine, handler: hooked }
  bad: { type: machine, handler: hooked, config: { fail: true } }
  after: { type: machine, handler: set, config: { recovered: true } }
edges:
  - { from: ok, to: bad }
  - { from: bad, to: after, on: failure }
"#;

#[tokio::test]
async fn step_hooks_run_after_success_and_after_failure() {
    let hooked = Hooked::default();
    let (executed, succeeded, failed) = (
        hooked.executed.clone(),
        hooked.succeeded.clone(),
        hooked.failed.clone(),
    );
    let engine = engine_with(&[HOOKED], |b| b.handler("hooked", hooked));
    let inst = engine
        .start_workflow("hooked", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(inst.status, InstanceStatus::Completed);
    assert_eq!(executed.load(Ordering::SeqCst), 2);
    assert_eq!(succeeded.load(Ordering::SeqCst), 1);
    assert_eq!(*failed.lock().unwrap(), vec!["boom".to_string()]);
    assert_eq!(inst.context["hooked"], json!(true));
    assert_eq!(
        inst.context["on_success_ran"],
        json!(true),
        "what on_success writes is kept"
    );
    assert_eq!(inst.context["error"]["kind"], json!("boom"));
    assert_eq!(inst.context["recovered"], json!(true));
}

const ERRORS: &str = r#"
name: errors
version: "1.0.0"
steps:
  work:
    type: machine
    handler: hooked
    config: { fail: true, retryable: RETRYABLE }
    retry: { max_attempts: 4, initial_interval: 10ms }
"#;

#[tokio::test(start_paused = true)]
async fn retryable_handler_errors_are_retried_and_others_are_not() {
    for (retryable, expected_runs) in [(true, 4), (false, 1)] {
        let hooked = Hooked::default();
        let executed = hooked.executed.clone();
        let yaml = ERRORS.replace("RETRYABLE", &retryable.to_string());
        let engine = engine_with(&[&yaml], |b| b.handler("hooked", hooked));
        let inst = engine
            .start_workflow("errors", StartOptions::default())
            .await
            .unwrap();
        let inst = engine.wait(&inst.id, LONG).await.unwrap();
        assert_eq!(inst.status, InstanceStatus::Failed);
        assert_eq!(inst.failed_step.as_deref(), Some("work"));
        assert!(inst.error.as_deref().unwrap().contains("it broke"));
        assert_eq!(
            executed.load(Ordering::SeqCst),
            expected_runs,
            "retryable {retryable}"
        );
    }
}

#[tokio::test]
async fn an_unknown_handler_fails_the_step_with_kind_unknown_handler() {
    let yaml = r#"
name: unknown
version: "1.0.0"
steps:
  work:
    type: machine
    handler: not_registered
    retry: { max_attempts: 5, initial_interval: 1s }
  fallback: { type: machine, handler: set, config: { fell_back: true } }
edges:
  - { from: work, to: fallback, on: failure }
"#;
    let engine = engine(&[yaml]);
    let inst = engine
        .start_workflow("unknown", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(
        inst.status,
        InstanceStatus::Completed,
        "not retried: it cannot help"
    );
    assert_eq!(inst.context["error"]["kind"], json!("unknown_handler"));
    assert!(inst.context["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not_registered"));
    assert_eq!(inst.context["fell_back"], json!(true));
}

/// Python regression: what a step writes stays in the context.
#[tokio::test]
async fn what_steps_write_stays_in_the_context() {
    let yaml = r#"
name: writes
version: "1.0.0"
steps:
  one: { type: machine, handler: set, config: { x: 1, shared: "one" } }
  two: { type: machine, handler: reader }
edges:
  - { from: one, to: two }
"#;
    let reader = FnStep(|ctx: &mut weir::StepContext| {
        let x = ctx
            .get("x")
            .and_then(|v| v.as_i64())
            .ok_or_else(|| StepError::fatal("missing", "x was not in the context"))?;
        ctx.set("y", json!(x + 1));
        ctx.set("shared", json!("two"));
        Ok(())
    });
    let engine = engine_with(&[yaml], |b| b.handler("reader", reader));
    let inst = engine
        .start_workflow("writes", data(json!({ "input": true })))
        .await
        .unwrap();
    assert_eq!(inst.status, InstanceStatus::Completed);
    assert_eq!(
        inst.context,
        json!({ "input": true, "x": 1, "y": 2, "shared": "two" })
    );
}

#[tokio::test(start_paused = true)]
async fn a_timer_step_waits_on_the_tokio_clock() {
    let yaml = r#"
name: timed
version: "1.0.0"
steps:
  cool_off: { type: timer, duration: 2s }
  after: { type: machine, handler: set, config: { after: true } }
edges:
  - { from: cool_off, to: after }
"#;
    let bus = Arc::new(MemoryBus::new());
    let engine = engine_with(&[yaml], |b| b.event_bus(bus.clone()));
    let t0 = tokio::time::Instant::now();
    let inst = engine
        .start_workflow("timed", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(inst.status, InstanceStatus::Running);
    assert_eq!(inst.current_steps, vec!["cool_off"]);
    let done = engine.wait(&inst.id, LONG).await.unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
    assert_eq!(t0.elapsed(), Duration::from_secs(2));
    assert_eq!(
        bus.types_for(&inst.id),
        vec![
            "WorkflowStarted",
            "TimerScheduled",
            "TimerFired",
            "StepExecuted",
            "StepStarted",
            "StepExecuted",
            "WorkflowCompleted"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_timer_and_a_task_at_once_are_running_then_waiting() {
    let yaml = r#"
name: both
version: "1.0.0"
steps:
  start: { type: gateway }
  remind: { type: timer, duration: 10m }
  approve: { type: human, assignee: boss }
edges:
  - { from: start, to: remind }
  - { from: start, to: approve }
"#;
    let engine = engine(&[yaml]);
    let inst = engine
        .start_workflow("both", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(inst.status, InstanceStatus::Running);
    let mut steps = inst.current_steps.clone();
    steps.sort();
    assert_eq!(steps, vec!["approve", "remind"]);
    let t0 = tokio::time::Instant::now();
    let inst = engine.wait(&inst.id, LONG).await.unwrap();
    assert_eq!(inst.status, InstanceStatus::Waiting);
    assert_eq!(t0.elapsed(), Duration::from_secs(600));
    let done = engine
        .complete_human_task(&inst.id, "approve", "boss", json!({}))
        .await
        .unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
}

#[tokio::test(start_paused = true)]
async fn a_step_that_times_out_takes_its_timeout_edge() {
    let yaml = r#"
name: timeout
version: "1.0.0"
steps:
  call: { type: machine, handler: sleep, timeout: 1s, config: { ms: 3600000, set: { late: true } } }
  next: { type: machine, handler: set, config: { next: true } }
  escalate: { type: machine, handler: set, config: { escalated: true } }
edges:
  - { from: call, to: next }
  - { from: call, to: escalate, on: timeout }
"#;
    let bus = Arc::new(MemoryBus::new());
    let engine = engine_with(&[yaml], |b| b.event_bus(bus.clone()));
    let t0 = tokio::time::Instant::now();
    let inst = engine
        .start_workflow("timeout", StartOptions::default())
        .await
        .unwrap();
    let done = engine.wait(&inst.id, LONG).await.unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(done.context["escalated"], json!(true));
    assert_eq!(done.context["error"]["kind"], json!("timeout"));
    assert!(done.context.get("next").is_none());
    assert!(done.context.get("late").is_none());
    let history = engine.history(&inst.id).await.unwrap();
    assert_eq!(history[0].status, AttemptStatus::TimedOut);
    let types = bus.types_for(&inst.id);
    assert_eq!(
        types.iter().filter(|t| **t == "StepTimedOut").count(),
        1,
        "{types:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_overdue_task_without_a_timeout_edge_stays_open() {
    let yaml = r#"
name: overdue
version: "1.0.0"
steps:
  approve: { type: human, assignee: boss, due: 1h }
"#;
    let bus = Arc::new(MemoryBus::new());
    let engine = engine_with(&[yaml], |b| b.event_bus(bus.clone()));
    let inst = engine
        .start_workflow("overdue", StartOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3601)).await;
    assert!(bus.types_for(&inst.id).contains(&"HumanTaskOverdue"));
    let now = engine.get_instance(&inst.id).await.unwrap();
    assert_eq!(now.status, InstanceStatus::Waiting);
    assert_eq!(
        engine
            .list_tasks(&TaskFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let done = engine
        .complete_human_task(&inst.id, "approve", "boss", json!({}))
        .await
        .unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
}

#[tokio::test(start_paused = true)]
async fn an_overdue_task_with_a_timeout_edge_escalates() {
    let yaml = r#"
name: escalation
version: "1.0.0"
steps:
  approve: { type: human, assignee: boss, due: 48h }
  escalate: { type: machine, handler: set, config: { escalated: true } }
edges:
  - { from: approve, to: escalate, on: timeout }
"#;
    let engine = engine(&[yaml]);
    let inst = engine
        .start_workflow("escalation", StartOptions::default())
        .await
        .unwrap();
    let done = engine
        .wait_for(&inst.id, Duration::from_secs(49 * 3600), &|s| {
            s.is_terminal()
        })
        .await
        .unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
    assert_eq!(done.context["escalated"], json!(true));
    assert!(engine
        .list_tasks(&TaskFilter::default())
        .await
        .unwrap()
        .is_empty());
}

/// Cancel while a step is running: the instance is CANCELED at once, its task voided, and
/// the step's late result is dropped as stale.
#[tokio::test]
async fn cancel_while_a_step_is_running() {
    let yaml = r#"
name: cancelable
version: "1.0.0"
steps:
  start: { type: gateway }
  slow: { type: machine, handler: gate }
  ask: { type: human }
  after: { type: machine, handler: set, config: { after: true } }
edges:
  - { from: start, to: slow }
  - { from: start, to: ask }
  - { from: slow, to: after }
"#;
    let release = Arc::new(tokio::sync::Notify::new());
    let started = Arc::new(AtomicUsize::new(0));
    let gate = Gate {
        release: release.clone(),
        started: started.clone(),
    };
    let bus = Arc::new(MemoryBus::new());
    let engine = engine_with(&[yaml], |b| b.handler("gate", gate).event_bus(bus.clone()));
    let inst = engine
        .start_workflow("cancelable", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(inst.status, InstanceStatus::Running);
    assert_eq!(
        engine
            .list_tasks(&TaskFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let canceled = engine
        .cancel_workflow(&inst.id, Some("Customer requested cancellation"))
        .await
        .unwrap();
    assert_eq!(canceled.status, InstanceStatus::Canceled);
    assert_eq!(
        canceled.error.as_deref(),
        Some("Customer requested cancellation")
    );
    assert!(engine
        .list_tasks(&TaskFilter::default())
        .await
        .unwrap()
        .is_empty());
    // The handler finishes after the cancel: its result is stale.
    assert_eq!(started.load(Ordering::SeqCst), 1);
    release.notify_one();
    for _ in 0..100 {
        if engine.stale_dropped() > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(engine.stale_dropped(), 1);
    let after = engine.get_instance(&inst.id).await.unwrap();
    assert_eq!(after, canceled);
    assert!(after.context.get("gate_passed").is_none());
    let history = engine.history(&inst.id).await.unwrap();
    let slow = history.iter().find(|r| &*r.step == "slow").unwrap();
    assert_eq!(slow.status, AttemptStatus::Canceled);
    let types = bus.types_for(&inst.id);
    assert_eq!(types.last(), Some(&"WorkflowCanceled"));
    assert!(!types.contains(&"WorkflowCompleted"));
    // Cancel again, and retry: refused.
    assert!(matches!(
        engine.cancel_workflow(&inst.id, None).await.unwrap_err(),
        EngineError::Refused(Refusal::WrongStatus { .. })
    ));
    assert!(matches!(
        engine.retry(&inst.id, None).await.unwrap_err(),
        EngineError::Refused(Refusal::WrongStatus { .. })
    ));
}

const FLAKY_ONCE: &str = r#"
name: flaky_once
version: "1.0.0"
steps:
  load: { type: machine, handler: set, config: { loaded: true } }
  process: { type: machine, handler: flaky, config: { processed: true } }
  store: { type: machine, handler: set, config: { stored: true } }
edges:
  - { from: load, to: process }
  - { from: process, to: store }
"#;

#[tokio::test]
async fn retry_after_failure_resumes_from_the_failed_step_keeping_the_context() {
    let calls = Arc::new(AtomicUsize::new(0));
    let flaky = Flaky {
        n: 1,
        calls: calls.clone(),
    };
    let engine = engine_with(&[FLAKY_ONCE], |b| b.handler("flaky", flaky));
    let inst = engine
        .start_workflow("flaky_once", data(json!({ "order": 5 })))
        .await
        .unwrap();
    assert_eq!(inst.status, InstanceStatus::Failed);
    assert_eq!(inst.failed_step.as_deref(), Some("process"));
    let done = engine.retry(&inst.id, None).await.unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
    assert_eq!(done.error, None);
    assert_eq!(
        done.context,
        json!({ "order": 5, "loaded": true, "processed": true, "stored": true })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let steps: Vec<String> = engine
        .history(&inst.id)
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{}#{}:{:?}", r.step, r.attempt, r.status))
        .collect();
    assert_eq!(
        steps,
        vec![
            "load#1:Completed",
            "process#1:Failed",
            "process#2:Completed",
            "store#1:Completed"
        ]
    );
}

#[tokio::test]
async fn retry_from_a_named_step() {
    let calls = Arc::new(AtomicUsize::new(0));
    let flaky = Flaky {
        n: 1,
        calls: calls.clone(),
    };
    let engine = engine_with(&[FLAKY_ONCE], |b| b.handler("flaky", flaky));
    let inst = engine
        .start_workflow("flaky_once", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(inst.status, InstanceStatus::Failed);
    let err = engine.retry(&inst.id, Some("nope")).await.unwrap_err();
    assert!(
        matches!(err, EngineError::Refused(Refusal::UnknownStep(_))),
        "{err}"
    );
    let done = engine.retry(&inst.id, Some("load")).await.unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
    let loads = engine
        .history(&inst.id)
        .await
        .unwrap()
        .iter()
        .filter(|r| &*r.step == "load")
        .count();
    assert_eq!(loads, 2);
}

/// Python regression: a resumed instance keeps the version it started with.
#[tokio::test]
async fn a_retried_instance_keeps_the_version_it_started_with() {
    let calls = Arc::new(AtomicUsize::new(0));
    let flaky = Flaky {
        n: 1,
        calls: calls.clone(),
    };
    let engine = engine_with(&[FLAKY_ONCE], |b| b.handler("flaky", flaky));
    let inst = engine
        .start_workflow("flaky_once", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(inst.status, InstanceStatus::Failed);
    let v2 = FLAKY_ONCE
        .replace("1.0.0", "2.0.0")
        .replace("{ stored: true }", "{ stored: \"by v2\" }");
    engine
        .registry()
        .register_definition(parse_definition(&v2).unwrap())
        .unwrap();
    let done = engine.retry(&inst.id, None).await.unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
    assert_eq!(done.version, "1.0.0");
    assert_eq!(
        done.context["stored"],
        json!(true),
        "version 1.0.0's step ran"
    );
    // New instances get the latest.
    let fresh = engine
        .start_workflow("flaky_once", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(fresh.version, "2.0.0");
}

/// Python regression: a join after a parallel fan-out runs once, before completion.
#[tokio::test(start_paused = true)]
async fn a_join_after_a_fan_out_runs_once_before_the_instance_completes() {
    let yaml = r#"
name: fan
version: "1.0.0"
steps:
  start: { type: machine, handler: set, config: { started: true } }
  email: { type: machine, handler: sleep, config: { ms: 300, set: { email: true } } }
  slack: { type: machine, handler: sleep, config: { ms: 100, set: { slack: true } } }
  sms: { type: machine, handler: sleep, config: { ms: 200, set: { sms: true } } }
  complete: { type: machine, handler: check }
edges:
  - { from: start, to: email }
  - { from: start, to: slack }
  - { from: start, to: sms }
  - { from: email, to: complete }
  - { from: slack, to: complete }
  - { from: sms, to: complete }
"#;
    let joins = Arc::new(AtomicUsize::new(0));
    let j = joins.clone();
    let check = FnStep(move |ctx: &mut weir::StepContext| {
        j.fetch_add(1, Ordering::SeqCst);
        for k in ["email", "slack", "sms"] {
            if ctx.get(k).is_none() {
                return Err(StepError::fatal("early", format!("{k} not done yet")));
            }
        }
        ctx.set("complete", json!(true));
        Ok(())
    });
    let bus = Arc::new(MemoryBus::new());
    let engine = engine_with(&[yaml], |b| {
        b.handler("check", check).event_bus(bus.clone())
    });
    let inst = engine
        .start_workflow("fan", StartOptions::default())
        .await
        .unwrap();
    let done = engine.wait(&inst.id, LONG).await.unwrap();
    assert_eq!(done.status, InstanceStatus::Completed, "{:?}", done.error);
    assert_eq!(joins.load(Ordering::SeqCst), 1);
    assert_eq!(done.context["complete"], json!(true));
    let events = bus.events();
    let executed: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StepExecuted { step, .. } => Some(step.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(executed, vec!["start", "slack", "sms", "email", "complete"]);
    assert_eq!(bus.types_for(&inst.id).last(), Some(&"WorkflowCompleted"));
}

#[tokio::test]
async fn a_simple_run_emits_events_in_order_on_the_bus() {
    let bus = Arc::new(MemoryBus::new());
    let engine = engine_with(&[CHAIN], |b| b.event_bus(bus.clone()));
    let inst = engine
        .start_workflow("chain", StartOptions::default())
        .await
        .unwrap();
    assert_eq!(
        bus.types_for(&inst.id),
        vec![
            "WorkflowStarted",
            "StepStarted",
            "StepExecuted",
            "StepExecuted",
            "StepStarted",
            "StepExecuted",
            "WorkflowCompleted"
        ]
    );
    for e in bus.events() {
        let v = serde_json::to_value(&e).unwrap();
        assert!(
            v["type"].is_string()
                && v["instance_id"] == json!(inst.id)
                && v["timestamp"].is_string(),
            "{v}"
        );
    }
}

/// A bus that takes its time (it yields, like one writing to a database) sees every event of
/// a step retried from a timer: carrying out a transition is never cut short.
///
/// Fails today: the timer task that delivers `Timer(Retry)` carries out the transition
/// itself; when that transition schedules the same (step, kind) timer again,
/// `local/driver.rs` aborts the old handle, which is the running task itself, and the task
/// dies at its next await (the bus's `emit`), dropping the rest of the effects.
#[tokio::test(start_paused = true)]
async fn a_slow_event_bus_loses_no_event_of_a_retried_step() {
    let yaml = r#"
name: retry_events
version: "1.0.0"
steps:
  work:
    type: machine
    handler: flaky
    retry: { max_attempts: 3, initial_interval: 100ms, jitter: false }
"#;
    let bus = Arc::new(YieldingBus::default());
    let flaky = Flaky {
        n: 2,
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let engine = engine_with(&[yaml], |b| {
        b.handler("flaky", flaky).event_bus(bus.clone())
    });
    let inst = engine
        .start_workflow("retry_events", StartOptions::default())
        .await
        .unwrap();
    let done = engine.wait(&inst.id, LONG).await.unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
    assert_eq!(
        bus.types_for(&inst.id),
        vec![
            "WorkflowStarted",
            "StepStarted",
            "StepRetrying",
            "StepStarted",
            "StepRetrying",
            "StepStarted",
            "StepExecuted",
            "WorkflowCompleted"
        ]
    );
}

/// The same bug, worse: a timer step in a loop, with a step beside the loop on its first turn.
/// The timer task that fires `wait` applies `check` and `side` (both finish at once) in the
/// same call; applying `check` schedules `wait` again, the task aborts itself at the next
/// event, and `side`'s result is never applied: the instance never completes.
#[tokio::test(start_paused = true)]
async fn a_slow_event_bus_does_not_hang_a_timer_loop() {
    let yaml = r#"
name: timer_loop
version: "1.0.0"
initial_step: wait
steps:
  wait: { type: timer, duration: 1s }
  check: { type: machine, handler: count }
  side: { type: machine, handler: set, config: { side: true } }
  done: { type: machine, handler: set, config: { done: true } }
edges:
  - { from: wait, to: check }
  - { from: wait, to: side, condition: "context.n == 0" }
  - { from: check, to: wait, condition: "context.n < 3" }
  - { from: check, to: done, default: true }
"#;
    let count = FnStep(|ctx: &mut weir::StepContext| {
        let n = ctx.get("n").and_then(|v| v.as_i64()).unwrap_or(0);
        ctx.set("n", json!(n + 1));
        Ok(())
    });
    let bus = Arc::new(YieldingBus::default());
    let engine = engine_with(&[yaml], |b| {
        b.handler("count", count).event_bus(bus.clone())
    });
    let inst = engine
        .start_workflow("timer_loop", data(json!({ "n": 0 })))
        .await
        .unwrap();
    let done = engine
        .wait(&inst.id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
    assert_eq!(done.context["n"], json!(3));
    assert_eq!(done.context["side"], json!(true));
}

//! Starting is enqueueing: a start is stored in Redis in one script call and returns at
//! once, with no coordinator running; the instance is `pending` until a coordinator creates
//! it, and it can be canceled before that (atomically: no coordinator creates it then).

use std::time::{Duration, Instant};

use serde_json::json;
use weir::model::InstanceStatus;
use weir::Engine;
use weir::{parse_definition, EngineError, InstanceFilter, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator, start_worker};
use weir_tests::{wait_until_async, RedisServer};

mod common;
use common::queued_commands;

const FLOW: &str = r#"
name: order
version: "1.0.0"
steps:
  charge: { type: machine, handler: set, config: { charged: true } }
  ship: { type: machine, handler: set, config: { shipped: true } }
edges:
  - { from: charge, to: ship }
"#;

const OTHER: &str = r#"
name: refund
version: "1.0.0"
steps:
  pay_back: { type: machine, handler: set, config: { refunded: true } }
"#;

const WAIT: Duration = Duration::from_secs(30);

/// The ids `filter` lists, sorted.
async fn listed(
    client: &weir::redis::WeirClient,
    filter: &InstanceFilter,
) -> anyhow::Result<Vec<String>> {
    let mut ids: Vec<String> = client
        .list_instances(filter)
        .await?
        .into_iter()
        .map(|v| v.id)
        .collect();
    ids.sort();
    Ok(ids)
}

fn with_id(id: &str, data: serde_json::Value) -> StartOptions {
    StartOptions {
        id: Some(id.into()),
        initial_data: data.as_object().cloned().unwrap_or_default(),
        ..StartOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_without_a_coordinator_are_pending_then_a_coordinator_runs_them(
) -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    // A short reply timeout: a start that waited for a coordinator would fail with it.
    let client = client(&url, "t")
        .await?
        .with_reply_timeout(Duration::from_secs(1));
    client.register_definition(parse_definition(FLOW)?).await?;
    client.register_definition(parse_definition(OTHER)?).await?;

    // No coordinator at all: every start succeeds, at once, pending.
    let t = Instant::now();
    let anonymous = client
        .start_workflow("order", StartOptions::default())
        .await?;
    let kept = client
        .start_workflow("order", with_id("order-1", json!({"amount": 5})))
        .await?;
    let doomed = client
        .start_workflow("order", with_id("order-2", json!({})))
        .await?;
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "three starts took {:?}",
        t.elapsed()
    );
    for v in [&anonymous, &kept, &doomed] {
        assert_eq!(v.status, InstanceStatus::Pending, "{v:?}");
        let read = client.get_instance(&v.id).await?;
        assert_eq!(read.status, InstanceStatus::Pending, "{read:?}");
        assert_eq!(read.definition, "order");
        assert_eq!(read.version, "1.0.0");
    }
    assert_eq!(client.get_instance("order-1").await?.context["amount"], 5);
    let pending = client
        .list_instances(&InstanceFilter {
            status: Some(InstanceStatus::Pending),
            ..InstanceFilter::default()
        })
        .await?;
    assert_eq!(pending.len(), 3, "{pending:?}");
    // Listed by their workflow and without a filter too, though a pending start is in the
    // pending index only.
    let mut all = vec![anonymous.id.clone(), kept.id.clone(), doomed.id.clone()];
    all.sort();
    let by_order = InstanceFilter {
        definition: Some("order".into()),
        ..InstanceFilter::default()
    };
    assert_eq!(listed(&client, &by_order).await?, all);
    assert_eq!(listed(&client, &InstanceFilter::default()).await?, all);

    // The same caller id twice while pending: one instance, one command, nothing new.
    let again = client
        .start_workflow("order", with_id("order-1", json!({"amount": 999})))
        .await?;
    assert_eq!(again.id, "order-1");
    assert_eq!(again.context["amount"], 5, "the first start's data stays");
    let same = client
        .start_workflows("order", vec![with_id("order-1", json!({}))])
        .await
        .map_err(|e| e.error)?;
    assert!(matches!(&same[..], [Ok(s)] if !s.stored), "{same:?}");
    assert_eq!(queued_commands(&client).await?, 3);
    // Another workflow on the id: refused, nothing stored.
    let taken = client
        .start_workflow("refund", with_id("order-1", json!({})))
        .await
        .unwrap_err();
    assert!(matches!(taken, EngineError::IdTaken(_)), "{taken}");
    assert_eq!(queued_commands(&client).await?, 3);

    // Commands other than cancel are refused on a pending instance, with nothing sent.
    let refused = client.retry("order-1", None).await.unwrap_err();
    assert_eq!(refused.kind(), "wrong_status", "{refused}");
    assert_eq!(queued_commands(&client).await?, 3);

    // Cancel a pending one: at once, no coordinator needed.
    let canceled = client
        .cancel_workflow("order-2", Some("customer changed their mind"))
        .await?;
    assert_eq!(canceled.status, InstanceStatus::Canceled, "{canceled:?}");
    assert_eq!(
        canceled.error.as_deref(),
        Some("customer changed their mind")
    );
    assert!(canceled.finished_at.is_some());
    let again = client.cancel_workflow("order-2", None).await.unwrap_err();
    assert_eq!(again.kind(), "wrong_status", "{again}");
    // Canceled, it is in its workflow's index: listed by workflow and status.
    let canceled_orders = InstanceFilter {
        status: Some(InstanceStatus::Canceled),
        ..by_order.clone()
    };
    assert_eq!(listed(&client, &canceled_orders).await?, vec!["order-2"]);

    // A coordinator started later creates and runs the others, and not the canceled one.
    let coordinator = start_coordinator(&url, "t").await?;
    let worker = start_worker(&url, "t").await?;
    let created = client.wait_created(&kept.id, WAIT).await?;
    assert_ne!(created.status, InstanceStatus::Pending);
    for id in [&anonymous.id, &kept.id] {
        let done = client.wait(id, WAIT).await?;
        assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
        assert_eq!(done.context["shipped"], true);
    }
    assert_eq!(client.get_instance("order-1").await?.context["amount"], 5);
    wait_until_async(WAIT, "the coordinator handled every command", async || {
        queued_commands(&client).await.ok() == Some(0)
    })
    .await?;
    let still = client.get_instance("order-2").await?;
    assert_eq!(still.status, InstanceStatus::Canceled, "{still:?}");
    assert!(client.history("order-2").await?.is_empty());
    let pending = client
        .list_instances(&InstanceFilter {
            status: Some(InstanceStatus::Pending),
            ..InstanceFilter::default()
        })
        .await?;
    assert!(pending.is_empty(), "{pending:?}");
    // Created, each is listed once, by workflow and without a filter.
    assert_eq!(listed(&client, &by_order).await?, all);
    assert_eq!(listed(&client, &InstanceFilter::default()).await?, all);
    // Each was created once: one WorkflowStarted event each, none for the canceled one.
    let (events, _) = client
        .read_events(&Default::default(), 10_000, None)
        .await?;
    for (id, n) in [(&anonymous.id, 1), (&kept.id, 1), (&doomed.id, 0)] {
        let started = events
            .iter()
            .filter(|e| {
                &*e.instance_id == id.as_str()
                    && matches!(e.kind, weir::EventKind::WorkflowStarted { .. })
            })
            .count();
        assert_eq!(started, n, "WorkflowStarted events of {id}");
    }
    // The canceled one was announced as any cancel is: one WorkflowCanceled, with the
    // reason, stamped when it was canceled (the JSON the engine writes, or it would not
    // have been read back as an event at all).
    let announced: Vec<_> = events
        .iter()
        .filter(|e| &*e.instance_id == doomed.id.as_str())
        .collect();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(
        announced[0].kind,
        weir::EventKind::WorkflowCanceled {
            reason: Some("customer changed their mind".into())
        }
    );
    assert_eq!(Some(announced[0].timestamp), canceled.finished_at);
    worker.stop().await;
    coordinator.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_start_stores_nothing() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let client = client(&redis.url(), "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let keys = |redis: &RedisServer| -> anyhow::Result<u64> {
        Ok(redis::cmd("DBSIZE").query(&mut redis.connection()?)?)
    };
    let before = keys(&redis)?;
    let cases: Vec<(&str, StartOptions, &str)> = vec![
        ("nope", StartOptions::default(), "unknown_workflow"),
        (
            "order",
            StartOptions {
                version: Some("9.9.9".into()),
                ..StartOptions::default()
            },
            "unknown_workflow",
        ),
        ("order", with_id("has space", json!({})), "bad_request"),
        (
            "order",
            StartOptions {
                tenant_id: Some("a:b".into()),
                ..StartOptions::default()
            },
            "bad_request",
        ),
        (
            "order",
            with_id("big", json!({ "blob": "x".repeat(5 << 20) })),
            "too_large",
        ),
    ];
    for (name, options, kind) in cases {
        let err = client.start_workflow(name, options).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
    }
    assert_eq!(keys(&redis)?, before, "a refused start stored something");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_ids_are_scoped_per_tenant() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let client = client(&redis.url(), "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    client.register_definition(parse_definition(OTHER)?).await?;
    let start = |name: &'static str, tenant: Option<&str>| {
        let options = StartOptions {
            id: Some("inv-7".into()),
            tenant_id: tenant.map(str::to_string),
            ..StartOptions::default()
        };
        let client = client.clone();
        async move { client.start_workflow(name, options).await }
    };
    // Two tenants use the same caller id, for different workflows: they never meet.
    let acme = start("order", Some("acme")).await?;
    let globex = start("refund", Some("globex")).await?;
    let untenanted = start("order", None).await?;
    assert_eq!(acme.id, "acme:inv-7");
    assert_eq!(globex.id, "globex:inv-7");
    assert_eq!(untenanted.id, "inv-7");
    assert_eq!(acme.tenant.as_deref(), Some("acme"));
    // Within a tenant the rule holds: the same start is the same instance, another is refused.
    assert_eq!(start("order", Some("acme")).await?.id, "acme:inv-7");
    let taken = start("refund", Some("acme")).await.unwrap_err();
    assert!(matches!(taken, EngineError::IdTaken(_)), "{taken}");
    Ok(())
}

/// `cancel_pending.lua` is told the origin (workflow, tenant, creator) the caller read, to
/// write the indexes the record joins; when the record names another (replaced in between),
/// it answers `changed` and writes nothing, and the client reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_cancel_that_read_another_origin_changes_nothing() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let client = client(&redis.url(), "t").await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let options = StartOptions {
        tenant_id: Some("acme".into()),
        created_by: Some("ann".into()),
        ..with_id("o-1", json!({}))
    };
    let id = client.start_workflow("order", options).await?.id;
    let part = client.connections().keys.part_of(&id);
    let mut conn = client.connections().conn.clone();
    let (stale_def, tenant, creator) = ("refund", "acme", "ann");
    let mut inv = weir::redis::scripts::CANCEL_PENDING.prepare_invoke();
    inv.key(part.instance(&id))
        .key(part.index_status("pending"))
        .key(part.index_status("canceled"))
        .key(part.index_finished())
        .key(part.events())
        .key(part.due_starts())
        .key(part.index_definition(stale_def))
        .key(part.index_tenant(tenant))
        .key(part.index_creator(creator))
        .arg(&id)
        .arg("")
        .arg("{}")
        .arg("")
        .arg(stale_def)
        .arg(tenant)
        .arg(creator);
    let answer: String = inv.invoke_async(&mut conn).await?;
    assert_eq!(answer, "changed");
    let status: Option<String> = redis::cmd("HGET")
        .arg(part.instance(&id))
        .arg("status")
        .query_async(&mut conn)
        .await?;
    assert_eq!(status.as_deref(), Some("pending"));
    for index in [
        part.index_status("canceled"),
        part.index_definition(stale_def),
        part.index_tenant(tenant),
        part.index_creator(creator),
    ] {
        let n: u64 = redis::cmd("ZCARD")
            .arg(&index)
            .query_async(&mut conn)
            .await?;
        assert_eq!(n, 0, "{index}");
    }
    // The client's cancel reads the record's own origin: canceled, and in its indexes.
    let canceled = client.cancel_workflow(&id, None).await?;
    assert_eq!(canceled.status, InstanceStatus::Canceled);
    for index in [
        part.index_status("canceled"),
        part.index_definition("order"),
        part.index_tenant(tenant),
        part.index_creator(creator),
    ] {
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(&index)
            .arg(&id)
            .query_async(&mut conn)
            .await?;
        assert!(score.is_some(), "{id} is not in {index}");
    }
    Ok(())
}

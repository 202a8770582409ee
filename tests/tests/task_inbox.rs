//! Human tasks over Redis: a claim race between two clients (one wins, the other is refused
//! with nothing changed), the inbox paged through the per-partition task indexes by group,
//! and reminders fired by the coordinator's timers.

use std::time::Duration;

use serde_json::json;
use weir::api::{TaskFilter, TaskScope};
use weir::model::{Actor, InstanceStatus};
use weir::{parse_definition, Engine, EngineError, Refusal, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator};
use weir_tests::wait_for_async;
use weir_tests::RedisServer;

const REVIEW: &str = r#"
name: review
version: "1.0.0"
steps:
  review:
    type: human
    candidates: [ann, bob]
    candidate_groups: [finance]
    remind_every: 1s
"#;

const INSTANCES: usize = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_race_the_inbox_pages_by_group_and_reminders_fire() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "t").await?;
    let ann_client = client(&url, "t").await?;
    let bob_client = client(&url, "t").await?;
    ann_client
        .register_definition(parse_definition(REVIEW)?)
        .await?;
    let mut ids = Vec::new();
    for i in 0..INSTANCES {
        let options = StartOptions {
            id: Some(format!("r-{i}")),
            ..StartOptions::default()
        };
        let started = ann_client.start_workflow("review", options).await?;
        let view = ann_client
            .wait(&started.id, Duration::from_secs(10))
            .await?;
        assert_eq!(view.status, InstanceStatus::Waiting, "{view:?}");
        ids.push(started.id);
    }

    // Two candidates claim the same task at once, through two clients: one wins.
    let target = ids[3].clone();
    let (ann, bob) = (Actor::user("ann"), Actor::user("bob"));
    let (a, b) = tokio::join!(
        ann_client.claim_task(&target, "review", &ann),
        bob_client.claim_task(&target, "review", &bob),
    );
    let (winner, loser, refused) = match (a, b) {
        (Ok(_), Err(e)) => ("ann", "bob", e),
        (Err(e), Ok(_)) => ("bob", "ann", e),
        other => panic!("exactly one claim wins: {other:?}"),
    };
    match &refused {
        EngineError::Refused(Refusal::Claimed { claimed_by, .. }) => {
            assert_eq!(claimed_by, winner)
        }
        other => panic!("the loser is refused as claimed: {other:?}"),
    }
    let err = ann_client
        .complete_human_task(&target, "review", loser, json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "claimed", "{err}");
    let mine = |user: &str| TaskFilter {
        user: Some(user.into()),
        scope: Some(TaskScope::Mine),
        ..TaskFilter::default()
    };
    let theirs = ann_client.list_tasks(&mine(winner)).await?;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].claimed_by.as_deref(), Some(winner));
    assert!(ann_client.list_tasks(&mine(loser)).await?.is_empty());

    // A finance member pages through the inbox three at a time: every task once, oldest
    // first, merged over the partitions.
    let mut filter = TaskFilter {
        user: Some("carl".into()),
        groups: vec!["finance".into()],
        scope: Some(TaskScope::Groups),
        limit: Some(3),
        ..TaskFilter::default()
    };
    let mut walked = Vec::new();
    for _ in 0..INSTANCES {
        let page = ann_client.task_page(&filter).await?;
        assert!(page.items.len() <= 3);
        walked.extend(page.items.iter().map(|t| t.instance_id.to_string()));
        match page.next {
            Some(next) => filter.after = Some(next),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.sort();
    let mut sorted = walked.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "every task once: {walked:?}");
    // By due date: tasks without one come last, oldest first, so here the same walk.
    let mut by_due = TaskFilter {
        user: Some("carl".into()),
        groups: vec!["finance".into()],
        scope: Some(TaskScope::Groups),
        sort: weir::api::TaskSort::Due,
        limit: Some(2),
        ..TaskFilter::default()
    };
    let mut walked_by_due = Vec::new();
    for _ in 0..INSTANCES {
        let page = ann_client.task_page(&by_due).await?;
        walked_by_due.extend(page.items.iter().map(|t| t.instance_id.to_string()));
        match page.next {
            Some(next) => by_due.after = Some(next),
            None => break,
        }
    }
    assert_eq!(walked_by_due, walked);
    let outsider = TaskFilter {
        user: Some("eve".into()),
        groups: vec!["sales".into()],
        ..TaskFilter::default()
    };
    assert!(ann_client.list_tasks(&outsider).await?.is_empty());

    // The winner completes; the task leaves every index.
    ann_client
        .complete_human_task(&target, "review", winner, json!({}))
        .await?;
    assert!(ann_client.list_tasks(&mine(winner)).await?.is_empty());
    let all = ann_client.list_tasks(&TaskFilter::default()).await?;
    assert_eq!(all.len(), INSTANCES - 1);

    // Reminders come from the coordinator's timers, counted on the task.
    let reminded = wait_for_async(Duration::from_secs(15), "a reminder", async || {
        let tasks = ann_client.list_tasks(&TaskFilter::default()).await.ok()?;
        tasks.iter().map(|t| t.reminders).max().filter(|n| *n >= 1)
    })
    .await?;
    assert!(reminded >= 1);
    Ok(())
}

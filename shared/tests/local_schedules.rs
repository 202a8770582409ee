//! The LocalEngine's delayed starts and schedules, on the paused tokio clock: the same
//! slot logic and firing procedure as the coordinator, on the engine's clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Set, Sleep};
use weir::events::MemoryBus;
use weir::model::InstanceStatus;
use weir::schedule::{FiringOutcome, Overlap, ScheduleSpec, Trigger};
use weir::{parse_definition, Engine, EngineError, InstanceFilter, LocalEngine, StartOptions};

const QUICK: &str = r#"
name: tick
version: "1.0.0"
steps:
  note: { type: machine, handler: set, config: { ticked: true } }
"#;

const SLOW: &str = r#"
name: slow
version: "1.0.0"
steps:
  nap: { type: machine, handler: sleep, config: { ms: 2500 } }
"#;

fn engine() -> LocalEngine {
    engine_with_bus(Arc::new(MemoryBus::new()))
}

fn engine_with_bus(bus: Arc<MemoryBus>) -> LocalEngine {
    let engine = LocalEngine::builder()
        .handler("set", Set)
        .handler("sleep", Sleep)
        .event_bus(bus)
        .build();
    for y in [QUICK, SLOW] {
        engine
            .registry()
            .register_definition(parse_definition(y).unwrap())
            .unwrap();
    }
    engine
}

fn every_second(name: &str, workflow: &str, overlap: Overlap) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        workflow: workflow.into(),
        version: None,
        trigger: Trigger::Every { every_ms: 1000 },
        data: Default::default(),
        overlap,
        catch_up: 1,
    }
}

async fn started_by(engine: &LocalEngine, name: &str) -> Vec<String> {
    let mut ids: Vec<String> = engine
        .list_instances(&InstanceFilter {
            created_by: Some(format!("schedule:{name}")),
            ..InstanceFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(start_paused = true)]
async fn a_delayed_start_is_pending_until_its_time_and_can_be_canceled() {
    let bus = Arc::new(MemoryBus::new());
    let engine = engine_with_bus(bus.clone());
    let later = |id: &str| StartOptions {
        id: Some(id.into()),
        start_delay_ms: Some(60_000),
        ..StartOptions::default()
    };
    let kept = engine.start_workflow("tick", later("a")).await.unwrap();
    let doomed = engine.start_workflow("tick", later("b")).await.unwrap();
    assert_eq!(kept.status, InstanceStatus::Pending);
    let due = kept.start_at.expect("a start time");
    assert_eq!(doomed.start_at, Some(due));
    let canceled = engine
        .cancel_workflow("b", Some("changed my mind"))
        .await
        .unwrap();
    assert_eq!(
        (canceled.status, canceled.start_at),
        (InstanceStatus::Canceled, None)
    );
    // Announced as any cancel is (and as the Redis engine announces a pending one).
    assert_eq!(bus.types_for("b"), ["WorkflowCanceled"]);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        engine.get_instance("a").await.unwrap().status,
        InstanceStatus::Pending
    );
    let done = engine.wait("a", Duration::from_secs(120)).await.unwrap();
    assert_eq!(done.status, InstanceStatus::Completed);
    assert!(
        done.created_at >= due,
        "created at {} before {due}",
        done.created_at
    );
    assert_eq!(
        engine.get_instance("b").await.unwrap().status,
        InstanceStatus::Canceled
    );
    let both = engine
        .start_workflow(
            "tick",
            StartOptions {
                start_at: Some(due),
                start_delay_ms: Some(1),
                ..StartOptions::default()
            },
        )
        .await;
    assert!(matches!(both, Err(EngineError::BadRequest(_))), "{both:?}");
}

#[tokio::test(start_paused = true)]
async fn a_schedule_fires_each_slot_once_with_its_slot_id() {
    let engine = engine();
    let view = engine
        .create_schedule(every_second("tick", "tick", Overlap::Allow))
        .await
        .unwrap();
    let first = view.next_fire.unwrap();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let ids = started_by(&engine, "tick").await;
    let expected: Vec<String> = (0..3)
        .map(|k| weir::schedule::slot_instance_id("tick", first.after(Duration::from_secs(k))))
        .collect();
    assert_eq!(ids[..3], expected[..], "{ids:?}");
    let detail = engine.get_schedule("tick").await.unwrap();
    assert_eq!(detail.upcoming.len(), 5);
    assert!(detail.recent.len() >= 3);
    // The same spec again is a no-op; another spec under the name is refused.
    engine
        .create_schedule(every_second("tick", "tick", Overlap::Allow))
        .await
        .unwrap();
    assert!(matches!(
        engine
            .create_schedule(every_second("tick", "slow", Overlap::Allow))
            .await,
        Err(EngineError::ScheduleExists(_))
    ));
    // Paused: nothing fires; deleted: gone.
    engine.pause_schedule("tick").await.unwrap();
    let n = started_by(&engine, "tick").await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(started_by(&engine, "tick").await.len(), n);
    let fired = engine.trigger_schedule("tick").await.unwrap();
    assert_eq!(fired.outcome, FiringOutcome::Started);
    engine.delete_schedule("tick").await.unwrap();
    assert!(matches!(
        engine.get_schedule("tick").await,
        Err(EngineError::ScheduleNotFound(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn skip_and_cancel_previous_with_a_slow_workflow() {
    let engine = engine();
    engine
        .create_schedule(every_second("skipping", "slow", Overlap::Skip))
        .await
        .unwrap();
    engine
        .create_schedule(every_second("replacing", "slow", Overlap::CancelPrevious))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(4_200)).await;
    let skipping = engine.get_schedule("skipping").await.unwrap().schedule;
    // Each instance runs 2.5 s: slot k starts one when k % 3 == 0 and skips the two after.
    let slots = skipping.fired + skipping.skipped;
    assert!(slots >= 4, "{skipping:?}");
    assert_eq!(skipping.fired, slots.div_ceil(3), "{skipping:?}");
    let replacing = engine.get_schedule("replacing").await.unwrap().schedule;
    assert_eq!(
        (replacing.fired, replacing.skipped),
        (slots, 0),
        "{replacing:?}"
    );
    let ids = started_by(&engine, "replacing").await;
    let canceled = {
        let mut n = 0;
        for id in &ids {
            if engine.get_instance(id).await.unwrap().status == InstanceStatus::Canceled {
                n += 1;
            }
        }
        n
    };
    assert_eq!(canceled, slots - 1, "each slot canceled the one before");
}

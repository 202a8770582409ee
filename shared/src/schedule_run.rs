//! Firing a schedule's slots through an [`Engine`]: the one procedure both drivers run
//! (the LocalEngine on its clock, the coordinator through the Redis client), around the
//! pure decisions of [`crate::schedule`].

use std::sync::Arc;

use crate::api::{EngineError, StartOptions};
use crate::engine::Engine;
use crate::model::{Event, EventKind};
use crate::schedule::{
    decide_overlap, slot_instance_id, Firing, FiringOutcome, FiringPlan, OverlapDecision,
    ScheduleSpec, Slots,
};
use crate::time::Timestamp;

/// What one schedule's firing did, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fired {
    /// Slots that started (or found) an instance.
    pub fired: u64,
    /// Slots skipped as missed.
    pub missed: u64,
    /// Slots skipped by the overlap rule.
    pub skipped: u64,
}

/// The firings of one plan, to record.
#[derive(Debug, Clone, Default)]
pub struct FiredPlan {
    /// One per fired slot, plus one for the missed ones (first), oldest first.
    pub firings: Vec<Firing>,
    /// The events to publish (`ScheduleMissed`, `ScheduleFired`).
    pub events: Vec<Event>,
    /// The counts.
    pub counts: Fired,
    /// The last instance started (or found), if any.
    pub started_last: Option<String>,
}

/// Fires the slots of `plan` in order (the schedule's earliest unfired slot was `next_due`,
/// its last instance `last`), each under the overlap rule. A Redis failure is returned
/// before anything is recorded (the caller does not advance, so the slots fire again and
/// find their instances).
pub async fn fire_plan(
    engine: &dyn Engine,
    spec: &ScheduleSpec,
    slots: &Slots,
    plan: &FiringPlan,
    next_due: Timestamp,
    mut last: Option<String>,
    now: Timestamp,
) -> Result<FiredPlan, EngineError> {
    let name = &spec.name;
    let mut out = FiredPlan {
        counts: Fired {
            missed: plan.missed,
            ..Fired::default()
        },
        ..FiredPlan::default()
    };
    if plan.missed > 0 {
        let last_missed = plan
            .fire
            .first()
            .and_then(|first| slots_before(slots, next_due, *first));
        out.firings.push(Firing {
            slot: last_missed,
            fired_at: now,
            instance_id: None,
            outcome: FiringOutcome::Missed { count: plan.missed },
        });
        out.events.push(Event {
            instance_id: Arc::from(format!("schedule:{name}")),
            timestamp: now,
            kind: EventKind::ScheduleMissed {
                schedule: name.to_string(),
                count: plan.missed,
            },
        });
    }
    for slot in &plan.fire {
        let id = slot_instance_id(name, *slot);
        let firing = fire_slot(engine, spec, Some(*slot), &id, last.as_deref(), now).await?;
        match firing.outcome {
            FiringOutcome::SkippedOverlap => out.counts.skipped += 1,
            FiringOutcome::Failed { .. } => {}
            _ => {
                out.counts.fired += 1;
                last = Some(id.clone());
                out.started_last = Some(id.clone());
            }
        }
        out.events.push(Event {
            instance_id: Arc::from(id.as_str()),
            timestamp: now,
            kind: EventKind::ScheduleFired {
                schedule: name.to_string(),
                slot: Some(*slot),
                outcome: outcome_name(&firing.outcome).to_string(),
            },
        });
        out.firings.push(firing);
    }
    Ok(out)
}

/// The last slot before `first` that is at or after `from` (the most recent missed slot).
fn slots_before(slots: &Slots, from: Timestamp, first: Timestamp) -> Option<Timestamp> {
    let mut at = from;
    let mut last = None;
    // Bounded: at most the slots between `from` and `first`, which `plan` walked already;
    // stop early for very long gaps.
    for _ in 0..100_000 {
        if at >= first {
            break;
        }
        last = Some(at);
        at = slots.next_after(at)?;
    }
    last
}

/// The outcome's name in events.
pub fn outcome_name(o: &FiringOutcome) -> &'static str {
    match o {
        FiringOutcome::Started => "started",
        FiringOutcome::AlreadyStarted => "already_started",
        FiringOutcome::SkippedOverlap => "skipped_overlap",
        FiringOutcome::StartedAfterCancel => "started_after_cancel",
        FiringOutcome::Missed { .. } => "missed",
        FiringOutcome::Failed { .. } => "failed",
    }
}

/// Fires one slot (or a manual trigger, `slot` `None`) of a schedule: the overlap rule
/// against the previous instance `previous`, then the start with id `id`. A Redis failure
/// is returned (the caller does not advance, so the slot fires again); a refused start is
/// a `failed` firing.
pub async fn fire_slot(
    engine: &dyn Engine,
    spec: &ScheduleSpec,
    slot: Option<Timestamp>,
    id: &str,
    previous: Option<&str>,
    now: Timestamp,
) -> Result<Firing, EngineError> {
    let firing = |instance_id: Option<&str>, outcome| Firing {
        slot,
        fired_at: now,
        instance_id: instance_id.map(str::to_string),
        outcome,
    };
    // Fired before (a crash between the start and the advance): found, not decided again.
    match engine.get_instance(id).await {
        Ok(_) => return Ok(firing(Some(id), FiringOutcome::AlreadyStarted)),
        Err(EngineError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let previous_status = match previous.filter(|p| *p != id) {
        Some(p) => match engine.get_instance(p).await {
            Ok(view) => Some(view.status),
            Err(EngineError::NotFound(_)) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let decision = decide_overlap(spec.overlap, previous_status);
    if decision == OverlapDecision::Skip {
        return Ok(firing(None, FiringOutcome::SkippedOverlap));
    }
    if decision == OverlapDecision::CancelThenStart {
        if let Some(p) = previous {
            let reason = format!("canceled by schedule {:?}: a new slot started", spec.name);
            match engine.cancel_workflow(p, Some(&reason)).await {
                // Finished meanwhile, or gone: nothing to cancel.
                Ok(_) | Err(EngineError::Refused(_)) | Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let options = StartOptions {
        version: spec.version.clone(),
        initial_data: spec.data.clone(),
        id: Some(id.to_string()),
        created_by: Some(format!("schedule:{}", spec.name)),
        ..StartOptions::default()
    };
    let started = match engine.start_workflows(&spec.workflow, vec![options]).await {
        Ok(mut results) => results.pop(),
        Err(refused) => Some(Err(refused.error)),
    };
    Ok(match started {
        Some(Ok(s)) if s.stored && decision == OverlapDecision::CancelThenStart => {
            firing(Some(id), FiringOutcome::StartedAfterCancel)
        }
        Some(Ok(s)) if s.stored => firing(Some(id), FiringOutcome::Started),
        Some(Ok(_)) => firing(Some(id), FiringOutcome::AlreadyStarted),
        Some(Err(e @ EngineError::Redis(_))) => return Err(e),
        Some(Err(e)) => firing(
            None,
            FiringOutcome::Failed {
                error: e.to_string(),
            },
        ),
        None => firing(
            None,
            FiringOutcome::Failed {
                error: "the start answered nothing".into(),
            },
        ),
    })
}

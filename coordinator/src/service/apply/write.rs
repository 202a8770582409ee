//! The coordinator's side of a turn's writes: what it counts for metrics, and the instance
//! changes of a quarantine. How effects map onto keys is [`weir::redis::effects`].

use weir::core::Effect;
use weir::definition::Workflow;
use weir::model::{Instance, InstanceStatus};
use weir::redis::batch::Batch;
use weir::redis::effects::{self, Waits};
use weir::redis::PartitionKeys;
use weir::Timestamp;

/// Writes a transition's effects into the turn's batch, counting what it dispatches and
/// emits in `tally` (published once the batch is committed). `waits` are the instance's
/// correlated waits before the transition ([`Waits::before`]). Returns whether it wrote a
/// hop to the partition's outbox (a correlated wait began or ended), to relay after the
/// commit.
#[allow(clippy::too_many_arguments)]
pub(super) fn transition(
    b: &mut Batch,
    (tally, wf): (&mut weir::process::Tally, &Workflow),
    part: &PartitionKeys,
    inst: &Instance,
    effects: Vec<Effect>,
    now_ms: i64,
    events_cap: usize,
    waits: Waits,
) -> bool {
    let mut hops = false;
    for effect in &effects {
        match effect {
            Effect::Dispatch(d) => tally.dispatched(&d.handler, &d.queue),
            Effect::Emit(e) => tally.event(wf, &inst.definition, &e.kind),
            Effect::Subscribe { key: Some(_), .. } | Effect::Unsubscribe { key: Some(_), .. } => {
                hops = true
            }
            _ => {}
        }
    }
    let waits = if hops {
        waits.after(wf, inst, &effects)
    } else {
        waits
    };
    effects::write_effects(b, part, inst, effects, now_ms, events_cap, &waits);
    hops
}

/// How a quarantined instance was stored.
pub(super) struct Stored<'a> {
    /// Its revision.
    pub(super) rev: Option<u64>,
    /// Its status, when known (not when its state did not decode).
    pub(super) before: Option<InstanceStatus>,
    /// Its state's bytes, when they did not decode: kept aside, never destroyed.
    pub(super) corrupt_state: Option<&'a [u8]>,
}

/// Marks an instance failed and quarantined with `reason` (see the module doc), and writes
/// it so.
pub(super) fn quarantine(
    batch: &mut Batch,
    part: &PartitionKeys,
    inst: &mut Instance,
    stored: Stored<'_>,
    reason: &str,
    now_ms: i64,
) {
    tracing::error!(instance_id = %inst.id, %reason, "instance quarantined: its inputs are dead-lettered");
    let was_terminal = stored.before.is_some_and(InstanceStatus::is_terminal);
    inst.status = InstanceStatus::Failed;
    inst.error = Some(format!("quarantined: {reason}"));
    inst.updated_at = Timestamp(now_ms);
    if !was_terminal || inst.finished_at.is_none() {
        inst.finished_at = Some(Timestamp(now_ms));
    }
    inst.revision = stored.rev.unwrap_or(0) + 1;
    effects::write_quarantine(
        batch,
        part,
        inst,
        stored.rev,
        stored.before,
        reason,
        stored.corrupt_state,
    );
}

//! Loading the instances a turn touches that are not in the cache, in one round trip, and
//! quarantining the records that cannot be used (see the module doc of [`super`]).

use std::sync::Arc;

use weir::definition::Workflow;
use weir::model::{Instance, InstanceStatus, StepState};
use weir::redis::batch::Batch;
use weir::redis::effects;
use weir::redis::store::{self, decode_record};
use weir::redis::PartitionKeys;
use weir::Timestamp;

use super::super::Shared;
use super::write::{quarantine, Stored};

/// Why a turn could not load what it touches: Redis failed (an outage, not a bad record;
/// the turn is retried).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading the instances failed.
    #[error("reading instances failed: {0}")]
    Redis(#[from] redis::RedisError),
    /// Reading a definition failed.
    #[error("reading a definition failed: {0}")]
    Definitions(#[source] weir::EngineError),
}

/// One instance as the turn changes it.
pub(super) struct Working {
    pub(super) inst: Option<Instance>,
    pub(super) wf: Option<Arc<Workflow>>,
    pub(super) rev: Option<u64>,
    pub(super) before: Option<InstanceStatus>,
    pub(super) changed: bool,
    /// Why it is quarantined (see the module doc): its inputs are not applied.
    pub(super) quarantined: Option<String>,
    /// A start no coordinator created yet (`start.lua`): when it was stored, and whether
    /// it was canceled first. `inst` is `None` until the turn creates it.
    pub(super) unstarted: Option<Unstarted>,
}

/// A stored start the coordinator has not created yet.
#[derive(Clone)]
pub(super) struct Unstarted {
    pub(super) created_at: Timestamp,
    /// `pending`; `canceled` (canceled first: never created); or `failed` (its Start was
    /// dead-lettered: a replayed Start creates it after all).
    pub(super) status: InstanceStatus,
    /// The workflow, tenant and creator it was stored with (its origin indexes).
    pub(super) definition: String,
    pub(super) tenant: Option<String>,
    pub(super) creator: Option<String>,
}

impl Unstarted {
    /// Canceled before it was created: its Start is refused.
    pub(super) fn canceled(&self) -> bool {
        self.status == InstanceStatus::Canceled
    }

    /// Its origin, for the indexes it joins when it leaves `pending`.
    pub(super) fn origin(&self) -> effects::Origin<'_> {
        effects::Origin {
            definition: &self.definition,
            tenant: self.tenant.as_deref(),
            creator: self.creator.as_deref(),
            created_ms: self.created_at.millis(),
        }
    }
}

impl Working {
    /// An instance as cached or loaded, at its stored revision (all `None`: not stored).
    pub(super) fn new(
        inst: Option<Instance>,
        wf: Option<Arc<Workflow>>,
        rev: Option<u64>,
    ) -> Working {
        Working {
            before: inst.as_ref().map(|i| i.status),
            inst,
            wf,
            rev,
            changed: false,
            quarantined: None,
            unstarted: None,
        }
    }

    /// A pending start: created by its Start command, against no revision (a cancel in
    /// between writes one, so that commit fails and the next turn sees it).
    fn unstarted(u: Unstarted) -> Working {
        Working {
            before: Some(u.status),
            unstarted: Some(u),
            ..Working::new(None, None, None)
        }
    }

    /// An instance set aside for `reason`: nothing applies to it.
    fn quarantined(reason: String) -> Working {
        Working {
            quarantined: Some(reason),
            ..Working::new(None, None, None)
        }
    }
}

/// Loads the instances a turn touches in one round trip. A record that cannot be used (see
/// the module doc) is quarantined, its writes added to `batch`; only Redis failures fail.
pub(super) async fn load_working(
    shared: &Shared,
    part: &PartitionKeys,
    ids: &[&str],
    batch: &mut Batch,
    now_ms: i64,
) -> Result<Vec<Working>, LoadError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let records = store::load_records(&mut shared.conns.conn.clone(), part, ids).await?;
    let mut out = Vec::with_capacity(ids.len());
    for (id, record) in ids.iter().zip(records) {
        let store::InstanceRecord {
            state,
            rev,
            quarantined,
            status,
            created,
            definition: def,
            version: ver,
            tenant,
            creator,
            start,
        } = record;
        let Some(state) = state else {
            out.push(match start {
                Some(_) => Working::unstarted(Unstarted {
                    created_at: Timestamp(created.unwrap_or(now_ms)),
                    status: status
                        .as_deref()
                        .and_then(|s| s.parse::<InstanceStatus>().ok())
                        .unwrap_or(InstanceStatus::Pending),
                    definition: def.unwrap_or_default(),
                    tenant,
                    creator,
                }),
                None => Working::new(None, None, None),
            });
            continue;
        };
        if let Some(reason) = quarantined {
            out.push(Working::quarantined(reason));
            continue;
        }
        let mut inst = match decode_record::<Instance>(&state) {
            Ok(inst) => inst,
            Err(e) => {
                let reason = format!("its stored state does not decode ({e})");
                let wf = match (&def, &ver) {
                    (Some(d), Some(v)) => definition(shared, d, v).await?.ok(),
                    _ => None,
                };
                let mut inst = Instance {
                    id: Arc::from(*id),
                    definition: Arc::from(def.as_deref().unwrap_or_default()),
                    version: Arc::from(ver.as_deref().unwrap_or_default()),
                    status: InstanceStatus::Failed,
                    context: Default::default(),
                    steps: vec![StepState::default(); wf.as_ref().map_or(0, |w| w.steps.len())],
                    error: None,
                    failed_step: None,
                    tenant_id: tenant,
                    created_by: creator,
                    created_at: Timestamp(created.unwrap_or(now_ms)),
                    updated_at: Timestamp(now_ms),
                    finished_at: None,
                    revision: 0,
                    next_token: 0,
                };
                let old = status
                    .as_deref()
                    .and_then(|s| InstanceStatus::ALL.into_iter().find(|x| x.as_str() == s));
                // The bytes are kept aside, never destroyed.
                let stored = Stored {
                    rev,
                    before: old,
                    corrupt_state: Some(&state),
                };
                quarantine(batch, part, &mut inst, stored, &reason, now_ms);
                out.push(Working::quarantined(reason));
                continue;
            }
        };
        match definition(shared, &inst.definition, &inst.version).await? {
            Ok(wf) => out.push(Working::new(Some(inst), Some(wf), Some(rev.unwrap_or(0)))),
            Err(e) => {
                let reason = format!(
                    "its definition {}@{} cannot be loaded ({e})",
                    inst.definition, inst.version
                );
                let stored = Stored {
                    rev,
                    before: Some(inst.status),
                    corrupt_state: None,
                };
                quarantine(batch, part, &mut inst, stored, &reason, now_ms);
                out.push(Working::quarantined(reason));
            }
        }
    }
    Ok(out)
}

/// A definition version: `Ok(Err(..))` when it cannot be loaded for good (missing, or no
/// longer compiling), `Err` when Redis failed (the turn is retried).
async fn definition(
    shared: &Shared,
    name: &str,
    version: &str,
) -> Result<Result<Arc<Workflow>, weir::EngineError>, LoadError> {
    match shared.defs.get(&shared.conns, name, Some(version)).await {
        Ok(wf) => Ok(Ok(wf)),
        Err(e @ weir::EngineError::Redis(_)) => Err(LoadError::Definitions(e)),
        Err(e) => Ok(Err(e)),
    }
}

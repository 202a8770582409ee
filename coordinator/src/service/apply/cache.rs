//! The instances a partition loop keeps between turns: copies, guarded by revisions (see
//! the module doc of [`super`]).

use std::collections::HashMap;
use std::sync::Arc;

use weir::definition::Workflow;
use weir::model::Instance;

/// An instance as a partition loop last wrote (or read) it, with its stored revision.
pub struct Cached {
    pub(super) inst: Instance,
    pub(super) rev: u64,
    pub(super) wf: Arc<Workflow>,
}

/// The instances a partition loop keeps between turns (see the module doc). Finished
/// instances are not kept; the cache is emptied when it grows past [`InstanceCache::MAX`].
#[derive(Default)]
pub struct InstanceCache {
    map: HashMap<String, Cached>,
}

impl InstanceCache {
    /// The most instances kept per partition loop (a bound on memory, a few MB; past it the
    /// cache starts over, which costs only reads).
    pub const MAX: usize = 4_096;

    /// Forgets everything: after any failed or uncertain commit, and on conflicts.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Keeps what a committed turn left, except finished instances.
    pub fn keep(&mut self, kept: Vec<(String, Cached)>) {
        if self.map.len() + kept.len() > Self::MAX {
            self.map.clear();
        }
        for (id, c) in kept {
            if !c.inst.status.is_terminal() {
                self.map.insert(id, c);
            }
        }
    }

    /// Takes the instance `id` out of the cache, if it is kept: the turn that applies to
    /// it owns it until it commits (and [`InstanceCache::keep`] puts it back).
    pub(super) fn take(&mut self, id: &str) -> Option<Cached> {
        self.map.remove(id)
    }

    /// How many instances are kept.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

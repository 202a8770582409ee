//! Lanes: per-thread copies of what every step touches.
//!
//! Each step clones and drops `Arc`s of its workflow (step names, handler names, queues,
//! configurations) and looks its handler up. When two cores run instances of one workflow,
//! those reference counts sit on cache lines both cores write, and every step waits for the
//! line to come over from the other core. A lane holds its own compiled copy of each
//! workflow and its own handler table; an instance takes the lane of the thread that starts
//! it, so instances started on different threads touch different lines.
//!
//! A copy is compiled from the same definition as the registry's workflow, so it behaves
//! the same in every respect; only the addresses differ.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::definition::{compile, Workflow};
use crate::step::{Handlers, Step};

/// How many lanes an engine has; threads beyond that share them, round-robin.
pub(crate) const LANES: usize = 8;

/// One lane: a handler table and workflow copies, on cache lines of its own.
#[repr(align(128))]
pub(crate) struct Lane {
    /// The engine's handlers.
    pub handlers: Handlers,
    /// The same handlers, each behind a reference count of this lane's own: attempts hold
    /// one while they run.
    steps: HashMap<String, Arc<LaneStep>>,
    /// Copies by the address of the registry's workflow.
    workflows: Mutex<HashMap<usize, Replica, BuildHasherDefault<AddressHasher>>>,
}

/// Hashes the address keys of [`Lane::workflow`]'s map: one multiplication, where SipHash
/// takes a few dozen instructions for nothing (the keys are addresses, not input).
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        // Addresses end in zero bits: fold the well-mixed high half onto the low one.
        let x = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 32);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A registry workflow, kept alive so its address cannot be reused by another one, and this
/// lane's copy of it.
struct Replica {
    original: Arc<Workflow>,
    copy: Arc<Workflow>,
}

/// A handler as a lane hands it to attempts.
pub(crate) struct LaneStep(pub Arc<dyn Step>);

impl Lane {
    pub fn new(handlers: Handlers) -> Lane {
        let steps = handlers
            .names()
            .into_iter()
            .filter_map(|name| {
                let step = handlers.get(name)?.clone();
                Some((name.to_string(), Arc::new(LaneStep(step))))
            })
            .collect();
        Lane {
            handlers,
            steps,
            workflows: Mutex::new(HashMap::default()),
        }
    }

    /// A handler by name, with the name as the table keeps it.
    pub fn step(&self, name: &str) -> Option<(&str, &Arc<LaneStep>)> {
        self.steps
            .get_key_value(name)
            .map(|(name, step)| (name.as_str(), step))
    }

    /// This lane's copy of a registry workflow, compiled on first use. Should compiling it
    /// again ever fail, the registry's own is used.
    pub fn workflow(&self, wf: &Arc<Workflow>) -> Arc<Workflow> {
        let key = Arc::as_ptr(wf) as usize;
        let mut map = self.workflows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = map.get(&key).filter(|e| Arc::ptr_eq(&e.original, wf)) {
            return entry.copy.clone();
        }
        let copy = match compile(wf.definition.clone()) {
            Ok(copy) => Arc::new(copy),
            Err(_) => wf.clone(),
        };
        map.insert(
            key,
            Replica {
                original: wf.clone(),
                copy: copy.clone(),
            },
        );
        copy
    }
}

/// The lane index of the current thread, fixed on first use.
pub(crate) fn current() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % LANES;
    }
    INDEX.with(|i| *i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::parse_definition;

    const FLOW: &str = r#"
name: flow
version: "1.0.0"
steps:
  a: { type: machine, handler: noop }
  b: { type: machine, handler: noop }
edges:
  - { from: a, to: b }
"#;

    #[test]
    fn a_lane_compiles_one_copy_per_workflow_and_keeps_it() {
        let def = parse_definition(FLOW).expect("parses");
        let wf = Arc::new(compile(def).expect("compiles"));
        let lane = Lane::new(Handlers::new());
        let copy = lane.workflow(&wf);
        assert!(!Arc::ptr_eq(&copy, &wf), "a copy of its own");
        assert!(Arc::ptr_eq(&copy, &lane.workflow(&wf)), "compiled once");
        assert_eq!(copy.fingerprint, wf.fingerprint);
        assert!(!Arc::ptr_eq(&copy.steps[0].name, &wf.steps[0].name));
        let names = |w: &Workflow| {
            w.steps
                .iter()
                .map(|s| s.name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&copy), names(&wf));
        assert_eq!(copy.initial, wf.initial);
    }
}

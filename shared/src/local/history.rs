//! The LocalEngine's execution history, kept compact.
//!
//! An instance keeps every attempt record for as long as the engine keeps the instance, so
//! records are stored in 48 bytes instead of the 128 of an [`AttemptRecord`] plus the
//! string of its worker: times as plain integers with presence flags, and the worker, error
//! and note out of line only when there is an error, a note, or a worker other than this
//! engine. The records read back are equal to the ones stored.

use std::sync::Arc;

use crate::model::{AttemptRecord, AttemptStatus};
use crate::time::Timestamp;

/// The worker name recorded for attempts run in-process.
pub(crate) const LOCAL_WORKER: &str = "local";

const STARTED: u8 = 1;
const FINISHED: u8 = 2;
const LOCAL: u8 = 4;

/// Attempt records of one instance, in the order they were recorded.
#[derive(Debug, Default)]
pub(crate) struct History {
    records: Vec<Record>,
}

#[derive(Debug)]
struct Record {
    step: Arc<str>,
    started_at: i64,
    finished_at: i64,
    /// The worker and error, when there is an error or the worker is neither absent nor
    /// [`LOCAL_WORKER`].
    rest: Option<Box<Rest>>,
    attempt: u32,
    status: AttemptStatus,
    flags: u8,
}

#[derive(Debug)]
struct Rest {
    worker: Option<String>,
    error: Option<String>,
    note: Option<String>,
}

impl History {
    /// Room for `n` records.
    pub(super) fn with_capacity(n: usize) -> History {
        History {
            records: Vec::with_capacity(n),
        }
    }

    /// Appends a record.
    pub(super) fn push(&mut self, r: AttemptRecord) {
        let mut flags = 0;
        if r.started_at.is_some() {
            flags |= STARTED;
        }
        if r.finished_at.is_some() {
            flags |= FINISHED;
        }
        let rest = match (r.worker, r.error, r.note) {
            (None, None, None) => None,
            (Some(w), None, None) if w == LOCAL_WORKER => {
                flags |= LOCAL;
                None
            }
            (worker, error, note) => Some(Box::new(Rest {
                worker,
                error,
                note,
            })),
        };
        self.records.push(Record {
            step: r.step,
            started_at: r.started_at.map_or(0, Timestamp::millis),
            finished_at: r.finished_at.map_or(0, Timestamp::millis),
            rest,
            attempt: r.attempt,
            status: r.status,
            flags,
        });
    }

    /// The records, as they were pushed.
    pub(super) fn to_records(&self) -> Vec<AttemptRecord> {
        self.records
            .iter()
            .map(|r| {
                let (worker, error, note) = match &r.rest {
                    Some(rest) => (rest.worker.clone(), rest.error.clone(), rest.note.clone()),
                    None if r.flags & LOCAL != 0 => (Some(LOCAL_WORKER.to_string()), None, None),
                    None => (None, None, None),
                };
                AttemptRecord {
                    step: r.step.clone(),
                    attempt: r.attempt,
                    status: r.status,
                    started_at: (r.flags & STARTED != 0).then_some(Timestamp(r.started_at)),
                    finished_at: (r.flags & FINISHED != 0).then_some(Timestamp(r.finished_at)),
                    worker,
                    error,
                    note,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(worker: Option<&str>, error: Option<&str>, times: (bool, bool)) -> AttemptRecord {
        AttemptRecord {
            step: "s".into(),
            attempt: 3,
            status: AttemptStatus::Retrying,
            started_at: times.0.then_some(Timestamp(-5)),
            finished_at: times.1.then_some(Timestamp(i64::MAX)),
            worker: worker.map(str::to_string),
            error: error.map(str::to_string),
            note: None,
        }
    }

    #[test]
    fn records_read_back_equal_to_what_was_pushed() {
        let mut all = Vec::new();
        for worker in [None, Some(LOCAL_WORKER), Some("w1"), Some("")] {
            for error in [None, Some("boom")] {
                for times in [(false, false), (true, false), (true, true), (false, true)] {
                    all.push(record(worker, error, times));
                }
            }
        }
        let mut h = History::with_capacity(1);
        for r in &all {
            h.push(r.clone());
        }
        assert_eq!(h.to_records(), all);
        assert_eq!(std::mem::size_of::<Record>(), 48);
    }
}

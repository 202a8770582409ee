//! The LocalEngine's execution history, kept compact.
//!
//! An instance keeps every attempt record for as long as the engine keeps the instance, so
//! records are stored in 48 bytes instead of the 128 of an [`AttemptRecord`] plus the
//! string of its worker: times as plain integers with presence flags, and the worker, error
//! and note out of line only when there is an error, a note, or a worker other than this
//! engine. The records read back are equal to the ones stored.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::api::MAX_HISTORY_RECORDS;
use crate::model::{AttemptRecord, AttemptStatus};
use crate::time::Timestamp;

/// The worker name recorded for attempts run in-process.
pub(crate) const LOCAL_WORKER: &str = "local";

const STARTED: u8 = 1;
const FINISHED: u8 = 2;
const LOCAL: u8 = 4;

/// Attempt records of one instance, in the order they were recorded: the last
/// [`MAX_HISTORY_RECORDS`], and how many older ones were dropped.
#[derive(Debug, Default)]
pub(crate) struct History {
    records: VecDeque<Record>,
    dropped: u64,
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
            records: VecDeque::with_capacity(n.min(MAX_HISTORY_RECORDS)),
            dropped: 0,
        }
    }

    /// Appends a record, dropping the oldest one when [`MAX_HISTORY_RECORDS`] are kept.
    pub(super) fn push(&mut self, r: AttemptRecord) {
        if self.records.len() >= MAX_HISTORY_RECORDS {
            self.records.pop_front();
            self.dropped += 1;
        }
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
        self.records.push_back(Record {
            step: r.step,
            started_at: r.started_at.map_or(0, Timestamp::millis),
            finished_at: r.finished_at.map_or(0, Timestamp::millis),
            rest,
            attempt: r.attempt,
            status: r.status,
            flags,
        });
    }

    /// How many records are kept.
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// How many older records the cap dropped.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The records kept, as they were pushed.
    pub(super) fn to_records(&self) -> Vec<AttemptRecord> {
        self.range(0, usize::MAX)
    }

    /// Up to `limit` records kept from position `offset`.
    pub(super) fn range(&self, offset: usize, limit: usize) -> Vec<AttemptRecord> {
        self.records
            .iter()
            .skip(offset)
            .take(limit)
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

    #[test]
    fn the_oldest_records_past_the_cap_are_dropped_and_counted() {
        let mut h = History::with_capacity(4);
        let extra = 25;
        for attempt in 0..(MAX_HISTORY_RECORDS + extra) as u32 {
            let mut r = record(None, None, (true, true));
            r.attempt = attempt;
            h.push(r);
        }
        assert_eq!(h.len(), MAX_HISTORY_RECORDS);
        assert_eq!(h.dropped(), extra as u64);
        let kept = h.to_records();
        assert_eq!(kept[0].attempt, extra as u32, "the oldest kept");
        assert_eq!(
            kept.last().map(|r| r.attempt),
            Some((MAX_HISTORY_RECORDS + extra - 1) as u32)
        );
        let page = h.range(10, 3);
        assert_eq!(
            page.iter().map(|r| r.attempt).collect::<Vec<_>>(),
            vec![35, 36, 37]
        );
    }
}

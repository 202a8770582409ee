//! Schedules: a workflow started on a calendar (cron) or at a fixed interval, as pure logic.
//!
//! Everything here is a function of its arguments (time comes in, as for the core): which
//! slots a trigger has, which slots are due and which were missed, whether the previous
//! instance blocks a slot, and the id of the instance a slot starts. Both drivers use it: the
//! LocalEngine on its clock, the coordinator on the Redis clock (`crate::redis::schedules`).
//!
//! **Decisions.**
//! - Cron expressions have five or six fields (an optional leading seconds field), parsed by
//!   `croner`, evaluated in the schedule's IANA time zone (`chrono-tz`, UTC by default).
//!   Across DST changes croner follows vixie-cron: a fixed time that falls in the gap of a
//!   spring-forward change fires at the first valid time after the gap, and once only in the
//!   repeated hour of a fall-back change; wildcard and step fields fire at each matching
//!   real time (none in the gap, each pass of the repeated hour).
//! - `every` slots are the multiples of the interval since the Unix epoch (so `every 1h`
//!   fires at each whole hour UTC, and two coordinators agree on the slots with no stored
//!   anchor).
//! - **Exactly once per slot**: the instance a slot starts has the id
//!   `NAME@SLOT` ([`slot_instance_id`], the slot in RFC 3339 UTC), and starting an id twice
//!   starts one instance (the caller-id rule), so a slot fired again after a crash finds its
//!   instance and starts nothing.
//! - **Missed slots** ([`plan`]): when several slots are due at once (no driver ran at their
//!   time), the most recent `catch_up` of them fire and the older ones are skipped and
//!   counted, as Temporal's catch-up window and cron's anacron mode do.
//! - **Overlap** ([`decide_overlap`]): `skip` starts no slot while the previous instance of
//!   the schedule is unfinished (pending, running or waiting), `allow` always starts, and
//!   `cancel_previous` cancels the unfinished one first.

use std::collections::VecDeque;
use std::str::FromStr;

use chrono::TimeZone;
use serde::{Deserialize, Serialize};

use crate::model::{Context, InstanceStatus};
use crate::time::Timestamp;

/// The longest schedule name, in bytes.
pub const MAX_NAME_LEN: usize = 100;
/// The most missed slots `catch_up` may ask to fire.
pub const MAX_CATCH_UP: u32 = 1000;
/// The shortest `every` interval.
pub const MIN_EVERY_MS: u64 = 1000;
/// How many upcoming fire times `show` lists.
pub const UPCOMING: usize = 5;
/// How many past firings a schedule keeps.
pub const RECENT_FIRINGS: usize = 10;
/// The most due slots [`plan`] walks one by one; past it, the older ones are counted by
/// arithmetic (`every`) or reported as at least this many (cron).
const MAX_WALK: u64 = 100_000;

/// What starts an instance when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Trigger {
    /// A cron expression (5 fields, or 6 with leading seconds) in a time zone.
    Cron {
        /// The expression, e.g. `0 30 2 * * *` or `*/5 * * * *`.
        expr: String,
        /// An IANA time zone such as `Europe/Paris`; UTC when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
    /// Every so many milliseconds, at the multiples of it since the Unix epoch.
    Every {
        /// The interval (at least [`MIN_EVERY_MS`]).
        every_ms: u64,
    },
}

/// What a slot does when the previous instance of its schedule is still unfinished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Start nothing for this slot (it is recorded as skipped).
    #[default]
    Skip,
    /// Start it anyway.
    Allow,
    /// Cancel the unfinished one, then start.
    CancelPrevious,
}

impl Overlap {
    /// The name, as the CLI and the API write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Allow => "allow",
            Overlap::CancelPrevious => "cancel_previous",
        }
    }
}

impl FromStr for Overlap {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Overlap, ScheduleError> {
        match s {
            "skip" => Ok(Overlap::Skip),
            "allow" => Ok(Overlap::Allow),
            "cancel_previous" => Ok(Overlap::CancelPrevious),
            other => Err(ScheduleError::Invalid(format!(
                "overlap {other:?} is not one of skip, allow, cancel_previous"
            ))),
        }
    }
}

fn default_catch_up() -> u32 {
    1
}

/// A schedule as its creator writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Its name: 1 to 100 bytes of letters, digits, `_`, `-` and `.`.
    pub name: String,
    /// The workflow it starts.
    pub workflow: String,
    /// A version of it; the latest at each firing when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When it fires.
    pub trigger: Trigger,
    /// The initial context of each instance.
    #[serde(default)]
    pub data: Context,
    /// What a slot does while the previous instance is unfinished.
    #[serde(default)]
    pub overlap: Overlap,
    /// How many missed slots fire when several are due at once (default 1).
    #[serde(default = "default_catch_up")]
    pub catch_up: u32,
}

/// A schedule refused, or one not found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The spec is wrong; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
}

/// A checked trigger, ready to compute slots.
#[derive(Debug, Clone)]
pub enum Slots {
    /// A parsed cron expression and its zone.
    Cron(Box<croner::Cron>, chrono_tz::Tz),
    /// An interval in ms.
    Every(i64),
}

impl ScheduleSpec {
    /// Checks everything but the workflow's existence; returns the trigger's slots.
    pub fn check(&self) -> Result<Slots, ScheduleError> {
        check_name(&self.name)?;
        if self.workflow.is_empty() {
            return Err(ScheduleError::Invalid(
                "a schedule needs a workflow (--workflow)".into(),
            ));
        }
        if self.catch_up > MAX_CATCH_UP {
            return Err(ScheduleError::Invalid(format!(
                "catch-up {} is over the limit of {MAX_CATCH_UP}",
                self.catch_up
            )));
        }
        Slots::of(&self.trigger)
    }
}

/// Checks a schedule name: 1 to 100 bytes of ASCII letters, digits, `_`, `-` and `.`.
pub fn check_name(name: &str) -> Result<(), ScheduleError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ScheduleError::Invalid(format!(
            "schedule name {name:?} must be 1 to {MAX_NAME_LEN} letters, digits, '_', '-' or '.'"
        )))
    }
}

impl Slots {
    /// Parses and checks a trigger.
    pub fn of(trigger: &Trigger) -> Result<Slots, ScheduleError> {
        match trigger {
            Trigger::Cron { expr, timezone } => {
                let tz = match timezone.as_deref() {
                    None => chrono_tz::UTC,
                    Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
                        ScheduleError::Invalid(format!(
                            "time zone {name:?} is not an IANA zone name (e.g. Europe/Paris, \
                             America/New_York, UTC)"
                        ))
                    })?,
                };
                let cron = croner::parser::CronParser::builder()
                    .seconds(croner::parser::Seconds::Optional)
                    .build()
                    .parse(expr)
                    .map_err(|e| {
                        ScheduleError::Invalid(format!(
                            "cron expression {expr:?}: {e} (write 5 fields, minute hour \
                             day-of-month month day-of-week, or 6 with seconds first)"
                        ))
                    })?;
                let slots = Slots::Cron(Box::new(cron), tz);
                if slots.next_after(Timestamp(0)).is_none() {
                    return Err(ScheduleError::Invalid(format!(
                        "cron expression {expr:?} never matches a time"
                    )));
                }
                Ok(slots)
            }
            Trigger::Every { every_ms } => {
                if *every_ms < MIN_EVERY_MS || *every_ms > i64::MAX as u64 {
                    return Err(ScheduleError::Invalid(format!(
                        "every {every_ms} ms is shorter than the shortest interval, \
                         {MIN_EVERY_MS} ms"
                    )));
                }
                Ok(Slots::Every(*every_ms as i64))
            }
        }
    }

    /// The first slot strictly after `t`; `None` when there is none (a cron expression
    /// with no time left before the year 5000).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Slots::Every(every) => {
                let k = t.millis().div_euclid(*every).checked_add(1)?;
                k.checked_mul(*every).map(Timestamp)
            }
            Slots::Cron(cron, tz) => {
                let at = tz.timestamp_millis_opt(t.millis()).single()?;
                let next = cron.find_next_occurrence(&at, false).ok()?;
                Some(Timestamp(next.timestamp_millis()))
            }
        }
    }

    /// The last slot at or before `t`.
    fn last_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Slots::Every(every) => Some(Timestamp(t.millis().div_euclid(*every) * every)),
            Slots::Cron(cron, tz) => {
                let at = tz.timestamp_millis_opt(t.millis()).single()?;
                let prev = cron.find_previous_occurrence(&at, true).ok()?;
                Some(Timestamp(prev.timestamp_millis()))
            }
        }
    }

    /// The first `n` slots strictly after `t`.
    pub fn upcoming(&self, t: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }

    /// The first slot at or after `t`.
    pub fn first_at_or_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.next_after(Timestamp(t.millis().saturating_sub(1)))
    }
}

/// What to do with the slots due at `now`, the earliest unfired one being `next_due`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiringPlan {
    /// The slots to fire, oldest first (at most `catch_up`, the most recent due ones).
    pub fire: Vec<Timestamp>,
    /// Due slots skipped because more than `catch_up` were due.
    pub missed: u64,
    /// The slot after the last due one; `None` when the trigger has no more.
    pub next: Option<Timestamp>,
}

/// The firing plan at `now` for a schedule whose earliest unfired slot is `next_due`: every
/// slot from `next_due` to `now` is due; the most recent `catch_up` (at least 1) fire, the
/// older ones are missed. Nothing is due before `next_due`.
pub fn plan(slots: &Slots, next_due: Timestamp, now: Timestamp, catch_up: u32) -> FiringPlan {
    let keep = catch_up.max(1) as usize;
    if next_due > now {
        return FiringPlan {
            fire: Vec::new(),
            missed: 0,
            next: Some(next_due),
        };
    }
    let next = slots.next_after(now);
    if let Slots::Every(every) = slots {
        // Arithmetic: slots next_due, next_due + every, ..., last <= now.
        let last = slots.last_at_or_before(now).unwrap_or(next_due);
        let due = ((last.millis() - next_due.millis()).div_euclid(*every) + 1).max(1) as u64;
        let fired = due.min(keep as u64);
        let fire = (0..fired)
            .rev()
            .map(|k| Timestamp(last.millis() - k as i64 * every))
            .collect();
        return FiringPlan {
            fire,
            missed: due - fired,
            next,
        };
    }
    let mut recent: VecDeque<Timestamp> = VecDeque::with_capacity(keep);
    let mut due: u64 = 0;
    let mut slot = Some(next_due);
    while let Some(s) = slot.filter(|s| *s <= now) {
        due += 1;
        if recent.len() == keep {
            recent.pop_front();
        }
        recent.push_back(s);
        if due >= MAX_WALK {
            // Too many to walk: fire the most recent ones before now, count the rest as
            // at least what was walked.
            let mut back = Vec::with_capacity(keep);
            let mut at = now;
            while back.len() < keep {
                match slots.last_at_or_before(at) {
                    Some(p) if p > s => {
                        back.push(p);
                        at = Timestamp(p.millis() - 1);
                    }
                    _ => break,
                }
            }
            back.reverse();
            let fired = back.len() as u64;
            return FiringPlan {
                fire: back,
                missed: due.saturating_sub(fired.min(due)),
                next,
            };
        }
        slot = slots.next_after(s);
    }
    let fired = recent.len() as u64;
    FiringPlan {
        fire: recent.into(),
        missed: due - fired,
        next,
    }
}

/// What a slot does, given the status of the schedule's previous instance (`None` when there
/// is none, or it is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapDecision {
    /// Start the slot's instance.
    Start,
    /// Start nothing: the previous instance is unfinished and the policy is `skip`.
    Skip,
    /// Cancel the previous instance, then start.
    CancelThenStart,
}

/// Whether an instance of a schedule is still unfinished (it blocks a `skip` slot).
pub fn unfinished(status: InstanceStatus) -> bool {
    matches!(
        status,
        InstanceStatus::Pending | InstanceStatus::Running | InstanceStatus::Waiting
    )
}

/// The overlap rule (see the module doc).
pub fn decide_overlap(policy: Overlap, previous: Option<InstanceStatus>) -> OverlapDecision {
    match (policy, previous.is_some_and(unfinished)) {
        (_, false) | (Overlap::Allow, true) => OverlapDecision::Start,
        (Overlap::Skip, true) => OverlapDecision::Skip,
        (Overlap::CancelPrevious, true) => OverlapDecision::CancelThenStart,
    }
}

/// The id of the instance a slot starts: `NAME@SLOT`, the slot in RFC 3339 UTC (with
/// milliseconds only when not whole seconds). The same for every driver and every retry.
pub fn slot_instance_id(name: &str, slot: Timestamp) -> String {
    let text = match slot.to_chrono() {
        Some(t) if t.timestamp_subsec_millis() == 0 => {
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => slot.millis().to_string(),
    };
    format!("{name}@{text}")
}

/// What became of one firing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum FiringOutcome {
    /// The slot's instance was started.
    Started,
    /// The slot's instance existed already (a slot fired again after a crash).
    AlreadyStarted,
    /// Nothing started: the previous instance was unfinished (`overlap: skip`).
    SkippedOverlap,
    /// The previous instance was canceled, then the slot's started (`cancel_previous`).
    StartedAfterCancel,
    /// Older due slots skipped because more than `catch_up` were due.
    Missed {
        /// How many.
        count: u64,
    },
    /// The start was refused (the workflow is gone, its id taken by another start, ...).
    Failed {
        /// Why.
        error: String,
    },
}

/// One firing of a schedule, as `show` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firing {
    /// The slot it fired (for a missed record, the most recent missed slot); `None` for a
    /// manual trigger.
    pub slot: Option<Timestamp>,
    /// When it fired (the driver's clock).
    pub fired_at: Timestamp,
    /// The instance it started or found (`None` when it started none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// What became of it.
    #[serde(flatten)]
    pub outcome: FiringOutcome,
}

/// A schedule as callers see it (`weir schedule list --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleView {
    /// What its creator wrote.
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    /// Paused: no slot fires (missed slots are not fired on resume either).
    pub paused: bool,
    /// The next slot to fire (`None` while paused, or when the trigger has no more).
    pub next_fire: Option<Timestamp>,
    /// Slots that started an instance (or found one started).
    pub fired: u64,
    /// Slots skipped as missed (more than `catch_up` due at once).
    pub missed: u64,
    /// Slots skipped by the overlap rule.
    pub skipped: u64,
    /// The instance the last firing started.
    pub last_instance: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A schedule with its next fire times and recent firings (`weir schedule show`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleDetail {
    /// The schedule.
    #[serde(flatten)]
    pub schedule: ScheduleView,
    /// The next [`UPCOMING`] fire times (none while paused).
    pub upcoming: Vec<Timestamp>,
    /// The last [`RECENT_FIRINGS`] firings, newest first.
    pub recent: Vec<Firing>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("a time")
    }

    fn cron(expr: &str, tz: Option<&str>) -> Slots {
        Slots::of(&Trigger::Cron {
            expr: expr.into(),
            timezone: tz.map(str::to_string),
        })
        .expect("a valid cron")
    }

    #[test]
    fn cron_with_a_seconds_field_fires_on_those_seconds() {
        let s = cron("*/15 * * * * *", None);
        assert_eq!(
            s.upcoming(ts("2026-12-07T03:00:01Z"), 3),
            vec![
                ts("2026-12-07T03:00:15Z"),
                ts("2026-12-07T03:00:30Z"),
                ts("2026-12-07T03:00:45Z")
            ]
        );
        // Five fields: minutes.
        let s = cron("30 2 * * *", None);
        assert_eq!(
            s.next_after(ts("2026-12-07T03:00:00Z")),
            Some(ts("2026-12-08T02:30:00Z"))
        );
    }

    #[test]
    fn every_slots_are_multiples_of_the_interval_since_the_epoch() {
        let s = Slots::of(&Trigger::Every { every_ms: 10_000 }).expect("valid");
        assert_eq!(
            s.next_after(ts("2026-12-07T03:00:03.500Z")),
            Some(ts("2026-12-07T03:00:10Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-12-07T03:00:10Z")),
            Some(ts("2026-12-07T03:00:20Z"))
        );
        assert_eq!(
            s.first_at_or_after(ts("2026-12-07T03:00:10Z")),
            Some(ts("2026-12-07T03:00:10Z"))
        );
    }

    #[test]
    fn dst_spring_forward_fires_a_fixed_time_in_the_gap_right_after_it() {
        // Europe/Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let s = cron("0 30 2 * * *", Some("Europe/Paris"));
        let after = ts("2026-03-28T12:00:00Z");
        let slots = s.upcoming(after, 3);
        // 28th 02:30 CET passed; 29th has no 02:30: the first valid time after the gap,
        // 03:00 CEST = 01:00 UTC; then 30th 02:30 CEST = 00:30 UTC.
        assert_eq!(
            slots,
            vec![
                ts("2026-03-29T01:00:00Z"),
                ts("2026-03-30T00:30:00Z"),
                ts("2026-03-31T00:30:00Z")
            ]
        );
    }

    #[test]
    fn dst_fall_back_fires_a_fixed_time_once_and_an_hourly_wildcard_each_pass() {
        // Europe/Paris, 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC).
        let fixed = cron("0 30 2 * * *", Some("Europe/Paris"));
        let slots = fixed.upcoming(ts("2026-10-24T12:00:00Z"), 2);
        // 02:30 CEST = 00:30 UTC (the first pass) only, then the 26th at 02:30 CET.
        assert_eq!(
            slots,
            vec![ts("2026-10-25T00:30:00Z"), ts("2026-10-26T01:30:00Z")]
        );
        let wildcard = cron("0 30 * * * *", Some("Europe/Paris"));
        let slots = wildcard.upcoming(ts("2026-10-24T23:45:00Z"), 3);
        // From 01:45 CEST: 02:30 CEST (00:30 UTC), 02:30 CET (01:30 UTC), 03:30 CET: the
        // repeated hour fires twice, an hour apart in real time.
        assert_eq!(
            slots,
            vec![
                ts("2026-10-25T00:30:00Z"),
                ts("2026-10-25T01:30:00Z"),
                ts("2026-10-25T02:30:00Z")
            ]
        );
    }

    #[test]
    fn the_most_recent_catch_up_slots_fire_and_older_ones_are_counted() {
        let s = Slots::of(&Trigger::Every { every_ms: 1000 }).expect("valid");
        let next_due = ts("2026-12-07T03:00:00Z");
        let now = ts("2026-12-07T03:00:05.300Z");
        // Six slots due (00..05): catch-up 1 fires 05, misses 5.
        let p = plan(&s, next_due, now, 1);
        assert_eq!(p.fire, vec![ts("2026-12-07T03:00:05Z")]);
        assert_eq!(p.missed, 5);
        assert_eq!(p.next, Some(ts("2026-12-07T03:00:06Z")));
        // Catch-up 3: 03, 04, 05 fire, oldest first.
        let p = plan(&s, next_due, now, 3);
        assert_eq!(
            p.fire,
            vec![
                ts("2026-12-07T03:00:03Z"),
                ts("2026-12-07T03:00:04Z"),
                ts("2026-12-07T03:00:05Z")
            ]
        );
        assert_eq!(p.missed, 3);
        // On time: one slot due, nothing missed.
        let p = plan(&s, next_due, ts("2026-12-07T03:00:00.020Z"), 1);
        assert_eq!((p.fire.len(), p.missed), (1, 0));
        // Not due yet.
        let p = plan(&s, next_due, ts("2026-12-07T02:59:59.999Z"), 1);
        assert!(p.fire.is_empty());
        assert_eq!(p.next, Some(next_due));
    }

    #[test]
    fn cron_catch_up_walks_the_calendar_the_same_way() {
        let s = cron("0 * * * *", None);
        let p = plan(
            &s,
            ts("2026-12-07T00:00:00Z"),
            ts("2026-12-07T05:10:00Z"),
            2,
        );
        assert_eq!(
            p.fire,
            vec![ts("2026-12-07T04:00:00Z"), ts("2026-12-07T05:00:00Z")]
        );
        assert_eq!(p.missed, 4);
        assert_eq!(p.next, Some(ts("2026-12-07T06:00:00Z")));
        // A long outage of a per-second cron: walked up to the limit, still bounded.
        let s = cron("* * * * * *", None);
        let p = plan(
            &s,
            ts("2026-12-01T00:00:00Z"),
            ts("2026-12-07T00:00:00Z"),
            1,
        );
        assert_eq!(p.fire, vec![ts("2026-12-07T00:00:00Z")]);
        assert!(p.missed >= MAX_WALK - 1);
    }

    #[test]
    fn overlap_rules() {
        use InstanceStatus::*;
        assert_eq!(decide_overlap(Overlap::Skip, None), OverlapDecision::Start);
        assert_eq!(
            decide_overlap(Overlap::Skip, Some(Completed)),
            OverlapDecision::Start
        );
        for unfinished in [Pending, Running, Waiting] {
            assert_eq!(
                decide_overlap(Overlap::Skip, Some(unfinished)),
                OverlapDecision::Skip
            );
            assert_eq!(
                decide_overlap(Overlap::Allow, Some(unfinished)),
                OverlapDecision::Start
            );
            assert_eq!(
                decide_overlap(Overlap::CancelPrevious, Some(unfinished)),
                OverlapDecision::CancelThenStart
            );
        }
        assert_eq!(
            decide_overlap(Overlap::CancelPrevious, Some(Failed)),
            OverlapDecision::Start
        );
    }

    #[test]
    fn slot_ids_are_stable_and_valid_instance_ids() {
        let id = slot_instance_id("nightly", ts("2026-12-07T03:00:00Z"));
        assert_eq!(id, "nightly@2026-12-07T03:00:00Z");
        assert_eq!(
            slot_instance_id("n", ts("2026-12-07T03:00:00.250Z")),
            "n@2026-12-07T03:00:00.250Z"
        );
        assert!(crate::api::check_instance_id(&id).is_ok());
    }

    #[test]
    fn bad_specs_are_refused_with_what_to_fix() {
        let bad = |t: Trigger| Slots::of(&t).err().map(|e| e.to_string());
        assert!(bad(Trigger::Cron {
            expr: "61 * * * *".into(),
            timezone: None
        })
        .is_some_and(|m| m.contains("cron expression")));
        assert!(bad(Trigger::Cron {
            expr: "* * * * *".into(),
            timezone: Some("Mars/Olympus".into())
        })
        .is_some_and(|m| m.contains("IANA")));
        assert!(bad(Trigger::Every { every_ms: 10 }).is_some());
        assert!(check_name("a b").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("nightly-report.v2").is_ok());
        assert!("sometimes".parse::<Overlap>().is_err());
    }
}

//! The members of a partition's timers sorted set (`{NS:pN}:timers`), typed.
//!
//! A member names one timer: `INSTANCE_ID|STEP|KIND`, scored by its due time (ms, Redis
//! clock: ARCHITECTURE.md invariant 6). There is one timer per (instance, step, kind), so
//! scheduling again replaces the due time. Instance ids may contain `|`; step names and
//! kinds cannot, so a member is parsed from the right.

use crate::core::TimerKind;

/// One timer as its sorted-set member names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerMember<'a> {
    /// The instance the timer belongs to.
    pub instance_id: &'a str,
    /// The step it concerns.
    pub step: &'a str,
    /// What it is for.
    pub kind: TimerKind,
}

impl<'a> TimerMember<'a> {
    /// The member text, `INSTANCE_ID|STEP|KIND`.
    pub fn encode(&self) -> String {
        format!("{}|{}|{}", self.instance_id, self.step, self.kind.as_str())
    }

    /// The inverse of [`TimerMember::encode`]; `None` for text no coordinator wrote.
    pub fn parse(member: &'a str) -> Option<TimerMember<'a>> {
        let mut parts = member.rsplitn(3, '|');
        let kind = TimerKind::parse(parts.next()?)?;
        let step = parts.next()?;
        let instance_id = parts.next()?;
        Some(TimerMember {
            instance_id,
            step,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_even_with_bars_in_the_id() {
        for id in ["order-1", "a|b|c", "|", ""] {
            let m = TimerMember {
                instance_id: id,
                step: "charge",
                kind: TimerKind::TaskDue,
            };
            let text = m.encode();
            assert_eq!(TimerMember::parse(&text), Some(m), "{text}");
        }
        assert_eq!(TimerMember::parse("id|step|nonsense"), None);
        assert_eq!(TimerMember::parse("timeout"), None);
    }
}

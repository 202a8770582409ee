//! Time as the engine sees it: milliseconds since the Unix epoch, always passed in.
//!
//! The core never reads a clock (ARCHITECTURE.md invariant 1). The LocalEngine passes the tokio clock;
//! the coordinator passes the Redis server clock (`TIME`), so due times are never compared
//! across client clocks (invariant 6).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, in milliseconds since the Unix epoch (UTC).
///
/// Serialized as an RFC 3339 string in human-readable formats (JSON, YAML) and as an integer
/// in binary ones (MessagePack), where size matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This time plus a duration (saturating, so a huge duration cannot overflow).
    pub fn after(self, d: Duration) -> Timestamp {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// Whole milliseconds from `earlier` to `self` (zero if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// As a chrono UTC time; `None` for values outside chrono's range.
    pub fn to_chrono(self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp_millis(self.0)
    }

    /// Parses an RFC 3339 time such as `2026-11-26T12:00:00Z`.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, chrono::ParseError> {
        chrono::DateTime::parse_from_rfc3339(text).map(|t| Timestamp(t.timestamp_millis()))
    }

    /// Parses an RFC 3339 time that a user typed (a flag, a request field): the error says
    /// what was wrong and what to write instead, ready to be prefixed with the field's name.
    pub fn parse_input(text: &str) -> Result<Timestamp, String> {
        Timestamp::parse_rfc3339(text).map_err(|e| {
            format!("{text:?} is not an RFC 3339 time ({e}): write it like 2026-12-24T08:00:00Z")
        })
    }

    /// The wall clock now. Only drivers call this, never the core.
    pub fn now_system() -> Timestamp {
        Timestamp(chrono::Utc::now().timestamp_millis())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_chrono() {
            Some(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
            None => write!(f, "{}ms", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Millis(i64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Millis(ms) => Ok(Timestamp(ms)),
            Repr::Text(t) => Timestamp::parse_rfc3339(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_rfc3339_and_msgpack_is_an_integer() {
        let t = Timestamp(1_764_158_400_123);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2025-11-26T12:00:00.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        let bin = rmp_serde::to_vec(&t).unwrap();
        assert!(bin.len() <= 9);
        assert_eq!(rmp_serde::from_slice::<Timestamp>(&bin).unwrap(), t);
    }

    #[test]
    fn after_saturates() {
        assert_eq!(
            Timestamp(i64::MAX - 1).after(Duration::from_secs(10)).0,
            i64::MAX
        );
        assert_eq!(Timestamp(5).since(Timestamp(10)), Duration::ZERO);
    }
}

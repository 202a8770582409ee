//! The CEL environment conditions run in: cel's standard library plus the functions this
//! module adds (`get` on maps for Python-engine conditions, `timestamp(string)` when cel
//! lacks its own, and the budget's metering function).

use std::cmp::Ordering;
use std::sync::{Arc, OnceLock};

use super::budget::{cost_of, COST_FN};
use cel::common::traits::Comparer;
use cel::common::types::{CelNull, CelString, Type, DYN_TYPE, MAP_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{Env, ExecutionError};
use chrono::{DateTime, Utc};

/// The shared environment: cel's standard library plus this module's functions.
pub(super) struct Environment {
    /// cel's environment, with this module's functions.
    pub(super) env: Arc<Env>,
    /// Whether `matches` exists (cel's `regex` feature).
    pub(super) has_matches: bool,
}

pub(super) fn env() -> &'static Environment {
    static ENV: OnceLock<Environment> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // A registration can only fail as a duplicate, when cel already provides the function
        // (`timestamp` with its `chrono` feature): then cel's own is used, so errors are ignored.
        let _ = env.add_member_overload("get", "weir_map_get", MAP_TYPE, vec![DYN_TYPE], map_get);
        let _ = env.add_member_overload(
            "get",
            "weir_map_get_default",
            MAP_TYPE,
            vec![DYN_TYPE, DYN_TYPE],
            map_get,
        );
        let _ = env.add_overload(COST_FN, "weir_cost", vec![DYN_TYPE, DYN_TYPE], cost_of);
        let _ = env.add_overload(
            "timestamp",
            "weir_timestamp_string",
            vec![STRING_TYPE],
            timestamp_from_string,
        );
        let probe = [
            CowVal::owned(CelString::from("a")),
            CowVal::owned(CelString::from("a")),
        ];
        let has_matches = env.find_overload("matches", &probe).is_some();
        Environment {
            env: Arc::new(env),
            has_matches,
        }
    })
}

/// `m.get(key)` and `m.get(key, default)`: the value at `key`, else `null` or `default`.
pub(super) fn map_get<'b, 'v>(
    mut args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let default = if args.len() == 3 { args.pop() } else { None };
    let not_a_map = || ExecutionError::function_error("get", "the receiver is not a map");
    let (Some(key), Some(target)) = (args.pop(), args.pop()) else {
        return Err(ExecutionError::function_error(
            "get",
            "expects a key, and optionally a default",
        ));
    };
    let found = match target {
        CowVal::Borrowed(map) => match map.as_indexer() {
            Some(indexer) => indexer.get(key.as_ref()),
            None => return Err(not_a_map()),
        },
        CowVal::Owned(map) => {
            let Some(indexer) = map.as_indexer() else {
                return Err(not_a_map());
            };
            indexer
                .get(key.as_ref())
                .map(|value| CowVal::Owned(value.as_ref().clone_as_boxed()))
        }
    };
    match found {
        Ok(value) => Ok(value),
        Err(ExecutionError::NoSuchKey(_)) => Ok(default.unwrap_or_else(|| CowVal::owned(CelNull))),
        Err(other) => Err(other),
    }
}

/// `timestamp(string)`: an RFC 3339 string as a point in time.
pub(super) fn timestamp_from_string<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let Some(text) = args.first().and_then(|a| a.downcast_ref::<CelString>()) else {
        return Err(ExecutionError::function_error(
            "timestamp",
            "expects one string argument",
        ));
    };
    let parsed = DateTime::parse_from_rfc3339(text.inner()).map_err(|e| {
        ExecutionError::function_error(
            "timestamp",
            format!("'{}' is not an RFC 3339 timestamp: {e}", text.inner()),
        )
    })?;
    Ok(CowVal::owned(Instant(parsed.with_timezone(&Utc))))
}

pub(super) fn parse_rfc3339(text: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("'{text}' is not an RFC 3339 timestamp: {e}"))
}

/// A point in time, the value of `timestamp('...')` when cel lacks its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Instant(pub(super) DateTime<Utc>);

pub(super) static INSTANT_TYPE: Type = Type::new_unspecified_type("google.protobuf.Timestamp");

impl Val for Instant {
    fn get_type(&self) -> &Type {
        &INSTANT_TYPE
    }

    fn cel_type() -> &'static Type {
        &INSTANT_TYPE
    }

    fn as_comparer(&self) -> Option<&dyn Comparer> {
        Some(self)
    }

    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<Instant>() == Some(self)
    }

    fn clone_as_boxed<'w>(&self) -> Box<dyn Val + 'w> {
        Box::new(*self)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl StaticVal for Instant {}

impl Comparer for Instant {
    fn compare(&self, rhs: &dyn Val) -> Result<Ordering, ExecutionError> {
        match rhs.downcast_ref::<Instant>() {
            Some(other) => Ok(self.0.cmp(&other.0)),
            None => Err(ExecutionError::no_such_overload(
                "_<_",
                vec![
                    INSTANT_TYPE.name().to_owned(),
                    rhs.get_type().name().to_owned(),
                ],
            )),
        }
    }
}

//! Checks that the Redis a coordinator is given cannot lose Weir's state silently.
//!
//! Redis is Weir's only state. Two settings make it drop data without an error:
//!
//! - `maxmemory-policy` other than `noeviction`: when `maxmemory` is reached Redis evicts
//!   keys (instances, stream entries, leases) instead of refusing writes;
//! - no persistence (`appendonly no` and an empty `save`): a restart loses everything;
//! - snapshots only (`appendonly no` with a `save` schedule): a crash or restart loses every
//!   write since the last RDB snapshot (minutes of started instances, results and task
//!   completions that were acknowledged as stored).
//!
//! Recommended (see `deploy/redis.conf`): `appendonly yes`, `appendfsync everysec` (at most
//! about a second of writes lost on a crash of the machine), `maxmemory-policy
//! noeviction` (writes fail loudly when memory is full), a `maxmemory` with headroom, and
//! a password (`requirepass` or ACL users). Managed services that disable `CONFIG` get a
//! warning that the settings could not be checked: check them in the provider's console.

use std::fmt;

use super::Connections;

/// One way the Redis in use can lose data, or a check that could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SafetyWarning {
    /// `maxmemory-policy` evicts keys.
    Eviction {
        /// The policy in force.
        policy: String,
    },
    /// Neither AOF nor RDB snapshots are on.
    NoPersistence,
    /// Only RDB snapshots are on (no AOF).
    SnapshotsOnly {
        /// The `save` schedule in force.
        save: String,
    },
    /// `CONFIG GET` is refused (renamed or disabled, as on many managed services).
    CannotCheck {
        /// Redis's answer.
        error: String,
    },
}

impl fmt::Display for SafetyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SafetyWarning::Eviction { policy } => write!(
                f,
                "Redis maxmemory-policy is {policy:?}: when memory is full Redis deletes keys, \
                 and Weir loses instances and messages silently; set maxmemory-policy noeviction"
            ),
            SafetyWarning::NoPersistence => write!(
                f,
                "Redis has no persistence (appendonly no, save \"\"): a restart loses every \
                 instance; set appendonly yes (and appendfsync everysec)"
            ),
            SafetyWarning::SnapshotsOnly { save } => write!(
                f,
                "Redis persists only by RDB snapshots (appendonly no, save {save:?}): a crash \
                 or restart loses every write since the last snapshot, including instances \
                 and results Weir acknowledged; set appendonly yes (and appendfsync everysec)"
            ),
            SafetyWarning::CannotCheck { error } => write!(
                f,
                "could not read the Redis configuration ({error}); make sure maxmemory-policy \
                 is noeviction and persistence (AOF) is on"
            ),
        }
    }
}

/// Reads `maxmemory-policy`, `appendonly` and `save` and returns what is unsafe (empty when
/// all is well). Never fails: a refused `CONFIG GET` becomes [`SafetyWarning::CannotCheck`].
pub async fn check(c: &Connections) -> Vec<SafetyWarning> {
    let mut conn = c.conn.clone();
    let mut get = async |name: &str| -> Result<String, String> {
        let pairs: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(pairs.get(1).cloned().unwrap_or_default())
    };
    let read = async {
        let policy = get("maxmemory-policy").await?;
        let appendonly = get("appendonly").await?;
        let save = get("save").await?;
        Ok::<_, String>((policy, appendonly, save))
    };
    match read.await {
        Ok((policy, appendonly, save)) => evaluate(&policy, &appendonly, &save),
        Err(error) => vec![SafetyWarning::CannotCheck { error }],
    }
}

/// The warnings for these settings.
pub fn evaluate(policy: &str, appendonly: &str, save: &str) -> Vec<SafetyWarning> {
    let mut out = Vec::new();
    if !policy.is_empty() && !policy.eq_ignore_ascii_case("noeviction") {
        out.push(SafetyWarning::Eviction {
            policy: policy.to_string(),
        });
    }
    if !appendonly.eq_ignore_ascii_case("yes") {
        if save.trim().is_empty() {
            out.push(SafetyWarning::NoPersistence);
        } else {
            out.push(SafetyWarning::SnapshotsOnly {
                save: save.trim().to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{evaluate, SafetyWarning};

    #[test]
    fn unsafe_settings_are_named() {
        assert!(evaluate("noeviction", "yes", "").is_empty());
        assert_eq!(
            evaluate("noeviction", "no", "3600 1"),
            vec![SafetyWarning::SnapshotsOnly {
                save: "3600 1".into()
            }]
        );
        assert_eq!(
            evaluate("allkeys-lru", "no", ""),
            vec![
                SafetyWarning::Eviction {
                    policy: "allkeys-lru".into()
                },
                SafetyWarning::NoPersistence
            ]
        );
    }
}

//! `fail`: fails on purpose, to try retry policies and failure edges.
//!
//! ```yaml
//! flaky:
//!   type: machine
//!   handler: fail
//!   config: { times: 2 }            # attempts 1 and 2 fail, attempt 3 succeeds
//!   retry: { max_attempts: 3, initial_interval: 100ms }
//! ```
//!
//! Settings: `times` (how many first attempts fail; -1, the default, fails every attempt),
//! `kind` (the error kind, default `fail`, matched against a retry policy's
//! `non_retryable`), `message`, and `retryable` (default true).
//!
//! Attempts are counted by the engine's attempt number, which starts at 1 and never goes
//! back for an instance's step (not even when a loop or an instance retry runs it again).

use async_trait::async_trait;
use serde_json::Value;
use weir::{Step, StepContext, StepError};

use super::{config_error, config_object, json_type, opt_string};

/// The `fail` handler.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fail;

/// The error kind `fail` uses unless its config names another.
pub(super) const FAIL_KIND: &str = "fail";

struct FailConfig {
    /// `None`: every attempt fails.
    times: Option<u32>,
    kind: String,
    message: Option<String>,
    retryable: bool,
}

impl FailConfig {
    fn read(ctx: &StepContext) -> Result<FailConfig, StepError> {
        let config = config_object(ctx, "fail")?;
        let times_fix =
            "write `times: N` to fail the first N attempts, or `times: -1` to always fail";
        let times = match config.get("times") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(-1) => None,
                Some(n) if n >= 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
                _ => {
                    return Err(config_error(
                        ctx,
                        "fail",
                        format!("`times` is {n}: {times_fix}"),
                    ))
                }
            },
            Some(other) => {
                return Err(config_error(
                    ctx,
                    "fail",
                    format!(
                        "`times` must be an integer, got {}: {times_fix}",
                        json_type(other)
                    ),
                ))
            }
        };
        let kind = opt_string(ctx, "fail", &config, "kind")?.unwrap_or_else(|| FAIL_KIND.into());
        if kind.trim().is_empty() {
            return Err(config_error(ctx, "fail", "`kind` must not be empty"));
        }
        let message = opt_string(ctx, "fail", &config, "message")?;
        let retryable = match config.get("retryable") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(config_error(
                    ctx,
                    "fail",
                    format!(
                        "`retryable` must be true or false, got {}",
                        json_type(other)
                    ),
                ))
            }
        };
        Ok(FailConfig {
            times,
            kind,
            message,
            retryable,
        })
    }
}

#[async_trait]
impl Step for Fail {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let config = FailConfig::read(ctx)?;
        let attempt = ctx.attempt();
        let fails = config.times.is_none_or(|n| attempt <= n);
        if !fails {
            return Ok(());
        }
        let message = config.message.unwrap_or_else(|| match config.times {
            Some(n) => format!("failing on purpose: attempt {attempt} of the first {n} that fail"),
            None => format!("failing on purpose: attempt {attempt}, every attempt fails"),
        });
        Err(StepError {
            kind: config.kind,
            message,
            retryable: config.retryable,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::handlers::testing::ctx;
    use crate::handlers::CONFIG_ERROR;

    async fn run(config: Value, attempt: u32) -> Result<(), StepError> {
        Fail.execute(&mut ctx("f", attempt, config, json!({})))
            .await
    }

    #[tokio::test]
    async fn fails_the_first_n_attempts_then_succeeds() {
        let cfg = json!({ "times": 2 });
        for attempt in [1, 2] {
            let e = run(cfg.clone(), attempt).await.unwrap_err();
            assert_eq!(e.kind, FAIL_KIND);
            assert!(e.retryable);
            assert!(
                e.message.contains(&format!("attempt {attempt}")),
                "{}",
                e.message
            );
        }
        run(cfg.clone(), 3).await.unwrap();
        run(cfg, 4).await.unwrap();
        run(json!({ "times": 0 }), 1).await.unwrap();
    }

    #[tokio::test]
    async fn minus_one_or_no_config_always_fails() {
        for cfg in [json!({ "times": -1 }), json!(null), json!({})] {
            for attempt in [1, 50] {
                assert!(run(cfg.clone(), attempt).await.is_err(), "{cfg} {attempt}");
            }
        }
    }

    #[tokio::test]
    async fn kind_message_and_retryable_are_configurable() {
        let e = run(
            json!({ "kind": "validation", "message": "bad input", "retryable": false }),
            1,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind, "validation");
        assert_eq!(e.message, "bad input");
        assert!(!e.retryable);
    }

    #[tokio::test]
    async fn bad_settings_are_config_errors() {
        for cfg in [
            json!({ "times": -2 }),
            json!({ "times": 1.5 }),
            json!({ "times": "2" }),
            json!({ "retryable": "no" }),
            json!({ "kind": 3 }),
            json!({ "kind": " " }),
            json!(7),
        ] {
            let e = run(cfg.clone(), 1).await.unwrap_err();
            assert_eq!(e.kind, CONFIG_ERROR, "{cfg}: {}", e.message);
            assert!(!e.retryable);
        }
        let e = run(json!({ "times": "2" }), 1).await.unwrap_err();
        assert!(e.message.contains("times: N"), "{}", e.message);
    }
}

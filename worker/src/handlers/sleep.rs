//! `sleep`: waits for a while, on the tokio clock.
//!
//! ```yaml
//! wait: { type: machine, handler: sleep, config: { duration: 2s }, timeout: 10s }
//! ```
//!
//! The wait is a tokio sleep, so the step's `timeout` (enforced by the worker and the
//! LocalEngine by dropping the attempt) cancels it. For waits longer than a few seconds use
//! a `timer` step instead: it is durable and holds no worker.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use weir::model::definition::duration;
use weir::{Step, StepContext, StepError};

use super::{config_error, config_object, json_type};

/// The `sleep` handler: `config: { duration: 2s }` (any of `250ms`, `2s`, `5m`, `1h 30m`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Sleep;

impl Sleep {
    /// The duration the step's config asks for.
    fn duration(ctx: &StepContext) -> Result<Duration, StepError> {
        let config = config_object(ctx, "sleep")?;
        let fix = "write it like `duration: 2s` (or 250ms, 5m)";
        match config.get("duration") {
            Some(Value::String(text)) => {
                duration::parse(text).map_err(|e| config_error(ctx, "sleep", e))
            }
            None | Some(Value::Null) => Err(config_error(
                ctx,
                "sleep",
                format!("`duration` is missing: {fix}"),
            )),
            Some(other) => Err(config_error(
                ctx,
                "sleep",
                format!(
                    "`duration` must be a string with a unit, got {}: {fix}",
                    json_type(other)
                ),
            )),
        }
    }
}

#[async_trait]
impl Step for Sleep {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let d = Self::duration(ctx)?;
        tokio::time::sleep(d).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use weir::step::execute_attempt;
    use weir::Handlers;

    use super::*;
    use crate::handlers::testing::ctx;
    use crate::handlers::CONFIG_ERROR;

    #[tokio::test(start_paused = true)]
    async fn sleeps_for_the_duration() {
        let mut c = ctx("w", 1, json!({ "duration": "2s" }), json!({}));
        let start = tokio::time::Instant::now();
        Sleep.execute(&mut c).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert!(c.output().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_step_timeout_cancels_it() {
        let mut h = Handlers::new();
        h.register("sleep", Sleep);
        let c = ctx("w", 1, json!({ "duration": "1h" }), json!({}));
        let start = tokio::time::Instant::now();
        let e = execute_attempt(&h, "sleep", c, Some(Duration::from_millis(500)))
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(e.retryable);
        assert_eq!(start.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test]
    async fn bad_durations_are_config_errors_that_say_what_to_write() {
        for config in [
            json!(null),
            json!({}),
            json!({ "duration": 2 }),
            json!({ "duration": "soon" }),
            json!({ "duration": "10" }),
            json!(["2s"]),
        ] {
            let mut c = ctx("w", 1, config.clone(), json!({}));
            let e = Sleep.execute(&mut c).await.unwrap_err();
            assert_eq!(e.kind, CONFIG_ERROR, "{config}");
            assert!(!e.retryable);
            assert!(e.message.contains("step \"w\""), "{}", e.message);
        }
        let mut c = ctx("w", 1, json!({ "duration": 2 }), json!({}));
        let e = Sleep.execute(&mut c).await.unwrap_err();
        assert!(e.message.contains("duration: 2s"), "{}", e.message);
    }
}

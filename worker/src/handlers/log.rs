//! `log`: writes a line to the log, through `tracing`.
//!
//! ```yaml
//! announce:
//!   type: machine
//!   handler: log
//!   config: { message: "expense {amount} from {employee}", level: info }
//! ```
//!
//! The message may name context values as `{key}` or `{key.field}` (see
//! [`super::render`]); the event also carries the instance id, the step and the context's
//! keys (not their values, which may be large or private). `level` is one of `trace`,
//! `debug`, `info` (the default), `warn` or `error`. The events' target is
//! [`LOG_TARGET`], so a subscriber can show them while hiding the engine's own logs.

use async_trait::async_trait;
use weir::{Step, StepContext, StepError};

use super::{config_error, config_object, opt_string, render};

/// The `tracing` target of the `log` handler's events.
pub(super) const LOG_TARGET: &str = "weir::log";

/// The `log` handler.
#[derive(Debug, Default, Clone, Copy)]
pub struct Log;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Log {
    /// The rendered message and the level of this step.
    fn read(ctx: &StepContext) -> Result<(String, Level), StepError> {
        let config = config_object(ctx, "log")?;
        let level = match opt_string(ctx, "log", &config, "level")?
            .map(|l| l.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("info") => Level::Info,
            Some("trace") => Level::Trace,
            Some("debug") => Level::Debug,
            Some("warn") | Some("warning") => Level::Warn,
            Some("error") => Level::Error,
            Some(other) => {
                return Err(config_error(
                    ctx,
                    "log",
                    format!("unknown `level` {other:?}: use trace, debug, info, warn or error"),
                ))
            }
        };
        let template = opt_string(ctx, "log", &config, "message")?
            .unwrap_or_else(|| format!("step {} reached", ctx.step()));
        Ok((render(&template, ctx), level))
    }
}

#[async_trait]
impl Step for Log {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let (message, level) = Self::read(ctx)?;
        let keys: Vec<&str> = ctx.context().keys().map(String::as_str).collect();
        let keys = keys.join(",");
        let (instance_id, step) = (ctx.instance_id(), ctx.step());
        match level {
            Level::Trace => {
                tracing::trace!(target: LOG_TARGET, instance_id, step, context_keys = %keys, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: LOG_TARGET, instance_id, step, context_keys = %keys, "{message}")
            }
            Level::Info => {
                tracing::info!(target: LOG_TARGET, instance_id, step, context_keys = %keys, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: LOG_TARGET, instance_id, step, context_keys = %keys, "{message}")
            }
            Level::Error => {
                tracing::error!(target: LOG_TARGET, instance_id, step, context_keys = %keys, "{message}")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::handlers::testing::ctx;
    use crate::handlers::CONFIG_ERROR;

    #[tokio::test]
    async fn renders_the_message_and_writes_nothing() {
        let mut c = ctx(
            "announce",
            1,
            json!({ "message": "expense {amount} from {employee}", "level": "WARN" }),
            json!({ "amount": 40, "employee": "ann" }),
        );
        let (message, level) = Log::read(&c).unwrap();
        assert_eq!(message, "expense 40 from ann");
        assert_eq!(level, Level::Warn);
        Log.execute(&mut c).await.unwrap();
        assert!(c.output().is_empty());
    }

    #[tokio::test]
    async fn defaults_to_info_and_a_message_naming_the_step() {
        let c = ctx("announce", 1, Value::Null, json!({}));
        assert_eq!(
            Log::read(&c).unwrap(),
            ("step announce reached".to_string(), Level::Info)
        );
    }

    #[tokio::test]
    async fn bad_level_or_message_is_a_config_error() {
        for cfg in [
            json!({ "level": "loud" }),
            json!({ "message": 3 }),
            json!("hello"),
        ] {
            let mut c = ctx("announce", 1, cfg.clone(), json!({}));
            let e = Log.execute(&mut c).await.unwrap_err();
            assert_eq!(e.kind, CONFIG_ERROR, "{cfg}");
            assert!(!e.retryable);
        }
        let c = ctx("announce", 1, json!({ "level": "loud" }), json!({}));
        let e = Log::read(&c).unwrap_err();
        assert!(
            e.message.contains("trace, debug, info, warn or error"),
            "{}",
            e.message
        );
    }
}

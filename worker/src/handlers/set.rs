//! `set`: writes its config into the context, one top-level key at a time.
//!
//! ```yaml
//! approve: { type: machine, handler: set, config: { approved: true, level: 2 } }
//! ```

use async_trait::async_trait;
use serde_json::Value;
use weir::{Step, StepContext, StepError};

use super::{config_error, json_type};

/// The `set` handler: each top-level key of the step's config is written to the context
/// (replacing the value there; nested objects are not merged).
#[derive(Debug, Default, Clone, Copy)]
pub struct Set;

#[async_trait]
impl Step for Set {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let map = match ctx.config() {
            Value::Object(map) => map.clone(),
            Value::Null => {
                return Err(config_error(
                    ctx,
                    "set",
                    "missing: give the keys to write, e.g. `config: { approved: true }`",
                ))
            }
            other => {
                return Err(config_error(
                    ctx,
                    "set",
                    format!(
                        "expected an object of keys to write, e.g. `config: {{ approved: true }}`, got {}",
                        json_type(other)
                    ),
                ))
            }
        };
        for (key, value) in map {
            ctx.set(key, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::handlers::testing::ctx;
    use crate::handlers::CONFIG_ERROR;

    #[tokio::test]
    async fn writes_each_top_level_key() {
        let mut c = ctx(
            "s",
            1,
            json!({ "approved": true, "nested": { "x": 1 } }),
            json!({ "approved": false, "other": 3 }),
        );
        Set.execute(&mut c).await.unwrap();
        assert_eq!(c.output().len(), 2);
        assert_eq!(c.get("approved"), Some(&json!(true)));
        assert_eq!(c.get("nested"), Some(&json!({ "x": 1 })));
        assert_eq!(c.get("other"), Some(&json!(3)));
    }

    #[tokio::test]
    async fn refuses_a_config_that_is_not_an_object() {
        for config in [json!(null), json!([1, 2]), json!("x")] {
            let mut c = ctx("s", 1, config, json!({}));
            let e = Set.execute(&mut c).await.unwrap_err();
            assert_eq!(e.kind, CONFIG_ERROR);
            assert!(!e.retryable);
            assert!(e.message.contains("step \"s\""), "{}", e.message);
            assert!(e.message.contains("approved: true"), "{}", e.message);
        }
    }
}

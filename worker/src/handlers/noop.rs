//! `noop`: does nothing and succeeds. A placeholder, a join point, a benchmark step.

use async_trait::async_trait;
use weir::{Step, StepContext, StepError};

/// The `noop` handler: succeeds without reading or writing anything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Noop;

#[async_trait]
impl Step for Noop {
    async fn execute(&self, _ctx: &mut StepContext) -> Result<(), StepError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::handlers::testing::ctx;

    #[tokio::test]
    async fn succeeds_and_writes_nothing() {
        let mut c = ctx("n", 1, Value::Null, json!({ "a": 1 }));
        Noop.execute(&mut c).await.unwrap();
        assert!(c.output().is_empty());
    }
}

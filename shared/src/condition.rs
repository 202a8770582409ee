//! TEMPORARY STUB (replaced by the real CEL module).
use std::sync::Arc;
/// stub
#[derive(Debug, Clone)]
pub struct Condition { source: Arc<str> }
/// stub
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConditionError(String);
impl Condition {
    /// stub
    pub fn compile(source: &str) -> Result<Condition, ConditionError> { Ok(Condition { source: source.into() }) }
    /// stub
    pub fn source(&self) -> &str { &self.source }
    /// stub
    pub fn evaluate(&self, _c: &serde_json::Map<String, serde_json::Value>) -> Result<bool, ConditionError> { Ok(true) }
    /// stub
    pub fn evaluate_time(&self, _c: &serde_json::Map<String, serde_json::Value>) -> Result<i64, ConditionError> { Ok(0) }
}

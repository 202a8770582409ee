//! TEMPORARY STUB (replaced by the real JSON Schema module).
/// stub
#[derive(Debug, Clone)]
pub struct FormSchema { schema: serde_json::Value }
/// stub
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct FormError(String);
impl FormSchema {
    /// stub
    pub fn compile(schema: &serde_json::Value) -> Result<FormSchema, FormError> { Ok(FormSchema { schema: schema.clone() }) }
    /// stub
    pub fn schema(&self) -> &serde_json::Value { &self.schema }
    /// stub
    pub fn validate(&self, _d: &serde_json::Value) -> Result<(), FormError> { Ok(()) }
}

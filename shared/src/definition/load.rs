//! Reading definitions from YAML or JSON text (JSON is valid YAML, so one parser serves both).

use std::path::Path;

use super::DefinitionError;
use crate::model::Definition;

/// The largest definition file accepted, so a huge upload cannot exhaust memory.
pub(super) const MAX_DEFINITION_BYTES: usize = 1 << 20;

/// Parses a definition from YAML or JSON text. Structure only: call
/// [`super::compile`] to check it.
pub fn parse_definition(text: &str) -> Result<Definition, DefinitionError> {
    if text.len() > MAX_DEFINITION_BYTES {
        return Err(DefinitionError::Parse(format!(
            "definition is {} bytes; the limit is {MAX_DEFINITION_BYTES}",
            text.len()
        )));
    }
    // serde-saphyr has budgets against alias bombs and deep nesting; its errors carry a
    // line/column snippet that says what to fix.
    serde_saphyr::from_str::<Definition>(text).map_err(|e| DefinitionError::Parse(e.to_string()))
}

/// Reads and parses a definition file; the error names the file.
pub fn parse_definition_file(path: &Path) -> Result<Definition, DefinitionError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DefinitionError::Parse(format!("{}: {e}", path.display())))?;
    parse_definition(&text).map_err(|e| match e {
        DefinitionError::Parse(m) => DefinitionError::Parse(format!("{}: {m}", path.display())),
        other => other,
    })
}

//! What is wrong with a definition, each problem naming the place at fault.

use std::fmt;

/// One problem in a definition, with the place at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `step "pay"`, `edge 3 (route -> pay)`, `version`, ...
    pub at: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Why a definition was refused. Nothing was registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// The text is not valid YAML/JSON of the definition format.
    #[error("cannot parse definition: {0}")]
    Parse(String),
    /// The definition parsed but breaks rules; every problem is listed.
    #[error("invalid definition {name}: {}", list(.problems))]
    Invalid {
        /// `name@version` as written.
        name: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

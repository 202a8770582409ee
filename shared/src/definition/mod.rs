//! Definitions: loading files, checking them, and the compiled [`Workflow`] the core runs.
//!
//! A [`crate::model::Definition`] is what an author wrote; [`compile`] checks every rule
//! (unknown steps, initial step, reachability, exits from cycles, conditions, forms,
//! durations, versions) and returns a [`Workflow`]: step indexes, edge lists, compiled
//! conditions and form schemas, and which edges close loops. Nothing runs unchecked.

mod error;
mod graph;
mod load;
mod mermaid;
mod workflow;

pub use error::{DefinitionError, Problem};
pub use load::{parse_definition, parse_definition_file};
pub use mermaid::to_mermaid;
pub use workflow::{
    compile, CompiledEdge, CompiledKind, CompiledStep, EdgeId, ShowField, StepId, TimerSpec,
    Workflow, DEFAULT_QUEUE, MAX_SHOWN,
};

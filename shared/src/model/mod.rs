//! The data Weir works with: definitions, instances, tasks, history and events.
//!
//! Plain serde types with no behaviour beyond small accessors; the core gives them meaning.

pub mod definition;
pub mod event;
pub mod history;
pub mod instance;
pub mod message;
pub mod task;

pub use definition::{
    Definition, EdgeDef, EdgeOn, EventStep, GatewayStep, HumanStep, MachineStep, RetryPolicy,
    StepDef, TimerStep,
};
pub use event::{Event, EventKind};
pub use history::{AttemptRecord, AttemptStatus};
pub use instance::{
    check_context_size, check_merged_size, json_size, Context, ContextTooLarge, EdgeMark, Instance,
    InstanceStatus, StepState, StepStatus, MAX_CONTEXT_BYTES,
};
pub use message::{
    check_message_id, check_message_name, check_signal, Awaiting, KeptMessage, MessageCounts,
    MessageFilter, MessageOutcome, MessageSent, SendMessage, DEFAULT_MESSAGE_TTL,
};
pub use task::{Actor, Assignment, OutcomeChoice, ShownField, Task, TaskOutcome, UnknownOutcome};

//! Messages on Weir's streams, encoded with MessagePack (rmp-serde, as maps with field
//! names, so a worker in another language can read and write them).
//!
//! Each stream entry has one field `m` holding the encoded message.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::StepError;
use crate::model::Context;
use crate::time::Timestamp;

/// The stream entry field that holds an encoded message.
pub const FIELD: &str = "m";

/// The stream entry field of a command's deadline (ms since the epoch, Redis clock; see
/// `lua/send_command.lua`): a coordinator never applies the command after it. Starts
/// carry none (a start is stored and waits for a coordinator as long as it takes).
pub const DEADLINE_FIELD: &str = "d";

/// The largest message accepted on any stream, so one oversized payload cannot exhaust
/// memory; a larger one is refused at the source or dead-lettered.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// A step attempt for a worker (`…:q:QUEUE` streams).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMessage {
    /// Instance id.
    pub instance_id: String,
    /// Step name.
    pub step: String,
    /// Attempt number (part of the idempotency key).
    pub attempt: u32,
    /// The fencing token the result must carry back.
    pub token: u64,
    /// Handler name.
    pub handler: String,
    /// Handler configuration.
    pub config: Value,
    /// The instance context when the attempt was dispatched.
    pub context: Context,
    /// The attempt's limit in milliseconds; the worker cancels the handler after it.
    pub timeout_ms: Option<u64>,
    /// When it was dispatched (Redis clock).
    pub dispatched_at: Timestamp,
}

/// A step attempt's outcome from a worker (`…:results` streams).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultMessage {
    /// Instance id.
    pub instance_id: String,
    /// Step name.
    pub step: String,
    /// Attempt number.
    pub attempt: u32,
    /// The token of the step message.
    pub token: u64,
    /// The worker that ran it.
    pub worker: String,
    /// Output or error.
    pub outcome: Outcome,
    /// When the handler started (worker clock, informational).
    pub started_at: Timestamp,
    /// When the handler finished (worker clock, informational).
    pub finished_at: Timestamp,
}

/// What a step attempt produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Success: keys merged into the context.
    Ok(Context),
    /// Failure: the error, and whether a retry may help.
    Err(StepError),
}

/// A client command (`…:commands` streams).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandMessage {
    /// The instance it concerns.
    pub instance_id: String,
    /// Where the coordinator pushes the outcome (`{NS:pN}:reply:ID`, in the instance's
    /// partition; any other key is ignored), if the client waits.
    pub reply_to: Option<String>,
    /// What to do.
    pub command: Command,
}

/// What a client asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Start an instance (no-op if the id exists).
    Start {
        /// Definition name.
        definition: String,
        /// Definition version (resolved by the client; never "latest" here).
        version: String,
        /// Initial context.
        initial_data: Context,
        /// The tenant that owns it, if any: only that tenant's callers see it.
        tenant_id: Option<String>,
        /// Who starts it (kept for listing by creator).
        created_by: Option<String>,
    },
    /// Complete a human task.
    CompleteTask {
        /// The human step whose open task this completes.
        step: String,
        /// Who completes it: the assignee or one of the candidates.
        user: String,
        /// The answers, checked against the task's form.
        data: Value,
        /// The groups `user` is a member of (absent in older clients' messages: none).
        #[serde(default)]
        groups: Vec<String>,
    },
    /// Claim an open human task.
    ClaimTask {
        /// The human step whose open task is claimed.
        step: String,
        /// Who claims it.
        by: String,
        /// The groups `by` is a member of.
        #[serde(default)]
        groups: Vec<String>,
    },
    /// Release the claim on an open human task.
    ReleaseTask {
        /// The human step whose task's claim is released.
        step: String,
        /// Who releases it.
        by: String,
        /// Whether `by` is an admin (who may release anyone's claim).
        #[serde(default)]
        admin: bool,
    },
    /// Reassign an open human task.
    ReassignTask {
        /// The human step whose open task is reassigned.
        step: String,
        /// Who reassigns it.
        by: String,
        /// Whether `by` is an admin (the core decides with it who may reassign). Absent
        /// in messages of older clients: then not an admin, the stricter reading.
        #[serde(default)]
        admin: bool,
        /// The groups `by` is a member of.
        #[serde(default)]
        groups: Vec<String>,
        /// The new assignee.
        assignee: Option<String>,
        /// The new candidates.
        candidates: Vec<String>,
    },
    /// Cancel the instance: what runs is interrupted, and it ends as canceled.
    Cancel {
        /// Why, kept on the instance and in its `WorkflowCanceled` event.
        reason: Option<String>,
    },
    /// Retry a failed instance.
    Retry {
        /// From this step (the failed one when `None`).
        from_step: Option<String>,
    },
    /// Deliver a signal: the event step of the instance waiting longest on `name` receives
    /// `data` (`Input::DeliverMessage` without a key). Applied once per `id` and instance:
    /// a signal id already received is answered as applied, changing nothing.
    Signal {
        /// The signal's id (its idempotency key).
        id: String,
        /// The message name the step waits on.
        name: String,
        /// The data.
        data: Value,
    },
    /// Deliver a correlated message to the waiter its correlation partition chose
    /// ([`super::messages`]): applied when the waiter's step still waits under that token
    /// (`Input::DeliverMessage` with the key), once per message id and instance (as a
    /// signal); refused otherwise, and then returned to the correlation partition in the
    /// same commit, so it is kept again or goes to the next waiter.
    Deliver {
        /// The message.
        message: MessageBody,
        /// The waiter chosen (`TOKEN|STEP|INSTANCE`).
        waiter: String,
        /// When it was sent (ms, Redis clock).
        sent_ms: i64,
        /// When it expires (ms, Redis clock).
        expires_ms: i64,
    },
}

/// A correlated message as the correlation partition keeps it and hands it on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageBody {
    /// The message id.
    pub id: String,
    /// The tenant whose instances may receive it.
    pub tenant_id: Option<String>,
    /// The message name.
    pub name: String,
    /// The correlation key.
    pub key: String,
    /// The data.
    pub data: Value,
}

/// Where correlated messages go: tenant, name and key (a subscription's route).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRoute {
    /// The tenant of the waiting instance.
    pub tenant_id: Option<String>,
    /// The message name.
    pub name: String,
    /// The correlation key.
    pub key: String,
}

/// What the coordinator answers on a reply list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The command was applied.
    Applied,
    /// Refused; nothing changed.
    Refused {
        /// A machine-readable kind ([`crate::api::EngineError::kind`]): `not_found`,
        /// `forbidden`, `invalid_data`, `task_not_open`, `wrong_status`, `unknown_step`,
        /// `unknown_workflow`, `bad_request`, `quarantined`, `id_taken`.
        kind: String,
        /// The reason, for people.
        message: String,
        /// The core's refusal, typed, when the core refused the command: the client then
        /// returns exactly the [`crate::Refusal`] the LocalEngine would. Absent for the
        /// coordinator's own refusals (an unknown or quarantined instance, a misrouted
        /// command), and in replies of coordinators that predate it (older clients ignore
        /// it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refusal: Option<crate::core::Refusal>,
    },
}

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The entry has no `m` field.
    #[error("stream entry has no `{FIELD}` field")]
    MissingField,
    /// The message is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is over the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    /// The bytes are not a valid message.
    #[error("undecodable message: {0}")]
    Invalid(String),
}

/// Encodes a message (MessagePack map with field names).
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    plain_bytes(rmp_serde::to_vec_named(msg))
}

/// The bytes of plain data (a message, a stored record, an event) serialised into memory.
///
/// Weir's messages and records are plain data: structs, enums, strings, numbers and JSON
/// values, whose maps have string keys only, written into a `Vec` with no I/O. Neither
/// MessagePack nor JSON can fail on those, so a failure here is a bug; the process stops
/// rather than go on with empty bytes (which would commit an empty instance state).
pub fn plain_bytes<E: std::fmt::Debug>(serialised: Result<Vec<u8>, E>) -> Vec<u8> {
    serialised.expect(
        "serialising plain data (string map keys only) into memory cannot fail: no I/O, \
         no map with non-string keys, no custom serializer that errors",
    )
}

/// Decodes a message, refusing oversized ones.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    from_slice_bounded(bytes).map_err(|e| DecodeError::Invalid(e.to_string()))
}

/// The deepest nesting of arrays and maps that MessagePack decoding accepts. Values from
/// users are JSON, at most 128 levels deep (serde_json's limit), and a message or record
/// adds a few levels. rmp-serde's own limit (1,024) is not enough: a `serde_json::Value`
/// nested that deep overflows a 2 MiB thread stack (a Tokio worker's) in a debug build, so
/// one crafted stream entry would crash a worker or coordinator, again at each restart.
pub const MAX_DEPTH: usize = 256;

/// `rmp_serde::from_slice` with the depth limit of [`MAX_DEPTH`].
pub fn from_slice_bounded<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<T, rmp_serde::decode::Error> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut de)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_an_error() {
        let m = ResultMessage {
            instance_id: "i".into(),
            step: "s".into(),
            attempt: 1,
            token: 7,
            worker: "w".into(),
            outcome: Outcome::Err(StepError::retryable("boom")),
            started_at: Timestamp(1),
            finished_at: Timestamp(2),
        };
        let bytes = encode(&m);
        assert_eq!(decode::<ResultMessage>(&bytes).unwrap(), m);
        assert!(decode::<ResultMessage>(b"\xc1garbage").is_err());
        assert!(decode::<StepMessage>(&bytes).is_err());
    }

    #[test]
    fn nesting_past_the_depth_limit_is_an_error_not_a_stack_overflow() {
        // 100,000 nested maps (an unknown key's value, skipped) and arrays (a `config`):
        // with rmp-serde's own limit of 1,024 these overflowed the thread's stack.
        let mut maps = [0x81, 0xa1, b'k'].repeat(100_000);
        maps.push(0xc0);
        assert!(decode::<StepMessage>(&maps).is_err());
        assert!(decode::<CommandMessage>(&maps).is_err());
        assert!(crate::redis::store::decode_record::<crate::model::Instance>(&maps).is_err());
        let mut arrays = vec![0x91; 100_000];
        arrays.push(0xc0);
        assert!(crate::redis::store::decode_record::<Value>(&arrays).is_err());
        // A value as deep as JSON from a user may be (128 levels) still decodes.
        let mut deep = serde_json::json!(1);
        for _ in 0..127 {
            deep = serde_json::json!([deep]);
        }
        let mut context = Context::new();
        context.insert("deep".into(), deep);
        let m = ResultMessage {
            instance_id: "i".into(),
            step: "s".into(),
            attempt: 1,
            token: 7,
            worker: "w".into(),
            outcome: Outcome::Ok(context),
            started_at: Timestamp(1),
            finished_at: Timestamp(2),
        };
        assert_eq!(decode::<ResultMessage>(&encode(&m)).unwrap(), m);
    }
}

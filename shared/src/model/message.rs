//! Messages from the outside world, and what an event step waits for.
//!
//! A message has a name (`payment_received`), a correlation key (`order-42`), data (a JSON
//! value) and an id that makes sending it idempotent. It goes to the oldest instance of its
//! tenant whose event step waits on (name, key); when none waits, the engine keeps it until
//! its time to live runs out, so that an instance reaching the step later receives it at
//! once. A signal is a message sent to one instance by its id, whatever key it waits on.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::Timestamp;

/// How long a message is kept for an instance that is not waiting yet, when its sender
/// gives no time to live: one hour (Camunda's buffered messages and Inngest's event
/// look-back make the same trade: long enough for a callback race, short enough that a
/// stray message does not wake a workflow days later).
pub const DEFAULT_MESSAGE_TTL: Duration = Duration::from_secs(3600);

/// What an event step waits for, kept on its state while it waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Awaiting {
    /// The message name.
    pub event: Arc<str>,
    /// The correlation key; `None` when the step has no `correlation` (signals only).
    pub key: Option<String>,
}

/// A message to send ([`crate::Engine::send_message`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    /// The message name, e.g. `payment_received`.
    pub name: String,
    /// The correlation key, e.g. an order id.
    pub key: String,
    /// The data; stored under the event step's `output` (default: `{}`).
    #[serde(default = "empty_object")]
    pub data: Value,
    /// The id that makes sending idempotent: the same id within the time to live is
    /// delivered once. A new UUID when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// How long the message is kept when no instance waits for it
    /// ([`DEFAULT_MESSAGE_TTL`] when `None`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::definition::opt_duration"
    )]
    pub ttl: Option<Duration>,
    /// The tenant whose instances may receive it (`None`: instances without a tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl SendMessage {
    /// A message `name` for `key` with data `data`, a new id and the default time to live.
    pub fn new(name: impl Into<String>, key: impl Into<String>, data: Value) -> SendMessage {
        SendMessage {
            name: name.into(),
            key: key.into(),
            data,
            id: None,
            ttl: None,
            tenant_id: None,
        }
    }

    /// The message with this id.
    pub fn with_id(mut self, id: impl Into<String>) -> SendMessage {
        self.id = Some(id.into());
        self
    }

    /// The message with this time to live.
    pub fn with_ttl(mut self, ttl: Duration) -> SendMessage {
        self.ttl = Some(ttl);
        self
    }

    /// The message for this tenant's instances.
    pub fn for_tenant(mut self, tenant: Option<String>) -> SendMessage {
        self.tenant_id = tenant;
        self
    }
}

/// What became of a sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageOutcome {
    /// An instance waiting on (name, key) received it.
    Delivered,
    /// No instance waited: it is kept until its time to live runs out.
    Kept,
    /// A message with the same id was sent within its time to live: nothing was done.
    Duplicate,
}

/// The answer to a sent message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSent {
    /// The message id (the caller's, or the one made for it).
    pub id: String,
    /// What became of it.
    pub outcome: MessageOutcome,
    /// The instance that received it, when delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

/// A message kept for an instance that does not wait yet (`weir message list`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptMessage {
    /// The message id.
    pub id: String,
    /// The message name.
    pub name: String,
    /// The correlation key.
    pub key: String,
    /// The data.
    pub data: Value,
    /// The tenant whose instances may receive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// When it was sent.
    pub sent_at: Timestamp,
    /// When it expires unless an instance receives it first.
    pub expires_at: Timestamp,
}

/// Counts of what happened to messages since the engine started (`weir stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    /// Messages and signals an instance received.
    pub delivered: u64,
    /// Messages kept because no instance waited when they were sent.
    pub kept: u64,
    /// Kept messages whose time to live ran out before an instance received them.
    pub expired: u64,
    /// Sends refused as duplicates of a message id within its time to live.
    pub duplicates: u64,
}

/// Which kept messages to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageFilter {
    /// Only this tenant's messages (`None`: every tenant's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Only messages of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only messages for this correlation key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl MessageFilter {
    /// Whether a kept message passes.
    pub fn matches(&self, m: &KeptMessage) -> bool {
        self.tenant_id
            .as_deref()
            .is_none_or(|t| m.tenant_id.as_deref() == Some(t))
            && self.name.as_deref().is_none_or(|n| m.name == n)
            && self.key.as_deref().is_none_or(|k| m.key == k)
    }
}

/// The longest message id or key: both go into keys and URLs.
pub const MAX_MESSAGE_ID_LEN: usize = 256;

/// Checks a message name: 1-128 of `[A-Za-z0-9_.-]`, as event steps' `event`.
pub fn check_message_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid message name {name:?}: use 1-128 letters, digits, '_', '-' or '.'"
        ))
    }
}

/// Checks a message id given by a caller: 1-256 characters, no control characters.
pub fn check_message_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_MESSAGE_ID_LEN || id.chars().any(char::is_control) {
        Err(format!(
            "invalid message id {id:?}: use 1-{MAX_MESSAGE_ID_LEN} characters without control characters"
        ))
    } else {
        Ok(())
    }
}

/// Checks a signal's name and optional id, as both engines do before anything changes.
pub fn check_signal(name: &str, id: Option<&str>) -> Result<(), String> {
    check_message_name(name)?;
    id.map_or(Ok(()), check_message_id)
}

impl SendMessage {
    /// Checks what a sender chose, before anything is stored: the name, the key (1-256
    /// characters), the id, the time to live (longer than zero) and the data's size.
    pub fn check(&self) -> Result<(), String> {
        check_message_name(&self.name)?;
        if self.key.is_empty() || self.key.len() > MAX_MESSAGE_ID_LEN {
            return Err(format!(
                "invalid message key {:?}: use 1-{MAX_MESSAGE_ID_LEN} characters",
                self.key
            ));
        }
        if let Some(id) = &self.id {
            check_message_id(id)?;
        }
        if self.ttl == Some(Duration::ZERO) {
            return Err("the message's ttl must be longer than zero".into());
        }
        let size = super::json_size(&self.data);
        if size > super::MAX_CONTEXT_BYTES {
            return Err(format!(
                "the message data is {size} bytes of JSON, over the limit of {} bytes",
                super::MAX_CONTEXT_BYTES
            ));
        }
        Ok(())
    }
}

//! Decoding a turn's inputs: stream entries of the command and result streams, and due
//! timers. Anything unreadable becomes [`Inbound::Poison`], dead-lettered by the turn.

use redis::streams::StreamId;
use weir::redis::timer::TimerMember;
use weir::redis::wire::{self, CommandMessage, ResultMessage};

/// One input of a turn.
pub enum Inbound {
    /// A client command, with its deadline (ms, Redis clock) when it has one.
    Command {
        stream: String,
        id: String,
        msg: CommandMessage,
        deadline_ms: Option<i64>,
    },
    /// A worker's result, with its bytes (dead-lettered as they came when its instance is
    /// quarantined).
    Result {
        stream: String,
        id: String,
        msg: ResultMessage,
        raw: Vec<u8>,
    },
    /// A due timer: its member (a [`TimerMember`]) and its due time (ms) as read.
    Timer(String, i64),
    /// An entry that could not be decoded.
    Poison {
        stream: String,
        id: String,
        raw: Vec<u8>,
        error: String,
    },
}

impl Inbound {
    /// The instance it concerns, when it says.
    pub(super) fn instance_id(&self) -> Option<&str> {
        match self {
            Inbound::Command { msg, .. } => Some(&msg.instance_id),
            Inbound::Result { msg, .. } => Some(&msg.instance_id),
            Inbound::Timer(member, _) => TimerMember::parse(member).map(|t| t.instance_id),
            Inbound::Poison { .. } => None,
        }
    }
}

/// Decodes a stream entry; anything unreadable becomes [`Inbound::Poison`].
pub fn decode_entry(stream: &str, from_commands: bool, entry: StreamId) -> Inbound {
    let raw: Option<Vec<u8>> = entry.get(wire::FIELD);
    let stream = stream.to_string();
    let id = entry.id.clone();
    let Some(raw) = raw else {
        return Inbound::Poison {
            stream,
            id,
            raw: Vec::new(),
            error: wire::DecodeError::MissingField.to_string(),
        };
    };
    if from_commands {
        let deadline_ms = entry
            .get::<String>(wire::DEADLINE_FIELD)
            .and_then(|d| d.parse::<i64>().ok());
        match wire::decode::<CommandMessage>(&raw) {
            Ok(msg) => Inbound::Command {
                stream,
                id,
                msg,
                deadline_ms,
            },
            Err(e) => Inbound::Poison {
                stream,
                id,
                raw,
                error: e.to_string(),
            },
        }
    } else {
        match wire::decode::<ResultMessage>(&raw) {
            Ok(msg) => Inbound::Result {
                stream,
                id,
                msg,
                raw,
            },
            Err(e) => Inbound::Poison {
                stream,
                id,
                raw,
                error: e.to_string(),
            },
        }
    }
}

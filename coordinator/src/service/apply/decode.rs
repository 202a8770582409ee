//! Decoding a turn's inputs: stream entries of the command and result streams, and due
//! timers. Anything unreadable becomes [`Inbound::Poison`], dead-lettered by the turn.

use redis::streams::StreamId;
use weir::redis::timer::TimerMember;
use weir::redis::wire::{self, CommandMessage, ResultMessage};

/// One input of a turn.
pub enum Inbound {
    /// A client command, with its deadline (ms, Redis clock) when it has one.
    Command {
        /// The command stream it was read from; the turn acknowledges the entry there.
        stream: String,
        /// Its stream entry id.
        id: String,
        /// The decoded command.
        msg: CommandMessage,
        /// When its caller stops waiting (ms, Redis clock): read later, it is discarded unapplied.
        deadline_ms: Option<i64>,
    },
    /// A worker's result, with its bytes (dead-lettered as they came when its instance is
    /// quarantined).
    Result {
        /// The result stream it was read from; the turn acknowledges the entry there.
        stream: String,
        /// Its stream entry id.
        id: String,
        /// The decoded result.
        msg: ResultMessage,
        /// The entry's payload bytes exactly as read.
        raw: Vec<u8>,
    },
    /// A due timer: its member (a [`TimerMember`]) and its due time (ms) as read.
    Timer(String, i64),
    /// An entry that could not be decoded.
    Poison {
        /// The stream it was read from.
        stream: String,
        /// Its stream entry id.
        id: String,
        /// The payload bytes as read (empty when the payload field is missing).
        raw: Vec<u8>,
        /// Why it is dead-lettered, kept with the dead letter.
        error: String,
        /// The instance a Start command stands for, when this entry is one (then that
        /// instance, still pending, is failed with the dead letter: see
        /// [`weir::redis::effects::fail_unstarted`]).
        start_of: Option<String>,
    },
}

impl Inbound {
    /// The instance it concerns, when it says.
    pub(super) fn instance_id(&self) -> Option<&str> {
        match self {
            Inbound::Command { msg, .. } => Some(&msg.instance_id),
            Inbound::Result { msg, .. } => Some(&msg.instance_id),
            Inbound::Timer(member, _) => TimerMember::parse(member).map(|t| t.instance_id),
            Inbound::Poison { start_of, .. } => start_of.as_deref(),
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
            start_of: None,
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
                start_of: None,
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
                start_of: None,
            },
        }
    }
}

/// The instance a command entry's payload starts, when it is a Start command.
pub fn start_of(raw: &[u8]) -> Option<String> {
    match wire::decode::<CommandMessage>(raw) {
        Ok(CommandMessage {
            instance_id,
            command: wire::Command::Start { .. },
            ..
        }) => Some(instance_id),
        _ => None,
    }
}

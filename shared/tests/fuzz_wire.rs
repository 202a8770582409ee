//! Fuzzing the decoders of what Weir reads back from Redis: the stream messages
//! (`weir::redis::wire::decode` into `StepMessage`, `ResultMessage`, `CommandMessage` and
//! `Reply`), the stored records (`weir::redis::store::decode_record` into `Instance`,
//! `Task` and `AttemptRecord`) and events (JSON). Anyone who can write to the Redis can put
//! any bytes there; a decoder must answer with an error, never a panic, a stack overflow or
//! a long stall. No input may panic or take 100 ms or more (see `fuzz_support`).
//!
//! Inputs: random bytes; valid encodings of random messages and of the records of a real
//! run of the core, mutated (bit flips, MessagePack markers with huge lengths, repeats,
//! cuts); and deep nestings. Valid messages must also decode to what was encoded.
//!
//! `PROPTEST_CASES=1000000 cargo test --release -p weir --test fuzz_wire -- --nocapture`

mod common;
#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::sync::OnceLock;

use common::Sim;
use fuzz_support::{any_bytes, any_string, apply_edit, byte_edit, fuzz, json_object, json_value};
use proptest::prelude::*;
use serde_json::{json, Value};
use weir::model::{AttemptRecord, Event, Instance, Task};
use weir::redis::store::{decode_record, encode_record};
use weir::redis::wire::{
    self, Command, CommandMessage, Outcome, Reply, ResultMessage, StepMessage,
};
use weir::{StepError, Timestamp};

const KEYS: &[&str] = &["x", "amount", "items", "approved"];

/// MessagePack markers a mutation inserts: huge lengths of every container, the one
/// never-used byte, extension types, the edges of the integer and float types.
const MSGPACK: &[&[u8]] = &[
    &[0xdc, 0xff, 0xff],
    &[0xdd, 0xff, 0xff, 0xff, 0xff],
    &[0xde, 0xff, 0xff],
    &[0xdf, 0xff, 0xff, 0xff, 0xff],
    &[0xdb, 0xff, 0xff, 0xff, 0xff],
    &[0xda, 0xff, 0xff],
    &[0xc6, 0xff, 0xff, 0xff, 0xff],
    &[0xc7, 0xff, 0x01],
    &[0xd4, 0x00, 0x00],
    &[0xd6, 0xff, 0, 0, 0, 0],
    &[0xc1],
    &[0xc0],
    &[0x91],
    &[0x81, 0xa1, b'm'],
    &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0],
    &[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0],
    &[0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0],
    &[0xa2, 0xed, 0xa0],
    &[0xa3, b'o', b'k', 0],
];

fn timestamp() -> impl Strategy<Value = Timestamp> {
    any::<i64>().prop_map(Timestamp)
}

fn step_error() -> impl Strategy<Value = StepError> {
    (any_string(), any_string(), any::<bool>()).prop_map(|(kind, message, retryable)| {
        if retryable {
            StepError::retryable(message)
        } else {
            StepError::fatal(kind, message)
        }
    })
}

fn step_message() -> impl Strategy<Value = StepMessage> {
    (
        (any_string(), any_string(), any::<u32>(), any::<u64>()),
        (any_string(), json_value(KEYS, 2), json_object(KEYS, 2)),
        (proptest::option::of(any::<u64>()), timestamp()),
    )
        .prop_map(
            |(
                (instance_id, step, attempt, token),
                (handler, config, context),
                (timeout_ms, at),
            )| {
                StepMessage {
                    instance_id,
                    step,
                    attempt,
                    token,
                    handler,
                    config,
                    context,
                    timeout_ms,
                    dispatched_at: at,
                }
            },
        )
}

fn result_message() -> impl Strategy<Value = ResultMessage> {
    (
        (any_string(), any_string(), any::<u32>(), any::<u64>()),
        any_string(),
        prop_oneof![
            json_object(KEYS, 2).prop_map(Outcome::Ok),
            step_error().prop_map(Outcome::Err),
        ],
        (timestamp(), timestamp()),
    )
        .prop_map(
            |((instance_id, step, attempt, token), worker, outcome, (started_at, finished_at))| {
                ResultMessage {
                    instance_id,
                    step,
                    attempt,
                    token,
                    worker,
                    outcome,
                    started_at,
                    finished_at,
                }
            },
        )
}

fn command() -> impl Strategy<Value = Command> {
    let opt = || proptest::option::of(any_string());
    prop_oneof![
        (
            any_string(),
            any_string(),
            json_object(KEYS, 2),
            opt(),
            opt()
        )
            .prop_map(
                |(definition, version, initial_data, tenant_id, created_by)| Command::Start {
                    definition,
                    version,
                    initial_data,
                    tenant_id,
                    created_by,
                }
            ),
        (
            any_string(),
            any_string(),
            json_value(KEYS, 2),
            proptest::collection::vec(any_string(), 0..3)
        )
            .prop_map(|(step, user, data, groups)| Command::CompleteTask {
                step,
                user,
                data,
                groups
            }),
        (
            any_string(),
            any_string(),
            proptest::collection::vec(any_string(), 0..3)
        )
            .prop_map(|(step, by, groups)| Command::ClaimTask { step, by, groups }),
        (any_string(), any_string(), any::<bool>())
            .prop_map(|(step, by, admin)| Command::ReleaseTask { step, by, admin }),
        (
            any_string(),
            any_string(),
            any::<bool>(),
            opt(),
            proptest::collection::vec(any_string(), 0..3)
        )
            .prop_map(
                |(step, by, admin, assignee, candidates)| Command::ReassignTask {
                    step,
                    by,
                    admin,
                    groups: Vec::new(),
                    assignee,
                    candidates,
                }
            ),
        opt().prop_map(|reason| Command::Cancel { reason }),
        opt().prop_map(|from_step| Command::Retry { from_step }),
        (any_string(), any_string(), json_value(KEYS, 2))
            .prop_map(|(id, name, data)| Command::Signal { id, name, data }),
    ]
}

fn command_message() -> impl Strategy<Value = CommandMessage> {
    (any_string(), proptest::option::of(any_string()), command()).prop_map(
        |(instance_id, reply_to, command)| CommandMessage {
            instance_id,
            reply_to,
            command,
        },
    )
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        Just(Reply::Applied),
        (any_string(), any_string(), any::<bool>()).prop_map(|(kind, message, typed)| {
            // A typed refusal owns its texts once read back (`Cow::Owned`).
            let refusal = typed.then(|| weir::Refusal::WrongStatus {
                status: weir::InstanceStatus::Canceled,
                action: message.clone().into(),
            });
            Reply::Refused {
                kind,
                message,
                refusal,
            }
        }),
    ]
}

/// A valid message of any type, encoded.
#[derive(Debug, Clone)]
enum Message {
    Step(StepMessage),
    Result(ResultMessage),
    Command(CommandMessage),
    Reply(Reply),
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        step_message().prop_map(Message::Step),
        result_message().prop_map(Message::Result),
        command_message().prop_map(Message::Command),
        reply().prop_map(Message::Reply),
    ]
}

fn encode(m: &Message) -> Vec<u8> {
    match m {
        Message::Step(m) => wire::encode(m),
        Message::Result(m) => wire::encode(m),
        Message::Command(m) => wire::encode(m),
        Message::Reply(m) => wire::encode(m),
    }
}

/// Stored records and events of a real run of the core: a task opened, a step failed and
/// retried, the context written, the task completed.
fn records() -> &'static [Vec<u8>] {
    static RECORDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    RECORDS.get_or_init(|| {
        let mut sim = Sim::start(
            r#"
name: r
version: "1.0.0"
steps:
  charge: { type: machine, handler: h, retry: { max_attempts: 3, initial_interval: 1s } }
  approve: { type: human, assignee: ann, candidates: [bob],
             form: { type: object, properties: { ok: { type: boolean } } }, due: 1h }
  wait: { type: timer, duration: 5s }
edges:
  - { from: charge, to: approve }
  - { from: charge, to: wait }
"#,
            json!({ "amount": 120, "items": [1, 2.5, "x", null, { "k": [true] }] }),
        );
        sim.fail("charge", StepError::retryable("declined"));
        sim.advance_ms(1000);
        let _ = sim.try_fire("charge", weir::core::TimerKind::Retry);
        let _ = sim.try_succeed("charge", json!({ "charged": u64::MAX, "note": "é😀" }));
        let mut out = vec![encode_record(&sim.inst)];
        out.extend(sim.tasks.values().map(encode_record));
        out.extend(sim.history.iter().map(encode_record));
        let _ = sim.complete("approve", "ann", json!({ "ok": true }));
        out.push(encode_record(&sim.inst));
        out.extend(sim.history.iter().map(encode_record));
        out.extend(sim.events.iter().filter_map(|e| serde_json::to_vec(e).ok()));
        out
    })
}

/// Decodes the bytes as every type; none may panic. Returns how many types accepted them.
fn decode_all(bytes: &[u8]) -> usize {
    [
        wire::decode::<StepMessage>(bytes).is_ok(),
        wire::decode::<ResultMessage>(bytes).is_ok(),
        wire::decode::<CommandMessage>(bytes).is_ok(),
        wire::decode::<Reply>(bytes).is_ok(),
        decode_record::<Instance>(bytes).is_ok(),
        decode_record::<Task>(bytes).is_ok(),
        decode_record::<AttemptRecord>(bytes).is_ok(),
        serde_json::from_slice::<Event>(bytes).is_ok(),
    ]
    .iter()
    .filter(|ok| **ok)
    .count()
}

#[test]
fn random_bytes_decode_to_errors_not_panics() {
    fuzz("wire-bytes", 4000, any_bytes(1024), |bytes| {
        decode_all(bytes) > 0
    });
}

#[test]
fn valid_messages_round_trip_and_their_mutations_never_panic() {
    fuzz(
        "wire-messages",
        3000,
        (
            message(),
            proptest::collection::vec(byte_edit(MSGPACK), 0..6),
        ),
        |(m, edits)| {
            let mut bytes = encode(m);
            let back_ok = match m {
                Message::Step(m) => wire::decode::<StepMessage>(&bytes).ok().as_ref() == Some(m),
                Message::Result(m) => {
                    wire::decode::<ResultMessage>(&bytes).ok().as_ref() == Some(m)
                }
                Message::Command(m) => {
                    wire::decode::<CommandMessage>(&bytes).ok().as_ref() == Some(m)
                }
                Message::Reply(m) => wire::decode::<Reply>(&bytes).ok().as_ref() == Some(m),
            };
            assert!(back_ok, "a valid message does not decode to itself: {m:?}");
            for e in edits {
                apply_edit(&mut bytes, e);
            }
            decode_all(&bytes) > 0
        },
    );
}

#[test]
fn mutated_records_and_events_never_panic() {
    fuzz(
        "wire-records",
        3000,
        (
            any::<prop::sample::Index>(),
            proptest::collection::vec(byte_edit(MSGPACK), 1..8),
        ),
        |(which, edits)| {
            let mut bytes = which.get(records()).clone();
            for e in edits {
                apply_edit(&mut bytes, e);
            }
            decode_all(&bytes) > 0
        },
    );
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    // Arrays or maps nested up to 200,000 deep where a message, its `config` or a record
    // holds a value; a depth past the decoder's limit must be an error.
    fuzz(
        "wire-nesting",
        200,
        (
            1usize..200_000,
            prop::sample::select(vec![
                &[0x91u8][..],
                &[0x81, 0xa1, b'k'][..],
                &[0xdc, 0, 1][..],
            ]),
            any::<prop::sample::Index>(),
        ),
        |(depth, opener, which)| {
            let mut nested = opener.repeat(*depth);
            nested.push(0xc0);
            let valid = encode(&Message::Step(StepMessage {
                instance_id: "i".into(),
                step: "s".into(),
                attempt: 1,
                token: 1,
                handler: "h".into(),
                config: Value::Null,
                context: Default::default(),
                timeout_ms: None,
                dispatched_at: Timestamp(0),
            }));
            // `config: nil` is the one 0xc0 of the valid encoding: put the nesting there.
            let at = which.index(valid.len());
            let mut bytes = valid.clone();
            if let Some(pos) = valid.iter().position(|b| *b == 0xc0) {
                bytes.splice(pos..=pos, nested.iter().copied());
            }
            decode_all(&bytes);
            decode_all(&nested);
            let mut spliced = valid;
            spliced.splice(at..at, nested.iter().copied());
            decode_all(&spliced) > 0
        },
    );
}

//! The harness the fuzz targets share (`shared/tests/fuzz_*.rs`, and
//! `coordinator/tests/fuzz_http.rs`; each includes this file by path).
//!
//! A target is a proptest strategy (structure-aware inputs from a grammar, mutated valid
//! inputs, or plain random bytes) and a function run on each input. [`fuzz`] runs it
//! [`cases`] times and asserts, for every input:
//!
//! - **no panic escapes**: proptest catches one, shrinks the input and the test fails
//!   with the smallest input that panics;
//! - **it is handled in under [`LIMIT`]** (100 ms; 200 ms in a debug build) of the CPU time of the thread that
//!   handles it, measured around that one input. CPU time, not wall time: the limit is about
//!   the work an input can make a process do, and on a shared machine (two cores, a dozen
//!   compilers) a thread waits for a core longer than it runs, which wall time would count
//!   against the input. An input over the limit is run twice more and its fastest run
//!   counts (cache and allocator noise); still over the limit, the test fails with the
//!   (shrunk) input. (An input ten times over the limit is not re-run: no noise does that.)
//!   A target whose work happens in another process (the HTTP one: a real server answers)
//!   is measured in wall time instead ([`fuzz_measured`], [`Measure::Wall`]).
//!
//! Then it prints one line with the figures the README reports: inputs run, panics seen
//! (including those the code under test catches itself with `catch_unwind`, which never
//! reach a user but are worth knowing), the slowest input with its time, and the wall time.
//!
//! Case counts: `WEIR_FUZZ_CASES` (or `PROPTEST_CASES`) when set (the long runs:
//! `WEIR_FUZZ_CASES=1000000 cargo test --release -p weir --test fuzz_cel -- --nocapture`),
//! else the target's own CI default, chosen so that the whole fuzz set stays under a minute on two cores in a debug
//! build. `PROPTEST_RNG_SEED` replays a run.

#![allow(dead_code)]

pub mod cel;
pub mod schema;

use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::sync::Once;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{Map, Value};

/// The most time one input may take: 100 ms of optimized code. A debug build (what
/// `cargo test` builds: the workspace's own crates unoptimized) gets twice that, because it
/// runs the same work slower: a CEL condition that spends its whole evaluation budget took
/// 110 ms there on a 2-core AMD EPYC machine whose Redis does 300,000 pipelined XADDs/s.
pub const LIMIT: Duration = Duration::from_millis(if cfg!(debug_assertions) { 200 } else { 100 });

/// How many characters of an input the report quotes.
const QUOTE_CHARS: usize = 400;

/// A long run prints its figures so far every this many inputs.
const PROGRESS_EVERY: u64 = 100_000;

/// How many panic messages per thread are printed in full (the rest are only counted).
const PRINTED_PANICS: u64 = 3;

thread_local! {
    /// Panics on this thread since the hook was installed.
    static PANICS: Cell<u64> = const { Cell::new(0) };
}

static HOOK: Once = Once::new();

/// Counts every panic on the thread it happens on (a target runs on its test's thread),
/// printing only the first few: a caught panic may repeat for many inputs.
fn install_panic_counter() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let n = PANICS.with(|p| {
                p.set(p.get() + 1);
                p.get()
            });
            if n <= PRINTED_PANICS {
                previous(info);
            }
        }));
    });
}

/// The number of inputs to run: `WEIR_FUZZ_CASES` or `PROPTEST_CASES` if set (the first
/// that is), else `ci_default`.
pub fn cases(ci_default: u32) -> u32 {
    ["WEIR_FUZZ_CASES", "PROPTEST_CASES"]
        .iter()
        .find_map(|var| std::env::var(var).ok()?.trim().parse().ok())
        .unwrap_or(ci_default)
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Inputs run (shrinking included).
    pub inputs: u64,
    /// Inputs the code under test accepted.
    pub accepted: u64,
    /// Panics seen on the target's thread, caught or not.
    pub panics: u64,
    /// The slowest input's time (the fastest of its re-runs when it was over the limit).
    pub slowest: Duration,
    /// The slowest input, as `Debug` prints it, shortened.
    pub slowest_input: String,
    /// How long the run took.
    pub wall: Duration,
}

fn quote(s: String) -> String {
    if s.chars().count() <= QUOTE_CHARS {
        return s;
    }
    let mut q: String = s.chars().take(QUOTE_CHARS).collect();
    q.push_str("...");
    q
}

/// Runs `target` on `cases(ci_default)` inputs of `strategy`, asserting no panic and no
/// input over [`LIMIT`], and prints the figures (see the module doc). Panics (fails the
/// test) with the smallest failing input. `target` returns whether the code under test
/// accepted the input (it parsed, compiled, decoded...): the share accepted tells how deep
/// the inputs reach.
pub fn fuzz<S>(
    name: &str,
    ci_default: u32,
    strategy: S,
    target: impl Fn(&S::Value) -> bool,
) -> Figures
where
    S: Strategy,
    S::Value: Debug,
{
    fuzz_measured(name, Measure::ThreadCpu, ci_default, strategy, target)
}

/// How an input's time is measured against [`LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// The CPU time of the thread that handles the input: for code run in this thread.
    ThreadCpu,
    /// Wall time: for work done elsewhere (a server process answering a request), where
    /// this thread's CPU time would count only the waiting.
    Wall,
}

impl Measure {
    /// Now, on this measure's clock.
    fn now(self, origin: Instant) -> Duration {
        match self {
            Measure::ThreadCpu => thread_cpu_time(),
            Measure::Wall => origin.elapsed(),
        }
    }
}

/// [`fuzz`], with the time of each input taken on `measure`'s clock.
pub fn fuzz_measured<S>(
    name: &str,
    measure: Measure,
    ci_default: u32,
    strategy: S,
    target: impl Fn(&S::Value) -> bool,
) -> Figures
where
    S: Strategy,
    S::Value: Debug,
{
    install_panic_counter();
    let panics_before = PANICS.with(Cell::get);
    let config = Config {
        cases: cases(ci_default),
        failure_persistence: None,
        // A slow input is re-run while shrinking: bound the time spent on that.
        max_shrink_time: 20_000,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let inputs = Cell::new(0u64);
    let accepted = Cell::new(0u64);
    let slowest = RefCell::new((Duration::ZERO, String::new()));
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        inputs.set(inputs.get() + 1);
        let t = measure.now(started);
        if target(&input) {
            accepted.set(accepted.get() + 1);
        }
        let mut took = measure.now(started).saturating_sub(t);
        // Noise stretches a run a little, not tenfold: only then is it worth re-measuring.
        if took >= LIMIT && took < LIMIT * 10 {
            for _ in 0..2 {
                let t = measure.now(started);
                target(&input);
                took = took.min(measure.now(started).saturating_sub(t));
            }
        }
        if took > slowest.borrow().0 {
            *slowest.borrow_mut() = (took, quote(format!("{input:?}")));
        }
        if inputs.get() % PROGRESS_EVERY == 0 {
            eprintln!(
                "fuzz {name}: {} inputs so far ({} accepted), {} panics seen, slowest {:.3} ms, {:.1} s",
                inputs.get(),
                accepted.get(),
                PANICS.with(Cell::get) - panics_before,
                slowest.borrow().0.as_secs_f64() * 1e3,
                started.elapsed().as_secs_f64()
            );
        }
        if took >= LIMIT {
            return Err(TestCaseError::fail(format!(
                "{name}: an input took {took:?}, over the limit of {LIMIT:?}"
            )));
        }
        Ok(())
    });
    let (slowest, slowest_input) = slowest.into_inner();
    let figures = Figures {
        inputs: inputs.get(),
        accepted: accepted.get(),
        panics: PANICS.with(Cell::get) - panics_before,
        slowest,
        slowest_input,
        wall: started.elapsed(),
    };
    eprintln!(
        "fuzz {name}: {} inputs ({} accepted), {} panics seen, slowest {:.3} ms, wall {:.1} s; slowest input: {}",
        figures.inputs,
        figures.accepted,
        figures.panics,
        figures.slowest.as_secs_f64() * 1e3,
        figures.wall.as_secs_f64(),
        figures.slowest_input,
    );
    match result {
        Ok(()) => figures,
        Err(TestError::Fail(why, input)) => {
            panic!(
                "fuzz {name} failed: {why}\nsmallest failing input: {}",
                quote(format!("{input:?}"))
            )
        }
        Err(TestError::Abort(why)) => panic!("fuzz {name} aborted: {why}"),
    }
}

// ----------------------------------------------------------------------------------------
// Inputs many targets use

/// Strings that tend to break parsers and validators.
pub const NASTY_STRINGS: &[&str] = &[
    "",
    " ",
    "\0",
    "\u{feff}",
    "é",
    "😀",
    "\u{202e}",
    "\\",
    "\"",
    "'",
    "\n",
    "%",
    "%zz",
    "../..",
    "{x}",
    "{idempotency_key}",
    "null",
    "true",
    "1e400",
    "-0",
    "NaN",
    "2030-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1.0.0",
    "a@example.com",
    "http://127.0.0.1:1/",
];

/// A random string: mostly short printable text, sometimes a nasty one or any characters.
pub fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_]{0,8}",
        2 => prop::sample::select(NASTY_STRINGS).prop_map(str::to_owned),
        2 => ".{0,24}",
        1 => proptest::collection::vec(any::<char>(), 0..8).prop_map(|c| c.into_iter().collect()),
    ]
}

/// A JSON number: small, at the edges of i64 and u64, or a finite float.
pub fn any_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..=3).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![i64::MIN, i64::MAX, 0, -1]).prop_map(Value::from),
        prop::sample::select(vec![u64::MAX, i64::MAX as u64 + 1]).prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(vec![0.5, -0.0, 1e300, -1e-300, 80.0]).prop_map(Value::from),
    ]
}

/// A random JSON value, nested up to `depth` levels, whose object keys come mostly from
/// `keys` (so that expressions and schemas written with those names meet them).
pub fn json_value(keys: &'static [&'static str], depth: u32) -> BoxedStrategy<Value> {
    let key = prop_oneof![
        4 => prop::sample::select(keys).prop_map(str::to_owned),
        1 => any_string(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any_number(),
        any_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// A random JSON object (a context, a body).
pub fn json_object(keys: &'static [&'static str], depth: u32) -> BoxedStrategy<Map<String, Value>> {
    proptest::collection::vec(
        (
            prop_oneof![
                4 => prop::sample::select(keys).prop_map(str::to_owned),
                1 => any_string(),
            ],
            json_value(keys, depth),
        ),
        0..8,
    )
    .prop_map(|kv| kv.into_iter().collect())
    .boxed()
}

/// Random bytes, with a bias toward short inputs.
pub fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..32),
        1 => proptest::collection::vec(any::<u8>(), 0..=max),
    ]
}

/// A change to a byte string: the mutations a fuzzer applies to valid inputs.
#[derive(Debug, Clone)]
pub enum ByteEdit {
    /// Flip one bit.
    Flip(usize, u8),
    /// Set one byte.
    Set(usize, u8),
    /// Insert bytes.
    Insert(usize, Vec<u8>),
    /// Remove a range.
    Remove(usize, usize),
    /// Cut the tail.
    Truncate(usize),
    /// Repeat a range several times in place.
    Repeat(usize, usize, usize),
}

/// A random [`ByteEdit`], inserting bytes from `dictionary` half of the time.
pub fn byte_edit(dictionary: &'static [&'static [u8]]) -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| ByteEdit::Flip(at, bit)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| ByteEdit::Set(at, b)),
        (
            any::<usize>(),
            prop_oneof![
                prop::sample::select(dictionary).prop_map(<[u8]>::to_vec),
                proptest::collection::vec(any::<u8>(), 1..6),
            ]
        )
            .prop_map(|(at, b)| ByteEdit::Insert(at, b)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| ByteEdit::Remove(at, n)),
        any::<usize>().prop_map(ByteEdit::Truncate),
        (any::<usize>(), 1usize..8, 2usize..64).prop_map(|(at, n, k)| ByteEdit::Repeat(at, n, k)),
    ]
}

/// Applies an edit (positions are taken modulo the length, so every edit applies).
pub fn apply_edit(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match edit {
        ByteEdit::Flip(i, bit) if !bytes.is_empty() => {
            let i = i % bytes.len();
            bytes[i] ^= 1 << bit;
        }
        ByteEdit::Set(i, b) if !bytes.is_empty() => {
            let i = i % bytes.len();
            bytes[i] = *b;
        }
        ByteEdit::Insert(i, b) => {
            let i = at(*i, bytes.len());
            bytes.splice(i..i, b.iter().copied());
        }
        ByteEdit::Remove(i, n) => {
            let i = at(*i, bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        ByteEdit::Truncate(i) => {
            let i = at(*i, bytes.len());
            bytes.truncate(i);
        }
        ByteEdit::Repeat(i, n, k) => {
            let i = at(*i, bytes.len());
            let end = (i + n).min(bytes.len());
            let chunk = bytes[i..end].to_vec();
            for _ in 1..*k {
                bytes.splice(end..end, chunk.iter().copied());
            }
        }
        ByteEdit::Flip(..) | ByteEdit::Set(..) => {}
    }
}

/// The CPU time the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`): what an
/// input costs, whatever else the machine runs meanwhile.
#[cfg(unix)]
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec, and this clock id exists on every unix
    // the project builds on (Linux, macOS); the call writes nothing else.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Elsewhere, wall time: the stricter measure.
#[cfg(not(unix))]
fn thread_cpu_time() -> Duration {
    thread_local!(static ORIGIN: Instant = Instant::now());
    ORIGIN.with(|origin| origin.elapsed())
}

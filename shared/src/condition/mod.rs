//! Edge conditions and timer deadlines, written in Google's Common Expression Language (CEL).
//!
//! A [`Condition`] is compiled once, when a workflow definition is registered, and evaluated
//! many times on the engine's hot path against an instance's context: a JSON object bound to
//! the CEL variable `context`.
//!
//! ```text
//! context.score >= 80 && context.approved == true
//! context.get('score', 0) >= 80            # Python-engine style, with a default
//! has(context.score) && context.score >= 80
//! 'vip' in context.tags && size(context.items) > 2
//! context.email.endsWith('@example.com')
//! ```
//!
//! # Why CEL
//!
//! CEL has no loops, no I/O and no way to run code: an expression is data, evaluated by an
//! interpreter. It is the `cel` crate (formerly `cel-interpreter`), pinned to `~0.15` because its
//! API changes with every minor version; this module is the only place that touches it.
//!
//! # Decisions
//!
//! - **One variable, `context`.** Any other free identifier (`ctx.score`, a typo) is refused at
//!   compile time, as are expressions nested deeper than [`MAX_DEPTH`] levels and sources longer
//!   than [`MAX_SOURCE_LEN`] bytes: both bound the interpreter's recursion, so that no condition
//!   can overflow a stack. Parse errors carry cel's own text, with line and column.
//! - **Only declared functions.** A call of a function the environment does not declare
//!   (`sise(x)`, a Python method such as `context.keys()`) is refused at compile time too;
//!   cel itself would only fail when it runs the call, so every evaluation would count as
//!   false and the author would learn it from `ConditionFailed` events in production.
//! - **A missing key is an error.** `context.score` on a context without `score` fails with
//!   [`ConditionError::Evaluate`] ("No such key: score"). The engine treats any `Err` as "edge
//!   not taken"; a definition that wants a default writes `has(context.score) && ...`,
//!   `context.get('score', 0) >= 80` or `context.?score.orValue(0) >= 80`.
//! - **`m.get(key)` and `m.get(key, default)`** are registered on maps, for conditions written for
//!   the Python engine: they return the value, or `null` (the default) when the key is missing.
//!   `null` compares to nothing, so `context.get('score') >= 80` on a context without `score` is
//!   an `Err` as well, hence "not taken".
//! - **Numbers.** JSON integers become CEL `int` (`uint` above `i64::MAX`), other numbers
//!   `double`. CEL compares numbers across types, so `context.amount > 100` holds for both
//!   `150` and `150.5`, and `context.score == 80` for `80` and `80.0`. CEL *arithmetic* does not
//!   mix types: `context.amount + 1` fails when `amount` is `150.5` (write `context.amount + 1.0`,
//!   or `double(context.amount) + 1.0` to accept both).
//! - **Errors, never panics.** Parsing and evaluation run under `catch_unwind`; a panic in the
//!   interpreter becomes an error. A result that is not a `bool` is
//!   [`ConditionError::WrongType`].
//! - **Time.** [`Condition::evaluate_time`] (timer steps' `until_expr`) accepts a timestamp,
//!   an RFC 3339 string or an int of milliseconds since the Unix epoch. The crate is built
//!   without cel's `chrono` feature (it would pull in `chrono-tz`), so this module registers its
//!   own `timestamp(string)`, comparable with `<`, `==`, ...; with the feature on, cel's own
//!   `timestamp` wins and is accepted too. There is no `duration` and no `now`: the engine core
//!   reads no clock.
//! - **`matches`** (regular expressions) exists when cel is built with its `regex` feature,
//!   as the workspace builds it (`Cargo.toml`: `features = ["json", "regex"]`). cel compiles
//!   the pattern with the `regex` crate at every call, with that crate's defaults: no
//!   backtracking (a match takes time linear in the text for a given pattern), and a pattern
//!   whose compiled form would pass the crate's default size limit is an evaluation error.
//!   The limits this module adds: a pattern written in the source is bounded by
//!   [`MAX_SOURCE_LEN`]; inside a comprehension, each `matches` call is charged the size of
//!   its operands against the budget (below). Built without the feature, a condition that
//!   calls `matches` is refused at compile time with a message saying so, rather than
//!   failing at every evaluation.
//! - **Both feature sets work**: the tests pass with cel's `chrono` feature off (as the
//!   workspace has it) and on, and with its `regex` feature on (as the workspace has it) and
//!   off.
//!
//! # Evaluation budget
//!
//! A condition is evaluated inside the coordinator's partition loop, on data users send, so
//! no evaluation may take long, whatever the data. Each evaluation has a budget of
//! [`MAX_EVALUATION_COST`] units, counted as it runs:
//!
//! - one per JSON value converted from the context (`context.items` converts the whole list);
//! - for each comprehension (`all`, `exists`, `exists_one`, `map`, `filter`), the size of
//!   what it iterates times the number of expression nodes of its body, charged before its
//!   first iteration, so a loop that cannot finish within the budget never starts;
//! - in an expression with a comprehension, the size of each operand of `==`, `!=`, `in`,
//!   `+`, `contains`, `startsWith`, `endsWith` and `matches` (elements of a list or map, one
//!   per 64 bytes of a string), since each of these costs O(size) per iteration.
//!
//! Past the budget the evaluation stops with [`ConditionError::Evaluate`] ("over its
//! budget"): the edge is not taken and the engine emits `ConditionFailed`, exactly as for
//! any other evaluation error, even when the over-budget part sat under `||` or `&&`. A
//! comprehension over `n` items with a body of `b` nodes costs about `n × b` units; nested
//! ones multiply: `context.items.exists(i, i.price > 100)` is fine up to tens of thousands of
//! items, `all` over `all` up to a few hundred. The budget bounds an evaluation to tens of
//! milliseconds in a release build (`budget_stops_a_hostile_nested_comprehension`: the
//! nested comprehension over 4,000 items that took 5.5 s without a budget, 78.7 s in a
//! debug build, is stopped early: its seven hostile forms took 0.25 s together in a debug
//! build on the 2-core dev machine under load; the test asks for 100 ms each in a release
//! build, 1 s in a debug one).
//!
//! # Performance
//!
//! The context is not converted as a whole: `context` is bound to a lazy view of the JSON map
//! (a custom cel `Val`), and only the values an expression reaches are converted to CEL values
//! (strings are borrowed, not copied; an object or array reached is converted as a whole). An
//! evaluation therefore costs O(what it reads), not O(context). The price: `{...} == context`
//! with the map literal on the left is false (cel's maps only compare with their own kind);
//! `context == {...}` works.
//!
//! Measured on the 2-core dev machine, release build (`timings` test, run with
//! `cargo test --release -- --nocapture timings`): compiling
//! `context.score >= 80 && context.approved == true` takes ≈ 75–100 µs (cel's ANTLR parser;
//! done once per definition). Evaluating it takes ≈ 2–2.5 µs, the same against a 4-key and a
//! 1,004-key context; `context.score >= 80` alone ≈ 1.8 µs, the literal `true` ≈ 0.5 µs, of
//! which ≈ 0.2 µs is the per-evaluation cel `Context`. Converting the 1,004-key context as a
//! whole would instead cost ≈ 1.4 ms per evaluation.
//!
//! # Layout
//!
//! - `compiled`: [`Condition`] and [`ConditionError`]: compiling and evaluating;
//! - `check`: what a source may be and name, checked when it is compiled;
//! - `functions`: the CEL environment and the functions added to cel's standard library;
//! - `json`: the lazy view of the context and the conversions to and from CEL values;
//! - `budget`: the metering of evaluations (see "Evaluation budget").

mod budget;
mod check;
mod compiled;
mod functions;
mod json;
#[cfg(test)]
mod tests;

pub use budget::MAX_EVALUATION_COST;
pub use check::{MAX_DEPTH, MAX_SOURCE_LEN};
pub use compiled::{Condition, ConditionError};

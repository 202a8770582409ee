//! A compiled condition: compiling a source (checked, then metered when it has loops) and
//! evaluating it against a context, to a bool or a point in time, with every failure and
//! panic turned into a [`ConditionError`].

use std::borrow::Cow;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::budget::{budgeted, over, over_budget, reset_budget};
use super::check::{check_tree, CONTEXT_VAR, MAX_SOURCE_LEN};
use super::functions::{env, parse_rfc3339, Instant};
use super::json::{describe, to_json, JsonObject};
use cel::common::ast::IdedExpr;
use cel::common::types::{CelBool, CelInt, CelString, CelUInt};
use cel::common::value::Val;
use cel::{Context, Program};
use serde_json::{Map, Value as Json};

/// A compiled condition: a CEL expression over the variable `context`.
///
/// Cheap to clone (the compiled program is shared); `Debug` prints the source.
#[derive(Clone)]
pub struct Condition {
    inner: Arc<Compiled>,
}

pub(super) struct Compiled {
    source: String,
    program: Program,
    /// The expression with its costly parts metered ([`budgeted`]), when it has loops.
    budgeted: Option<IdedExpr>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition")
            .field(&self.inner.source)
            .finish()
    }
}

/// Why a condition could not be compiled or evaluated.
///
/// The engine treats any error at evaluation as "the edge is not taken".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// The source is not a valid condition: a CEL syntax error (with line and column), an empty
    /// or oversized source, an unknown variable, or a function this build lacks.
    #[error("condition `{source_text}` does not compile: {message}")]
    Compile {
        /// The condition's source.
        source_text: String,
        /// What is wrong, and where.
        message: String,
    },
    /// Evaluation failed: a missing key, a type mismatch, no such overload, ...
    #[error("condition `{source_text}` failed: {message}")]
    Evaluate {
        /// The condition's source.
        source_text: String,
        /// cel's description of the failure.
        message: String,
    },
    /// Evaluation succeeded but produced a value of the wrong type.
    #[error("condition `{source_text}` gave {found}, not {expected}")]
    WrongType {
        /// The condition's source.
        source_text: String,
        /// What the caller needed: `"a bool"` or `"a point in time"`.
        expected: &'static str,
        /// The type (and a short rendering) of what it got, e.g. `int 42`.
        found: String,
    },
}

impl Condition {
    /// Compiles `source`; done once, when a definition is registered.
    ///
    /// Fails with [`ConditionError::Compile`] for an empty or whitespace-only source, a source
    /// longer than [`MAX_SOURCE_LEN`] bytes, a CEL syntax error (cel's message, with line and
    /// column), an expression deeper than [`MAX_DEPTH`], an identifier other than `context`
    /// (and the variables of macros such as `all(x, ...)`), or a call to `matches` when cel's
    /// `regex` feature is off. Never panics, whatever the input.
    pub fn compile(source: &str) -> Result<Condition, ConditionError> {
        let error = |message: String| ConditionError::Compile {
            source_text: source.to_owned(),
            message,
        };
        if source.trim().is_empty() {
            return Err(error("the condition is empty".to_owned()));
        }
        if source.len() > MAX_SOURCE_LEN {
            return Err(error(format!(
                "the condition is {} bytes long, more than the {MAX_SOURCE_LEN} allowed",
                source.len()
            )));
        }
        let env = env();
        let program = match catch_unwind(AssertUnwindSafe(|| env.env.compile(source))) {
            Ok(Ok(program)) => program,
            Ok(Err(errors)) => return Err(error(errors.to_string())),
            Err(panic) => {
                return Err(error(format!(
                    "the CEL parser failed on this input ({})",
                    panic_message(panic.as_ref())
                )))
            }
        };
        check_tree(program.expression()).map_err(error)?;
        if !env.has_matches && program.references().has_function("matches") {
            return Err(error(
                "`matches` (regular expressions) is not available: the `cel` crate is built \
                 without its `regex` feature"
                    .to_owned(),
            ));
        }
        // The tree is at most MAX_DEPTH deep (checked above), so the recursive rewrite is safe.
        let budgeted = budgeted(program.expression());
        Ok(Condition {
            inner: Arc::new(Compiled {
                source: source.to_owned(),
                program,
                budgeted,
            }),
        })
    }

    /// The source the condition was compiled from.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Evaluates the condition against an instance context, bound to the variable `context`.
    ///
    /// `Ok(true)`/`Ok(false)` when the expression yields a bool; [`ConditionError::WrongType`]
    /// when it yields anything else; [`ConditionError::Evaluate`] for any evaluation error
    /// (a missing key, a type mismatch, no such overload, ...). Never panics.
    pub fn evaluate(&self, context: &Map<String, Json>) -> Result<bool, ConditionError> {
        self.run(context, |value| {
            value
                .downcast_ref::<CelBool>()
                .map(|b| *b.inner())
                .ok_or_else(|| Failure::WrongType("a bool", describe(value)))
        })
    }

    /// Evaluates the condition to a point in time, in milliseconds since the Unix epoch: for
    /// timer steps' `until_expr`.
    ///
    /// Accepts a CEL timestamp (`timestamp('2030-01-01T00:00:00Z')`), an RFC 3339 string, or an
    /// int (already milliseconds since the epoch). Anything else is
    /// [`ConditionError::WrongType`]; a string that is not RFC 3339 is
    /// [`ConditionError::Evaluate`].
    pub fn evaluate_time(&self, context: &Map<String, Json>) -> Result<i64, ConditionError> {
        self.run(context, |value| {
            if let Some(instant) = value.downcast_ref::<Instant>() {
                return Ok(instant.0.timestamp_millis());
            }
            if let Some(i) = value.downcast_ref::<CelInt>() {
                return Ok(*i.inner());
            }
            if let Some(u) = value.downcast_ref::<CelUInt>() {
                return i64::try_from(*u.inner()).map_err(|_| {
                    Failure::Evaluate(format!("{} is out of range for a time", u.inner()))
                });
            }
            if let Some(s) = value.downcast_ref::<CelString>() {
                return parse_rfc3339(s.inner()).map_err(Failure::Evaluate);
            }
            // cel's own timestamp (its `chrono` feature): its JSON form is RFC 3339.
            if value.get_type().name() == "google.protobuf.Timestamp" {
                if let Some(Json::String(s)) = to_json(value) {
                    return parse_rfc3339(&s).map_err(Failure::Evaluate);
                }
            }
            Err(Failure::WrongType("a point in time", describe(value)))
        })
    }

    /// Evaluates the expression to a correlation key, for event steps' `correlation`: a
    /// string as it is, an int, uint or bool as its JSON text. Anything else (null, a list,
    /// a map, a double) is [`ConditionError::WrongType`]: a key must compare exactly.
    pub fn evaluate_key(&self, context: &Map<String, Json>) -> Result<String, ConditionError> {
        self.run(context, |value| match to_json(value) {
            Some(Json::String(s)) => Ok(s),
            Some(Json::Bool(b)) => Ok(b.to_string()),
            Some(Json::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
            _ => Err(Failure::WrongType(
                "a string, an integer or a bool",
                describe(value),
            )),
        })
    }

    /// Evaluates the expression to user or group names: for human steps' `assignee_expr`
    /// and `candidates_expr`. A string is one name; a list must hold only strings. Empty or
    /// whitespace-only names are dropped. Anything else is [`ConditionError::WrongType`].
    pub fn evaluate_names(
        &self,
        context: &Map<String, Json>,
    ) -> Result<Vec<String>, ConditionError> {
        self.run(context, |value| {
            let wrong = || Failure::WrongType("a name or a list of names", describe(value));
            let names = match to_json(value) {
                Some(Json::String(s)) => vec![s],
                Some(Json::Array(items)) => items
                    .into_iter()
                    .map(|item| match item {
                        Json::String(s) => Ok(s),
                        _ => Err(wrong()),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err(wrong()),
            };
            Ok(names
                .into_iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect())
        })
    }

    /// Runs the program against `context` under the budget and hands the result to
    /// `extract`, all under `catch_unwind`.
    fn run<T>(
        &self,
        context: &Map<String, Json>,
        extract: impl FnOnce(&dyn Val) -> Result<T, Failure>,
    ) -> Result<T, ConditionError> {
        reset_budget();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut ctx = Context::with_env(Arc::clone(&env().env));
            ctx.add_variable_as_val(CONTEXT_VAR, Box::new(JsonObject::new(context)));
            let expression = self
                .inner
                .budgeted
                .as_ref()
                .unwrap_or_else(|| self.inner.program.expression());
            let result = cel::Value::resolve_val(expression, &ctx);
            // `||` and `&&` absorb errors (`error || true` is true): a metered part that
            // went over the budget still makes the whole evaluation an error.
            if over() {
                return Err(Failure::Evaluate(over_budget().to_string()));
            }
            match result {
                Ok(value) => extract(value.as_ref()),
                Err(error) => Err(Failure::Evaluate(error.to_string())),
            }
        }));
        let source_text = || self.inner.source.clone();
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(Failure::Evaluate(message))) => Err(ConditionError::Evaluate {
                source_text: source_text(),
                message,
            }),
            Ok(Err(Failure::WrongType(expected, found))) => Err(ConditionError::WrongType {
                source_text: source_text(),
                expected,
                found,
            }),
            Err(panic) => Err(ConditionError::Evaluate {
                source_text: source_text(),
                message: format!(
                    "the CEL interpreter failed ({})",
                    panic_message(panic.as_ref())
                ),
            }),
        }
    }
}

/// An evaluation failure, before the source is attached.
pub(super) enum Failure {
    Evaluate(String),
    WrongType(&'static str, String),
}

pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> Cow<'_, str> {
    if let Some(s) = panic.downcast_ref::<&str>() {
        Cow::Borrowed(s)
    } else if let Some(s) = panic.downcast_ref::<String>() {
        Cow::Borrowed(s.as_str())
    } else {
        Cow::Borrowed("panic")
    }
}

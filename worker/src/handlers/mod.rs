//! The built-in handlers: machine steps that need no Rust, so a workflow written only in
//! YAML can run on `weir-worker`, `weir run` and `weir demo`.
//!
//! | handler | config | what it does |
//! |---------|--------|--------------|
//! | `noop`  | none | nothing; succeeds |
//! | `set`   | an object | writes each top-level key of the object into the context |
//! | `sleep` | `duration: 2s` | waits (cancelled by the step's `timeout`) |
//! | `fail`  | `times: N` (-1 always, the default), `kind`, `message`, `retryable` | fails the first N attempts |
//! | `log`   | `message`, `level` | logs through `tracing` with the context's keys |
//! | `http`  | `method`, `url`, `headers`, `body`, `expected_status`, `output` | calls an HTTP service; the response body goes into the context |
//!
//! A configuration a handler cannot use is a non-retryable error of kind `config` whose
//! message says what to write instead: retrying cannot fix a definition, and no handler
//! panics on what an author wrote.
//!
//! `log` messages and `http` URLs may name context values as `{key}` or `{key.field}`; see
//! [`render`].

mod fail;
mod http;
mod log;
mod noop;
mod set;
mod sleep;

use serde_json::{Map, Value};
use weir::{Handlers, StepContext, StepError};

pub use fail::Fail;
pub use http::{Http, HttpPolicy};
pub use log::Log;
pub use noop::Noop;
pub use set::Set;
pub use sleep::Sleep;

/// The names of the built-in handlers, sorted.
pub const BUILTIN_NAMES: [&str; 6] = ["fail", "http", "log", "noop", "set", "sleep"];

/// The error kind of a configuration a handler cannot use (never retried).
pub const CONFIG_ERROR: &str = "config";

/// Every built-in handler under its name: `noop`, `set`, `sleep`, `fail`, `log`, `http`
/// (with the default [`HttpPolicy`]).
pub fn builtin_handlers() -> Handlers {
    builtin_handlers_with(HttpPolicy::default())
}

/// Every built-in handler, `http` under this policy.
pub fn builtin_handlers_with(http: HttpPolicy) -> Handlers {
    let mut h = Handlers::new();
    h.register("noop", Noop)
        .register("set", Set)
        .register("sleep", Sleep)
        .register("fail", Fail)
        .register("log", Log)
        .register("http", Http::with_policy(http));
    h
}

/// A non-retryable `config` error of `handler` in step `ctx.step()`.
pub(crate) fn config_error(
    ctx: &StepContext,
    handler: &str,
    message: impl AsRef<str>,
) -> StepError {
    StepError::fatal(
        CONFIG_ERROR,
        format!(
            "step {:?}: `{handler}` config: {}",
            ctx.step(),
            message.as_ref()
        ),
    )
}

/// The step's config as an object; `null` (no config) is an empty object.
pub(crate) fn config_object(
    ctx: &StepContext,
    handler: &str,
) -> Result<Map<String, Value>, StepError> {
    match ctx.config() {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map.clone()),
        other => Err(config_error(
            ctx,
            handler,
            format!("expected an object of settings, got {}", json_type(other)),
        )),
    }
}

/// An optional string setting.
pub(crate) fn opt_string(
    ctx: &StepContext,
    handler: &str,
    config: &Map<String, Value>,
    key: &str,
) -> Result<Option<String>, StepError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(config_error(
            ctx,
            handler,
            format!("`{key}` must be a string, got {}", json_type(other)),
        )),
    }
}

/// The JSON type name of a value, for messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A piece of a template: literal text, or a `{key.path}` placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Literal text (`{{` and `}}` already turned into single braces).
    Text(&'a str),
    /// A placeholder: its dotted path, and the placeholder as written (braces included).
    Key(&'a str, &'a str),
}

/// Splits a template into literal text and `{key}` placeholders. `{{` and `}}` are literal
/// braces; a lone `}` is literal, and a `{` with no closing brace is literal to the end.
pub(crate) fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let tail = &rest[open..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push(Piece::Text(&tail[..1]));
            rest = &tail[2..];
            continue;
        }
        if let Some(after) = tail.strip_prefix('}') {
            out.push(Piece::Text("}"));
            rest = after;
            continue;
        }
        let Some(close) = tail.find('}') else {
            out.push(Piece::Text(tail));
            return out;
        };
        out.push(Piece::Key(&tail[1..close], &tail[..=close]));
        rest = &tail[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// A context value as template text: strings as they are, other values as JSON.
pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces `{key}` and `{key.field.sub}` in `template` with context values: strings as
/// they are, other values as JSON. A placeholder whose value is missing is left as written,
/// so a typo shows in the output instead of vanishing. `{{` and `}}` are literal braces.
///
/// The values are the instance's data, often from users: never render them raw into
/// something that has a syntax (the `http` handler renders URLs part by part).
pub fn render(template: &str, ctx: &StepContext) -> String {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Key(path, written) => match lookup(ctx, path) {
                Some(v) => out.push_str(&value_text(v)),
                None => out.push_str(written),
            },
        }
    }
    out
}

/// A context value by dotted path (`expense.amount`).
pub(crate) fn lookup<'a>(ctx: &'a StepContext, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let first = parts.next().filter(|p| !p.is_empty())?;
    let mut v = ctx.get(first.trim())?;
    for part in parts {
        v = match v {
            Value::Object(m) => m.get(part.trim())?,
            Value::Array(a) => a.get(part.trim().parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the handlers' tests.

    use std::sync::Arc;

    use serde_json::Value;
    use weir::{Context, StepContext};

    /// A context for attempt `attempt` of step `step` with this config and instance context.
    pub(crate) fn ctx(step: &str, attempt: u32, config: Value, context: Value) -> StepContext {
        let context: Context = match context {
            Value::Object(m) => m,
            _ => Context::new(),
        };
        StepContext::new(
            Arc::from("i-1"),
            Arc::from(step),
            attempt,
            Arc::new(config),
            Arc::new(context),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::testing::ctx;
    use super::*;

    #[test]
    fn registers_every_builtin() {
        let h = builtin_handlers();
        assert_eq!(h.names(), BUILTIN_NAMES.to_vec());
    }

    #[test]
    fn render_replaces_known_keys_and_keeps_unknown_ones() {
        let c = ctx(
            "s",
            1,
            Value::Null,
            json!({ "who": "ann", "expense": { "amount": 12.5, "tags": ["a", "b"] } }),
        );
        assert_eq!(render("hi {who}", &c), "hi ann");
        assert_eq!(render("{expense.amount} EUR", &c), "12.5 EUR");
        assert_eq!(render("tag {expense.tags.1}", &c), "tag b");
        assert_eq!(render("{missing} {who", &c), "{missing} {who");
        assert_eq!(render("{{who}} }}", &c), "{who} }");
        assert_eq!(
            render("{expense}", &c),
            r#"{"amount":12.5,"tags":["a","b"]}"#
        );
        assert_eq!(render("", &c), "");
        assert_eq!(render("{}", &c), "{}");
        assert_eq!(render("é{who}ü", &c), "éannü");
    }

    #[test]
    fn config_must_be_an_object_or_absent() {
        let c = ctx("s", 1, json!("nope"), json!({}));
        let e = config_object(&c, "set").unwrap_err();
        assert_eq!(e.kind, CONFIG_ERROR);
        assert!(!e.retryable);
        assert!(e.message.contains("expected an object"), "{}", e.message);
        assert!(config_object(&ctx("s", 1, Value::Null, json!({})), "x")
            .unwrap()
            .is_empty());
    }
}

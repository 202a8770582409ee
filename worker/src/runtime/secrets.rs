//! Secret references in step configs, resolved on the worker so that no secret is stored
//! in a definition (definitions are readable through the API).
//!
//! Any string in a step's `config` may contain `{env:NAME}` (the worker's environment
//! variable `NAME`) or `{secret:NAME}` (the entry `NAME` of the worker's secrets file,
//! `weir-worker --secrets-file`). They are replaced before the handler runs, for every
//! handler, built-in or not:
//!
//! ```yaml
//! config:
//!   headers: { Authorization: "Bearer {env:PAYMENTS_TOKEN}" }
//! ```
//!
//! A reference the worker cannot resolve fails the attempt with kind [`SECRET_KIND`], not
//! retried (retrying on the same worker cannot help); the message names the reference,
//! never a value. The secrets file has one `NAME=value` per line; blank lines and lines
//! starting with `#` are ignored, and the value is taken as is (no quotes, no escapes).
//!
//! The values reach only the handler: they are not in the definition, the step message or
//! the history. A handler that copies its config into its output or an error message would
//! put them there: the built-in `http` handler quotes the URL in its errors, so put
//! secrets in headers, not in URLs.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use weir::StepError;

/// The error kind of a step whose config names a secret the worker does not have.
pub const SECRET_KIND: &str = "secret";

/// The secrets a worker resolves: its environment, and the entries of its secrets file.
#[derive(Clone, Default)]
pub struct Secrets {
    file: HashMap<String, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the values are secret.
        let mut names: Vec<&String> = self.file.keys().collect();
        names.sort();
        f.debug_struct("Secrets").field("file", &names).finish()
    }
}

/// Why a secrets file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The file cannot be read.
    #[error("cannot read the secrets file {path}: {message}")]
    Unreadable {
        /// The secrets file's path.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// A line is not `NAME=value`.
    #[error(
        "secrets file {path}, line {line}: expected NAME=value (NAME of letters, digits and _)"
    )]
    BadLine {
        /// The secrets file's path.
        path: String,
        /// The line number (from 1).
        line: usize,
    },
}

impl Secrets {
    /// Only the environment.
    pub fn from_env() -> Secrets {
        Secrets::default()
    }

    /// The environment and the entries of this file.
    pub fn from_file(path: &Path) -> Result<Secrets, SecretsError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SecretsError::Unreadable {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        Secrets::parse(&text, &shown)
    }

    /// The environment and the entries of this text (a secrets file's content).
    pub fn parse(text: &str, path: &str) -> Result<Secrets, SecretsError> {
        let mut file = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((name, value)) = trimmed.split_once('=') else {
                return Err(SecretsError::BadLine {
                    path: path.into(),
                    line: n + 1,
                });
            };
            let name = name.trim();
            if !valid_name(name) {
                return Err(SecretsError::BadLine {
                    path: path.into(),
                    line: n + 1,
                });
            }
            file.insert(
                name.to_string(),
                value.trim_end_matches(['\r', '\n']).to_string(),
            );
        }
        Ok(Secrets { file })
    }

    /// `config` with every reference replaced; an error names the first one missing.
    pub fn resolve(&self, step: &str, config: &Value) -> Result<Value, StepError> {
        Ok(match config {
            Value::String(s) => Value::String(self.resolve_str(step, s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve(step, v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (k, v) in map {
                    out.insert(k.clone(), self.resolve(step, v)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    /// Whether any string in `config` names a secret (so most configs are not copied).
    pub fn mentions(config: &Value) -> bool {
        match config {
            Value::String(s) => s.contains("{env:") || s.contains("{secret:"),
            Value::Array(items) => items.iter().any(Secrets::mentions),
            Value::Object(map) => map.values().any(Secrets::mentions),
            _ => false,
        }
    }

    fn resolve_str(&self, step: &str, s: &str) -> Result<String, StepError> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        loop {
            let next = [("{env:", true), ("{secret:", false)]
                .into_iter()
                .filter_map(|(p, env)| rest.find(p).map(|i| (i, p, env)))
                .min_by_key(|(i, _, _)| *i);
            let Some((at, prefix, env)) = next else {
                out.push_str(rest);
                return Ok(out);
            };
            let after = &rest[at + prefix.len()..];
            let Some(close) = after.find('}') else {
                out.push_str(rest);
                return Ok(out);
            };
            let name = &after[..close];
            if !valid_name(name) {
                // Not a reference (e.g. literal text): keep it.
                out.push_str(&rest[..at + prefix.len()]);
                rest = after;
                continue;
            }
            out.push_str(&rest[..at]);
            let value = if env {
                std::env::var(name).ok()
            } else {
                self.file.get(name).cloned()
            };
            let Some(value) = value else {
                let (written, fix) = if env {
                    (
                        format!("{{env:{name}}}"),
                        format!("set the environment variable {name} on the workers"),
                    )
                } else {
                    (
                        format!("{{secret:{name}}}"),
                        format!("add {name}=... to the workers' --secrets-file"),
                    )
                };
                return Err(StepError::fatal(
                    SECRET_KIND,
                    format!("step {step:?}: its config names {written}, which this worker does not have: {fix}"),
                ));
            };
            out.push_str(&value);
            rest = &after[close + 1..];
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn references_are_replaced_and_a_missing_one_is_a_secret_error() {
        let secrets = Secrets::parse("# comment\n\nTOKEN=abc=def\n", "f").unwrap();
        let out = secrets
            .resolve(
                "s",
                &json!({ "h": { "a": "Bearer {secret:TOKEN}" }, "l": ["{secret:TOKEN}", 3], "x": "{env:no space}" }),
            )
            .unwrap();
        assert_eq!(
            out,
            json!({ "h": { "a": "Bearer abc=def" }, "l": ["abc=def", 3], "x": "{env:no space}" })
        );
        let e = secrets
            .resolve("s", &json!({ "a": "{env:WEIR_TEST_SURELY_UNSET_VAR}" }))
            .unwrap_err();
        assert_eq!(e.kind, SECRET_KIND);
        assert!(!e.retryable);
        assert!(
            e.message.contains("WEIR_TEST_SURELY_UNSET_VAR"),
            "{}",
            e.message
        );
        let e = secrets.resolve("s", &json!("{secret:OTHER}")).unwrap_err();
        assert!(e.message.contains("--secrets-file"), "{}", e.message);
        assert!(Secrets::mentions(&json!({ "a": ["{env:X}"] })));
        assert!(!Secrets::mentions(&json!({ "a": ["{x}"] })));
    }

    #[test]
    fn a_bad_line_names_its_number_and_debug_shows_no_value() {
        let e = Secrets::parse("A=1\nnot a pair\n", "s.env").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let s = Secrets::parse("A=hunter2\n", "s.env").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}

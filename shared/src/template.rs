//! Text templates of human tasks: a step's `title` and `description` may name context
//! values, as in `"Approve {employee}'s expense of {amount}"`.
//!
//! A [`Template`] is parsed once, when a definition is registered, and rendered by the
//! core when a task opens ([`Template::render`] is a pure function of the template and the
//! context). The rendered text is stored with the task, so a listing never reads contexts.
//!
//! # Decisions
//!
//! - **Syntax.** `{path}` inserts the context value at `path`: keys separated by dots
//!   (`{receipt.number}`), a key made of letters, digits, `_` and `-`; a key of digits also
//!   indexes an array (`{lines.0.sku}`). `{{` and `}}` write a literal brace, as in Rust's
//!   and Python's format strings. Anything else between braces (`{}`, `{ amount }`,
//!   `{a..b}`), a `{` never closed or a `}` never opened refuses the definition, with the
//!   position and what to write instead.
//! - **Values as text.** A string is inserted as it is; a number, boolean or null as JSON
//!   (`150`, `true`, `null`); an object or array as compact JSON. An inserted value is
//!   never read as a template again, so a value holding `{other}` stays that text. A value
//!   longer than [`MAX_VALUE_CHARS`] characters is cut there, with `…`: a title is a line,
//!   and a task record must stay small whatever the context holds.
//! - **A missing value shows.** A path the context does not have renders as the placeholder
//!   itself (`{employee}`), never as an empty string: the reader sees that something is
//!   missing, and the author sees which key. Rendering never fails.
//! - **Escaping is the surface's job.** The core stores the text as it is (a value may hold
//!   `<script>` or terminal escapes); the dashboard inserts it as text (`textContent`), and
//!   the CLI replaces control characters before printing (see `weir`'s printer).

use std::fmt;

use serde_json::Value;

use crate::model::Context;

/// The longest an inserted value may be, in characters; longer ones are cut, with `…`.
pub const MAX_VALUE_CHARS: usize = 200;

/// A parsed `title` or `description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Path),
}

/// A dotted path into the context: `employee`, `receipt.number`, `lines.0.sku`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    text: String,
    keys: Vec<String>,
}

/// Why a template or a path does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Path {
    /// Parses `employee`, `receipt.number`, `lines.0.sku`: keys of letters, digits, `_`
    /// and `-`, separated by single dots.
    pub fn parse(text: &str) -> Result<Path, TemplateError> {
        let keys: Vec<String> = text.split('.').map(str::to_string).collect();
        let valid_key = |k: &String| {
            !k.is_empty()
                && k.len() <= 128
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        };
        if text.is_empty() || !keys.iter().all(valid_key) {
            return Err(TemplateError {
                message: format!(
                    "{text:?} is not a context path: write keys of letters, digits, '_' or '-' \
                     separated by dots, like employee or receipt.number"
                ),
            });
        }
        Ok(Path {
            text: text.to_string(),
            keys,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path in `context`, if there is one. A key of digits indexes an
    /// array.
    pub fn lookup<'a>(&self, context: &'a Context) -> Option<&'a Value> {
        let (first, rest) = self.keys.split_first()?;
        let mut value = context.get(first)?;
        for key in rest {
            value = match value {
                Value::Object(map) => map.get(key)?,
                Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(value)
    }

    /// The keys, in order.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Template {
    /// Parses a template; done once, when a definition is registered.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, n)| n) == Some('{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().map(|&(_, n)| n) == Some('}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let rest = &source[at + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(TemplateError {
                            message: format!(
                                "the '{{' at character {} is never closed: write {{key}} to \
                                 insert a context value, or {{{{ for a brace",
                                char_position(source, at)
                            ),
                        });
                    };
                    let inner = &rest[..end];
                    let path = Path::parse(inner).map_err(|e| TemplateError {
                        message: format!(
                            "{{{inner}}} at character {}: {} (write {{{{ for a brace)",
                            char_position(source, at),
                            e.message
                        ),
                    })?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Value(path));
                    // Skip the path and its closing brace.
                    while let Some(&(i, _)) = chars.peek() {
                        if i > at + end + 1 {
                            break;
                        }
                        chars.next();
                    }
                }
                '}' => {
                    return Err(TemplateError {
                        message: format!(
                            "the '}}' at character {} closes nothing: write }}}} for a brace",
                            char_position(source, at)
                        ),
                    })
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The paths it names, in order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.parts.iter().filter_map(|p| match p {
            Part::Value(path) => Some(path),
            Part::Text(_) => None,
        })
    }

    /// The text with each `{path}` replaced by its value in `context` (see the module doc:
    /// missing values keep their placeholder, long values are cut).
    pub fn render(&self, context: &Context) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Value(path) => match path.lookup(context) {
                    Some(value) => out.push_str(&value_text(value)),
                    None => {
                        out.push('{');
                        out.push_str(path.as_str());
                        out.push('}');
                    }
                },
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A value as a person reads it in a line of text: a string as it is, anything else as
/// compact JSON, cut to [`MAX_VALUE_CHARS`] characters.
pub fn value_text(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match text.char_indices().nth(MAX_VALUE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The 1-based character position of byte offset `at` in `source`, for messages.
fn char_position(source: &str, at: usize) -> usize {
    source[..at].chars().count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context(v: Value) -> Context {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn renders_values_and_braces() {
        let t = Template::parse("Approve {employee}'s expense of {amount} {{EUR}}").unwrap();
        let ctx = context(json!({"employee": "Ann", "amount": 50}));
        assert_eq!(t.render(&ctx), "Approve Ann's expense of 50 {EUR}");
        let paths: Vec<&str> = t.paths().map(Path::as_str).collect();
        assert_eq!(paths, ["employee", "amount"]);
    }

    #[test]
    fn dotted_paths_and_array_indexes() {
        let t = Template::parse("#{receipt.number}, first {lines.0.sku}").unwrap();
        let ctx = context(json!({"receipt": {"number": "R-7"}, "lines": [{"sku": "A1"}]}));
        assert_eq!(t.render(&ctx), "#R-7, first A1");
    }

    #[test]
    fn missing_values_keep_their_placeholder() {
        let t = Template::parse("{employee} / {receipt.number} / {lines.3}").unwrap();
        let ctx = context(json!({"receipt": 5, "lines": []}));
        assert_eq!(t.render(&ctx), "{employee} / {receipt.number} / {lines.3}");
    }

    #[test]
    fn values_are_text_never_templates() {
        let t = Template::parse("{a} {b} {c} {d}").unwrap();
        let ctx = context(json!({
            "a": "<script>alert(1)</script>",
            "b": "{{b}} {a}",
            "c": "\u{1b}[31mred\u{1b}[0m",
            "d": {"x": [1, true, null]},
        }));
        assert_eq!(
            t.render(&ctx),
            "<script>alert(1)</script> {{b}} {a} \u{1b}[31mred\u{1b}[0m {\"x\":[1,true,null]}"
        );
    }

    #[test]
    fn long_values_are_cut() {
        let t = Template::parse("{a}").unwrap();
        let ctx = context(json!({"a": "é".repeat(1000)}));
        let out = t.render(&ctx);
        assert_eq!(out.chars().count(), MAX_VALUE_CHARS + 1);
        assert!(out.ends_with('…'));
    }

    #[test]
    fn malformed_templates_are_refused_with_a_position() {
        for (source, says) in [
            ("Approve {employee", "character 9 is never closed"),
            ("Approve }", "character 9 closes nothing"),
            ("{}", "is not a context path"),
            ("{ amount }", "is not a context path"),
            ("{a..b}", "is not a context path"),
            ("{a.}", "is not a context path"),
            ("{a b}", "is not a context path"),
            ("é{x!}", "at character 2"),
        ] {
            let err = Template::parse(source).expect_err(source);
            assert!(err.message.contains(says), "{source}: {}", err.message);
        }
        // Plain text and escaped braces are fine.
        for ok in ["", "Approve the expense", "{{}}", "a {{b}} c", "{a-b_c.0}"] {
            Template::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn paths_parse() {
        assert_eq!(
            Path::parse("receipt.number").unwrap().keys(),
            ["receipt", "number"]
        );
        for bad in ["", ".", "a.", ".a", "a b", "a{b}", "ä"] {
            assert!(Path::parse(bad).is_err(), "{bad:?}");
        }
    }
}

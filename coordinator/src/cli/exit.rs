//! Exit codes and the one-line error.
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success |
//! | 1    | an error: bad input, an unreadable file, a refused request, Redis unreachable |
//! | 2    | a usage error (unknown flag, missing argument), reported by clap |
//! | 3    | the workflow ran and ended `failed` or `canceled` (`weir run`) |
//! | 4    | a wait ran out of time (`weir wait --timeout`) |
//! | 130  | interrupted with Ctrl-C |

use std::fmt;
use std::process::ExitCode;

/// Exit code of an error.
pub(crate) const ERROR: u8 = 1;
/// Exit code of a workflow that ended failed or canceled.
pub(crate) const WORKFLOW_FAILED: u8 = 3;
/// Exit code of a wait that ran out of time.
pub(crate) const TIMEOUT: u8 = 4;
/// Exit code after Ctrl-C.
pub(crate) const INTERRUPTED: u8 = 130;

/// An error that carries its own exit code (the others exit with [`ERROR`]).
#[derive(Debug)]
pub(crate) struct Exit {
    /// The exit code.
    pub code: u8,
    /// The line printed on stderr.
    pub message: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

impl Exit {
    /// An error with exit code `code`.
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Exit {
        Exit {
            code,
            message: message.into(),
        }
    }
}

/// Prints `error: ...` as one line on stderr and returns its exit code.
pub(crate) fn report(e: &anyhow::Error) -> ExitCode {
    let code = e.downcast_ref::<Exit>().map_or(ERROR, |x| x.code);
    eprintln!("error: {}", one_line(&chain_text(e)));
    ExitCode::from(code)
}

/// The error and its causes as one text, `error: cause: ...` (anyhow's `{:#}`), leaving out
/// a cause the text already shows: errors that name their source in their own message
/// (`Redis at URL is unreachable or failed: REASON`) also return it as their source, and
/// the reason should be printed once.
pub(crate) fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Folds text onto one line: line breaks and runs of spaces become one space.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_messages_become_one_line() {
        assert_eq!(one_line("a\n  b\r\n\tc  "), "a b c");
    }

    #[test]
    fn a_cause_the_message_already_shows_is_printed_once() {
        let source = std::io::Error::other("connection refused");
        let e = anyhow::Error::new(weir::redis::RedisError::from_redis(
            "redis://127.0.0.1:1",
            redis::RedisError::from(source),
        ))
        .context("cannot list instances");
        let text = chain_text(&e);
        assert_eq!(text.matches("connection refused").count(), 1, "{text}");
        assert!(
            text.starts_with("cannot list instances: Redis at redis://127.0.0.1:1"),
            "{text}"
        );
    }

    #[test]
    fn exit_carries_its_code_through_anyhow() {
        let e = anyhow::Error::new(Exit::new(WORKFLOW_FAILED, "failed"));
        assert_eq!(e.downcast_ref::<Exit>().map(|x| x.code), Some(3));
        let e = anyhow::Error::new(Exit::new(WORKFLOW_FAILED, "failed")).context("run");
        assert_eq!(e.downcast_ref::<Exit>().map(|x| x.code), Some(3));
    }
}

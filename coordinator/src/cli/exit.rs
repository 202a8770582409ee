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
pub const ERROR: u8 = 1;
/// Exit code of a workflow that ended failed or canceled.
pub const WORKFLOW_FAILED: u8 = 3;
/// Exit code of a wait that ran out of time.
pub const TIMEOUT: u8 = 4;
/// Exit code after Ctrl-C.
pub const INTERRUPTED: u8 = 130;

/// An error that carries its own exit code (the others exit with [`ERROR`]).
#[derive(Debug)]
pub struct Exit {
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
    pub fn new(code: u8, message: impl Into<String>) -> Exit {
        Exit {
            code,
            message: message.into(),
        }
    }
}

/// Prints `error: ...` as one line on stderr and returns its exit code.
pub fn report(e: &anyhow::Error) -> ExitCode {
    let code = e.downcast_ref::<Exit>().map_or(ERROR, |x| x.code);
    eprintln!("error: {}", one_line(&format!("{e:#}")));
    ExitCode::from(code)
}

/// Folds text onto one line: line breaks and runs of spaces become one space.
pub fn one_line(text: &str) -> String {
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
    fn exit_carries_its_code_through_anyhow() {
        let e = anyhow::Error::new(Exit::new(WORKFLOW_FAILED, "failed"));
        assert_eq!(e.downcast_ref::<Exit>().map(|x| x.code), Some(3));
        let e = anyhow::Error::new(Exit::new(WORKFLOW_FAILED, "failed")).context("run");
        assert_eq!(e.downcast_ref::<Exit>().map(|x| x.code), Some(3));
    }
}

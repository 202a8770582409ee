//! `weir serve` as a child process of a test, on a free loopback port, against a Redis
//! namespace: the one way the HTTP tests start it.
//!
//! The test crate that runs it passes the binary (`env!("CARGO_BIN_EXE_weir")` exists only
//! in the `weir-coordinator` package's own tests).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::wait_for;

/// How long `weir serve` may take to print its address, and to stop after SIGTERM.
pub const SERVE_DEADLINE: Duration = Duration::from_secs(30);

/// A running `weir serve`, killed when dropped.
pub struct ServeProcess {
    child: Child,
    base: String,
}

impl ServeProcess {
    /// Runs `weir serve --listen 127.0.0.1:0 ARGS` (the binary at `weir`) on namespace
    /// `namespace` of the Redis at `redis_url`, and waits until it prints the address it
    /// listens on.
    pub fn spawn(
        weir: &Path,
        redis_url: &str,
        namespace: &str,
        args: &[&str],
    ) -> anyhow::Result<ServeProcess> {
        let mut child = Command::new(weir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("WEIR_REDIS_URL", redis_url)
            .env("WEIR_NAMESPACE", namespace)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {}", weir.display()))?;
        let Some(stdout) = child.stdout.take() else {
            bail!("weir serve has no stdout");
        };
        // Drop kills it from here on, whatever fails.
        let mut serve = ServeProcess {
            child,
            base: String::new(),
        };
        let (tx, rx) = mpsc::channel();
        // Keep reading stdout after the first line: with the pipe closed, the server's next
        // line to stdout would fail (EPIPE) and could end it in the middle of a test.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(SERVE_DEADLINE).map_err(|_| {
            anyhow!("weir serve did not print its address within {SERVE_DEADLINE:?}")
        })?;
        serve.base = line
            .trim()
            .strip_prefix("weir serve: listening on ")
            .ok_or_else(|| anyhow!("unexpected first line of weir serve: {line:?}"))?
            .to_string();
        Ok(serve)
    }

    /// Where it listens, e.g. `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and returns its exit code once it stopped (`None` when it did not stop
    /// within [`SERVE_DEADLINE`], or ended by a signal).
    pub fn terminate(mut self) -> Option<i32> {
        let _ = crate::process::signal(self.child.id(), "TERM");
        wait_for(SERVE_DEADLINE, "weir serve to stop after SIGTERM", || {
            self.child.try_wait().ok().flatten()
        })
        .ok()?
        .code()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

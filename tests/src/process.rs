//! Weir's own binaries as child processes of a test: a `weir coordinator` or a `weir-worker`
//! against the test's private Redis (one server or a cluster's seed list), killed with
//! SIGKILL like a real crash. The binaries come from the test's own target directory:
//! build them first (`cargo build --workspace --bins`).
//!
//! Each process writes its log (stderr, `RUST_LOG`, `warn` by default) to a file in a
//! temporary directory, whose last lines [`WeirProcess::log_tail`] returns for a failing
//! test's message. A process is killed and reaped when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, ensure, Context};

/// Sends `signal` (`STOP`, `CONT`, `TERM`, ...) to process `pid` with `kill`.
pub fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()?;
    ensure!(status.success(), "kill -{signal} {pid} failed");
    Ok(())
}

/// A binary of the workspace (`weir`, `weir-worker`) next to the running test's
/// (`target/<profile>/deps/<test>` -> `target/<profile>/<name>`).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("no target directory above {}", exe.display()))?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        path.exists(),
        "{} is missing: build the binaries first: cargo build --workspace --bins",
        path.display()
    );
    Ok(path)
}

/// A running `weir coordinator` or `weir-worker` process.
pub struct WeirProcess {
    child: Option<Child>,
    /// Its id (`--id`).
    pub id: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl WeirProcess {
    /// Starts `weir coordinator --id ID --lease LEASE` on `url` and `namespace`.
    pub fn coordinator(
        url: &str,
        namespace: &str,
        id: &str,
        lease: Duration,
    ) -> anyhow::Result<WeirProcess> {
        let lease = format!("{}ms", lease.as_millis());
        Self::spawn(
            "weir",
            url,
            namespace,
            id,
            &["coordinator", "--id", id, "--lease", &lease],
        )
    }

    /// Starts `weir-worker --id ID --concurrency N --visibility-timeout V --grace 1s` (the
    /// built-in handlers) on `url` and `namespace`.
    pub fn worker(
        url: &str,
        namespace: &str,
        id: &str,
        concurrency: usize,
        visibility: Duration,
    ) -> anyhow::Result<WeirProcess> {
        let concurrency = concurrency.to_string();
        let visibility = format!("{}ms", visibility.as_millis());
        Self::spawn(
            "weir-worker",
            url,
            namespace,
            id,
            &[
                "--id",
                id,
                "--concurrency",
                &concurrency,
                "--visibility-timeout",
                &visibility,
                "--grace",
                "1s",
            ],
        )
    }

    fn spawn(
        binary_name: &str,
        url: &str,
        namespace: &str,
        id: &str,
        args: &[&str],
    ) -> anyhow::Result<WeirProcess> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join(format!("{id}.log"));
        let stderr = File::create(&log)?;
        let child = Command::new(binary(binary_name)?)
            .args(args)
            .env("WEIR_REDIS_URL", url)
            .env("WEIR_NAMESPACE", namespace)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {binary_name} {id}"))?;
        Ok(WeirProcess {
            child: Some(child),
            id: id.to_string(),
            log,
            _dir: dir,
        })
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it with SIGKILL (no lease released, nothing acknowledged) and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// `Some(why)` if it exited by itself (a coordinator or worker should not).
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited: {status}", self.id)),
            _ => None,
        }
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for WeirProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

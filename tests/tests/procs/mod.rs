//! `weir coordinator` processes for fault tests: the workspace's built binary, started
//! against a test's private Redis, killed with SIGKILL or frozen with SIGSTOP like a real
//! crash or a VM pause. Build it first: `cargo build --workspace --bins`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use weir::redis::Keys;
use weir_tests::wait_until_async;

// The test crates that use this module use `common` too.
use crate::common::{leased_by, raw};

/// The `weir` binary next to the test binary (`target/<profile>/weir`).
pub fn weir_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> -> target/<profile>/weir
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("the test binary has no target directory")?;
    let bin = dir.join("weir");
    if !bin.exists() {
        bail!(
            "{} is missing: build the binaries first: cargo build --workspace --bins",
            bin.display()
        );
    }
    Ok(bin)
}

/// A running `weir coordinator` process; killed when dropped.
pub struct CoordinatorProcess {
    child: Child,
    /// Its coordinator id (`--id`).
    pub id: String,
}

impl CoordinatorProcess {
    /// Starts `weir coordinator --id ID --lease LEASE` on the namespace.
    pub fn start(url: &str, ns: &str, id: &str, lease: Duration) -> anyhow::Result<Self> {
        let child = Command::new(weir_binary()?)
            .args(["--redis", url, "--namespace", ns, "coordinator", "--id", id])
            .arg("--lease")
            .arg(format!("{}ms", lease.as_millis()))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting weir coordinator")?;
        Ok(CoordinatorProcess {
            child,
            id: id.to_string(),
        })
    }

    /// Sends a signal by name (`STOP`, `CONT`, `KILL`, ...).
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{name} {} failed", self.child.id());
        }
        Ok(())
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for CoordinatorProcess {
    fn drop(&mut self) {
        // A frozen process must be woken to die promptly and be reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two `weir coordinator` processes, `coord-a` and `coord-b`, holding half the partitions
/// each: A starts alone and leases them all, then B joins and takes its half. Returns
/// once both hold their half (each step within 10 s), so a test starts from a balanced,
/// settled pair.
pub async fn two_coordinators_sharing(
    url: &str,
    ns: &str,
    keys: &Keys,
    lease: Duration,
) -> anyhow::Result<(CoordinatorProcess, CoordinatorProcess)> {
    let n = keys.partitions() as usize;
    let conn = raw(url).await?;
    let a = CoordinatorProcess::start(url, ns, "coord-a", lease)?;
    wait_until_async(
        Duration::from_secs(10),
        "A leases every partition",
        async || {
            leased_by(&mut conn.clone(), keys, &a.id)
                .await
                .is_ok_and(|p| p.len() == n)
        },
    )
    .await?;
    let b = CoordinatorProcess::start(url, ns, "coord-b", lease)?;
    wait_until_async(
        Duration::from_secs(10),
        "A and B share the partitions",
        async || {
            let (pa, pb) = (
                leased_by(&mut conn.clone(), keys, &a.id).await,
                leased_by(&mut conn.clone(), keys, &b.id).await,
            );
            matches!((pa, pb), (Ok(pa), Ok(pb)) if pa.len() == n / 2 && pb.len() == n / 2)
        },
    )
    .await?;
    Ok((a, b))
}

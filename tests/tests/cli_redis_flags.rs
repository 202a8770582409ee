//! `--partitions` and `--redis-mode` on the processes' command lines (ARCHITECTURE.md
//! invariant 8): the first process fixes the namespace's count, and a later process given
//! another count exits non-zero saying what to fix. Needs the built binaries:
//! `cargo build --workspace --bins`.

use std::path::PathBuf;
use std::process::{Command, Output};

use anyhow::{bail, Context};
use weir_tests::RedisServer;

/// A binary of the workspace next to the test binary (`target/<profile>/NAME`).
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("the test binary has no target directory")?;
    let bin = dir.join(name);
    if !bin.exists() {
        bail!(
            "{} is missing: build the binaries first: cargo build --workspace --bins",
            bin.display()
        );
    }
    Ok(bin)
}

/// Runs a binary to its end with the given arguments and environment.
fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Output> {
    let mut command = Command::new(binary(name)?);
    command.args(args).env_remove("WEIR_PARTITIONS");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().with_context(|| format!("running {name}"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_process_with_another_partition_count_exits_with_what_to_fix() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let url = redis.url();
    let base = ["--redis", url.as_str(), "--namespace", "flags"];

    // The first process fixes 16 partitions; the same count and no count are accepted.
    let first = run(
        "weir",
        &[&base[..], &["stats", "--partitions", "16"]].concat(),
        &[],
    )?;
    assert!(first.status.success(), "{}", stderr(&first));
    let same = run(
        "weir",
        &[&base[..], &["--redis-mode", "single", "stats"]].concat(),
        &[],
    )?;
    assert!(same.status.success(), "{}", stderr(&same));
    let stored: Option<String> = redis::cmd("HGET")
        .arg("flags:meta")
        .arg("partitions")
        .query(&mut redis.connection()?)?;
    assert_eq!(stored.as_deref(), Some("16"));

    // Another count, by flag or by environment, on `weir` or `weir-worker`: refused.
    let by_flag = run(
        "weir",
        &[&base[..], &["stats", "--partitions", "8"]].concat(),
        &[],
    )?;
    let by_env = run(
        "weir",
        &[&base[..], &["stats"]].concat(),
        &[("WEIR_PARTITIONS", "8")],
    )?;
    let worker = run(
        "weir-worker",
        &[&base[..], &["--partitions", "8"]].concat(),
        &[],
    )?;
    for output in [&by_flag, &by_env, &worker] {
        assert!(!output.status.success(), "accepted another count");
        let text = stderr(output);
        for part in ["has 16 partitions", "configured with 8", "configure 16"] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
    }

    // A count of zero and an unknown mode are usage errors that name the flag.
    let zero = run(
        "weir",
        &[&base[..], &["stats", "--partitions", "0"]].concat(),
        &[],
    )?;
    assert!(!zero.status.success());
    assert!(stderr(&zero).contains("--partitions"), "{}", stderr(&zero));
    let mode = run(
        "weir",
        &[&base[..], &["stats", "--redis-mode", "ring"]].concat(),
        &[],
    )?;
    assert!(!mode.status.success());
    assert!(stderr(&mode).contains("--redis-mode"), "{}", stderr(&mode));
    Ok(())
}

#[test]
fn redis_mode_cluster_on_a_single_server_fails_with_a_clear_error() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let url = redis.url();
    let output = run(
        "weir",
        &[
            "--redis",
            &url,
            "--namespace",
            "m",
            "--redis-mode",
            "cluster",
            "stats",
        ],
        &[],
    )?;
    assert!(
        !output.status.success(),
        "a single server passed as a cluster"
    );
    assert!(!stderr(&output).is_empty());
    Ok(())
}

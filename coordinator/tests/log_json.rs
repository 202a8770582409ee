//! `--log-format json`: every line a service writes on stderr is one JSON object.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use weir_tests::RedisServer;

#[test]
fn coordinator_logs_are_json_lines() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "--redis",
            &redis.url(),
            "--namespace",
            "logs",
            "--log-format",
            "json",
        ])
        .arg("coordinator")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait until it has taken its leases (several lines logged), then stop it gracefully.
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !lines
            .iter()
            .any(|l: &String| l.contains("took partition lease"))
    {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(line);
        }
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait()?;
    lines.extend(rx.try_iter());
    assert!(status.success(), "coordinator exited with {status}");
    assert!(lines.len() >= 3, "too few log lines: {lines:?}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| anyhow::anyhow!("not JSON ({e}): {line}"))?;
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
    }
    assert!(lines.iter().any(|l| l.contains("took partition lease")));
    Ok(())
}

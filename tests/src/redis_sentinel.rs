//! A private Redis Sentinel setup for one test: one primary, one replica and three
//! sentinels (quorum 2), all real processes on free loopback ports.
//!
//! Design notes:
//! - The primary and the replica are [`RedisServer`]s. The replica is made one with
//!   `REPLICAOF` once both run, and the start waits until its link is up.
//! - A sentinel is `redis-server CONFIG --sentinel`; Sentinel rewrites its config file,
//!   so each gets its own in a temporary directory. Short `down-after-milliseconds` and
//!   `failover-timeout` make a promotion take a few seconds.
//! - Dropping the setup kills every process (sentinels first, so none reconfigures the
//!   servers while they go).

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tempfile::TempDir;

use crate::redis_server::{free_port, redis_server_binary, RedisServer};
use crate::wait::wait_until;

/// The name the sentinels know the primary by.
pub const MASTER_NAME: &str = "weirmaster";
/// How long the start waits for the replica and the sentinels to be ready.
pub const READY: Duration = Duration::from_secs(30);
/// How long a wait for a promotion lasts.
pub const FAILOVER: Duration = Duration::from_secs(30);
/// The sentinels' `down-after-milliseconds`: how long the primary may be silent before it
/// is considered down.
pub const DOWN_AFTER_MS: u64 = 1000;

/// One primary, one replica and three sentinels watching them, owned by one test.
#[derive(Debug)]
pub struct RedisSentinel {
    // Declared first so they are dropped (killed) first.
    sentinels: Vec<SentinelProcess>,
    servers: Vec<RedisServer>,
}

impl RedisSentinel {
    /// Starts the servers, makes the second a replica of the first, starts three sentinels
    /// (quorum 2), and waits (up to [`READY`]) until the replica is in sync and every
    /// sentinel knows the replica and the other two sentinels.
    pub fn start() -> anyhow::Result<RedisSentinel> {
        let primary = RedisServer::start()?;
        let replica = RedisServer::start()?;
        let _: () = redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(primary.port())
            .query(&mut replica.connection()?)
            .context("REPLICAOF on the replica")?;
        wait_until(READY, "the replica is in sync with the primary", || {
            replica
                .connection()
                .and_then(|mut c| {
                    Ok(redis::cmd("INFO")
                        .arg("replication")
                        .query::<String>(&mut c)?)
                })
                .is_ok_and(|info| info.contains("master_link_status:up"))
        })?;
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(SentinelProcess::start(primary.port())?);
        }
        let setup = RedisSentinel {
            sentinels,
            servers: vec![primary, replica],
        };
        wait_until(
            READY,
            "every sentinel knows the replica and 2 sentinels",
            || {
                setup.sentinels.iter().all(|s| {
                    s.master_fields().is_ok_and(|f| {
                        field(&f, "num-slaves") == Some("1")
                            && field(&f, "num-other-sentinels") == Some("2")
                    })
                })
            },
        )
        .map_err(|e| anyhow!("{e}\n{}", setup.describe()))?;
        Ok(setup)
    }

    /// The `redis+sentinel://` URL of the setup: every sentinel, then the master name.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// The ports of the sentinels.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// Server `i` (0: the first primary, 1: the first replica).
    pub fn server(&mut self, i: usize) -> &mut RedisServer {
        &mut self.servers[i]
    }

    /// The index of the server the sentinels name as the primary now (the first
    /// sentinel that answers).
    pub fn primary(&self) -> anyhow::Result<usize> {
        let mut last = anyhow!("no sentinel answered");
        for s in &self.sentinels {
            match s.master_port() {
                Ok(port) => {
                    return self
                        .servers
                        .iter()
                        .position(|srv| srv.port() == port)
                        .ok_or_else(|| anyhow!("the sentinels name port {port}, not ours"))
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Kills the primary with SIGKILL and waits (up to [`FAILOVER`]) until every sentinel
    /// names the other server as the primary and that server says it is a master.
    /// Returns the index of the new primary.
    pub fn kill_primary(&mut self) -> anyhow::Result<usize> {
        let old = self.primary()?;
        self.servers[old].kill()?;
        let new = 1 - old;
        let new_port = self.servers[new].port();
        wait_until(FAILOVER, "the sentinels promoted the replica", || {
            self.sentinels
                .iter()
                .all(|s| s.master_port().is_ok_and(|p| p == new_port))
                && self.servers[new]
                    .connection()
                    .and_then(|mut c| {
                        Ok(redis::cmd("INFO")
                            .arg("replication")
                            .query::<String>(&mut c)?)
                    })
                    .is_ok_and(|info| info.contains("role:master"))
        })
        .map_err(|e| anyhow!("{e}\n{}", self.describe()))?;
        Ok(new)
    }

    /// The sentinels' logs, for error messages.
    fn describe(&self) -> String {
        let mut out = String::new();
        for s in &self.sentinels {
            out.push_str(&format!(
                "--- sentinel on port {}:\n{}\n",
                s.port,
                s.log_tail()
            ));
        }
        out
    }
}

/// One `redis-server --sentinel` process with its own config file and directory.
#[derive(Debug)]
struct SentinelProcess {
    port: u16,
    dir: TempDir,
    child: Child,
}

impl SentinelProcess {
    /// Starts a sentinel watching the primary on `primary_port` and waits until it answers.
    fn start(primary_port: u16) -> anyhow::Result<SentinelProcess> {
        let port = free_port()?;
        let dir = tempfile::Builder::new()
            .prefix("weir-sentinel-")
            .tempdir()
            .context("creating a temporary directory for a sentinel")?;
        let config = dir.path().join("sentinel.conf");
        fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {dir}/sentinel.log\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {MASTER_NAME} 5000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = dir.path().display()
            ),
        )
        .context("writing a sentinel config")?;
        let child = Command::new(redis_server_binary())
            .arg(&config)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning redis-server --sentinel")?;
        // From here on, Drop kills the process whatever happens.
        let process = SentinelProcess { port, dir, child };
        let ours = format!("process_id:{}", process.child.id());
        let answered = wait_until(Duration::from_secs(10), "the sentinel answers", || {
            // Ours, not a stranger that took the port.
            process
                .connection()
                .and_then(|mut c| Ok(redis::cmd("INFO").arg("server").query::<String>(&mut c)?))
                .is_ok_and(|info| info.lines().any(|l| l.trim() == ours))
        });
        if let Err(e) = answered {
            bail!("{e}; its log:\n{}", process.log_tail());
        }
        Ok(process)
    }

    /// `SENTINEL MASTER NAME` as field-value pairs.
    fn master_fields(&self) -> anyhow::Result<Vec<(String, String)>> {
        let flat: Vec<String> = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(MASTER_NAME)
            .query(&mut self.connection()?)?;
        Ok(flat
            .chunks(2)
            .filter_map(|c| Some((c.first()?.clone(), c.get(1)?.clone())))
            .collect())
    }

    /// The port of the primary this sentinel names.
    fn master_port(&self) -> anyhow::Result<u16> {
        let (_host, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER_NAME)
            .query(&mut self.connection()?)?;
        Ok(port)
    }

    fn connection(&self) -> anyhow::Result<redis::Connection> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?;
        let con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        con.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(con)
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `name` in field-value pairs.
fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

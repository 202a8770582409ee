//! Test support: a private redis-server per test, waiting with deadlines.
//!
//! The project rule (README, "Testing"): every test that concerns Redis
//! starts its **own** `redis-server` on a free loopback port — never the machine's 6379 —
//! so it can kill and restart it. No mocks of Redis, and no sleep-and-hope: tests wait on
//! a condition with a deadline ([`wait_until`], [`wait_until_async`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use weir_tests::{wait_until, RedisServer};
//!
//! # fn main() -> anyhow::Result<()> {
//! let mut server = RedisServer::builder().aof(true).start()?;
//! let mut con = server.connection()?;
//! redis::cmd("SET").arg("k").arg("v").exec(&mut con)?;
//! server.kill()?; // SIGKILL, like a crash
//! server.restart()?; // same port, same data directory: the AOF brings `k` back
//! wait_until(Duration::from_secs(5), "k is back", || {
//!     server
//!         .connection()
//!         .and_then(|mut c| Ok(redis::cmd("GET").arg("k").query::<Option<String>>(&mut c)?))
//!         .map(|v| v.as_deref() == Some("v"))
//!         .unwrap_or(false)
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! [`RedisServer`] and the sync waits use only std (std::process, threads), so they work
//! from plain `#[test]`s and from `#[tokio::test]`s alike; [`wait_until_async`] and
//! [`cluster`] need a Tokio runtime. [`serve`] runs `weir serve` as a child process, and
//! [`process`] a `weir coordinator` or `weir-worker`; [`load`] starts instances at a steady
//! rate and measures the pause a fault causes.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod cluster;
pub mod load;
pub mod process;
pub mod redis_cluster;
pub mod redis_sentinel;
mod redis_server;
pub mod serve;
mod wait;

pub use redis_cluster::{RedisCluster, RedisClusterBuilder};
pub use redis_sentinel::RedisSentinel;
pub use redis_server::{
    free_port, redis_server_available, redis_server_binary, RedisServer, RedisServerBuilder,
    MISSING_REDIS_SERVER, READY_TIMEOUT, REDIS_SERVER_BIN_ENV,
};
pub use wait::{wait_for, wait_for_async, wait_until, wait_until_async, POLL_INTERVAL};

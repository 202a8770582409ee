//! The coordinator service and the `weir` command's library side.
//!
//! # Layout
//!
//! - [`service`]: the coordinator: partition leases, the per-partition loop that applies
//!   transitions with the pure core (one atomic script call per batch), timers from sorted
//!   sets on the Redis clock, retention of finished instances.
//! - [`serve`]: `weir serve`, the HTTP API (JSON under `/api/v1`) over the Redis client.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod bench;
pub mod serve;
pub mod service;

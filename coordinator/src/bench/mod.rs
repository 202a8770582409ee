//! Benchmarks anyone can rerun (`weir bench local`, `weir bench redis [--cluster | --messages]`): the figures in the
//! README come from here, with the machine and the command beside them.
//!
//! Workloads are the ones the issues name: a 10-step linear workflow of `noop` steps and a
//! 1 -> 8 -> 1 fan-out/join, with events and history on.

pub mod cluster;
mod engines;
pub mod local;
pub mod messages;
pub mod redis;

pub mod report;
pub mod workloads;

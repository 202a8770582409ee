//! `weir`: the Weir command. Runs definitions in-process (`weir run`, `weir demo`), checks
//! and draws definition files (`weir definition ...`), and operates a Redis deployment.
//!
//! Every failure ends with one line on stderr that says what is wrong and what to do, and
//! a non-zero exit code (see [`cli::exit`]); nothing a user types can make it panic.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod cli;

/// The allocator: faster than the system's for the many small buffers of the Redis engine.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}

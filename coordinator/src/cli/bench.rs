//! `weir bench local|redis`: the benchmarks of [`weir_coordinator::bench`], printed.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::printer::out;
use super::Global;
use weir_coordinator::bench::{
    cluster as cluster_bench, local, messages as message_bench, redis as redis_bench, workloads,
};

/// `weir bench ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// The in-process LocalEngine: steps per second, linear and fan-out workloads.
    Local(LocalArgs),
    /// One coordinator and two workers against Redis (its own redis-server by default).
    Redis(RedisArgs),
}

/// `weir bench local`.
#[derive(Debug, Args)]
pub(crate) struct LocalArgs {
    /// Instances per workload.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub instances: usize,
}

/// `weir bench redis`. With `--redis URL` given on the command line it uses that Redis (its
/// namespace `weir-bench` is wiped first) instead of starting a private redis-server.
#[derive(Debug, Args)]
pub(crate) struct RedisArgs {
    /// A quick run with small numbers (the same code paths).
    #[arg(long)]
    pub smoke: bool,
    /// Instead of the full benchmark, the linear workload on one private redis-server and
    /// on a private Redis Cluster of three masters, in alternating rounds.
    #[arg(long, conflicts_with = "messages")]
    pub cluster: bool,
    /// Only the correlated-message phase (also part of the default run): messages per
    /// second to many instances waiting on distinct keys, and the latency from a send to
    /// the next step, at full and at half rate.
    #[arg(long, conflicts_with = "only")]
    pub messages: bool,
    /// Only one phase, with the same numbers as in the whole run: `starts` (single and
    /// batched starts, with Redis's `INFO commandstats` per start) or `retention`.
    #[arg(long, value_name = "PHASE", conflicts_with = "cluster")]
    pub only: Option<redis_bench::Phase>,
}

/// Instances run at once in the local benchmark.
const LOCAL_CONCURRENCY: usize = 64;

/// Runs a `weir bench` command.
pub(crate) async fn run(global: &Global, cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Local(args) => {
            out(&format!(
                "machine: {}",
                weir_coordinator::bench::report::machine()
            ));
            for def in [workloads::linear(10), workloads::fan_out(8)] {
                let r = local::run(def, args.instances.max(1), LOCAL_CONCURRENCY).await?;
                out(&format!(
                    "{}: {} instances, {} steps in {:.2}s = {:.0} steps/s ({} events)",
                    r.workload,
                    r.instances,
                    r.steps,
                    r.elapsed.as_secs_f64(),
                    r.steps_per_second(),
                    r.events
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Redis(args) if args.cluster => {
            anyhow::ensure!(
                !global.redis_given,
                "weir bench redis --cluster starts its own server and cluster; it does not take --redis yet (leave --redis out)"
            );
            let opts = if args.smoke {
                cluster_bench::ClusterBenchOptions::smoke()
            } else {
                cluster_bench::ClusterBenchOptions::full()
            };
            let report = cluster_bench::run(opts).await?;
            out(report.to_string().trim_end());
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Redis(args) => {
            if !args.messages {
                let mut opts = if args.smoke {
                    redis_bench::RedisBenchOptions::smoke()
                } else {
                    redis_bench::RedisBenchOptions::full()
                };
                opts.url = global.redis_given.then(|| global.redis.clone());
                if let Some(phase) = args.only {
                    let report = redis_bench::run_phase(opts, phase).await?;
                    out(report.to_string().trim_end());
                    return Ok(ExitCode::SUCCESS);
                }
                let report = redis_bench::run(opts).await?;
                out(report.to_string().trim_end());
            }
            run_messages(global, &args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The correlated-message phase of `weir bench redis` (alone with `--messages`): its own
/// namespace, coordinator and workers, on the same Redis.
async fn run_messages(global: &Global, args: &RedisArgs) -> anyhow::Result<()> {
    let mut opts = if args.smoke {
        message_bench::MessageBenchOptions::smoke()
    } else {
        message_bench::MessageBenchOptions::full()
    };
    opts.url = global.redis_given.then(|| global.redis.clone());
    if args.messages {
        out(&format!(
            "machine:                          {}",
            weir_coordinator::bench::report::machine()
        ));
    }
    let report = message_bench::run(opts).await?;
    out(report.to_string().trim_end());
    Ok(())
}

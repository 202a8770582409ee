//! The cluster benchmark (`weir bench redis --cluster`): the linear workload (10 `noop`
//! steps, starts included, as in [`super::redis`]) on one private `redis-server` and on a
//! private three-master Redis Cluster, in alternating rounds within the same run, so both
//! see the same machine load.
//!
//! What it reports, per topology: steps per second, the Redis CPU per step (summed over the
//! masters, from each master's `INFO cpu`), each master's share of it, and this process's
//! CPU per step (coordinator, workers and the starting client). From the per-step Redis CPU
//! it derives a capacity estimate: the steps per second at which the busiest master's one
//! thread would be saturated, were each master given its own core. That is a ceiling for
//! Redis only; the coordinator and workers must be scaled out beside it to reach it.
//!
//! Design decisions:
//! - The cluster has three masters and no replicas: the figure sought is the CPU the engine
//!   costs each master, and on a shared machine replicas would compete for the same cores.
//!   Replication (under `--durability replicated` in particular) costs more and is not
//!   measured here.
//! - Both topologies are started by the benchmark on free loopback ports and killed at the
//!   end, so no namespace has to be wiped; each round uses a fresh namespace.
//! - Throughput on a machine with fewer cores than masters plus engine processes cannot
//!   show the cluster scaling: the masters then share the same cores. The per-step Redis
//!   CPU is the figure that carries over to other machines.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weir::redis::{server, RedisConfig, WeirClient};
use weir::Engine;

use super::engines::Engines;
use super::redis::{
    free_port, own_cpu, redis_cpu_per_master, start_many, start_server, wait_completed, OwnServer,
};
use super::workloads;

/// How many masters the benchmark's cluster has.
pub const MASTERS: usize = 3;
/// How long the cluster may take to report `cluster_state:ok` on every node.
const CLUSTER_READY: Duration = Duration::from_secs(30);
/// Concurrent starters of the linear workload (as in [`super::redis`]).
const STARTERS: usize = 32;
/// How long one round may take before the benchmark gives up.
const ROUND_TIMEOUT: Duration = Duration::from_secs(300);

/// What to run.
#[derive(Debug, Clone)]
pub struct ClusterBenchOptions {
    /// Instances of the 10-step linear workflow per round and topology.
    pub instances: usize,
    /// Rounds; each runs the single server, then the cluster.
    pub rounds: usize,
    /// Workers' concurrency each (two workers).
    pub concurrency: usize,
}

impl ClusterBenchOptions {
    /// The full run the README reports.
    pub fn full() -> ClusterBenchOptions {
        ClusterBenchOptions {
            instances: 2000,
            rounds: 3,
            concurrency: 64,
        }
    }

    /// A quick run for CI: the same code paths, small numbers.
    pub fn smoke() -> ClusterBenchOptions {
        ClusterBenchOptions {
            instances: 40,
            rounds: 1,
            concurrency: 16,
        }
    }
}

/// The linear workload on one topology, over every round.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopologyFigures {
    /// Steps completed, over every round.
    pub steps: u64,
    /// Steps per second: steps over the summed round times.
    pub steps_per_second: f64,
    /// Each round's steps per second.
    pub rounds_steps_per_second: Vec<f64>,
    /// Redis CPU per step, summed over the masters, microseconds.
    pub redis_cpu_us_per_step: f64,
    /// Each master's Redis CPU per step, microseconds, by address.
    pub per_master_cpu_us_per_step: Vec<(String, f64)>,
    /// This process's CPU per step (coordinator, workers, client), microseconds.
    pub engine_cpu_us_per_step: f64,
    /// The steps per second at which the busiest master's thread is saturated, were each
    /// master given one core of its own: 1 s over the busiest master's CPU per step.
    pub redis_capacity_steps_per_second: f64,
}

/// The figures of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterBenchReport {
    /// Machine description.
    pub machine: String,
    /// Redis version.
    pub redis_version: String,
    /// Instances per round and topology.
    pub instances: usize,
    /// One redis-server.
    pub single: TopologyFigures,
    /// A Redis Cluster of [`MASTERS`] masters.
    pub cluster: TopologyFigures,
}

impl std::fmt::Display for ClusterBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "machine:  {}", self.machine)?;
        writeln!(f, "redis:    {}", self.redis_version)?;
        writeln!(
            f,
            "linear 10 x noop, starts included, {} instances a round, {} rounds alternating:",
            self.instances,
            self.single.rounds_steps_per_second.len()
        )?;
        for (name, t) in [
            ("one node", &self.single),
            ("cluster, 3 masters", &self.cluster),
        ] {
            let rounds: Vec<String> = t
                .rounds_steps_per_second
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect();
            writeln!(
                f,
                "{name:<20} {:>8.0} steps/s (rounds: {}); redis {:.1} us/step (summed over masters), coordinator+workers+client {:.1} us/step",
                t.steps_per_second,
                rounds.join(", "),
                t.redis_cpu_us_per_step,
                t.engine_cpu_us_per_step
            )?;
            let shares: Vec<String> = t
                .per_master_cpu_us_per_step
                .iter()
                .map(|(node, us)| format!("{node} {us:.1} us"))
                .collect();
            writeln!(
                f,
                "{:<20} per master: {}; Redis capacity, a core per master: {:.0} steps/s",
                "",
                shares.join(", "),
                t.redis_capacity_steps_per_second
            )?;
        }
        Ok(())
    }
}

/// A private Redis Cluster of [`MASTERS`] masters with no replicas; every node is killed
/// on drop.
struct OwnCluster {
    nodes: Vec<OwnServer>,
}

impl OwnCluster {
    /// Starts the nodes with `cluster-enabled yes` (the bus on a second free port, not
    /// port + 10000, which may be taken), joins them with `redis-cli --cluster create`, and
    /// waits until every node reports `cluster_state:ok`.
    fn start() -> anyhow::Result<OwnCluster> {
        let mut nodes = Vec::with_capacity(MASTERS);
        for _ in 0..MASTERS {
            let args: Vec<String> = [
                ("cluster-enabled", "yes".to_string()),
                ("cluster-port", free_port()?.to_string()),
                ("cluster-node-timeout", "5000".to_string()),
            ]
            .into_iter()
            .flat_map(|(name, value)| [format!("--{name}"), value])
            .collect();
            nodes.push(start_server(&args)?);
        }
        let mut cli = Command::new("redis-cli");
        cli.args(["--cluster", "create"]);
        for node in &nodes {
            cli.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = cli
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run redis-cli --cluster create ({e}): install it (apt-get install redis-tools)"))?;
        anyhow::ensure!(
            out.status.success(),
            "redis-cli --cluster create failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + CLUSTER_READY;
        while !nodes
            .iter()
            .all(|node| server::cluster_ready(&node.url(), MASTERS))
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the benchmark's cluster did not report cluster_state:ok within {CLUSTER_READY:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(OwnCluster { nodes })
    }

    /// The nodes' URLs, comma-separated: the seed list `--redis` takes.
    fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(OwnServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One round on one topology: what it measured.
struct Round {
    steps: u64,
    elapsed: Duration,
    redis_cpu: Vec<(String, f64)>,
    engine_cpu: f64,
}

/// Runs the linear workload once against `url`, in namespace `ns`, with its own
/// coordinator and two workers.
async fn linear_round(url: &str, ns: &str, opts: &ClusterBenchOptions) -> anyhow::Result<Round> {
    let config = RedisConfig::new(url, ns);
    let engines = Engines::builtin(&config, opts.concurrency).await?;
    let client = WeirClient::connect(&config).await?;
    let linear = workloads::linear(10);
    client.register_definition(linear.clone()).await?;

    let (redis_before, own_before) = (redis_cpu_per_master(&client).await?, own_cpu());
    let t = Instant::now();
    let measured = async {
        start_many(&client, &linear.name, opts.instances, STARTERS).await?;
        wait_completed(&client, opts.instances as u64, ROUND_TIMEOUT).await
    }
    .await;
    let elapsed = t.elapsed();
    let (redis_after, own_after) = (redis_cpu_per_master(&client).await?, own_cpu());
    engines.stop().await;
    measured?;
    let redis_cpu = redis_after
        .into_iter()
        .map(|(node, after)| {
            let before = redis_before
                .iter()
                .find(|(n, _)| *n == node)
                .map_or(0.0, |(_, b)| *b);
            (node, after - before)
        })
        .collect();
    Ok(Round {
        steps: opts.instances as u64 * 10,
        elapsed,
        redis_cpu,
        engine_cpu: own_after - own_before,
    })
}

/// Sums the rounds of one topology into its figures.
fn figures(rounds: &[Round]) -> TopologyFigures {
    let steps: u64 = rounds.iter().map(|r| r.steps).sum();
    let seconds: f64 = rounds.iter().map(|r| r.elapsed.as_secs_f64()).sum();
    let per_step = |cpu: f64| cpu * 1e6 / steps.max(1) as f64;
    let mut per_master: Vec<(String, f64)> = Vec::new();
    for round in rounds {
        for (node, cpu) in &round.redis_cpu {
            match per_master.iter_mut().find(|(n, _)| n == node) {
                Some((_, total)) => *total += cpu,
                None => per_master.push((node.clone(), *cpu)),
            }
        }
    }
    let per_master: Vec<(String, f64)> = per_master
        .into_iter()
        .map(|(node, cpu)| (node, per_step(cpu)))
        .collect();
    let busiest = per_master.iter().map(|(_, us)| *us).fold(0.0, f64::max);
    TopologyFigures {
        steps,
        steps_per_second: steps as f64 / seconds.max(1e-9),
        rounds_steps_per_second: rounds
            .iter()
            .map(|r| r.steps as f64 / r.elapsed.as_secs_f64().max(1e-9))
            .collect(),
        redis_cpu_us_per_step: per_master.iter().map(|(_, us)| us).sum(),
        per_master_cpu_us_per_step: per_master,
        engine_cpu_us_per_step: per_step(rounds.iter().map(|r| r.engine_cpu).sum()),
        redis_capacity_steps_per_second: if busiest > 0.0 { 1e6 / busiest } else { 0.0 },
    }
}

/// Runs the benchmark: starts one redis-server and a [`MASTERS`]-master cluster, then
/// alternates rounds on each.
pub async fn run(opts: ClusterBenchOptions) -> anyhow::Result<ClusterBenchReport> {
    anyhow::ensure!(
        opts.instances > 0 && opts.rounds > 0,
        "the cluster benchmark needs at least one instance and one round"
    );
    let single = start_server(&[])?;
    let cluster = OwnCluster::start()?;
    let (single_url, cluster_url) = (single.url(), cluster.seeds());
    let redis_version = {
        let client = WeirClient::connect(&RedisConfig::new(&single_url, "weir-bench")).await?;
        let info = server::info_per_master(&client.connections().conn, "server").await?;
        info.first()
            .and_then(|(_, text)| server::info_field(text, "redis_version"))
            .unwrap_or("?")
            .to_string()
    };
    let (mut single_rounds, mut cluster_rounds) = (Vec::new(), Vec::new());
    for round in 0..opts.rounds {
        let ns = format!("weir-bench-r{round}");
        single_rounds.push(linear_round(&single_url, &ns, &opts).await?);
        cluster_rounds.push(linear_round(&cluster_url, &ns, &opts).await?);
    }
    Ok(ClusterBenchReport {
        machine: super::report::machine(),
        redis_version,
        instances: opts.instances,
        single: figures(&single_rounds),
        cluster: figures(&cluster_rounds),
    })
}

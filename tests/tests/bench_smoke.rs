//! The benchmarks in smoke mode: the same code paths as `weir bench`, small numbers, so CI
//! notices when a benchmark breaks. Figures are not asserted beyond sanity: performance
//! claims come from full runs, not from timed tests.

use weir_coordinator::bench::redis::{run, run_phase, Phase, PhaseReport, RedisBenchOptions};
use weir_coordinator::bench::{local, workloads};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_bench_runs_every_step_with_events() -> anyhow::Result<()> {
    let r = local::run(workloads::linear(10), 200, 8).await?;
    assert_eq!(r.instances, 200);
    assert_eq!(r.steps, 2000);
    // WorkflowStarted, 10 x (StepStarted, StepExecuted), WorkflowCompleted.
    assert_eq!(r.events, 200 * 22);
    let r = local::run(workloads::fan_out(8), 100, 8).await?;
    assert_eq!(r.steps, 1000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bench_smoke_measures_everything() -> anyhow::Result<()> {
    let report = run(RedisBenchOptions::smoke()).await?;
    assert!(report.linear_steps_per_second > 0.0, "{report}");
    assert!(report.fanout_steps_per_second > 0.0, "{report}");
    assert!(report.latency_samples > 0, "{report}");
    assert!(report.latency_p99_ms >= report.latency_p50_ms, "{report}");
    // The retention phase ran to its end: every instance it started was deleted.
    assert_eq!(report.retention.instances, 500, "{report}");
    assert!(report.retention.deleted_per_second > 0.0, "{report}");
    // Memory figures are not checked here: at smoke scale the allocator's noise swamps them.
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_phases_run_alone_with_their_redis_commands() -> anyhow::Result<()> {
    let report = run_phase(RedisBenchOptions::smoke(), Phase::Starts).await?;
    let PhaseReport::Starts(s) = &report else {
        anyhow::bail!("not the start phases: {report}");
    };
    assert!(s.single_per_second > 0.0, "{report}");
    assert!(s.batched_per_second > 0.0, "{report}");
    assert!(s.redis_cpu_us_per_batched_start > 0.0, "{report}");
    // `evalsha` first (the whole script), then the commands it ran: one HSET a start.
    assert_eq!(
        s.batched_commands.first().map(|c| c.command.as_str()),
        Some("evalsha"),
        "{report}"
    );
    let hset = s.batched_commands.iter().find(|c| c.command == "hset");
    assert!(
        hset.is_some_and(|c| (c.calls_per_start - 1.0).abs() < 1e-9),
        "{report}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_bench_smoke_measures_both_topologies() -> anyhow::Result<()> {
    use weir_coordinator::bench::cluster::{self, ClusterBenchOptions, MASTERS};
    let report = cluster::run(ClusterBenchOptions::smoke()).await?;
    for t in [&report.single, &report.cluster] {
        assert_eq!(t.steps, 40 * 10, "{report}");
        assert!(t.steps_per_second > 0.0, "{report}");
        assert!(t.redis_cpu_us_per_step > 0.0, "{report}");
        assert!(t.redis_capacity_steps_per_second > 0.0, "{report}");
    }
    // One server reports as one; the cluster's CPU comes from every master, and each of
    // them did some of the work (the partitions spread over the masters).
    assert_eq!(
        report.single.per_master_cpu_us_per_step.len(),
        1,
        "{report}"
    );
    assert_eq!(
        report.cluster.per_master_cpu_us_per_step.len(),
        MASTERS,
        "{report}"
    );
    assert!(
        report
            .cluster
            .per_master_cpu_us_per_step
            .iter()
            .all(|(_, us)| *us > 0.0),
        "{report}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_bench_smoke_delivers_every_message_and_measures_latency() -> anyhow::Result<()> {
    use weir_coordinator::bench::messages::{self, MessageBenchOptions};
    let report = messages::run(MessageBenchOptions::smoke()).await?;
    // Every instance completed (the run fails otherwise), one message each.
    assert_eq!(report.messages, 200, "{report}");
    assert!(report.messages_per_second > 0.0, "{report}");
    assert!(report.full_p99_ms >= report.full_p50_ms, "{report}");
    assert!(report.half_samples > 0, "{report}");
    assert!(report.half_p99_ms >= report.half_p50_ms, "{report}");
    Ok(())
}

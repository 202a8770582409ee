//! The benchmarks in smoke mode: the same code paths as `weir bench`, small numbers, so CI
//! notices when a benchmark breaks. Figures are not asserted beyond sanity: performance
//! claims come from full runs, not from timed tests.

use weir_coordinator::bench::redis::{run, RedisBenchOptions};
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
    // Memory figures are not checked here: at smoke scale the allocator's noise swamps them.
    Ok(())
}

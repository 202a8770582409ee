use weir_coordinator::bench::{local, workloads};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20000);
    for (def, label) in [
        (workloads::linear(10), "linear10"),
        (workloads::fan_out(8), "fanout8"),
    ] {
        let r = local::run(def, n, 64).await?;
        println!(
            "{label}: {} steps in {:?} = {:.0} steps/s, {} events",
            r.steps,
            r.elapsed,
            r.steps_per_second(),
            r.events
        );
    }
    Ok(())
}

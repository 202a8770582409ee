use weir_coordinator::bench::redis::{run, RedisBenchOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let smoke = std::env::args().any(|a| a == "--smoke");
    let mut opts = if smoke {
        RedisBenchOptions::smoke()
    } else {
        RedisBenchOptions::full()
    };
    opts.url = std::env::var("WEIR_BENCH_URL").ok();
    let report = run(opts).await?;
    println!("{report}");
    Ok(())
}

//! `weir coordinator`: runs the coordinator service until SIGINT or SIGTERM, then stops
//! gracefully (finishes its current batches and releases its leases).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use weir::process::{self, Shutdown};

use super::remote::{config, parse_duration, redis_error};
use super::Global;
use weir_coordinator::service::{Coordinator, CoordinatorConfig};

/// `weir coordinator`.
#[derive(Debug, Args)]
pub(crate) struct CoordinatorArgs {
    /// This coordinator's id (unique among live coordinators); random by default.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// How long a partition lease lasts without renewal, e.g. 5s.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub lease: Option<Duration>,
    /// How long finished instances are kept, e.g. 7d or 12h.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub retention: Option<Duration>,
    /// Entries kept per partition event stream (approximately). An entry holds the events
    /// one commit wrote, so at least this many events are kept.
    #[arg(long, value_name = "N")]
    pub events_cap: Option<usize>,
    /// Serve /metrics, /healthz and /readyz on this address, e.g. 127.0.0.1:9464 (off when
    /// unset).
    #[arg(long, env = "WEIR_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Runs `weir coordinator`.
pub(crate) async fn run(global: &Global, args: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    // First of all: a SIGTERM while connecting must stop it gracefully, not kill it.
    let signal = process::shutdown::signal();
    let mut cfg = CoordinatorConfig::new(config(global));
    if let Some(id) = args.id {
        cfg.id = id;
    }
    if let Some(lease) = args.lease {
        cfg.lease = lease;
    }
    if let Some(retention) = args.retention {
        cfg.retention = retention;
    }
    if let Some(cap) = args.events_cap {
        cfg.events_cap = cap;
    }
    let readiness = match args.metrics_addr {
        Some(_) => Some(
            process::coordinator_readiness(&cfg.redis, &cfg.id, cfg.lease)
                .map_err(|e| redis_error(global, e))?,
        ),
        None => None,
    };
    let coordinator = Coordinator::connect(cfg)
        .await
        .map_err(|e| redis_error(global, e))?;
    tracing::info!(
        id = %coordinator.id(),
        redis = %weir::redis::connect::mask_password(&global.redis),
        namespace = %global.namespace,
        "coordinator running; Ctrl-C or SIGTERM stops it"
    );
    let shutdown = Shutdown::new();
    if let (Some(addr), Some(readiness)) = (args.metrics_addr, readiness) {
        let server = process::serve(addr, readiness, shutdown.listener())
            .await
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
        tracing::info!(addr = %server.local_addr(), "metrics and health endpoints");
    }
    let service = tokio::spawn(coordinator.run(shutdown.listener()));
    signal.await;
    tracing::info!("stopping: finishing the current batches, releasing leases");
    shutdown.trigger();
    service
        .await
        .map_err(|e| anyhow::anyhow!("the coordinator stopped abnormally: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

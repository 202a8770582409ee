//! The HTTP server of `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::task::JoinHandle;

use super::readiness::Readiness;
use super::record::install_recorder;
use super::shutdown::{requested, ShutdownListener};

/// How often histograms are compacted when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// A running ops server.
pub struct OpsServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl OpsServer {
    /// The address it listens on (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until it has stopped (after shutdown).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

#[derive(Clone)]
struct AppState {
    handle: PrometheusHandle,
    readiness: Readiness,
}

/// Installs the metrics recorder (once per process), binds `addr`, and serves `/metrics`,
/// `/healthz` and `/readyz` in a spawned task until `shutdown` asks it to stop. Returns once the
/// listener is bound; fails when the address cannot be bound or another global metrics
/// recorder is installed.
pub async fn serve(
    addr: SocketAddr,
    readiness: Readiness,
    shutdown: ShutdownListener,
) -> std::io::Result<OpsServer> {
    let handle = install_recorder().map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} for metrics: {e}"),
        )
    })?;
    let local_addr = listener.local_addr()?;
    let upkeep = handle.clone();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { handle, readiness });
    let task = tokio::spawn(async move {
        let mut upkeep_shutdown = shutdown.clone();
        let upkeep_task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(UPKEEP_EVERY) => upkeep.run_upkeep(),
                    () = requested(&mut upkeep_shutdown) => break,
                }
            }
        });
        let mut shutdown = shutdown;
        let stopped = async move { requested(&mut shutdown).await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(error = %e, "metrics server failed");
        }
        upkeep_task.abort();
    });
    tracing::info!(addr = %local_addr, "serving /metrics, /healthz and /readyz");
    Ok(OpsServer { local_addr, task })
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.handle.render(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match (state.readiness)().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "ready": true }))).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false, "reason": reason })),
        )
            .into_response(),
    }
}

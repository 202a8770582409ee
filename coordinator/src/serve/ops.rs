//! `GET /health` (no token), `GET /me`, and the admin-only operator views: `GET /dlq` (the
//! dead letters, as `weir dlq list --json`) and `GET /stats` (as `weir stats --json`).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use weir::redis::admin;

use super::auth::Caller;
use super::problem::{ApiQuery, Problem};
use super::{openapi, AppState};

/// The default and the largest `limit` of `/dlq`.
const DLQ_DEFAULT: usize = 100;
const DLQ_MAX: usize = 1000;

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Health {
    /// `ok`.
    pub status: String,
}

/// Whether the server runs and reaches Redis.
#[utoipa::path(operation_id = "health", get, path = "/api/v1/health", tag = "ops", security(()),
    responses(
        (status = 200, description = "Up, and Redis answers", body = Health),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn health(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    let c = state.client.connections();
    let pong = weir::redis::server::ping(&mut c.conn.clone()).await;
    match pong {
        Ok(_) => Ok(Json(Health {
            status: "ok".into(),
        })),
        // Unauthenticated: the answer never names the Redis host or user; the log does.
        Err(e) => {
            tracing::warn!(redis = %c.display_url, error = %e, "health check: Redis does not answer");
            Err(Problem::unavailable(format!(
                "Redis does not answer ({})",
                e.category()
            )))
        }
    }
}

/// Who the caller is.
#[utoipa::path(operation_id = "me", get, path = "/api/v1/me", tag = "ops",
    responses(
        (status = 200, description = "The authenticated caller", body = Caller),
        (status = 401, response = openapi::Unauthorized),
    ))]
pub(super) async fn me(caller: Caller) -> Json<Caller> {
    Json(caller)
}

/// `GET /dlq?limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DlqQuery {
    /// At most this many, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// One dead-lettered message.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeadLetter {
    /// `P/STREAM-ID`, as `weir dlq replay|purge` name it.
    pub id: String,
    /// The partition.
    pub partition: u16,
    /// The stream it came from.
    pub source: String,
    /// The consumer group that could not handle it.
    pub group: String,
    /// Its id on the source stream.
    pub message_id: String,
    /// Why it was dead-lettered.
    pub error: String,
    /// How often it was delivered.
    pub deliveries: u64,
    /// Size of the raw message, bytes.
    pub size: usize,
}

/// Dead letters, oldest first per partition (admin only).
#[utoipa::path(operation_id = "list_dead_letters", get, path = "/api/v1/dlq", tag = "ops",
    params(DlqQuery),
    responses(
        (status = 200, description = "Dead letters", body = [DeadLetter]),
        (status = 400, response = openapi::BadRequest),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn dlq(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DlqQuery>,
) -> Result<Json<Vec<DeadLetter>>, Problem> {
    caller.require_admin()?;
    let limit = q.limit.unwrap_or(DLQ_DEFAULT);
    if !(1..=DLQ_MAX).contains(&limit) {
        return Err(Problem::invalid_field(
            "limit",
            format!("limit must be 1 to {DLQ_MAX}"),
        ));
    }
    let letters = admin::dead_letters(state.client.connections(), limit)
        .await
        .map_err(|e| Problem::unavailable(e.to_string()))?;
    Ok(Json(
        letters
            .into_iter()
            .map(|d| DeadLetter {
                id: d.id,
                partition: d.partition,
                source: d.source,
                group: d.group,
                message_id: d.message_id,
                error: d.error,
                deliveries: d.deliveries,
                size: d.size,
            })
            .collect(),
    ))
}

/// Instances per status, queues, consumers, dead letters, leases, live processes and
/// counters: the `weir stats --json` object (admin only).
#[utoipa::path(operation_id = "get_stats", get, path = "/api/v1/stats", tag = "ops",
    responses(
        (status = 200, description = "The `weir stats --json` object", body = Object),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn stats(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<admin::Stats>, Problem> {
    caller.require_admin()?;
    let s = admin::stats(state.client.connections())
        .await
        .map_err(|e| Problem::unavailable(e.to_string()))?;
    Ok(Json(s))
}

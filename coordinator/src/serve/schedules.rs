//! `/schedules`: create, list, show, pause, resume, trigger and delete schedules (admin
//! only: a schedule belongs to the namespace, not to a tenant). The bodies are those of
//! `weir schedule ... --json`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use weir::schedule::{Overlap, ScheduleSpec, Trigger};
use weir::Engine;

use super::auth::Caller;
use super::problem::{ApiJson, Problem};
use super::{openapi, AppState};

/// `POST /schedules`: give `cron` (with an optional `timezone`) or `every`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ScheduleBody {
    /// The name: letters, digits, `_`, `-`, `.` (1 to 100 bytes).
    pub name: String,
    /// The workflow it starts.
    pub workflow: String,
    /// A version; the latest at each firing when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// A cron expression: 5 fields, or 6 with seconds first.
    #[serde(default)]
    pub cron: Option<String>,
    /// The cron expression's IANA time zone (default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
    /// A fixed interval instead, e.g. `30s`, `15m`, `1h`.
    #[serde(default)]
    pub every: Option<String>,
    /// Each instance's initial context (a JSON object).
    #[serde(default)]
    pub data: Option<Value>,
    /// `skip` (default), `allow` or `cancel_previous`.
    #[serde(default)]
    pub overlap: Option<String>,
    /// How many missed slots fire when several are due at once (default 1).
    #[serde(default)]
    pub catch_up: Option<u32>,
}

/// A schedule (as `weir schedule list --json` prints one).
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub(super) struct ScheduleJson(Value);

fn json<T: Serialize>(value: &T) -> Result<Json<ScheduleJson>, Problem> {
    serde_json::to_value(value)
        .map(|v| Json(ScheduleJson(v)))
        .map_err(|e| Problem::unavailable(format!("could not encode the schedule: {e}")))
}

/// Creates a schedule (the same spec again is a no-op; another spec under the name, 409).
#[utoipa::path(operation_id = "create_schedule", post, path = "/api/v1/schedules", tag = "schedules",
    request_body = ScheduleBody,
    responses(
        (status = 201, description = "Created (or the same spec existed)", body = ScheduleJson),
        (status = 400, response = openapi::BadRequest),
        (status = 413, response = openapi::TooLarge),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<(StatusCode, Json<ScheduleJson>), Problem> {
    caller.require_admin()?;
    let trigger = match (body.cron, body.every) {
        (Some(expr), None) => Trigger::Cron {
            expr,
            timezone: body.timezone,
        },
        (None, Some(every)) if body.timezone.is_none() => {
            let d = Problem::duration_field("every", &every)?;
            Trigger::Every {
                every_ms: d.as_millis().min(u128::from(u64::MAX)) as u64,
            }
        }
        _ => {
            return Err(Problem::invalid(
                "give either cron (with an optional timezone) or every",
            ))
        }
    };
    let data = match body.data {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Problem::invalid_field("data", "data must be a JSON object")),
    };
    let overlap: Overlap = match body.overlap.as_deref() {
        None => Overlap::default(),
        Some(o) => o.parse().map_err(|e: weir::schedule::ScheduleError| {
            Problem::invalid_field("overlap", e.to_string())
        })?,
    };
    let spec = ScheduleSpec {
        name: body.name,
        workflow: body.workflow,
        version: body.version,
        trigger,
        data,
        overlap,
        catch_up: body.catch_up.unwrap_or(1),
    };
    let view = state.client.create_schedule(spec).await?;
    Ok((StatusCode::CREATED, json(&view)?))
}

/// Every schedule, by name.
#[utoipa::path(operation_id = "list_schedules", get, path = "/api/v1/schedules", tag = "schedules",
    responses(
        (status = 200, description = "The schedules", body = [ScheduleJson]),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ScheduleJson>, Problem> {
    caller.require_admin()?;
    json(&state.client.list_schedules().await?)
}

/// A schedule with its next five fire times and its last ten firings.
#[utoipa::path(operation_id = "schedule_detail", get, path = "/api/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleJson),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ScheduleJson>, Problem> {
    caller.require_admin()?;
    json(&state.client.get_schedule(&name).await?)
}

/// Pauses a schedule.
#[utoipa::path(operation_id = "pause_schedule", post, path = "/api/v1/schedules/{name}/pause", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 200, description = "Paused", body = ScheduleJson),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ScheduleJson>, Problem> {
    caller.require_admin()?;
    json(&state.client.pause_schedule(&name).await?)
}

/// Resumes a schedule from its first slot after now.
#[utoipa::path(operation_id = "resume_schedule", post, path = "/api/v1/schedules/{name}/resume", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 200, description = "Resumed", body = ScheduleJson),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ScheduleJson>, Problem> {
    caller.require_admin()?;
    json(&state.client.resume_schedule(&name).await?)
}

/// Fires a schedule now, outside its slots (its overlap rule applies); returns the firing.
#[utoipa::path(operation_id = "trigger_schedule", post, path = "/api/v1/schedules/{name}/trigger", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 200, description = "The firing", body = ScheduleJson),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ScheduleJson>, Problem> {
    caller.require_admin()?;
    json(&state.client.trigger_schedule(&name).await?)
}

/// Deletes a schedule (its instances stay).
#[utoipa::path(operation_id = "delete_schedule", delete, path = "/api/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 200, description = "Deleted: `{\"deleted\": NAME}`", body = ScheduleJson),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ScheduleJson>, Problem> {
    caller.require_admin()?;
    state.client.delete_schedule(&name).await?;
    json(&serde_json::json!({ "deleted": name }))
}

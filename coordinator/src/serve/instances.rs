//! `/instances`: start (one, or a batch), list (filters and cursor pagination), detail,
//! graph with step states, cancel, retry.
//!
//! A start is stored in Redis and answered at once (202, the instance `pending`), whether
//! or not a coordinator runs; a coordinator creates it from there. Caller ids are scoped
//! per tenant: a tenant's start with id `X` gets the instance id `TENANT:X`, so tenants
//! never meet on an id (nor learn of another's).
//!
//! Every handler checks the caller's tenant against the instance's: an instance a
//! tenant-bound caller may not see answers exactly as an unknown id does (404). Any caller
//! who sees an instance may cancel or retry it. The creator of a started instance is always
//! the authenticated user.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use weir::api::{check_instance_id, EngineError, InstanceFilter, StartOptions};
use weir::model::InstanceStatus;
use weir::redis::store;
use weir::Engine;

use super::auth::Caller;
use super::definitions::{check_version, visible_workflow};
use super::listing::{self, Cursor, CursorText};
use super::problem::{ApiJson, ApiQuery, Problem};
use super::tasks::open_tasks_of;
use super::views::{
    step_state, Attempt, Graph, InstanceDetail, InstanceGraph, InstanceSummary, Status,
};
use super::{openapi, AppState};

/// The default page size.
pub(super) const DEFAULT_LIMIT: usize = 50;
/// The largest page size.
pub(super) const MAX_LIMIT: usize = 500;

/// `POST /instances`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBody {
    /// The workflow (definition) name.
    pub workflow: String,
    /// A version; the latest when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// The initial context: a JSON object.
    #[serde(default)]
    pub data: Option<Value>,
    /// A caller-chosen id: starting the same id again returns the existing instance.
    #[serde(default)]
    pub id: Option<String>,
    /// The tenant; a tenant-bound caller may only name its own (or leave it out).
    #[serde(default)]
    pub tenant: Option<String>,
    /// A delayed start: create the instance at this time (RFC 3339); until then it is
    /// `pending` with this `start_at`, and can be canceled. Not with `delay`.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub start_at: Option<String>,
    /// A delayed start: create the instance this long after the start is stored (Redis
    /// clock), e.g. `90s`, `15m`, `2h`. Not with `start_at`.
    #[serde(default)]
    pub delay: Option<String>,
}

/// `GET /instances` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only this status.
    #[param(value_type = Option<Status>)]
    pub status: Option<String>,
    /// Only instances of this workflow.
    pub workflow: Option<String>,
    /// Only this tenant (a tenant-bound caller sees only its own).
    pub tenant: Option<String>,
    /// Only instances started by this user.
    pub created_by: Option<String>,
    /// Created at or after (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Created before (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of instances.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct InstancePage {
    /// Instances, newest first.
    pub items: Vec<InstanceSummary>,
    /// Pass it as `cursor` for the next page; null when there is none.
    pub next_cursor: Option<String>,
}

/// `GET /instances/{id}/history` paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct HistoryQuery {
    /// At most this many records (1 to 1000, default 100).
    pub limit: Option<usize>,
    /// Where to go on: `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of an instance's history.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct HistoryPageView {
    /// Attempts, oldest first: finished ones, then those in flight.
    pub items: Vec<Attempt>,
    /// Pass it as `cursor` for the next page; null when there is none.
    pub next_cursor: Option<String>,
    /// Records in all (the finished ones kept, and those in flight).
    pub total: usize,
    /// Older records dropped: an instance keeps its last 10,000 finished records.
    pub dropped: u64,
}

/// The default page size of `GET /instances/{id}/history`.
const DEFAULT_HISTORY_PAGE: usize = 100;
/// The largest page size of `GET /instances/{id}/history`.
const MAX_HISTORY_PAGE: usize = 1000;
/// The history records an instance's detail carries at most (its first page); the rest
/// are read with `GET /instances/{id}/history`.
pub(super) const DETAIL_HISTORY: usize = 1000;

/// The opaque form of a history position.
fn history_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("h1:{offset}"))
}

/// Parses a history cursor; a 400 naming `cursor` for anything else.
fn parse_history_cursor(text: &str) -> Result<usize, Problem> {
    URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.strip_prefix("h1:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| {
            Problem::invalid_field(
                "cursor",
                "the cursor is not one this API returned: pass `next_cursor` as it came",
            )
        })
}

/// `POST /instances/{id}/cancel`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelBody {
    /// Why (kept as the instance's error).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /instances/{id}/retry`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RetryBody {
    /// Resume from this step instead of the one that failed.
    #[serde(default)]
    pub from_step: Option<String>,
}

/// `POST /instances/{id}/signal`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SignalBody {
    /// The message name the instance's event step waits on.
    pub name: String,
    /// The data (default `{}`): stored under the step's `output`, or merged into the
    /// context when the step has none (then it must be an object).
    #[serde(default = "empty_object")]
    pub data: Value,
    /// The signal's id: the same id twice is delivered once (default: a new one).
    #[serde(default)]
    pub id: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Starts an instance as the caller: the start is stored in Redis and answered at once,
/// coordinator or not; the instance is `pending` until a coordinator creates it.
#[utoipa::path(operation_id = "start_instance", post, path = "/api/v1/instances", tag = "instances",
    request_body = StartBody,
    responses(
        (status = 202, description = "Stored: the instance is pending until a coordinator creates it", body = InstanceDetail),
        (status = 200, description = "This start was made already (same id, workflow, version asked and tenant): the instance is returned, nothing is stored", body = InstanceDetail),
        (status = 400, response = openapi::BadRequest),
        (status = 413, response = openapi::TooLarge),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn start(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<(StatusCode, Json<InstanceDetail>), Problem> {
    check_version(body.version.as_deref())?;
    // A definition the caller's tenant may not use is unknown to it (404); one it sees
    // but starts for a tenant the definition does not admit is refused by the engine (403).
    visible_workflow(&state, &caller, &body.workflow, body.version.as_deref()).await?;
    let tenant = caller.acting_tenant(body.tenant, "start instances")?;
    let mut options = start_options(&caller, body.data, body.id, tenant, body.version, "")?;
    if let Some(at) = &body.start_at {
        let at = Problem::time_field("start_at", at)?;
        options.start_at = Some(at);
    }
    if let Some(delay) = &body.delay {
        let d = Problem::duration_field("delay", delay)?;
        options.start_delay_ms = Some(d.as_millis().min(u128::from(u64::MAX)) as u64);
    }
    let started = match state
        .client
        .start_workflows(&body.workflow, vec![options])
        .await
    {
        // One result per start: none would be a bug, reported as unavailable (try again).
        Ok(mut results) => match results.pop() {
            Some(result) => result,
            None => {
                return Err(Problem::unavailable(
                    "the start was not answered: send it again",
                ))
            }
        },
        Err(e) => return Err(e.error.into()),
    };
    let started = match started {
        Ok(s) => s,
        Err(EngineError::IdTaken(id)) => return Err(id_taken(&id)),
        Err(e) => return Err(e.into()),
    };
    let code = if started.stored {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        code,
        Json(detail_of(&state, &caller, &started.view.id).await?),
    ))
}

/// The most starts in one `POST /instances/batch`.
pub(super) const MAX_BATCH: usize = 1_000;

/// `POST /instances/batch`: many starts of one workflow.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBatchBody {
    /// The workflow (definition) name.
    pub workflow: String,
    /// A version; the latest when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// The tenant of every start; a tenant-bound caller may only name its own.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The starts, 1 to 1,000.
    pub items: Vec<StartBatchItem>,
}

/// One start of a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBatchItem {
    /// The initial context: a JSON object.
    #[serde(default)]
    pub data: Option<Value>,
    /// A caller-chosen id (idempotent, as for one start).
    #[serde(default)]
    pub id: Option<String>,
}

/// The outcome of one start of a batch: `status` 202 (stored, pending), 200 (this start
/// was made already) or the problem's status, with `id` or `problem`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct StartBatchResult {
    /// 202, 200, or the status of `problem`.
    pub status: u16,
    /// The instance id (absent when refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why this start stored nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// The outcomes of a batch, in the order of its items.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct StartBatchAnswer {
    /// One per item, in order.
    pub items: Vec<StartBatchResult>,
}

/// Starts many instances of one workflow in one request (one Redis call per partition).
/// Every item is checked first: if one is refused (bad data, bad id, unknown workflow or
/// version, too large), nothing of the batch is stored and the 400/404 names the item
/// (`items[3].data`). Then each item is stored on its own: its result says 202 (stored,
/// pending), 200 (made already) or why not (409 for an id taken), in order.
#[utoipa::path(operation_id = "start_instances", post, path = "/api/v1/instances/batch", tag = "instances",
    request_body = StartBatchBody,
    responses(
        (status = 200, description = "One result per item, in order", body = StartBatchAnswer),
        (status = 400, response = openapi::BadRequest),
        (status = 413, response = openapi::TooLarge),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn start_batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<StartBatchBody>,
) -> Result<Json<StartBatchAnswer>, Problem> {
    check_version(body.version.as_deref())?;
    if body.items.is_empty() || body.items.len() > MAX_BATCH {
        return Err(Problem::invalid_field(
            "items",
            format!(
                "items must hold 1 to {MAX_BATCH} starts (it holds {}): split the batch",
                body.items.len()
            ),
        ));
    }
    visible_workflow(&state, &caller, &body.workflow, body.version.as_deref()).await?;
    let tenant = caller.acting_tenant(body.tenant, "start instances")?;
    let mut starts = Vec::with_capacity(body.items.len());
    for (i, item) in body.items.into_iter().enumerate() {
        starts.push(start_options(
            &caller,
            item.data,
            item.id,
            tenant.clone(),
            body.version.clone(),
            &format!("items[{i}]."),
        )?);
    }
    let results = state
        .client
        .start_workflows(&body.workflow, starts)
        .await
        .map_err(|e| {
            let field = match e.error {
                EngineError::BadRequest(_) => format!("items[{}]", e.index),
                _ => "workflow".to_string(),
            };
            Problem::from(e.error).with_field(&field)
        })?;
    let items = results
        .into_iter()
        .map(|r| match r {
            Ok(started) => StartBatchResult {
                status: if started.stored { 202 } else { 200 },
                id: Some(started.view.id),
                problem: None,
            },
            Err(e) => {
                let problem = match e {
                    EngineError::IdTaken(id) => id_taken(&id),
                    other => Problem::from(other),
                };
                StartBatchResult {
                    status: problem.status,
                    id: None,
                    problem: Some(problem),
                }
            }
        })
        .collect();
    Ok(Json(StartBatchAnswer { items }))
}

/// The options of one start by the caller, its input checked (`field` prefixes the names
/// of the fields at fault, for batch items).
fn start_options(
    caller: &Caller,
    data: Option<Value>,
    id: Option<String>,
    tenant: Option<String>,
    version: Option<String>,
    field: &str,
) -> Result<StartOptions, Problem> {
    let data = match data {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(Problem::invalid_field(
                &format!("{field}data"),
                "data must be a JSON object, e.g. {\"amount\": 120}",
            ))
        }
    };
    if let Some(id) = &id {
        check_instance_id(id).map_err(|m| Problem::invalid_field(&format!("{field}id"), m))?;
    }
    Ok(StartOptions {
        version,
        initial_data: data,
        id,
        tenant_id: tenant,
        created_by: Some(caller.user.clone()),
        ..StartOptions::default()
    })
}

/// Lists instances, newest first, one page at a time.
#[utoipa::path(operation_id = "list_instances", get, path = "/api/v1/instances", tag = "instances",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = InstancePage),
        (status = 400, response = openapi::BadRequest),
        (status = 401, response = openapi::Unauthorized),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<InstancePage>, Problem> {
    let status = q
        .status
        .as_deref()
        .map(|s| s.parse::<InstanceStatus>())
        .transpose()
        .map_err(|m| Problem::invalid_field("status", m))?;
    let time = |field: &str, v: Option<&str>| v.map(|t| Problem::time_field(field, t)).transpose();
    let since = time("since", q.since.as_deref())?;
    let until = time("until", q.until.as_deref())?;
    let limit = listing::page_limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let cursor = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let tenant = match (&caller.tenant, q.tenant) {
        // Another tenant's instances are invisible: the answer is an empty page.
        (Some(own), Some(asked)) if *own != asked => {
            return Ok(Json(InstancePage {
                items: Vec::new(),
                next_cursor: None,
            }))
        }
        (Some(own), _) => Some(own.clone()),
        (None, asked) => asked,
    };
    let filter = InstanceFilter {
        status,
        definition: q.workflow,
        tenant_id: tenant,
        created_by: q.created_by,
        created_after: since,
        created_before: until,
        limit: None,
    };
    let page = weir::redis::listing::page(&state.client, &filter, limit, cursor.as_ref()).await?;
    Ok(Json(InstancePage {
        items: page.items.iter().map(InstanceSummary::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// An instance with its context, history and open tasks.
#[utoipa::path(operation_id = "get_instance", get, path = "/api/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "The instance id")),
    responses(
        (status = 200, description = "The instance", body = InstanceDetail),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<InstanceDetail>, Problem> {
    Ok(Json(detail_of(&state, &caller, &id).await?))
}

/// An instance's execution history, one page at a time, oldest first.
#[utoipa::path(operation_id = "get_instance_history", get, path = "/api/v1/instances/{id}/history", tag = "instances",
    params(("id" = String, Path, description = "The instance id"), HistoryQuery),
    responses(
        (status = 200, description = "A page of the history", body = HistoryPageView),
        (status = 400, response = openapi::BadRequest),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<HistoryPageView>, Problem> {
    let limit = listing::page_limit(q.limit, DEFAULT_HISTORY_PAGE, MAX_HISTORY_PAGE)?;
    let offset = q
        .cursor
        .as_deref()
        .map(parse_history_cursor)
        .transpose()?
        .unwrap_or(0);
    visible(&state, &caller, &id).await?;
    let page = state.client.history_page(&id, offset, limit).await?;
    Ok(Json(HistoryPageView {
        items: page.records.iter().map(Attempt::from).collect(),
        next_cursor: page.next.map(history_cursor),
        total: page.total,
        dropped: page.dropped,
    }))
}

/// An instance's diagram with each step's state.
#[utoipa::path(operation_id = "get_instance_graph", get, path = "/api/v1/instances/{id}/graph", tag = "instances",
    params(("id" = String, Path, description = "The instance id")),
    responses(
        (status = 200, description = "The graph and step states", body = InstanceGraph),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn graph(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<InstanceGraph>, Problem> {
    let stored = store::load_instance(state.client.connections(), &id)
        .await
        .map_err(|e| Problem::from(EngineError::from(e)))?
        .filter(|s| caller.sees(s.instance.tenant_id.as_deref()))
        .ok_or_else(|| not_found(&id))?;
    let inst = stored.instance;
    let wf = state
        .client
        .get_definition(&inst.definition, Some(&inst.version))
        .await?;
    let states: BTreeMap<String, String> = wf
        .steps
        .iter()
        .zip(&inst.steps)
        .map(|(step, st)| (step.name.to_string(), step_state(st.status)))
        .collect();
    Ok(Json(InstanceGraph {
        graph: Graph::new(&wf),
        states,
    }))
}

/// Cancels a running or waiting instance.
#[utoipa::path(operation_id = "cancel_instance", post, path = "/api/v1/instances/{id}/cancel", tag = "instances",
    params(("id" = String, Path, description = "The instance id")),
    request_body(content = CancelBody, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "Canceled", body = InstanceDetail),
        (status = 400, response = openapi::BadRequest),
        (status = 413, response = openapi::TooLarge),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<InstanceDetail>, Problem> {
    let body: CancelBody = optional_body(body)?;
    visible(&state, &caller, &id).await?;
    state
        .client
        .cancel_workflow(&id, body.reason.as_deref())
        .await?;
    Ok(Json(detail_of(&state, &caller, &id).await?))
}

/// Resumes a failed instance, from the failed step or a named one.
#[utoipa::path(operation_id = "retry_instance", post, path = "/api/v1/instances/{id}/retry", tag = "instances",
    params(("id" = String, Path, description = "The instance id")),
    request_body(content = RetryBody, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "Resumed", body = InstanceDetail),
        (status = 400, response = openapi::BadRequest),
        (status = 413, response = openapi::TooLarge),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<InstanceDetail>, Problem> {
    let body: RetryBody = optional_body(body)?;
    visible(&state, &caller, &id).await?;
    match state.client.retry(&id, body.from_step.as_deref()).await {
        Ok(_) => {}
        Err(e) if e.kind() == "unknown_step" => {
            return Err(Problem::invalid_field("from_step", e.to_string()))
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Json(detail_of(&state, &caller, &id).await?))
}

/// Delivers a signal to the instance's event step waiting on `name` (an event step without
/// `correlation`). The same `id` twice is delivered once: the resend answers with the
/// instance as it is. Refused (409 `not_waiting`), with nothing changed, when no step of
/// the instance waits on `name`.
#[utoipa::path(operation_id = "signal_instance", post, path = "/api/v1/instances/{id}/signal", tag = "instances",
    params(("id" = String, Path, description = "The instance id")),
    request_body = SignalBody,
    responses(
        (status = 200, description = "Delivered (or a duplicate id: nothing changed)", body = InstanceDetail),
        (status = 400, response = openapi::BadRequest),
        (status = 413, response = openapi::TooLarge),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn signal(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SignalBody>,
) -> Result<Json<InstanceDetail>, Problem> {
    visible(&state, &caller, &id).await?;
    state
        .client
        .signal(&id, &body.name, body.data, body.id.as_deref())
        .await?;
    Ok(Json(detail_of(&state, &caller, &id).await?))
}

/// A JSON body that may be left out (empty); anything else must parse.
fn optional_body<T: DeserializeOwned + Default>(
    bytes: Result<Bytes, BytesRejection>,
) -> Result<T, Problem> {
    let bytes = bytes.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large()
        } else {
            Problem::invalid(format!("cannot read the body: {}", e.body_text()))
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Problem::invalid(format!("the body is not acceptable JSON: {e}")))
}

/// The 409 of a caller id already used by another start (another workflow, version or
/// tenant): it says nothing about that instance.
fn id_taken(id: &str) -> Problem {
    Problem::conflict(format!(
        "the id {id:?} is taken by another instance: choose another id"
    ))
    .with_field("id")
}

/// The 404 of an instance that does not exist or that the caller may not see.
pub(super) fn not_found(id: &str) -> Problem {
    Problem::not_found(format!("no instance {id:?}"))
}

/// Checks that the instance exists and the caller may see it.
pub(super) async fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<(), Problem> {
    match state.client.get_instance(id).await {
        Ok(v) if caller.sees(v.tenant.as_deref()) => Ok(()),
        Ok(_) | Err(EngineError::NotFound(_)) => Err(not_found(id)),
        Err(e) => Err(e.into()),
    }
}

/// The detail of an instance the caller may see.
pub(super) async fn detail_of(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<InstanceDetail, Problem> {
    let view = match state.client.get_instance(id).await {
        Ok(v) if caller.sees(v.tenant.as_deref()) => v,
        Ok(_) | Err(EngineError::NotFound(_)) => return Err(not_found(id)),
        Err(e) => return Err(e.into()),
    };
    let history = state.client.history_page(id, 0, DETAIL_HISTORY).await?;
    let tasks = open_tasks_of(state, caller, &view).await?;
    Ok(InstanceDetail {
        summary: InstanceSummary::from(&view),
        context: view.context.clone(),
        failed_step: view.failed_step.clone(),
        history: history.records.iter().map(Attempt::from).collect(),
        history_total: history.total,
        history_dropped: history.dropped,
        tasks,
    })
}

//! `weir serve`: the HTTP API (JSON under `/api/v1`) over the Redis client library, and
//! the dashboard ([`dashboard`], at `/`).
//!
//! The server is a thin layer: each handler authenticates the caller, checks the tenant,
//! and calls [`WeirClient`] (or [`weir::redis::admin`]) exactly as the CLI commands do, so
//! the API and `weir start|status|task|cancel|retry|stats|dlq` share one code path and
//! one set of checks; the few reads only the API makes (one open task, an instance's
//! tenant, a page of instances) are functions of [`weir::redis`] too, never commands of
//! its own. It keeps no state of its own besides a cache of instance tenants for
//! the event stream; any number of servers can run side by side.
//!
//! # Endpoints (base `/api/v1`; the OpenAPI document at `/api/v1/openapi.json` is the
//! reference)
//!
//! | method and path | what |
//! |---|---|
//! | `GET /health` (no token) | `{status: "ok"}` when Redis answers, else 503 |
//! | `GET /openapi.json` (no token) | the OpenAPI 3.1 document, generated from the code |
//! | `GET /me` | `{user, tenant, admin}` |
//! | `GET /definitions` | `[{name, latest_version, versions, description, steps}]` (those the caller's tenant may use) |
//! | `GET /definitions/{name}?version=` | the definition as in its file, plus `initial_step`; handler `config` redacted for non-admins |
//! | `GET /definitions/{name}/graph?version=` | `{mermaid, nodes, edges}` |
//! | `POST /instances` | start `{workflow, version?, data?, id?, tenant?}` -> 202 + detail (pending), 200 when made already |
//! | `POST /instances/batch` | `{workflow, version?, tenant?, items: [{data?, id?}]}` (1 to 1,000) -> `{items: [{status, id?, problem?}]}` |
//! | `GET /instances?status=&workflow=&tenant=&created_by=&since=&until=&limit=&cursor=` | `{items, next_cursor}` |
//! | `GET /instances/{id}` | summary + `context`, `failed_step`, `history` (the first 1,000 records), `history_total`, `history_dropped`, open `tasks` |
//! | `GET /instances/{id}/graph` | the graph + `states` (step -> state) |
//! | `GET /instances/{id}/history?limit=&cursor=` | `{items, next_cursor, total, dropped}`, oldest first (an instance keeps its last 10,000 finished records; `dropped` counts older ones) |
//! | `POST /instances/{id}/cancel` | `{reason?}` -> detail; 409 when finished |
//! | `POST /instances/{id}/retry` | `{from_step?}` -> detail; 409 when not failed |
//! | `POST /instances/{id}/signal` | `{name, data?, id?}` -> detail; 409 when no step waits on `name` |
//! | `POST /messages` | `{name, key, data?, id?, ttl?, tenant?}` -> `{id, outcome, instance_id?}`: 200 delivered or duplicate, 201 kept |
//! | `GET /messages?name=&key=&tenant=&limit=` | the messages kept for instances that do not wait yet, oldest first |
//! | `GET /tasks?assignee=&candidate=&instance_id=&status=open&mine=&limit=&cursor=` | open tasks, oldest first, each with `allowed`; `Weir-Next-Cursor` header when more |
//! | `GET /tasks/{instance_id}/{step}` | one open task with its form; 404 when not open |
//! | `POST /tasks/{instance_id}/{step}/complete` | `{data}` as the caller -> detail |
//! | `POST /tasks/{instance_id}/{step}/reassign` | `{assignee?, candidates?}` -> task (admin, or a user the task allows when it applies: decided by the core) |
//! | `GET /events?instance_id=` | Server-Sent Events (also `?access_token=`) |
//! | `GET /dlq?limit=` (admin) | dead letters |
//! | `GET /stats` (admin) | the `weir stats --json` object |
//!
//! # Decisions
//!
//! - **Errors** are RFC 9457 problem documents ([`problem`]); the status codes follow the
//!   engine's error kinds in one table. Unknown paths are 404 problems too.
//! - **Authentication** ([`auth`]): tokens from an auth file, or a trusted proxy header; the
//!   server refuses to start with neither. A tenant-bound caller gets 404 for anything of
//!   another tenant, an empty page when it filters on another tenant, and 403 when it asks
//!   to start in another tenant.
//! - **The creator and the completing user** are the authenticated caller, never a field
//!   of the body (the body has no such field; unknown body fields are refused).
//! - **Idempotent start**: `POST /instances` with an `id` returns the instance with 200 when
//!   the same start (workflow, version asked, tenant) was made already, 202 when it stored
//!   one; an id taken by another start is a 409 that says nothing about that instance.
//!   Caller ids are per tenant (a tenant's id `X` is the instance `TENANT:X`).
//! - **Starts are enqueued**: a start is stored in Redis in one call and answered at once
//!   (202, status `pending`), coordinator or not; a pending instance can be canceled.
//! - **Pagination** uses an opaque cursor of (creation time, id) ([`listing`]): stable while
//!   new instances arrive; a page may be short with a `next_cursor` when filters are sparse.
//! - **Events** ([`events`]): one Redis reader per server, broadcast to the SSE clients,
//!   filtered by tenant and instance; live only, no replay.
//! - **Commands** on instances (cancel, retry, complete, reassign) return once the
//!   coordinator applied them; with no coordinator answering they fail after 10 s with 503,
//!   and then nothing changed: a command past its deadline is never applied.
//!
//! # Contract changes
//!
//! The contract's paths and fields are all served. Event names are the engine's: the
//! contract's examples `TaskCreated` and `TaskReassigned` are `HumanTaskCreated` and
//! `HumanTaskReassigned` (like `HumanTaskCompleted`). Added fields: `finished_at` on
//! instances; `mermaid_id` and `initial` on graph nodes; `on` on every graph edge; `note`
//! on history records (for a reassignment, to whom). Server-Sent Events are unnamed
//! messages (no `event:` line) with the kind in the data's `type`, so that a client gets
//! every kind without listing their names ([`events`]).

mod auth;
mod dashboard;
mod definitions;
mod events;
mod instances;
mod listing;
mod messages;
mod openapi;
mod ops;
mod problem;
mod schedules;
mod tasks;
mod views;

use std::sync::Arc;

use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use weir::process::shutdown::{requested, ShutdownListener};
use weir::redis::WeirClient;

pub use auth::{Auth, AuthFile, Caller, TokenEntry};
pub use openapi::ApiDoc;
pub use problem::Problem;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    client: WeirClient,
    auth: Arc<Auth>,
    events: events::EventHub,
    shutdown: ShutdownListener,
}

/// The API's routes, under `/api/v1`.
fn api() -> Router<AppState> {
    Router::new()
        .route("/health", get(ops::health))
        .route("/openapi.json", get(openapi::document))
        .route("/me", get(ops::me))
        .route("/definitions", get(definitions::list))
        .route("/definitions/{name}", get(definitions::detail))
        .route("/definitions/{name}/graph", get(definitions::graph))
        .route("/instances", get(instances::list).post(instances::start))
        .route("/instances/batch", post(instances::start_batch))
        .route("/instances/{id}", get(instances::detail))
        .route("/instances/{id}/graph", get(instances::graph))
        .route("/instances/{id}/history", get(instances::history))
        .route("/instances/{id}/cancel", post(instances::cancel))
        .route("/instances/{id}/retry", post(instances::retry))
        .route("/instances/{id}/signal", post(instances::signal))
        .route("/messages", get(messages::list).post(messages::send))
        .route("/tasks", get(tasks::list))
        .route("/tasks/{instance_id}/{step}", get(tasks::detail))
        .route(
            "/tasks/{instance_id}/{step}/complete",
            post(tasks::complete),
        )
        .route(
            "/tasks/{instance_id}/{step}/reassign",
            post(tasks::reassign),
        )
        .route("/tasks/{instance_id}/{step}/claim", post(tasks::claim))
        .route("/tasks/{instance_id}/{step}/release", post(tasks::release))
        .route("/events", get(events::stream))
        .route("/dlq", get(ops::dlq))
        .route("/stats", get(ops::stats))
        .route("/schedules", get(schedules::list).post(schedules::create))
        .route(
            "/schedules/{name}",
            get(schedules::detail).delete(schedules::delete),
        )
        .route("/schedules/{name}/pause", post(schedules::pause))
        .route("/schedules/{name}/resume", post(schedules::resume))
        .route("/schedules/{name}/trigger", post(schedules::trigger))
        .fallback(problem::no_route)
}

/// Logs each request (method, path without the query string, which may hold a token,
/// status, time): server errors as warnings, the rest at debug level.
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_millis() as u64;
    if response.status().is_server_error() {
        tracing::warn!(%method, %path, status, ms, "request failed");
    } else {
        tracing::debug!(%method, %path, status, ms, "request");
    }
    response
}

/// Serves the API on `listener` until `shutdown` asks it to stop, then stops accepting,
/// ends the event streams (which never end by themselves; they hold the same listener)
/// and waits for the requests in flight.
pub async fn run(
    listener: TcpListener,
    client: WeirClient,
    auth: Auth,
    shutdown: ShutdownListener,
) -> std::io::Result<()> {
    let state = AppState {
        events: events::EventHub::spawn(client.clone(), shutdown.clone()),
        client,
        auth: Arc::new(auth),
        shutdown: shutdown.clone(),
    };
    let app = Router::new()
        .nest("/api/v1", api())
        .merge(dashboard::router())
        .fallback(problem::no_route)
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state);
    // The peer's address is what `--trusted-proxy` is checked against.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let mut shutdown = shutdown;
        requested(&mut shutdown).await;
    })
    .await
}

//! `GET /events`: a live Server-Sent Events stream of engine events.
//!
//! One reader per server (the [`EventHub`]) follows every partition's event stream in Redis
//! with a blocking `XREAD` and broadcasts what it reads to the open SSE responses, so a
//! hundred dashboards cost one Redis connection, not a hundred. Events carry no tenant, so
//! the hub looks up each instance's tenant once (the `tenant` field of its hash, cached)
//! and a tenant-bound caller only gets its tenant's events.
//!
//! Each SSE message is an unnamed one (no `event:` line, so an `EventSource`'s `onmessage`
//! gets every kind, today's and those added later, without a list of names to listen
//! for) whose `data:` is the event as JSON, with at least `type` (PascalCase, e.g.
//! `StepExecuted`, `WorkflowCompleted`, `HumanTaskCreated`), `instance_id` and
//! `timestamp`. The stream starts with what happens after the
//! request (no replay of stored events); a client too slow to keep up gets a `: lagged`
//! comment where events were dropped. Streams end when the server shuts down.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderName;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::{broadcast, watch};
use utoipa::IntoParams;
use weir::model::{Event, EventKind};
use weir::redis::WeirClient;

use super::auth::{Caller, StreamCaller};
use super::problem::{ApiQuery, Problem};
use super::{openapi, AppState};

/// Events buffered per subscriber before a slow one starts losing them.
const BUFFER: usize = 1024;
/// Events read per call.
const READ_BATCH: usize = 500;
/// How long one blocking read waits.
const BLOCK: Duration = Duration::from_secs(2);
/// Cached instance tenants before the cache is emptied.
const TENANT_CACHE: usize = 100_000;

/// An event read from Redis, with its instance's tenant and its JSON text.
#[derive(Debug)]
pub(super) struct Published {
    /// The event.
    pub event: Event,
    /// The tenant of its instance.
    pub tenant: Option<String>,
    /// The event as JSON.
    pub json: String,
}

/// The server's one reader of the event streams, and the broadcast it feeds.
#[derive(Debug, Clone)]
pub(super) struct EventHub {
    tx: broadcast::Sender<Arc<Published>>,
}

impl EventHub {
    /// Starts following the event streams (from now) until `shutdown` turns true.
    pub(super) fn spawn(client: WeirClient, mut shutdown: watch::Receiver<bool>) -> EventHub {
        let (tx, _) = broadcast::channel(BUFFER);
        let hub = EventHub { tx: tx.clone() };
        tokio::spawn(async move {
            tokio::select! {
                () = follow(client, tx) => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        });
        hub
    }

    /// A new subscriber: every event read from now on.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }
}

/// Reads events forever, retrying (every second) while Redis is unavailable.
async fn follow(client: WeirClient, tx: broadcast::Sender<Arc<Published>>) {
    let pause = Duration::from_secs(1);
    let mut cursor = loop {
        match client.events_now().await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "event stream: cannot read the stream ends; retrying");
                tokio::time::sleep(pause).await;
            }
        }
    };
    let mut tenants: HashMap<String, Option<String>> = HashMap::new();
    loop {
        let (events, next) = match client.read_events(&cursor, READ_BATCH, Some(BLOCK)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "event stream: read failed; retrying");
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        cursor = next;
        if events.is_empty() || tx.receiver_count() == 0 {
            continue;
        }
        if let Err(e) = resolve_tenants(&client, &events, &mut tenants).await {
            tracing::warn!(error = %e, "event stream: tenant lookup failed");
        }
        for event in events {
            let tenant = tenants.get(&*event.instance_id).cloned().flatten();
            let json = serde_json::to_string(&event).unwrap_or_default();
            // No subscriber left is not an error.
            let _ = tx.send(Arc::new(Published {
                event,
                tenant,
                json,
            }));
        }
    }
}

/// Looks up the tenant of every instance not in the cache (one pipeline).
async fn resolve_tenants(
    client: &WeirClient,
    events: &[Event],
    cache: &mut HashMap<String, Option<String>>,
) -> Result<(), redis::RedisError> {
    if cache.len() > TENANT_CACHE {
        cache.clear();
    }
    // An id is reused once its instance expired (or was deleted), maybe by another
    // tenant: a start means "look the tenant up again", or the new instance's events
    // would go to the old one's tenant.
    for event in events {
        if matches!(event.kind, EventKind::WorkflowStarted { .. }) {
            cache.remove(&*event.instance_id);
        }
    }
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| &*e.instance_id)
        .filter(|id| !cache.contains_key(*id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let tenants = weir::redis::events::tenants_of(client.connections(), &ids).await?;
    for (id, tenant) in ids.into_iter().zip(tenants) {
        // An instance not stored (yet, or any more) is not cached: look again next time.
        if let Some(tenant) = tenant {
            cache.insert(id.to_string(), tenant);
        }
    }
    Ok(())
}

/// `GET /events` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EventQuery {
    /// Only events of this instance.
    pub instance_id: Option<String>,
    /// The token, for clients that cannot set headers (a browser's EventSource).
    #[allow(dead_code)]
    // read by the `StreamCaller` extractor; listed here for the OpenAPI document
    pub access_token: Option<String>,
}

/// Live events as Server-Sent Events.
#[utoipa::path(operation_id = "stream_events", get, path = "/api/v1/events", tag = "events",
    params(EventQuery),
    responses(
        (status = 200, description = "An endless stream of unnamed messages, each `data: <event JSON>` with its kind in `type`", body = String, content_type = "text/event-stream"),
        (status = 401, response = openapi::Unauthorized),
    ))]
pub(super) async fn stream(
    State(state): State<AppState>,
    StreamCaller(caller): StreamCaller,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<
    (
        [(HeaderName, &'static str); 1],
        Sse<impl Stream<Item = Result<SseEvent, Infallible>>>,
    ),
    Problem,
> {
    let rx = state.events.subscribe();
    let shutdown = state.shutdown.clone();
    let filter = Filter {
        caller,
        instance_id: q.instance_id,
    };
    let start = futures_util::stream::once(async { Ok(SseEvent::default().comment("connected")) });
    let events = futures_util::stream::unfold(
        (rx, shutdown, filter),
        |(mut rx, mut shutdown, filter)| async move {
            loop {
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = shutdown.wait_for(|stop| *stop) => return None,
                };
                let item = match next {
                    // Unnamed: the kind is the data's `type` (see the module docs).
                    Ok(p) if filter.wants(&p) => SseEvent::default().data(p.json.as_str()),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        SseEvent::default().comment(format!("lagged: {n} events dropped"))
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                return Some((Ok(item), (rx, shutdown, filter)));
            }
        },
    );
    // Proxies such as nginx must pass events on at once, not buffer them.
    let no_buffering = [(HeaderName::from_static("x-accel-buffering"), "no")];
    let sse =
        Sse::new(futures_util::StreamExt::chain(start, events)).keep_alive(KeepAlive::default());
    Ok((no_buffering, sse))
}

/// Which events one subscriber gets.
struct Filter {
    caller: Caller,
    instance_id: Option<String>,
}

impl Filter {
    fn wants(&self, p: &Published) -> bool {
        self.caller.sees(p.tenant.as_deref())
            && self
                .instance_id
                .as_deref()
                .is_none_or(|id| id == &*p.event.instance_id)
    }
}

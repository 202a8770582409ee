//! `/messages`: send a message by name and correlation key (as `weir message send`), and
//! list the messages kept for instances that do not wait yet (as `weir message list`).
//!
//! A message is tenant-scoped like a start: the tenant comes from the caller's token (a
//! tenant-bound caller sends to its own tenant's instances only; naming another is 403),
//! and a caller bound to no tenant may name one. A listing shows a tenant-bound caller its
//! own tenant's messages only, whatever it asks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use weir::model::{
    check_message_id, check_message_name, json_size, KeptMessage, MessageFilter, MessageOutcome,
    MessageSent, SendMessage, MAX_CONTEXT_BYTES,
};
use weir::{Engine, Timestamp};

use super::auth::Caller;
use super::problem::{ApiJson, ApiQuery, Problem};
use super::{openapi, AppState};

/// The default number of kept messages a listing returns.
pub(super) const DEFAULT_LIMIT: usize = 100;
/// The most kept messages a listing returns.
pub(super) const MAX_LIMIT: usize = 1000;

/// `POST /messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MessageBody {
    /// The message name an event step waits on (its `event`), e.g. `payment_received`.
    pub name: String,
    /// The correlation key, e.g. an order id.
    pub key: String,
    /// The data (default `{}`), stored under the event step's `output`.
    #[serde(default)]
    pub data: Option<Value>,
    /// The message id: the same id within its time to live is delivered once (default: a
    /// new one).
    #[serde(default)]
    pub id: Option<String>,
    /// How long it is kept when no instance waits for it yet, e.g. `10m` (default `1h`).
    #[serde(default)]
    pub ttl: Option<String>,
    /// The tenant whose instances may receive it; a tenant-bound caller may only name its
    /// own (or leave it out).
    #[serde(default)]
    pub tenant: Option<String>,
}

/// What became of a sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum Outcome {
    /// The instance that has waited longest on (name, key) receives it (`instance_id`).
    Delivered,
    /// No instance waited: it is kept until its time to live runs out.
    Kept,
    /// A message with this id was sent within its time to live: nothing was done.
    Duplicate,
}

/// The answer to a sent message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(super) struct MessageSentView {
    /// The message id (the caller's, or the one made for it).
    pub id: String,
    /// What became of it.
    pub outcome: Outcome,
    /// The instance that receives it, when delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

impl From<MessageSent> for MessageSentView {
    fn from(m: MessageSent) -> MessageSentView {
        MessageSentView {
            id: m.id,
            outcome: match m.outcome {
                MessageOutcome::Delivered => Outcome::Delivered,
                MessageOutcome::Kept => Outcome::Kept,
                MessageOutcome::Duplicate => Outcome::Duplicate,
            },
            instance_id: m.instance_id,
        }
    }
}

/// A message kept for an instance that does not wait yet.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct KeptMessageView {
    /// The message id.
    pub id: String,
    /// The message name.
    pub name: String,
    /// The correlation key.
    pub key: String,
    /// The data.
    pub data: Value,
    /// The tenant whose instances may receive it.
    pub tenant: Option<String>,
    /// When it was sent.
    #[schema(value_type = String, format = DateTime)]
    pub sent_at: Timestamp,
    /// When it expires unless an instance receives it first.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

impl From<KeptMessage> for KeptMessageView {
    fn from(m: KeptMessage) -> KeptMessageView {
        KeptMessageView {
            id: m.id,
            name: m.name,
            key: m.key,
            data: m.data,
            tenant: m.tenant_id,
            sent_at: m.sent_at,
            expires_at: m.expires_at,
        }
    }
}

/// `GET /messages` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only messages of this name.
    pub name: Option<String>,
    /// Only messages with this correlation key.
    pub key: Option<String>,
    /// Only this tenant's (a tenant-bound caller sees only its own).
    pub tenant: Option<String>,
    /// At most this many, 1 to 1000 (default 100), oldest first.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// The message of a body, each field checked: a 400 names the field to fix (413 for data
/// over the size limit), and nothing is sent.
fn message_of(caller: &Caller, body: MessageBody) -> Result<SendMessage, Problem> {
    check_message_name(&body.name).map_err(|m| Problem::invalid_field("name", m))?;
    if body.key.is_empty() || body.key.len() > weir::model::message::MAX_MESSAGE_ID_LEN {
        return Err(Problem::invalid_field(
            "key",
            format!(
                "the key must be 1 to {} bytes",
                weir::model::message::MAX_MESSAGE_ID_LEN
            ),
        ));
    }
    if let Some(id) = &body.id {
        check_message_id(id).map_err(|m| Problem::invalid_field("id", m))?;
    }
    let ttl = match &body.ttl {
        None => None,
        Some(text) => {
            let d = Problem::duration_field("ttl", text)?;
            if d.is_zero() {
                return Err(Problem::invalid_field(
                    "ttl",
                    "the ttl must be longer than zero, e.g. 10m",
                ));
            }
            Some(d)
        }
    };
    let data = body
        .data
        .unwrap_or_else(|| Value::Object(Default::default()));
    let size = json_size(&data);
    if size > MAX_CONTEXT_BYTES {
        return Err(Problem::too_large_field(
            "data",
            format!(
                "the message data is {size} bytes of JSON, over the limit of \
                 {MAX_CONTEXT_BYTES} bytes: send less data"
            ),
        ));
    }
    let tenant = caller.acting_tenant(body.tenant, "send messages to instances")?;
    let mut message = SendMessage::new(body.name, body.key, data).for_tenant(tenant);
    message.id = body.id;
    message.ttl = ttl;
    // What the fields above did not cover (none today) is refused as the engine words it.
    message.check().map_err(Problem::invalid)?;
    Ok(message)
}

/// Sends a message: it goes to the instance of the caller's tenant that has waited longest
/// on (name, key) (200, `delivered`, with its id), else it is kept for its time to live
/// (201, `kept`; `GET /messages` lists it); the same id again within the time to live
/// changes nothing (200, `duplicate`). On the Redis engine `delivered` means handed to the
/// instance's partition, which applies it at once: read the instance to see it move on.
#[utoipa::path(operation_id = "send_message", post, path = "/api/v1/messages", tag = "messages",
    request_body = MessageBody,
    responses(
        (status = 200, description = "Delivered to a waiting instance, or a duplicate id (nothing done)", body = MessageSentView),
        (status = 201, description = "Kept: no instance waits on (name, key) yet", body = MessageSentView),
        (status = 400, response = openapi::BadRequest),
        (status = 413, response = openapi::TooLarge),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn send(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<(StatusCode, Json<MessageSentView>), Problem> {
    let message = message_of(&caller, body)?;
    let sent = state.client.send_message(message).await?;
    let code = match sent.outcome {
        MessageOutcome::Kept => StatusCode::CREATED,
        MessageOutcome::Delivered | MessageOutcome::Duplicate => StatusCode::OK,
    };
    Ok((code, Json(sent.into())))
}

/// The messages kept for instances that do not wait yet, oldest first: the caller's
/// tenant's only, for a tenant-bound caller.
#[utoipa::path(operation_id = "list_messages", get, path = "/api/v1/messages", tag = "messages",
    params(ListQuery),
    responses(
        (status = 200, description = "Kept messages, oldest first", body = [KeptMessageView]),
        (status = 400, response = openapi::BadRequest),
        (status = 401, response = openapi::Unauthorized),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<KeptMessageView>>, Problem> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::invalid_field(
            "limit",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    if let Some(n) = &q.name {
        check_message_name(n).map_err(|m| Problem::invalid_field("name", m))?;
    }
    let tenant = match (&caller.tenant, q.tenant) {
        // Another tenant's messages do not exist for a tenant-bound caller.
        (Some(own), Some(asked)) if *own != asked => return Ok(Json(Vec::new())),
        (Some(own), _) => Some(own.clone()),
        (None, asked) => asked,
    };
    let filter = MessageFilter {
        tenant_id: tenant,
        name: q.name,
        key: q.key,
    };
    let kept = state.client.list_messages(&filter).await?;
    Ok(Json(
        kept.into_iter()
            .take(limit)
            .map(KeptMessageView::from)
            .collect(),
    ))
}

//! Errors as RFC 9457 problem documents (`application/problem+json`), and the one mapping
//! from engine errors ([`EngineError::kind`]) to HTTP status codes.
//!
//! Every failure of the API is a [`Problem`]: handlers return `Result<_, Problem>`, and the
//! extractors of this module ([`ApiJson`], [`ApiQuery`]) turn axum's own rejections
//! (malformed JSON, a query value of the wrong type) into problems too, so a client never
//! sees a plain-text error.
//!
//! | status | `type` suffix | when |
//! |---|---|---|
//! | 400 | `invalid-input` | malformed JSON, an unknown query value, a bad version, id or cursor |
//! | 400 | `form-invalid` | task data failing the task's form (`errors` lists each field) |
//! | 413 | `too-large` | a body over 2 MiB (axum's default limit), or data that would make an instance's context larger than 1 MiB |
//! | 401 | `unauthorized` | no token, or an unknown one |
//! | 403 | `forbidden` | a task the user may not complete, another tenant's start, admin-only |
//! | 404 | `not-found` | unknown definition, instance, task, or one of another tenant |
//! | 409 | `conflict` | a task already done, a state that forbids the action |
//! | 503 | `unavailable` | Redis unreachable, or no coordinator applied the command in time |

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;
use weir::api::EngineError;
use weir::core::Refusal;
use weir::form::FormError;
use weir::registry::RegistryError;

/// The base of every problem's `type` URI.
pub(super) const TYPE_BASE: &str = "https://weir.dev/problems/";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Problem {
    /// `https://weir.dev/problems/<kind>`: `invalid-input`, `form-invalid`, `unauthorized`,
    /// `forbidden`, `not-found`, `conflict`, `unavailable`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the kind of problem.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this case, and what to do.
    pub detail: String,
    /// The input field at fault (a body field, `data.amount`, or a query parameter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Form validation errors, one per violation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
}

/// One violation of a task's form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldProblem {
    /// A JSON pointer into the submitted data (`""` for the root, `/amount`).
    pub field: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl Problem {
    fn new(
        status: StatusCode,
        kind: &str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            type_uri: format!("{TYPE_BASE}{kind}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            errors: Vec::new(),
        }
    }

    /// 400: the request is malformed or a value is not acceptable.
    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-input",
            "Invalid input",
            detail,
        )
    }

    /// 400 naming the field at fault.
    pub fn invalid_field(field: &str, detail: impl Into<String>) -> Problem {
        Problem::invalid(detail).with_field(field)
    }

    /// Parses a request field holding an RFC 3339 time; otherwise a 400 naming the field.
    pub fn time_field(field: &str, text: &str) -> Result<weir::Timestamp, Problem> {
        weir::Timestamp::parse_input(text)
            .map_err(|e| Problem::invalid_field(field, format!("{field} {e}")))
    }

    /// Parses a request field holding a duration (`90s`, `15m`, `2h`); otherwise a 400
    /// naming the field.
    pub fn duration_field(field: &str, text: &str) -> Result<std::time::Duration, Problem> {
        weir::model::definition::duration::parse(text)
            .map_err(|e| Problem::invalid_field(field, format!("{field}: {e}")))
    }

    /// 413: the body is larger than the server accepts (2 MiB).
    pub fn too_large() -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Body too large",
            "the body is larger than 2 MiB: send less data",
        )
    }

    /// 413 naming the field whose data is over the size limit (`detail` says by how much).
    pub fn too_large_field(field: &str, detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Data too large",
            detail,
        )
        .with_field(field)
    }

    /// 401: no token or an unknown one.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Not authenticated",
            detail,
        )
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail)
    }

    /// 404: unknown (or not visible to the caller).
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 409: the state forbids it.
    pub fn conflict(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// 503: Redis or the coordinator is not available.
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// The same problem, naming the field at fault.
    pub fn with_field(mut self, field: &str) -> Problem {
        self.field = Some(field.to_string());
        self
    }

    /// The status code.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The kind: the last segment of `type`.
    pub fn kind(&self) -> &str {
        self.type_uri.trim_start_matches(TYPE_BASE)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut response = (status, axum::Json(&self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"weir\""),
            );
        }
        response
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Problem {
        let detail = e.to_string();
        match e {
            EngineError::Registry(RegistryError::Unknown { .. }) => Problem::not_found(detail),
            EngineError::Registry(RegistryError::Invalid(_)) => Problem::invalid(detail),
            EngineError::Registry(RegistryError::Conflict { .. }) => Problem::conflict(detail),
            EngineError::NotFound(_) => Problem::not_found(detail),
            EngineError::Refused(r) => from_refusal(r),
            EngineError::BadRequest(m) => Problem::invalid(m),
            EngineError::TenantNotAllowed { .. } => Problem::forbidden(detail).with_field("tenant"),
            EngineError::IdTaken(_) => Problem::conflict(detail),
            EngineError::ScheduleNotFound(_) => Problem::not_found(detail),
            EngineError::ScheduleExists(_) => Problem::conflict(detail),
            EngineError::Rejected { kind, message } => from_kind(&kind, message),
            EngineError::WaitTimeout(..)
            | EngineError::NotApplied(_)
            | EngineError::Quarantined(_)
            | EngineError::Redis(_) => {
                tracing::warn!(error = %detail, "request failed: engine unavailable");
                Problem::unavailable(detail)
            }
        }
    }
}

/// A refusal of the pure core: form errors keep their per-field list.
fn from_refusal(r: Refusal) -> Problem {
    let detail = r.to_string();
    match r {
        Refusal::InvalidData { form, .. } => {
            let errors = match form {
                Some(FormError::Invalid { errors }) => errors
                    .into_iter()
                    .map(|e| FieldProblem {
                        field: e.field,
                        message: e.message,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Problem {
                errors,
                ..Problem::new(
                    StatusCode::BAD_REQUEST,
                    "form-invalid",
                    "Data does not fit the form",
                    detail,
                )
                .with_field("data")
            }
        }
        other => from_kind(other.kind(), detail),
    }
}

/// The status of an engine error kind (see [`EngineError::kind`]): of a core refusal, and
/// of a verdict of an older coordinator, which arrives as a kind and a message only
/// ([`EngineError::Rejected`]).
fn from_kind(kind: &str, detail: String) -> Problem {
    match kind {
        "unknown_workflow" | "not_found" | "unknown_step" | "not_a_human_step" => {
            Problem::not_found(detail)
        }
        "forbidden" => Problem::forbidden(detail),
        "too_large" => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Context too large",
            detail,
        ),
        "invalid_data" => Problem::new(
            StatusCode::BAD_REQUEST,
            "form-invalid",
            "Data does not fit the form",
            detail,
        )
        .with_field("data"),
        "invalid_definition" | "bad_request" => Problem::invalid(detail),
        "conflict" | "task_not_open" | "wrong_status" | "stale" | "id_taken" | "claimed"
        | "not_claimed" | "not_waiting" => Problem::conflict(detail),
        _ => Problem::unavailable(detail),
    }
}

/// A JSON body whose rejection (malformed JSON, wrong content type, a field of the wrong
/// type) is a 400 problem.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(json_problem(&e)),
        }
    }
}

fn json_problem(e: &JsonRejection) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Problem::too_large();
    }
    match e {
        JsonRejection::MissingJsonContentType(_) => Problem::invalid(
            "the body must be JSON, sent with the header Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(_) => Problem::invalid(format!("cannot read the body: {e}")),
        other => Problem::invalid(format!(
            "the body is not acceptable JSON: {}",
            other.body_text()
        )),
    }
}

/// A query string whose rejection (an unknown value, a number that is not one) is a 400
/// problem.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(query_problem(&e)),
        }
    }
}

fn query_problem(e: &QueryRejection) -> Problem {
    Problem::invalid(format!(
        "the query string is not acceptable: {}",
        e.body_text()
    ))
}

/// The answer to a path that matches no route.
pub(super) async fn no_route() -> Problem {
    Problem::not_found("no such API path: see /api/v1/openapi.json for the paths")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_the_contract_status_codes() {
        let cases: Vec<(EngineError, u16, &str)> = vec![
            (EngineError::NotFound("x".into()), 404, "not-found"),
            (EngineError::BadRequest("bad".into()), 400, "invalid-input"),
            (
                EngineError::Redis(weir::redis::RedisError::from_redis(
                    "redis://127.0.0.1:1",
                    redis::RedisError::from((redis::ErrorKind::Io, "down")),
                )),
                503,
                "unavailable",
            ),
            (
                EngineError::Quarantined("instance \"x\" is quarantined".into()),
                503,
                "unavailable",
            ),
            (
                EngineError::Refused(Refusal::TaskNotOpen("s".into())),
                409,
                "conflict",
            ),
            (
                EngineError::Refused(Refusal::Forbidden {
                    user: "u".into(),
                    step: "s".into(),
                }),
                403,
                "forbidden",
            ),
            (
                EngineError::Rejected {
                    kind: "wrong_status".into(),
                    message: "m".into(),
                },
                409,
                "conflict",
            ),
            (
                EngineError::Refused(Refusal::NotWaiting {
                    event: "go".into(),
                    key: None,
                }),
                409,
                "conflict",
            ),
        ];
        for (e, status, kind) in cases {
            let p = Problem::from(e);
            assert_eq!((p.status, p.kind()), (status, kind), "{p:?}");
        }
    }

    #[test]
    fn form_errors_keep_each_field() {
        let p = Problem::from(EngineError::Refused(Refusal::InvalidData {
            step: "approve".into(),
            message: "m".into(),
            form: Some(FormError::Invalid {
                errors: vec![weir::form::FieldError {
                    field: "/amount".into(),
                    message: "-1 is less than the minimum of 0".into(),
                }],
            }),
        }));
        assert_eq!(p.status, 400);
        assert_eq!(p.kind(), "form-invalid");
        assert_eq!(p.errors[0].field, "/amount");
        assert_eq!(p.field.as_deref(), Some("data"));
    }
}

//! The OpenAPI 3.1 document of the API, generated from the handlers' annotations and the
//! view types (utoipa), served at `GET /api/v1/openapi.json` without a token.
//!
//! # Problem responses
//!
//! Every error is a [`Problem`] (`application/problem+json`), one kind per status (see
//! [`problem`]). Each kind is declared here once, as a response component
//! (`#/components/responses/NotFound`, ...) that says when it happens; a handler's
//! annotation lists the statuses it can return, each as `(status = 404, response =
//! openapi::NotFound)`, so the document names every problem of every operation without
//! repeating its description, body and content type.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse};

use super::problem::Problem;

use super::{
    auth, definitions, events, instances, messages, ops, problem, schedules, tasks, views,
};

/// The API's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weir HTTP API",
        version = "1",
        description = "Workflows on Redis: definitions, instances, human tasks, live events, \
                       dead letters and stats. Errors are RFC 9457 problem documents \
                       (application/problem+json). Authenticate with `Authorization: Bearer <token>`."
    ),
    paths(
        ops::health,
        ops::me,
        definitions::list,
        definitions::detail,
        definitions::graph,
        instances::start,
        instances::start_batch,
        instances::list,
        instances::detail,
        instances::graph,
        instances::history,
        instances::cancel,
        instances::retry,
        instances::signal,
        messages::send,
        messages::list,
        tasks::list,
        tasks::detail,
        tasks::complete,
        tasks::reassign,
        tasks::claim,
        tasks::release,
        events::stream,
        ops::dlq,
        ops::stats,
        schedules::create,
        schedules::list,
        schedules::detail,
        schedules::pause,
        schedules::resume,
        schedules::trigger,
        schedules::delete,
        document,
    ),
    components(responses(
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        TooLarge,
        Unavailable,
    ), schemas(
        problem::Problem,
        problem::FieldProblem,
        auth::Caller,
        views::Status,
        views::InstanceSummary,
        views::InstanceDetail,
        views::Attempt,
        views::TaskView,
        views::ShownFieldView,
        views::OutcomeView,
        views::Graph,
        views::Node,
        views::Edge,
        views::InstanceGraph,
        views::DefinitionSummary,
        views::DefinitionDetail,
        instances::StartBody,
        schedules::ScheduleBody,
        schedules::ScheduleJson,
        instances::StartBatchBody,
        instances::StartBatchItem,
        instances::StartBatchResult,
        instances::StartBatchAnswer,
        instances::InstancePage,
        instances::HistoryPageView,
        instances::CancelBody,
        instances::RetryBody,
        instances::SignalBody,
        views::WaitingView,
        messages::MessageBody,
        messages::MessageSentView,
        messages::Outcome,
        messages::KeptMessageView,
        tasks::CompleteBody,
        tasks::ReassignBody,
        ops::DeadLetter,
        ops::Health,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "definitions", description = "Registered workflows and their diagrams"),
        (name = "instances", description = "Start, list, inspect, cancel and retry instances"),
        (name = "messages", description = "Messages by name and correlation key for event steps"),
        (name = "tasks", description = "The human-task inbox"),
        (name = "events", description = "Live Server-Sent Events"),
        (name = "ops", description = "Health, identity, dead letters and stats"),
    )
)]
pub struct ApiDoc;

// The problem responses. These types are never built: each only describes, for the
// document, the `Problem` a handler returns with its status (hence the `dead_code` allow
// on the one field).

/// 400: bad input (`invalid-input`): malformed JSON, an unknown body field or query value,
/// a bad version, id, limit or cursor; or task data failing the task's form
/// (`form-invalid`, each violation in `errors`). `field` names the input at fault. Nothing
/// was changed.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(super) struct BadRequest(#[allow(dead_code)] Problem);

/// 401: no token, an unknown one, or another scheme than `Bearer` (`unauthorized`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(super) struct Unauthorized(#[allow(dead_code)] Problem);

/// 403: the caller may not do this (`forbidden`): an admin-only endpoint, a start in
/// another tenant, a task the user may not complete or reassign, a message for another
/// tenant.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(super) struct Forbidden(#[allow(dead_code)] Problem);

/// 404: no such workflow, version, instance, step or open task, or one of another tenant
/// (`not-found`). A start refused with it stored nothing.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(super) struct NotFound(#[allow(dead_code)] Problem);

/// 409: the state forbids it (`conflict`): the instance is finished or not failed, the
/// task is already done or not open, or the caller id is taken by another start.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(super) struct Conflict(#[allow(dead_code)] Problem);

/// 413: the body is over 2 MiB, or the data would make the instance's context (or a
/// message's data) larger than 1 MiB (`too-large`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(super) struct TooLarge(#[allow(dead_code)] Problem);

/// 503: Redis is unreachable, or no coordinator applied the command within 10 s
/// (`unavailable`); a command past its deadline is never applied, so nothing changed.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub(super) struct Unavailable(#[allow(dead_code)] Problem);

/// Adds the bearer-token security scheme.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This document.
#[utoipa::path(operation_id = "openapi_document", get, path = "/api/v1/openapi.json", tag = "ops", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub(super) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

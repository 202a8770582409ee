//! The OpenAPI 3.1 document of the API, generated from the handlers' annotations and the
//! view types (utoipa), served at `GET /api/v1/openapi.json` without a token.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{auth, definitions, events, instances, ops, problem, tasks, views};

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
        tasks::list,
        tasks::detail,
        tasks::complete,
        tasks::reassign,
        events::stream,
        ops::dlq,
        ops::stats,
        document,
    ),
    components(schemas(
        problem::Problem,
        problem::FieldProblem,
        auth::Caller,
        views::Status,
        views::InstanceSummary,
        views::InstanceDetail,
        views::Attempt,
        views::TaskView,
        views::Graph,
        views::Node,
        views::Edge,
        views::InstanceGraph,
        views::DefinitionSummary,
        views::DefinitionDetail,
        instances::StartBody,
        instances::StartBatchBody,
        instances::StartBatchItem,
        instances::StartBatchResult,
        instances::StartBatchAnswer,
        instances::InstancePage,
        instances::HistoryPageView,
        instances::CancelBody,
        instances::RetryBody,
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
        (name = "tasks", description = "The human-task inbox"),
        (name = "events", description = "Live Server-Sent Events"),
        (name = "ops", description = "Health, identity, dead letters and stats"),
    )
)]
pub struct ApiDoc;

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
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

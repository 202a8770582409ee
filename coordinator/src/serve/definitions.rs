//! `GET /definitions`, `/definitions/{name}` and `/definitions/{name}/graph`: the registered
//! workflows, one version or the latest, and their diagram. Definitions are registered with
//! `weir definition register`; the API only reads them.
//!
//! # Who sees what
//!
//! - A definition may name the tenants that may use it (`tenants: [acme, globex]` in its
//!   file; none means every tenant). A caller bound to a tenant sees only the definitions
//!   its tenant may use: the others are missing from the list and "not found" (404) one by
//!   one, so their names cannot be probed. Admins and callers bound to no tenant see all.
//! - Handler `config` may hold credentials (prefer `{env:NAME}` references, resolved on the
//!   worker): callers who are not admins get it replaced by `"[redacted]"`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use weir::api::EngineError;
use weir::definition::Workflow;
use weir::registry::RegistryError;
use weir::Engine;

use super::auth::Caller;
use super::problem::{ApiQuery, Problem};
use super::views::{DefinitionDetail, DefinitionSummary, Graph};
use super::{openapi, AppState};

/// `?version=`: a semantic version; the latest when absent.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct VersionQuery {
    /// A version such as `1.2.0`; the latest when not given.
    pub version: Option<String>,
}

/// Every registered workflow, with its versions.
#[utoipa::path(operation_id = "list_definitions", get, path = "/api/v1/definitions", tag = "definitions",
    responses(
        (status = 200, description = "Workflows by name", body = [DefinitionSummary]),
        (status = 401, response = openapi::Unauthorized),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<DefinitionSummary>>, Problem> {
    let all = state.client.list_definitions().await?;
    let mut by_name: BTreeMap<String, Vec<Arc<Workflow>>> = BTreeMap::new();
    for wf in all.into_iter().filter(|wf| may_use(&caller, wf)) {
        by_name.entry(wf.name.to_string()).or_default().push(wf);
    }
    let out = by_name
        .into_iter()
        .filter_map(|(name, mut versions)| {
            versions.sort_by(|a, b| a.semver.cmp(&b.semver));
            let latest = versions.last()?.clone();
            Some(DefinitionSummary {
                name,
                latest_version: latest.version.to_string(),
                versions: versions.iter().map(|w| w.version.to_string()).collect(),
                description: latest.definition.description.clone(),
                steps: latest.steps.len(),
            })
        })
        .collect();
    Ok(Json(out))
}

/// One version of a definition (the latest when no version is given).
#[utoipa::path(operation_id = "get_definition", get, path = "/api/v1/definitions/{name}", tag = "definitions",
    params(("name" = String, Path, description = "The workflow name"), VersionQuery),
    responses(
        (status = 200, description = "The definition", body = DefinitionDetail),
        (status = 400, response = openapi::BadRequest),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> Result<Json<DefinitionDetail>, Problem> {
    let wf = visible_workflow(&state, &caller, &name, q.version.as_deref()).await?;
    Ok(Json(DefinitionDetail::new(&wf, !caller.admin)))
}

/// A definition's diagram: Mermaid text, nodes and edges.
#[utoipa::path(operation_id = "get_definition_graph", get, path = "/api/v1/definitions/{name}/graph", tag = "definitions",
    params(("name" = String, Path, description = "The workflow name"), VersionQuery),
    responses(
        (status = 200, description = "The graph", body = Graph),
        (status = 400, response = openapi::BadRequest),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn graph(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> Result<Json<Graph>, Problem> {
    let wf = visible_workflow(&state, &caller, &name, q.version.as_deref()).await?;
    Ok(Json(Graph::new(&wf)))
}

/// Whether the caller may see (and use) a definition: see the module doc.
pub(super) fn may_use(caller: &Caller, wf: &Workflow) -> bool {
    match &caller.tenant {
        None => true,
        Some(tenant) => wf.definition.allows_tenant(Some(tenant)),
    }
}

/// [`workflow`], as "not found" when the caller's tenant may not use it.
pub(super) async fn visible_workflow(
    state: &AppState,
    caller: &Caller,
    name: &str,
    version: Option<&str>,
) -> Result<Arc<Workflow>, Problem> {
    let wf = workflow(state, name, version).await?;
    if may_use(caller, &wf) {
        Ok(wf)
    } else {
        // Exactly the answer for a workflow that does not exist.
        Err(EngineError::Registry(RegistryError::Unknown {
            name: name.to_string(),
            version: version.map(str::to_string),
        })
        .into())
    }
}

/// A workflow by name and optional version; a version that is not semver is a 400.
pub(super) async fn workflow(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<Arc<Workflow>, Problem> {
    check_version(version)?;
    Ok(state.client.get_definition(name, version).await?)
}

/// A 400 naming `version` unless it is a semantic version (or absent).
pub(super) fn check_version(version: Option<&str>) -> Result<(), Problem> {
    match version {
        Some(v) if semver::Version::parse(v.trim()).is_err() => Err(Problem::invalid_field(
            "version",
            format!("version {v:?} is not a semantic version: write it like 1.2.0"),
        )),
        _ => Ok(()),
    }
}

//! `/tasks`: the inbox of open human tasks, one task with its form, completing it, and
//! reassigning it.
//!
//! The completing user is always the authenticated caller: the body carries only the form
//! data, so nobody can complete a task in another user's name. A tenant-bound caller sees
//! only its tenant's tasks; another tenant's task is "not found" (404). A task may be
//! reassigned by an admin or by a user it allows (its assignee or a candidate, or anyone
//! when it names no one); the reassignment is recorded in the instance's history as done
//! by the caller and announced as a `HumanTaskReassigned` event.
//!
//! A task carries what it is about, as the core rendered it when it opened: its title and
//! description, and the context fields its step shows (`fields`). A completion may name
//! one of the task's `outcomes`: its data is merged over the body's `data` here (from the
//! stored task), and the engine's form check decides, as for any completion.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use weir::api::{InstanceView, TaskCursor, TaskFilter, TaskScope, TaskSort};
use weir::definition::CompiledKind;
use weir::model::{Assignment, Task};
use weir::redis::tasks::{self as stored_tasks, TaskReadError};
use weir::Engine;

use super::auth::Caller;
use super::instances::{detail_of, visible};
use super::listing::{page_limit, Cursor, CursorText};
use super::problem::{ApiJson, ApiQuery, Problem};
use super::views::{InstanceDetail, TaskView};
use super::{openapi, AppState};

/// `GET /tasks` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct TaskQuery {
    /// Only tasks assigned to exactly this user.
    pub assignee: Option<String>,
    /// Only tasks naming this user among their candidates.
    pub candidate: Option<String>,
    /// Only tasks of this instance.
    pub instance_id: Option<String>,
    /// `open` (the only status listed: closed tasks are in the instance's history).
    pub status: Option<String>,
    /// Only tasks the caller may act on (the same as `view=all`).
    pub mine: Option<bool>,
    /// Which of the caller's tasks: `mine` (assigned to or claimed by them), `groups` (open
    /// to one of their groups) or `all` (everything they may act on). Without it, every
    /// open task the caller's tenant sees.
    pub view: Option<String>,
    /// Only tasks of this workflow (definition name).
    pub workflow: Option<String>,
    /// `oldest` (default: oldest first) or `due` (soonest due first, tasks without a due
    /// time last).
    pub sort: Option<String>,
    /// At most this many tasks (1 to 1000, default 100); the position to go on from is
    /// in the `Weir-Next-Cursor` response header when there are more.
    pub limit: Option<usize>,
    /// Where to go on: a `Weir-Next-Cursor` header value of the previous page.
    pub cursor: Option<String>,
}

/// The default page size of `GET /tasks`.
pub(super) const DEFAULT_TASK_PAGE: usize = 100;
/// The largest page size of `GET /tasks`.
pub(super) const MAX_TASK_PAGE: usize = 1000;
/// The response header holding the cursor of the next page of `GET /tasks`.
pub(super) const NEXT_CURSOR_HEADER: &str = "weir-next-cursor";
/// The response header counting stored tasks that could not be read and were left out of
/// a page of `GET /tasks` (they are logged; the listing does not fail for them).
pub(super) const UNREADABLE_HEADER: &str = "weir-unreadable-tasks";

/// `POST /tasks/{instance_id}/{step}/complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CompleteBody {
    /// The form data (checked against the task's form).
    #[serde(default = "empty_object")]
    pub data: Value,
    /// One of the task's `outcomes` (by name): its data is merged over `data` (its keys
    /// win) before the form checks the result.
    #[serde(default)]
    pub outcome: Option<String>,
}

/// `POST /tasks/{instance_id}/{step}/reassign`: who may complete the task from now on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReassignBody {
    /// The new assignee.
    #[serde(default)]
    pub assignee: Option<String>,
    /// The new candidates (replacing the old ones).
    #[serde(default)]
    pub candidates: Vec<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Open tasks, oldest first (by creation time, then instance id and step), one page at a
/// time: when more match, the `Weir-Next-Cursor` header says where the next page begins.
#[utoipa::path(operation_id = "list_tasks", get, path = "/api/v1/tasks", tag = "tasks",
    params(TaskQuery),
    responses(
        (status = 200, description = "Open tasks", body = [TaskView],
            headers(("weir-next-cursor" = String, description = "The cursor of the next page, when there is one"),
                ("weir-unreadable-tasks" = String, description = "How many stored tasks could not be read and were left out (logged)"))),
        (status = 400, response = openapi::BadRequest),
        (status = 401, response = openapi::Unauthorized),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<TaskQuery>,
) -> Result<(HeaderMap, Json<Vec<TaskView>>), Problem> {
    if let Some(s) = q.status.as_deref().filter(|s| *s != "open") {
        return Err(Problem::invalid_field(
            "status",
            format!("status {s:?}: only open tasks are listed (status=open)"),
        ));
    }
    let limit = page_limit(q.limit, DEFAULT_TASK_PAGE, MAX_TASK_PAGE)?;
    let after = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let scope = match q.view.as_deref() {
        None => q.mine.unwrap_or(false).then_some(TaskScope::MayDo),
        Some(v) => Some(TaskScope::parse(v).ok_or_else(|| {
            Problem::invalid_field("view", format!("view {v:?}: use mine, groups or all"))
        })?),
    };
    let sort = match q.sort.as_deref() {
        None => TaskSort::Oldest,
        Some(v) => TaskSort::parse(v).ok_or_else(|| {
            Problem::invalid_field("sort", format!("sort {v:?}: use oldest or due"))
        })?,
    };
    let filter = TaskFilter {
        user: scope.map(|_| caller.user.clone()),
        groups: caller.groups.clone(),
        scope,
        assignee: q.assignee,
        instance_id: q.instance_id,
        tenant_id: caller.tenant.clone(),
        workflow: q.workflow,
        sort,
        after: after.map(|c| TaskCursor {
            key_ms: c.created_ms,
            task: c.id,
        }),
        // The candidate filter is applied here, after the page: ask for the page plus one.
        limit: Some(limit),
    };
    let mut page = state.client.task_page(&filter).await?;
    if let Some(c) = &q.candidate {
        page.items.retain(|t| t.candidates.iter().any(|x| x == c));
    }
    let mut headers = HeaderMap::new();
    if let Some(next) = &page.next {
        let text = Cursor {
            created_ms: next.key_ms,
            id: next.task.clone(),
        }
        .encode();
        if let Ok(value) = HeaderValue::from_str(&text) {
            headers.insert(NEXT_CURSOR_HEADER, value);
        }
    }
    if page.unreadable > 0 {
        if let Ok(value) = HeaderValue::from_str(&page.unreadable.to_string()) {
            headers.insert(UNREADABLE_HEADER, value);
        }
    }
    let tasks = page.items;
    let names = workflow_names(&state, &tasks).await?;
    Ok((
        headers,
        Json(
            tasks
                .iter()
                .map(|t| {
                    let name = t
                        .workflow
                        .as_deref()
                        .map(str::to_string)
                        .or_else(|| names.get(&*t.instance_id).cloned());
                    TaskView::for_caller(t, name, &caller)
                })
                .collect(),
        ),
    ))
}

/// One open task, with its form.
#[utoipa::path(operation_id = "get_task", get, path = "/api/v1/tasks/{instance_id}/{step}", tag = "tasks",
    params(
        ("instance_id" = String, Path, description = "The instance id"),
        ("step" = String, Path, description = "The human step"),
    ),
    responses(
        (status = 200, description = "The task", body = TaskView),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, step)): Path<(String, String)>,
) -> Result<Json<TaskView>, Problem> {
    let task = open_task(&state, &caller, &instance_id, &step).await?;
    let names = workflow_names(&state, std::slice::from_ref(&task)).await?;
    Ok(Json(TaskView::for_caller(
        &task,
        names.get(&instance_id).cloned(),
        &caller,
    )))
}

/// Completes a task as the caller.
#[utoipa::path(operation_id = "complete_task", post, path = "/api/v1/tasks/{instance_id}/{step}/complete", tag = "tasks",
    params(
        ("instance_id" = String, Path, description = "The instance id"),
        ("step" = String, Path, description = "The human step"),
    ),
    request_body = CompleteBody,
    responses(
        (status = 200, description = "Completed: the instance", body = InstanceDetail),
        (status = 400, response = openapi::BadRequest),
        (status = 413, response = openapi::TooLarge),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, step)): Path<(String, String)>,
    ApiJson(body): ApiJson<CompleteBody>,
) -> Result<Json<InstanceDetail>, Problem> {
    visible(&state, &caller, &instance_id).await?;
    let data = match body.outcome.as_deref() {
        None => body.data,
        // The outcome's data is the task's, stored with it when it opened. With no open
        // task, the data goes as it is, and the engine says why (done already: 409).
        Some(outcome) => {
            match stored_tasks::open_task(state.client.connections(), &instance_id, &step).await {
                Ok(Some(task)) => task
                    .submission(Some(outcome), body.data)
                    .map_err(|e| Problem::invalid_field("outcome", e.to_string()))?,
                Ok(None) => body.data,
                Err(e) => return Err(Problem::unavailable(e.to_string())),
            }
        }
    };
    state
        .client
        .complete_task_as(&instance_id, &step, &caller.actor(), data)
        .await?;
    Ok(Json(detail_of(&state, &caller, &instance_id).await?))
}

/// Gives a task to another assignee and/or candidates.
#[utoipa::path(operation_id = "reassign_task", post, path = "/api/v1/tasks/{instance_id}/{step}/reassign", tag = "tasks",
    params(
        ("instance_id" = String, Path, description = "The instance id"),
        ("step" = String, Path, description = "The human step"),
    ),
    request_body = ReassignBody,
    responses(
        (status = 200, description = "Reassigned: the task", body = TaskView),
        (status = 400, response = openapi::BadRequest),
        (status = 413, response = openapi::TooLarge),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn reassign(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, step)): Path<(String, String)>,
    ApiJson(body): ApiJson<ReassignBody>,
) -> Result<Json<TaskView>, Problem> {
    let to = Assignment {
        assignee: body
            .assignee
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty()),
        candidates: body
            .candidates
            .into_iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect(),
        groups: Vec::new(),
    };
    if to.assignee.is_none() && to.candidates.is_empty() {
        return Err(Problem::invalid_field(
            "assignee",
            "name an assignee or at least one candidate",
        ));
    }
    visible(&state, &caller, &instance_id).await?;
    // Who may reassign is the core's decision, made by the coordinator against the task as
    // it is when the reassignment applies: checking here first would race the task's
    // opening (and fail open on any error). Every refusal, whatever its kind, is an error.
    let by = caller.actor();
    state
        .client
        .reassign_task(&instance_id, &step, &by, to)
        .await?;
    let task = open_task(&state, &caller, &instance_id, &step).await?;
    let names = workflow_names(&state, std::slice::from_ref(&task)).await?;
    Ok(Json(TaskView::for_caller(
        &task,
        names.get(&instance_id).cloned(),
        &caller,
    )))
}

/// Claims a task for the caller: until it is released, only they may complete it.
#[utoipa::path(operation_id = "claim_task", post, path = "/api/v1/tasks/{instance_id}/{step}/claim", tag = "tasks",
    params(
        ("instance_id" = String, Path, description = "The instance id"),
        ("step" = String, Path, description = "The human step"),
    ),
    responses(
        (status = 200, description = "Claimed: the task", body = TaskView),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, step)): Path<(String, String)>,
) -> Result<Json<TaskView>, Problem> {
    visible(&state, &caller, &instance_id).await?;
    // Decided by the core against the task as it is when the claim applies: of two claims
    // at once, one wins and the other is a 409 naming the claimer.
    state
        .client
        .claim_task(&instance_id, &step, &caller.actor())
        .await?;
    task_reply(&state, &caller, &instance_id, &step).await
}

/// Releases the claim on a task: the claimer's own, or anyone's for an admin.
#[utoipa::path(operation_id = "release_task", post, path = "/api/v1/tasks/{instance_id}/{step}/release", tag = "tasks",
    params(
        ("instance_id" = String, Path, description = "The instance id"),
        ("step" = String, Path, description = "The human step"),
    ),
    responses(
        (status = 200, description = "Released: the task", body = TaskView),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 503, response = openapi::Unavailable),
    ))]
pub(super) async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Path((instance_id, step)): Path<(String, String)>,
) -> Result<Json<TaskView>, Problem> {
    visible(&state, &caller, &instance_id).await?;
    state
        .client
        .release_task(&instance_id, &step, &caller.actor())
        .await?;
    task_reply(&state, &caller, &instance_id, &step).await
}

/// The task as the caller sees it now.
async fn task_reply(
    state: &AppState,
    caller: &Caller,
    instance_id: &str,
    step: &str,
) -> Result<Json<TaskView>, Problem> {
    let task = open_task(state, caller, instance_id, step).await?;
    let names = workflow_names(state, std::slice::from_ref(&task)).await?;
    Ok(Json(TaskView::for_caller(
        &task,
        names.get(instance_id).cloned(),
        caller,
    )))
}

/// The open task of a step that the caller may see; 404 otherwise.
pub(super) async fn open_task(
    state: &AppState,
    caller: &Caller,
    instance_id: &str,
    step: &str,
) -> Result<Task, Problem> {
    let read = stored_tasks::open_task(state.client.connections(), instance_id, step).await;
    let not_found = || {
        Problem::not_found(format!(
            "no open task of step {step:?} in instance {instance_id:?}"
        ))
    };
    let task: Task = match read {
        Ok(Some(task)) => task,
        Ok(None) => return Err(not_found()),
        Err(e) => {
            if let TaskReadError::Unreadable(e) = &e {
                tracing::warn!(instance = instance_id, step, error = %e, "unreadable task");
            }
            return Err(Problem::unavailable(e.to_string()));
        }
    };
    if !caller.sees(task.tenant_id.as_deref()) {
        return Err(not_found());
    }
    Ok(task)
}

/// The open tasks of one instance (its human steps' tasks).
pub(super) async fn open_tasks_of(
    state: &AppState,
    caller: &Caller,
    view: &InstanceView,
) -> Result<Vec<TaskView>, Problem> {
    let wf = state
        .client
        .get_definition(&view.definition, Some(&view.version))
        .await?;
    let steps: Vec<&str> = wf
        .steps
        .iter()
        .filter(|s| matches!(s.kind, CompiledKind::Human { .. }))
        .map(|s| &*s.name)
        .collect();
    let read = stored_tasks::open_tasks(state.client.connections(), &view.id, &steps)
        .await
        .map_err(|e| Problem::unavailable(format!("redis: {e}")))?;
    let mut out = Vec::new();
    for task in read {
        match task {
            Ok(t) => out.push(TaskView::for_caller(
                &t,
                Some(view.definition.clone()),
                caller,
            )),
            Err(e) => tracing::warn!(instance = %view.id, error = %e, "unreadable task skipped"),
        }
    }
    out.sort_by_key(|t| t.created_at);
    Ok(out)
}

/// The workflow name of each task's instance (the `def` field of its hash).
async fn workflow_names(
    state: &AppState,
    tasks: &[Task],
) -> Result<HashMap<String, String>, Problem> {
    let mut ids: Vec<&str> = tasks.iter().map(|t| &*t.instance_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    stored_tasks::workflow_names(state.client.connections(), &ids)
        .await
        .map_err(|e| Problem::unavailable(format!("redis: {e}")))
}

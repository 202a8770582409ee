//! The engine API: the calls a service makes, whichever engine runs its workflows.
//!
//! [`Engine`] is the promise that the in-process [`crate::LocalEngine`] and the Redis client
//! [`crate::redis::WeirClient`] take the same calls: both implement it with the same
//! signatures, the same shapes ([`crate::api`]) and the same error type ([`EngineError`]),
//! and a refusal is the same [`crate::Refusal`] in both (the coordinator sends it back
//! typed). Code written against `&dyn Engine` (or `impl Engine`) runs on either, as the
//! `weir` command's `run` and `demo` do, and as the engines-agree test checks.
//!
//! What only one engine has stays an inherent method of that engine: the Redis client's
//! [`start_workflow_created`](crate::redis::WeirClient::start_workflow_created), event
//! reads and history pages; the LocalEngine's registry and stale-input counter.
//!
//! Calls on an instance that the engine refuses change nothing. The Redis engine adds
//! failures of its own: [`EngineError::Redis`] (retry later),
//! [`EngineError::NotApplied`] (no coordinator applied the command in time, and none will)
//! and [`EngineError::Quarantined`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::api::{
    EngineError, InstanceFilter, InstanceView, StartBatchError, StartOptions, Started, TaskFilter,
};
use crate::definition::Workflow;
use crate::model::{Actor, Assignment, AttemptRecord, Definition, InstanceStatus, Task};

/// A status predicate for [`Engine::wait_for`].
pub type StatusCheck = dyn Fn(InstanceStatus) -> bool + Send + Sync;

/// The calls both engines take (see the module doc). Object safe: `&dyn Engine` works.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Checks and registers a definition. The same (name, version) with identical content
    /// is a no-op; with other content it is refused ([`crate::registry::RegistryError::Conflict`]).
    async fn register_definition(&self, def: Definition) -> Result<Arc<Workflow>, EngineError>;

    /// A version of a workflow, or the latest (by semantic version) when `version` is `None`.
    async fn get_definition(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<Workflow>, EngineError>;

    /// Every registered definition version, by name then version.
    async fn list_definitions(&self) -> Result<Vec<Arc<Workflow>>, EngineError>;

    /// Starts an instance of a workflow (the latest version unless one is given). The
    /// checks that need no instance state come first, and a refused start stores nothing:
    /// the workflow and version exist, the caller id and tenant are well formed
    /// ([`crate::api::start_instance_id`]), the tenant is allowed and the data under the
    /// size limit ([`crate::api::check_start`]). With a caller id already used by the same
    /// start (same workflow, version asked and tenant) it returns that instance and starts
    /// nothing; with one used by another start, [`EngineError::IdTaken`].
    ///
    /// The LocalEngine returns the instance after its first transition; the Redis engine
    /// stores the start and returns at once with the instance `pending` (a coordinator
    /// creates it; see [`crate::redis::WeirClient::start_workflow_created`]).
    async fn start_workflow(
        &self,
        name: &str,
        options: StartOptions,
    ) -> Result<InstanceView, EngineError>;

    /// Starts many instances of one workflow. Every start is checked first (as
    /// [`Engine::start_workflow`] does); if any is refused, nothing of the batch is stored
    /// and the error names its index. Then each start gets its own result, in order: the
    /// started instance, the instance its caller id already has (same start), or
    /// [`EngineError::IdTaken`] (that start stored nothing; the others are stored).
    async fn start_workflows(
        &self,
        name: &str,
        starts: Vec<StartOptions>,
    ) -> Result<Vec<Result<Started, EngineError>>, StartBatchError>;

    /// Completes a human task as `user` with `data`. Refused, with nothing changed, for a
    /// user the task does not allow, data that fails its form, or a task not open.
    async fn complete_human_task(
        &self,
        instance_id: &str,
        step: &str,
        user: &str,
        data: Value,
    ) -> Result<InstanceView, EngineError>;

    /// Gives an open human task to `to` (an assignee and/or candidates), recorded in the
    /// history as done `by` someone and announced as `HumanTaskReassigned`. Refused, with
    /// nothing changed, for a task not open, an assignment that names no one, or an actor
    /// who is neither an admin nor a user the task allows.
    async fn reassign_task(
        &self,
        instance_id: &str,
        step: &str,
        by: &Actor,
        to: Assignment,
    ) -> Result<InstanceView, EngineError>;

    /// Cancels a pending, running or waiting instance.
    async fn cancel_workflow(
        &self,
        instance_id: &str,
        reason: Option<&str>,
    ) -> Result<InstanceView, EngineError>;

    /// Resumes a failed instance from `from_step` (the failed step when `None`).
    async fn retry(
        &self,
        instance_id: &str,
        from_step: Option<&str>,
    ) -> Result<InstanceView, EngineError>;

    /// An instance by id.
    async fn get_instance(&self, instance_id: &str) -> Result<InstanceView, EngineError>;

    /// Instances matching a filter, newest first (creation time, then id), at most
    /// `filter.limit` ([`crate::api::DEFAULT_LIST_LIMIT`] when unset).
    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceView>, EngineError>;

    /// Open human tasks matching a filter, oldest first.
    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, EngineError>;

    /// The execution history: one record per finished attempt, then one `running` record
    /// per attempt in flight.
    async fn history(&self, instance_id: &str) -> Result<Vec<AttemptRecord>, EngineError>;

    /// Waits (up to `timeout`) until the instance's status satisfies `done`, and returns
    /// it then; [`EngineError::WaitTimeout`] when it did not in time.
    async fn wait_for(
        &self,
        instance_id: &str,
        timeout: Duration,
        done: &StatusCheck,
    ) -> Result<InstanceView, EngineError>;

    /// Waits (up to `timeout`) until the instance is completed, failed, canceled or waiting
    /// on a human task: no longer `pending` or `running`.
    async fn wait(
        &self,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<InstanceView, EngineError> {
        self.wait_for(instance_id, timeout, &settled).await
    }
}

/// Whether an instance is at rest: finished, or waiting on a person. A `pending` one (the
/// Redis engine: stored, not created yet) is not.
pub fn settled(status: InstanceStatus) -> bool {
    !matches!(status, InstanceStatus::Pending | InstanceStatus::Running)
}

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
    TaskPage,
};
use crate::definition::Workflow;
use crate::model::{
    Actor, Assignment, AttemptRecord, Definition, InstanceStatus, KeptMessage, MessageFilter,
    MessageSent, SendMessage, Task,
};
use crate::schedule::{Firing, ScheduleDetail, ScheduleSpec, ScheduleView};

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

    /// Completes a human task as `user` (a member of no group) with `data`: as
    /// [`Engine::complete_task_as`].
    async fn complete_human_task(
        &self,
        instance_id: &str,
        step: &str,
        user: &str,
        data: Value,
    ) -> Result<InstanceView, EngineError> {
        self.complete_task_as(instance_id, step, &Actor::user(user), data)
            .await
    }

    /// Completes a human task as `by` (a user with their groups) with `data`. Refused, with
    /// nothing changed, for a user the task does not allow, a task claimed by someone else,
    /// data that fails its form, or a task not open.
    async fn complete_task_as(
        &self,
        instance_id: &str,
        step: &str,
        by: &Actor,
        data: Value,
    ) -> Result<InstanceView, EngineError>;

    /// Claims an open human task for `by`, so that only they may complete it until it is
    /// released; announced as `HumanTaskClaimed` and recorded in the history. Refused, with
    /// nothing changed, when someone else holds it ([`crate::Refusal::Claimed`]: of two
    /// claims at once, one wins), for a user the task does not allow, or a task not open.
    /// Claiming one's own claim again is refused the same way (it changes nothing).
    async fn claim_task(
        &self,
        instance_id: &str,
        step: &str,
        by: &Actor,
    ) -> Result<InstanceView, EngineError>;

    /// Releases the claim on an open human task: by the claimer, or an admin. Announced as
    /// `HumanTaskReleased` and recorded. Refused, with nothing changed, for a task not
    /// claimed or anyone else.
    async fn release_task(
        &self,
        instance_id: &str,
        step: &str,
        by: &Actor,
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

    /// Sends a message: it goes to the oldest instance (of the message's tenant) whose event
    /// step waits on (name, key); when none waits it is kept until its time to live runs
    /// out, so an instance reaching the step later receives it at once. The same id within
    /// the time to live is delivered once (a resend answers
    /// [`crate::model::MessageOutcome::Duplicate`]). A malformed message is refused
    /// ([`EngineError::BadRequest`]) with nothing stored.
    async fn send_message(&self, message: SendMessage) -> Result<MessageSent, EngineError>;

    /// Delivers a message named `name` to one instance by id (a signal), whatever key its
    /// event step waits on. Refused, with nothing changed, when the instance is not waiting
    /// on `name` ([`crate::Refusal::NotWaiting`]). With an `id` already used within the
    /// default time to live, nothing is delivered again and the instance is returned as it is.
    async fn signal(
        &self,
        instance_id: &str,
        name: &str,
        data: Value,
        id: Option<&str>,
    ) -> Result<InstanceView, EngineError>;

    /// The messages kept and not yet delivered, oldest first.
    async fn list_messages(&self, filter: &MessageFilter) -> Result<Vec<KeptMessage>, EngineError>;

    /// An instance by id.
    async fn get_instance(&self, instance_id: &str) -> Result<InstanceView, EngineError>;

    /// Instances matching a filter, newest first (creation time, then id), at most
    /// `filter.limit` ([`crate::api::DEFAULT_LIST_LIMIT`] when unset).
    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceView>, EngineError>;

    /// Open human tasks matching a filter, in its order (oldest first by default), at most
    /// its limit: the items of [`Engine::task_page`].
    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, EngineError> {
        Ok(self.task_page(filter).await?.items)
    }

    /// One page of open human tasks matching a filter, in its order, after its cursor, at
    /// most its limit, with where the next page begins. A stored task that cannot be read
    /// is left out and counted, never failing the listing.
    async fn task_page(&self, filter: &TaskFilter) -> Result<TaskPage, EngineError>;

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

    /// Creates a schedule (see [`crate::schedule`]): checked first (name, trigger, time
    /// zone, the workflow and version exist, the data's size), then stored with its first
    /// slot after now. The same name with the same spec is a no-op; with another spec,
    /// [`EngineError::ScheduleExists`].
    async fn create_schedule(&self, spec: ScheduleSpec) -> Result<ScheduleView, EngineError>;

    /// Every schedule, by name.
    async fn list_schedules(&self) -> Result<Vec<ScheduleView>, EngineError>;

    /// A schedule with its next five fire times and its last ten firings;
    /// [`EngineError::ScheduleNotFound`] for an unknown name.
    async fn get_schedule(&self, name: &str) -> Result<ScheduleDetail, EngineError>;

    /// Pauses a schedule: no slot fires until it is resumed.
    async fn pause_schedule(&self, name: &str) -> Result<ScheduleView, EngineError>;

    /// Resumes a paused schedule from its first slot after now (the slots of the pause are
    /// not fired).
    async fn resume_schedule(&self, name: &str) -> Result<ScheduleView, EngineError>;

    /// Deletes a schedule; the instances it started stay.
    async fn delete_schedule(&self, name: &str) -> Result<(), EngineError>;

    /// Fires a schedule now, outside its slots, under its overlap rule.
    async fn trigger_schedule(&self, name: &str) -> Result<Firing, EngineError>;

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

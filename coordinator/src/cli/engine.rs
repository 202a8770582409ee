//! The engine calls that `weir run` and `weir demo` make, behind one trait.
//!
//! The [`LocalEngine`] and the Redis client ([`WeirClient`], for `weir demo --redis`)
//! implement it here.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use weir::api::{EngineError, InstanceView, StartOptions, TaskFilter};
use weir::model::{AttemptRecord, InstanceStatus, Task};
use weir::redis::WeirClient;
use weir::LocalEngine;

/// How long one wait lasts before it is renewed (a run may sleep on timers for days).
const WAIT_SLICE: Duration = Duration::from_secs(3600);

/// What the CLI asks of an engine.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Starts an instance of a registered workflow.
    async fn start(&self, name: &str, options: StartOptions) -> Result<InstanceView, EngineError>;

    /// Waits, without limit, until the instance is completed, failed, canceled or waiting
    /// on a person.
    async fn settle(&self, id: &str) -> Result<InstanceView, EngineError>;

    /// The instance's open human tasks, oldest first.
    async fn open_tasks(&self, id: &str) -> Result<Vec<Task>, EngineError>;

    /// Completes a task as `user`.
    async fn complete(
        &self,
        id: &str,
        step: &str,
        user: &str,
        data: Value,
    ) -> Result<InstanceView, EngineError>;

    /// Cancels the instance.
    async fn cancel(&self, id: &str, reason: &str) -> Result<InstanceView, EngineError>;

    /// The instance's execution history.
    async fn history(&self, id: &str) -> Result<Vec<AttemptRecord>, EngineError>;
}

#[async_trait]
impl Engine for LocalEngine {
    async fn start(&self, name: &str, options: StartOptions) -> Result<InstanceView, EngineError> {
        self.start_workflow(name, options).await
    }

    async fn settle(&self, id: &str) -> Result<InstanceView, EngineError> {
        loop {
            match self
                .wait_for(id, WAIT_SLICE, |s| s != InstanceStatus::Running)
                .await
            {
                Err(EngineError::WaitTimeout(..)) => continue,
                other => return other,
            }
        }
    }

    async fn open_tasks(&self, id: &str) -> Result<Vec<Task>, EngineError> {
        let filter = TaskFilter {
            instance_id: Some(id.to_string()),
            ..TaskFilter::default()
        };
        Ok(self.list_tasks(&filter).await)
    }

    async fn complete(
        &self,
        id: &str,
        step: &str,
        user: &str,
        data: Value,
    ) -> Result<InstanceView, EngineError> {
        self.complete_human_task(id, step, user, data).await
    }

    async fn cancel(&self, id: &str, reason: &str) -> Result<InstanceView, EngineError> {
        self.cancel_workflow(id, Some(reason)).await
    }

    async fn history(&self, id: &str) -> Result<Vec<AttemptRecord>, EngineError> {
        LocalEngine::history(self, id).await
    }
}

#[async_trait]
impl Engine for WeirClient {
    async fn start(&self, name: &str, options: StartOptions) -> Result<InstanceView, EngineError> {
        self.start_workflow(name, options).await
    }

    async fn settle(&self, id: &str) -> Result<InstanceView, EngineError> {
        loop {
            match self.wait(id, WAIT_SLICE).await {
                Err(EngineError::WaitTimeout(..)) => continue,
                other => return other,
            }
        }
    }

    async fn open_tasks(&self, id: &str) -> Result<Vec<Task>, EngineError> {
        let filter = TaskFilter {
            instance_id: Some(id.to_string()),
            ..TaskFilter::default()
        };
        self.list_tasks(&filter).await
    }

    async fn complete(
        &self,
        id: &str,
        step: &str,
        user: &str,
        data: Value,
    ) -> Result<InstanceView, EngineError> {
        self.complete_human_task(id, step, user, data).await
    }

    async fn cancel(&self, id: &str, reason: &str) -> Result<InstanceView, EngineError> {
        self.cancel_workflow(id, Some(reason)).await
    }

    async fn history(&self, id: &str) -> Result<Vec<AttemptRecord>, EngineError> {
        WeirClient::history(self, id).await
    }
}

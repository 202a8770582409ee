//! The client library services use: register definitions, start instances, complete tasks,
//! cancel, retry, query, wait. The same shapes as the LocalEngine ([`crate::api`]).
//!
//! Commands that change an instance go through the partition's command stream to the
//! coordinator that owns it (only it writes instance state). The client first checks the
//! command against the current state with the pure core (a dry run), so a user's mistake is
//! refused at once with nothing sent; then it sends the command and waits for the
//! coordinator's verdict on a reply list. A call returns only once the change is applied, or
//! refused with the reason.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::connect::{Connections, RedisConfig};
use super::scripts;
use super::store::{self, DefinitionCache};
use super::wire::{self, Command, CommandMessage, Reply};
use crate::api::{
    check_instance_id, check_start, history_with_running, is_same_start, EngineError, HistoryPage,
    InstanceFilter, InstanceView, StartOptions, TaskFilter,
};
use crate::core::{self, Env, Input};
use crate::definition::Workflow;
use crate::model::{Actor, Assignment, AttemptRecord, Definition, Event, InstanceStatus, Task};
use crate::registry::RegistryError;
use crate::time::Timestamp;

/// The default number of instances a listing returns.
pub const DEFAULT_LIST_LIMIT: usize = 100;

/// A client of one Weir namespace in Redis. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WeirClient {
    c: Connections,
    defs: Arc<DefinitionCache>,
    reply_timeout: Duration,
}

impl WeirClient {
    /// Connects to Redis.
    pub async fn connect(config: &RedisConfig) -> Result<WeirClient, EngineError> {
        let c = Connections::connect(config)
            .await
            .map_err(|e| EngineError::Redis(e.to_string()))?;
        Ok(WeirClient::from_connections(c))
    }

    /// A client over existing connections.
    pub fn from_connections(c: Connections) -> WeirClient {
        WeirClient {
            c,
            defs: Arc::new(DefinitionCache::new()),
            reply_timeout: Duration::from_secs(10),
        }
    }

    /// How long a command waits for the coordinator's verdict (default 10 s).
    pub fn with_reply_timeout(mut self, timeout: Duration) -> WeirClient {
        self.reply_timeout = timeout;
        self
    }

    /// The connections.
    pub fn connections(&self) -> &Connections {
        &self.c
    }

    /// Checks and registers a definition. The same (name, version) with identical content is
    /// a no-op; with other content it is refused.
    pub async fn register_definition(&self, def: Definition) -> Result<Arc<Workflow>, EngineError> {
        let wf = Arc::new(crate::definition::compile(def).map_err(RegistryError::from)?);
        let key = format!("{}@{}", wf.name, wf.semver);
        let result: Result<i64, redis::RedisError> = scripts::REGISTER
            .key(self.c.keys.definitions())
            .arg(&key)
            .arg(&wf.fingerprint)
            .invoke_async(&mut self.c.conn.clone())
            .await;
        match result {
            Ok(_) => {
                self.defs.remember(wf.clone());
                Ok(wf)
            }
            Err(e) if e.to_string().contains("CONFLICT") => {
                Err(EngineError::Registry(RegistryError::Conflict {
                    name: wf.name.to_string(),
                    version: wf.version.to_string(),
                }))
            }
            Err(e) => Err(redis_err(e)),
        }
    }

    /// A version of a workflow, or the latest.
    pub async fn get_definition(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<Workflow>, EngineError> {
        self.defs.get(&self.c, name, version).await
    }

    /// Every registered definition version.
    pub async fn list_definitions(&self) -> Result<Vec<Arc<Workflow>>, EngineError> {
        self.defs.all(&self.c).await
    }

    /// Starts an instance and returns it once the coordinator created it. With a caller id
    /// that exists already, returns that instance and starts nothing.
    pub async fn start_workflow(
        &self,
        name: &str,
        options: StartOptions,
    ) -> Result<InstanceView, EngineError> {
        let wf = self
            .get_definition(name, options.version.as_deref())
            .await?;
        check_start(&wf, &options)?;
        let asked = (name, options.version.clone(), options.tenant_id.clone());
        let id = match options.id {
            Some(id) => {
                check_instance_id(&id).map_err(EngineError::BadRequest)?;
                if let Ok(existing) = self.get_instance(&id).await {
                    return same_start(existing, asked);
                }
                id
            }
            None => uuid::Uuid::now_v7().to_string(),
        };
        let command = Command::Start {
            definition: wf.name.to_string(),
            version: wf.semver.to_string(),
            initial_data: options.initial_data,
            tenant_id: options.tenant_id,
            created_by: options.created_by,
        };
        self.send(&id, command).await?;
        let view = self.get_instance(&id).await?;
        // Two starts of one id at once: the coordinator applied the first and answered
        // the second as done; whether it is this start's instance is checked here.
        same_start(view, asked)
    }

    /// Completes a human task as `user`.
    pub async fn complete_human_task(
        &self,
        instance_id: &str,
        step: &str,
        user: &str,
        data: Value,
    ) -> Result<InstanceView, EngineError> {
        let input = Input::CompleteTask {
            step: Arc::from(step),
            user: user.to_string(),
            data: data.clone(),
        };
        self.dry_run(instance_id, input).await?;
        let command = Command::CompleteTask {
            step: step.to_string(),
            user: user.to_string(),
            data,
        };
        self.send(instance_id, command).await?;
        self.get_instance(instance_id).await
    }

    /// Gives an open human task to `to` (an assignee and/or candidates), recorded in the
    /// history as done `by` someone and announced as `HumanTaskReassigned`. Refused, with
    /// nothing changed, for a task not open, an assignment that names no one, or an actor
    /// who is neither an admin nor a user the task allows (decided by the core when the
    /// coordinator applies it, against the task as it is then).
    pub async fn reassign_task(
        &self,
        instance_id: &str,
        step: &str,
        by: &Actor,
        to: Assignment,
    ) -> Result<InstanceView, EngineError> {
        let input = Input::ReassignTask {
            step: Arc::from(step),
            by: by.clone(),
            assignee: to.assignee.clone(),
            candidates: to.candidates.clone(),
        };
        self.dry_run(instance_id, input).await?;
        let command = Command::ReassignTask {
            step: step.to_string(),
            by: by.user.clone(),
            admin: by.admin,
            assignee: to.assignee,
            candidates: to.candidates,
        };
        self.send(instance_id, command).await?;
        self.get_instance(instance_id).await
    }

    /// Cancels a running or waiting instance.
    pub async fn cancel_workflow(
        &self,
        instance_id: &str,
        reason: Option<&str>,
    ) -> Result<InstanceView, EngineError> {
        let reason = reason.map(str::to_string);
        self.dry_run(
            instance_id,
            Input::Cancel {
                reason: reason.clone(),
            },
        )
        .await?;
        self.send(instance_id, Command::Cancel { reason }).await?;
        self.get_instance(instance_id).await
    }

    /// Resumes a failed instance from `from_step` (the failed step when `None`).
    pub async fn retry(
        &self,
        instance_id: &str,
        from_step: Option<&str>,
    ) -> Result<InstanceView, EngineError> {
        let from_step = from_step.map(str::to_string);
        self.dry_run(
            instance_id,
            Input::Retry {
                from_step: from_step.clone(),
            },
        )
        .await?;
        self.send(instance_id, Command::Retry { from_step }).await?;
        self.get_instance(instance_id).await
    }

    /// An instance by id.
    pub async fn get_instance(&self, instance_id: &str) -> Result<InstanceView, EngineError> {
        let (inst, wf) = self.load(instance_id).await?;
        Ok(InstanceView::new(&inst, &wf))
    }

    /// Instances matching a filter, newest first (at most `filter.limit`, default 100).
    pub async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceView>, EngineError> {
        let limit = filter.limit.unwrap_or(DEFAULT_LIST_LIMIT);
        // Read the most selective index, then filter the rest here.
        let max = filter
            .created_before
            .map(|t| format!("({}", t.millis()))
            .unwrap_or_else(|| "+inf".into());
        let min = filter
            .created_after
            .map(|t| t.millis().to_string())
            .unwrap_or_else(|| "-inf".into());
        let fetch = limit.saturating_mul(4).max(16);
        let mut pipe = redis::pipe();
        let parts: Vec<_> = self.c.keys.all_parts().collect();
        for part in &parts {
            let index = if let Some(s) = filter.status {
                part.index_status(s.as_str())
            } else if let Some(d) = &filter.definition {
                part.index_definition(d)
            } else if let Some(t) = &filter.tenant_id {
                part.index_tenant(t)
            } else if let Some(u) = &filter.created_by {
                part.index_creator(u)
            } else {
                part.index_all()
            };
            pipe.cmd("ZREVRANGEBYSCORE")
                .arg(index)
                .arg(&max)
                .arg(&min)
                .arg("LIMIT")
                .arg(0)
                .arg(fetch);
        }
        let ids: Vec<Vec<String>> = pipe
            .query_async(&mut self.c.conn.clone())
            .await
            .map_err(redis_err)?;
        let mut out = Vec::new();
        for (part, ids) in parts.iter().zip(ids) {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let loaded = store::load_instances(&self.c, part, &refs)
                .await
                .map_err(|e| EngineError::Redis(e.to_string()))?;
            for stored in loaded.into_iter().flatten() {
                if filter.matches(&stored.instance) {
                    let wf = self
                        .get_definition(&stored.instance.definition, Some(&stored.instance.version))
                        .await?;
                    out.push(InstanceView::new(&stored.instance, &wf));
                }
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        out.truncate(limit);
        Ok(out)
    }

    /// Open tasks matching a filter, oldest first.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, EngineError> {
        let (mut tasks, unreadable) = store::load_tasks(&self.c)
            .await
            .map_err(|e| EngineError::Redis(e.to_string()))?;
        if unreadable > 0 {
            tracing::warn!(
                unreadable,
                "open tasks listed without their unreadable records"
            );
        }
        tasks.retain(|t| filter.matches(t));
        tasks.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.instance_id.cmp(&b.instance_id))
        });
        Ok(tasks)
    }

    /// The execution history: one record per finished attempt, then those in flight.
    pub async fn history(&self, instance_id: &str) -> Result<Vec<AttemptRecord>, EngineError> {
        let (inst, wf) = self.load(instance_id).await?;
        let finished = store::load_history(&self.c, instance_id)
            .await
            .map_err(|e| EngineError::Redis(e.to_string()))?;
        Ok(history_with_running(&finished, &inst, &wf))
    }

    /// One page of the execution history: up to `limit` records from position `offset`
    /// (oldest first), the attempts in flight after the last finished one.
    pub async fn history_page(
        &self,
        instance_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<HistoryPage, EngineError> {
        let (inst, wf) = self.load(instance_id).await?;
        let (finished, total_finished) =
            store::load_history_range(&self.c, instance_id, offset, limit)
                .await
                .map_err(|e| EngineError::Redis(e.to_string()))?;
        Ok(HistoryPage::new(
            finished,
            offset,
            limit,
            total_finished,
            &inst,
            &wf,
        ))
    }

    /// Waits until the instance is completed, failed, canceled or waiting on a human task.
    pub async fn wait(
        &self,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<InstanceView, EngineError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let key = self.c.keys.part_of(instance_id).instance(instance_id);
        let mut pause = Duration::from_millis(5);
        loop {
            let status: Option<String> = redis::cmd("HGET")
                .arg(&key)
                .arg("status")
                .query_async(&mut self.c.conn.clone())
                .await
                .map_err(redis_err)?;
            match status {
                None => return Err(EngineError::NotFound(instance_id.to_string())),
                Some(s) if s != InstanceStatus::Running.as_str() => {
                    return self.get_instance(instance_id).await
                }
                Some(_) => {}
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(EngineError::WaitTimeout(timeout, instance_id.to_string()));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Events after `cursor` (one stream id per partition, `0` for the beginning, `$` for
    /// new ones only), waiting up to `block` for some to arrive; returns them oldest first
    /// per partition, and the cursor to continue from.
    pub async fn read_events(
        &self,
        cursor: &EventCursor,
        count: usize,
        block: Option<Duration>,
    ) -> Result<(Vec<Event>, EventCursor), EngineError> {
        let parts: Vec<_> = self.c.keys.all_parts().collect();
        let mut ids = cursor.ids.clone();
        ids.resize(parts.len(), "0".into());
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(count.max(1));
        if let Some(b) = block {
            cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS");
        for part in &parts {
            cmd.arg(part.events());
        }
        for id in &ids {
            cmd.arg(id);
        }
        let reply: Option<redis::streams::StreamReadReply> = if block.is_some() {
            let mut conn = self
                .c
                .blocking()
                .await
                .map_err(|e| EngineError::Redis(e.to_string()))?;
            cmd.query_async(&mut *conn).await.map_err(redis_err)?
        } else {
            cmd.query_async(&mut self.c.conn.clone())
                .await
                .map_err(redis_err)?
        };
        let mut events = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(pos) = parts.iter().position(|p| p.events() == key.key) else {
                continue;
            };
            for entry in key.ids {
                ids[pos] = entry.id.clone();
                let text: Option<String> = entry.get("e");
                if let Some(event) = text.and_then(|t| serde_json::from_str::<Event>(&t).ok()) {
                    events.push(event);
                }
            }
        }
        events.sort_by_key(|e| e.timestamp);
        Ok((events, EventCursor { ids }))
    }

    /// A cursor at the end of every event stream: only events after now.
    pub async fn events_now(&self) -> Result<EventCursor, EngineError> {
        let mut pipe = redis::pipe();
        for part in self.c.keys.all_parts() {
            pipe.cmd("XREVRANGE")
                .arg(part.events())
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
        }
        let last: Vec<redis::streams::StreamRangeReply> = pipe
            .query_async(&mut self.c.conn.clone())
            .await
            .map_err(redis_err)?;
        Ok(EventCursor {
            ids: last
                .into_iter()
                .map(|r| {
                    r.ids
                        .first()
                        .map(|e| e.id.clone())
                        .unwrap_or_else(|| "0".into())
                })
                .collect(),
        })
    }

    async fn load(
        &self,
        instance_id: &str,
    ) -> Result<(crate::model::Instance, Arc<Workflow>), EngineError> {
        let stored = store::load_instance(&self.c, instance_id)
            .await
            .map_err(|e| EngineError::Redis(e.to_string()))?
            .ok_or_else(|| EngineError::NotFound(instance_id.to_string()))?;
        let inst = stored.instance;
        let wf = self
            .get_definition(&inst.definition, Some(&inst.version))
            .await?;
        Ok((inst, wf))
    }

    /// Checks a command against the current state with the pure core, changing nothing.
    async fn dry_run(&self, instance_id: &str, input: Input) -> Result<(), EngineError> {
        let (mut inst, wf) = self.load(instance_id).await?;
        let env = Env {
            now: Timestamp::now_system(),
            seed: 0,
        };
        match core::apply(&wf, &mut inst, input, env) {
            Ok(_) => Ok(()),
            Err(refusal) => Err(EngineError::Refused(refusal)),
        }
    }

    /// Sends a command to the instance's coordinator and waits for its verdict.
    async fn send(&self, instance_id: &str, command: Command) -> Result<(), EngineError> {
        let request = uuid::Uuid::now_v7().to_string();
        let part = self.c.keys.part_of(instance_id);
        // The reply key is in the instance's partition slot: the coordinator writes it in
        // the same script as the transition.
        let reply_key = part.reply(&request);
        let msg = CommandMessage {
            instance_id: instance_id.to_string(),
            reply_to: Some(reply_key.clone()),
            command,
        };
        let bytes = wire::encode(&msg);
        if bytes.len() > wire::MAX_MESSAGE_BYTES {
            return Err(EngineError::BadRequest(format!(
                "the command is {} bytes; the limit is {}",
                bytes.len(),
                wire::MAX_MESSAGE_BYTES
            )));
        }
        let _: String = redis::cmd("XADD")
            .arg(part.commands())
            .arg("*")
            .arg(wire::FIELD)
            .arg(bytes)
            .query_async(&mut self.c.conn.clone())
            .await
            .map_err(redis_err)?;
        let mut conn = self
            .c
            .blocking()
            .await
            .map_err(|e| EngineError::Redis(e.to_string()))?;
        let popped: Option<(String, Vec<u8>)> = redis::cmd("BLPOP")
            .arg(&reply_key)
            .arg(self.reply_timeout.as_secs_f64().max(0.01))
            .query_async(&mut *conn)
            .await
            .map_err(redis_err)?;
        let Some((_, bytes)) = popped else {
            return Err(EngineError::NotApplied(format!(
                "the command for instance {instance_id} is queued, but no coordinator applied it \
                 within {:?}: is `weir coordinator` running against {}?",
                self.reply_timeout, self.c.display_url
            )));
        };
        match wire::decode::<Reply>(&bytes).map_err(|e| EngineError::Redis(e.to_string()))? {
            Reply::Applied => Ok(()),
            Reply::Refused { kind, message } => {
                if kind == "not_found" {
                    Err(EngineError::NotFound(instance_id.to_string()))
                } else {
                    Err(EngineError::Rejected { kind, message })
                }
            }
        }
    }
}

/// Where a reader of the event streams is: the last id seen, per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventCursor {
    /// One stream id per partition.
    pub ids: Vec<String>,
}

fn redis_err(e: redis::RedisError) -> EngineError {
    EngineError::Redis(e.to_string())
}

/// The instance a start by caller id found, or [`EngineError::IdTaken`] when it is not the
/// one this start (workflow name, version asked for, tenant) would have started.
fn same_start(
    existing: InstanceView,
    (name, version, tenant): (&str, Option<String>, Option<String>),
) -> Result<InstanceView, EngineError> {
    let same = is_same_start(
        (
            &existing.definition,
            &existing.version,
            existing.tenant.as_deref(),
        ),
        name,
        version.as_deref(),
        tenant.as_deref(),
    );
    if same {
        Ok(existing)
    } else {
        Err(EngineError::IdTaken(existing.id))
    }
}

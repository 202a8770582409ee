//! The client library services use: register definitions, start instances, complete tasks,
//! cancel, retry, query, wait. Its calls are the [`Engine`] trait, as the LocalEngine's are:
//! the same signatures, shapes ([`crate::api`]) and errors.
//!
//! **Starts are enqueued.** A start is stored in Redis by one script call (`start.lua`):
//! the instance hash with status `pending` and the start itself, its index entries, and a
//! Start command on the partition's command stream; the caller-id rule is decided inside
//! that call. It returns at once, coordinator or not; the coordinator that owns the
//! partition creates the instance from the command later. A pending instance can be
//! canceled (`cancel_pending.lua`, which makes the coordinator's create fail its revision
//! check, so a canceled start is never created). A start due later (a delayed start) fits
//! the same record: stored pending with its start time, its Start command kept in a sorted
//! set by that time (Redis clock) instead of the stream, and moved to the stream when due.
//!
//! **Commands on existing instances** go through the partition's command stream to the
//! coordinator that owns it (only it writes instance state). The client first checks the
//! command against the current state with the pure core (a dry run), so a user's mistake is
//! refused at once with nothing sent; then it sends the command with a deadline by the Redis
//! clock (`send_command.lua`) and waits for the coordinator's verdict on a reply list. A
//! call returns once the change is applied, or refused with the reason (the core's
//! [`crate::Refusal`] comes back typed on the reply, so it is the one the LocalEngine
//! returns); with no verdict by the deadline it fails with [`EngineError::NotApplied`], and
//! the coordinator never applies that command afterwards (it discards it, and `commit.lua`
//! checks the deadline again).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use async_trait::async_trait;

use super::connect::{Connections, RedisConfig};
use super::durability;
use super::effects;
use super::messages;
use super::scripts;
use super::start_call::{PreparedStart, StartCall};
use super::store::{self, DefinitionCache};
use super::wire::{self, Command, CommandMessage, Reply};
use super::RedisError;
use crate::api::{
    check_start, history_with_running, start_instance_id, EngineError, HistoryPage, InstanceFilter,
    InstanceView, StartBatchError, StartOptions, Started, TaskFilter, TaskPage, BAD_REQUEST,
    ID_TAKEN, NOT_FOUND, QUARANTINED,
};
use crate::core::{self, Env, Input};
use crate::definition::Workflow;
use crate::engine::{Engine, StatusCheck};
use crate::model::{
    check_signal, Actor, Assignment, AttemptRecord, Definition, Event, EventKind, InstanceStatus,
    KeptMessage, MessageFilter, MessageOutcome, MessageSent, SendMessage, DEFAULT_MESSAGE_TTL,
};
use crate::registry::RegistryError;
use crate::time::Timestamp;

pub use crate::api::DEFAULT_LIST_LIMIT;

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
        let c = Connections::connect(config).await?;
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
}

/// The engine calls (see [`Engine`] for what each promises); the notes here are what the
/// Redis engine adds.
#[async_trait]
impl Engine for WeirClient {
    /// The same (name, version) with identical content is a no-op; with other content it
    /// is refused.
    async fn register_definition(&self, def: Definition) -> Result<Arc<Workflow>, EngineError> {
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
            Err(e) => Err(self.redis_err(e)),
        }
    }

    /// A version of a workflow, or the latest.
    async fn get_definition(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<Workflow>, EngineError> {
        self.defs.get(&self.c, name, version).await
    }

    /// Every registered definition version.
    async fn list_definitions(&self) -> Result<Vec<Arc<Workflow>>, EngineError> {
        self.defs.all(&self.c).await
    }

    /// Stores the start in Redis (one script call) and returns at once with the instance
    /// `pending`, whether or not a coordinator runs; a coordinator creates it from there
    /// (see [`WeirClient::wait_created`]). The start is also refused when its message is
    /// over the wire's size limit.
    async fn start_workflow(
        &self,
        name: &str,
        options: StartOptions,
    ) -> Result<InstanceView, EngineError> {
        let mut results = self
            .start_workflows(name, vec![options])
            .await
            .map_err(|e| e.error)?;
        results
            .pop()
            .unwrap_or_else(|| Err(self.unexpected("start.lua answered nothing".into())))
            .map(|started| started.view)
    }

    /// One script call per partition (at most 500 starts each), all sent at
    /// once (one round trip); a stored start is `pending`.
    async fn start_workflows(
        &self,
        name: &str,
        starts: Vec<StartOptions>,
    ) -> Result<Vec<Result<Started, EngineError>>, StartBatchError> {
        let mut prepared = Vec::with_capacity(starts.len());
        // The initial data of each start, for the view of a stored one.
        let mut data = Vec::with_capacity(starts.len());
        let mut workflows: Vec<(Option<String>, Arc<Workflow>)> = Vec::new();
        let mut drawing = None;
        for (index, options) in starts.into_iter().enumerate() {
            let refused = |error| StartBatchError { index, error };
            let wf = match workflows.iter().find(|(v, _)| *v == options.version) {
                Some((_, wf)) => wf.clone(),
                None => {
                    let wf = self
                        .get_definition(name, options.version.as_deref())
                        .await
                        .map_err(refused)?;
                    workflows.push((options.version.clone(), wf.clone()));
                    wf
                }
            };
            check_start(&wf, &options).map_err(refused)?;
            let id = match start_instance_id(&options).map_err(refused)? {
                Some(id) => id,
                None => self.generated_id(&mut drawing),
            };
            let msg = CommandMessage {
                instance_id: id.clone(),
                reply_to: None,
                command: Command::Start {
                    definition: wf.name.to_string(),
                    version: wf.semver.to_string(),
                    initial_data: options.initial_data.clone(),
                    tenant_id: options.tenant_id.clone(),
                    created_by: options.created_by.clone(),
                },
            };
            let message = wire::encode(&msg);
            if message.len() > wire::MAX_MESSAGE_BYTES {
                return Err(refused(EngineError::BadRequest(format!(
                    "the start is {} bytes; the limit is {} (make the initial data smaller)",
                    message.len(),
                    wire::MAX_MESSAGE_BYTES
                ))));
            }
            prepared.push(PreparedStart {
                id,
                wf,
                version_asked: options.version.is_some(),
                tenant: options.tenant_id,
                creator: options.created_by,
                message,
                start_at: options.start_at,
                start_delay_ms: options.start_delay_ms,
            });
            data.push(options.initial_data);
        }
        // One script call per partition (and per chunk of a very large batch), all at once.
        let mut by_part: Vec<(u16, Vec<usize>)> = Vec::new();
        for (i, p) in prepared.iter().enumerate() {
            let part = self.c.keys.partition_of(&p.id);
            match by_part
                .iter_mut()
                .find(|(q, idx)| *q == part && idx.len() < START_CHUNK)
            {
                Some((_, idx)) => idx.push(i),
                None => by_part.push((part, vec![i])),
            }
        }
        let calls = by_part.iter().map(|(p, idx)| {
            let part = self.c.keys.part(*p);
            let starts: Vec<&PreparedStart> = idx.iter().map(|&i| &prepared[i]).collect();
            let inv = StartCall::new(&part, &starts).invocation();
            let mut conn = self.c.conn.clone();
            let commands = part.commands();
            async move {
                let (answer, replicas) =
                    durability::invoke::<Vec<i64>, _>(self.c.durability, &mut conn, &inv)
                        .await
                        .map_err(|e| RedisError::from_redis(&self.c.display_url, e))?;
                durability::require_replica(replicas, &commands, &self.c.display_url)?;
                Ok::<_, RedisError>(answer)
            }
        });
        let answers = futures_util::future::join_all(calls).await;
        let mut results: Vec<Option<Result<Started, EngineError>>> =
            (0..prepared.len()).map(|_| None).collect();
        for ((_, idx), answer) in by_part.iter().zip(answers) {
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    for &i in idx {
                        results[i] = Some(Err(self.copy_err(&e)));
                    }
                    continue;
                }
            };
            let now = Timestamp(answer.first().copied().unwrap_or(0));
            for (k, &i) in idx.iter().enumerate() {
                let s = &prepared[i];
                results[i] = Some(match answer.get(k + 1).copied() {
                    Some(START_STORED) => {
                        let inst = store::unstarted_instance(
                            &s.id,
                            store::StartFields {
                                definition: s.wf.name.to_string(),
                                version: s.wf.semver.to_string(),
                                initial_data: std::mem::take(&mut data[i]),
                                tenant_id: s.tenant.clone(),
                                created_by: s.creator.clone(),
                            },
                            now,
                            None,
                        );
                        let mut view = InstanceView::new(&inst, &s.wf);
                        // The same rule start.lua applied, by the clock it answered with.
                        view.start_at = StartOptions {
                            start_at: s.start_at,
                            start_delay_ms: s.start_delay_ms,
                            ..StartOptions::default()
                        }
                        .due_time(now);
                        Ok(Started { view, stored: true })
                    }
                    Some(START_SAME) => self.get_instance(&s.id).await.map(|view| Started {
                        view,
                        stored: false,
                    }),
                    Some(START_ID_TAKEN) => Err(EngineError::IdTaken(s.id.clone())),
                    other => {
                        Err(self.unexpected(format!("start.lua answered {other:?} for {:?}", s.id)))
                    }
                });
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(self.unexpected("start.lua answered nothing".into()))))
            .collect())
    }

    /// Completes a human task as `by`.
    async fn complete_task_as(
        &self,
        instance_id: &str,
        step: &str,
        by: &Actor,
        data: Value,
    ) -> Result<InstanceView, EngineError> {
        let input = Input::CompleteTask {
            step: Arc::from(step),
            user: by.user.clone(),
            data: data.clone(),
            groups: by.groups.clone(),
        };
        self.dry_run(instance_id, input).await?;
        let command = Command::CompleteTask {
            step: step.to_string(),
            user: by.user.clone(),
            data,
            groups: by.groups.clone(),
        };
        self.send(instance_id, command).await?;
        self.get_instance(instance_id).await
    }

    /// Claims a human task for `by`; decided by the core when the coordinator applies it.
    async fn claim_task(
        &self,
        instance_id: &str,
        step: &str,
        by: &Actor,
    ) -> Result<InstanceView, EngineError> {
        let input = Input::ClaimTask {
            step: Arc::from(step),
            by: by.clone(),
        };
        self.dry_run(instance_id, input).await?;
        let command = Command::ClaimTask {
            step: step.to_string(),
            by: by.user.clone(),
            groups: by.groups.clone(),
        };
        self.send(instance_id, command).await?;
        self.get_instance(instance_id).await
    }

    /// Releases the claim on a human task; decided by the core when the coordinator
    /// applies it.
    async fn release_task(
        &self,
        instance_id: &str,
        step: &str,
        by: &Actor,
    ) -> Result<InstanceView, EngineError> {
        let input = Input::ReleaseTask {
            step: Arc::from(step),
            by: by.clone(),
        };
        self.dry_run(instance_id, input).await?;
        let command = Command::ReleaseTask {
            step: step.to_string(),
            by: by.user.clone(),
            admin: by.admin,
        };
        self.send(instance_id, command).await?;
        self.get_instance(instance_id).await
    }

    /// Gives an open human task to `to` (an assignee and/or candidates), recorded in the
    /// history as done `by` someone and announced as `HumanTaskReassigned`. Refused, with
    /// nothing changed, for a task not open, an assignment that names no one, or an actor
    /// who is neither an admin nor a user the task allows (decided by the core when the
    /// coordinator applies it, against the task as it is then).
    async fn reassign_task(
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
            groups: by.groups.clone(),
            assignee: to.assignee,
            candidates: to.candidates,
        };
        self.send(instance_id, command).await?;
        self.get_instance(instance_id).await
    }

    /// Cancels a pending, running or waiting instance. A pending one (no coordinator
    /// created it yet) is canceled at once in Redis, atomically: no coordinator creates it
    /// afterwards.
    async fn cancel_workflow(
        &self,
        instance_id: &str,
        reason: Option<&str>,
    ) -> Result<InstanceView, EngineError> {
        // A pending record is canceled by `cancel_pending.lua`, which is given the origin
        // indexes the record names as read here; should the record be replaced in between
        // (another start under the same id), it answers `changed` and this reads again.
        for _ in 0..3 {
            let stored = store::load_instance(&self.c, instance_id)
                .await?
                .ok_or_else(|| EngineError::NotFound(instance_id.to_string()))?;
            if !(stored.pending && stored.instance.status == InstanceStatus::Pending) {
                break;
            }
            let inst = &stored.instance;
            let part = self.c.keys.part_of(instance_id);
            // Announced as any cancel is; the script stamps it with the Redis clock.
            let (event_head, event_tail) = effects::event_around_timestamp(
                instance_id,
                &EventKind::WorkflowCanceled {
                    reason: reason.map(str::to_string),
                },
            );
            let tenant = inst.tenant_id.as_deref().unwrap_or("");
            let creator = inst.created_by.as_deref().unwrap_or("");
            let mut inv = scripts::CANCEL_PENDING.prepare_invoke();
            inv.key(part.instance(instance_id))
                .key(part.index_status(InstanceStatus::Pending.as_str()))
                .key(part.index_status(InstanceStatus::Canceled.as_str()))
                .key(part.index_finished())
                .key(part.events())
                .key(part.due_starts())
                .key(part.index_definition(&inst.definition))
                .key(part.index_tenant(tenant))
                .key(part.index_creator(creator))
                .arg(instance_id)
                .arg(reason.unwrap_or(""))
                .arg(event_head)
                .arg(event_tail)
                .arg(&*inst.definition)
                .arg(tenant)
                .arg(creator);
            let (answer, replicas): (String, _) =
                durability::invoke(self.c.durability, &mut self.c.conn.clone(), &inv)
                    .await
                    .map_err(|e| self.redis_err(e))?;
            if answer == "canceled" {
                durability::require_replica(
                    replicas,
                    &part.instance(instance_id),
                    &self.c.display_url,
                )?;
            }
            match answer.as_str() {
                "canceled" => return self.get_instance(instance_id).await,
                "not_found" => return Err(EngineError::NotFound(instance_id.to_string())),
                "changed" => continue,
                // A coordinator created it meanwhile: cancel it as any other.
                _ => break,
            }
        }
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
    async fn retry(
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

    /// One script call on the message's correlation partition (see
    /// [`super::messages`]): a duplicate of an id sent on the same (tenant, name, key)
    /// within its time to live, or handed to the oldest instance waiting there
    /// (`Delivered`: stored on its way to that instance's partition, whose coordinator
    /// applies it; should the instance have stopped waiting that instant, the message goes
    /// to the next waiter or is kept), or kept until its time to live runs out.
    async fn send_message(&self, message: SendMessage) -> Result<MessageSent, EngineError> {
        message.check().map_err(EngineError::BadRequest)?;
        let id = message
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let body = wire::MessageBody {
            id: id.clone(),
            tenant_id: message.tenant_id,
            name: message.name,
            key: message.key,
            data: message.data,
        };
        let ttl = message.ttl.unwrap_or(DEFAULT_MESSAGE_TTL);
        let (outcome, instance_id) = match messages::send(&self.c, &body, ttl).await? {
            messages::Sent::Delivered { instance } => (MessageOutcome::Delivered, Some(instance)),
            messages::Sent::Kept => (MessageOutcome::Kept, None),
            messages::Sent::Duplicate => (MessageOutcome::Duplicate, None),
        };
        Ok(MessageSent {
            id,
            outcome,
            instance_id,
        })
    }

    /// Delivers a signal to the instance's event step that waits longest on `name`. The
    /// coordinator applies it once per id and instance: an id the instance received already
    /// answers with the instance as it is, changing nothing. Refused, with nothing changed
    /// (and the id not used up), when no step of the instance waits on `name`.
    async fn signal(
        &self,
        instance_id: &str,
        name: &str,
        data: Value,
        id: Option<&str>,
    ) -> Result<InstanceView, EngineError> {
        check_signal(name, id).map_err(EngineError::BadRequest)?;
        let id = id
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let part = self.c.keys.part_of(instance_id);
        let received = store::signals_received(
            &mut self.c.conn.clone(),
            &part,
            &[(instance_id, id.as_str())],
        )
        .await
        .map_err(|e| self.redis_err(e))?;
        if received.first().copied().unwrap_or(false) {
            // A duplicate: answered like the first, with the instance as it is now.
            return self.get_instance(instance_id).await;
        }
        let input = Input::DeliverMessage {
            id: id.clone(),
            name: name.to_string(),
            key: None,
            data: data.clone(),
        };
        self.dry_run(instance_id, input).await?;
        let command = Command::Signal {
            id,
            name: name.to_string(),
            data,
        };
        self.send(instance_id, command).await?;
        self.get_instance(instance_id).await
    }

    /// Kept messages of every correlation partition (at most
    /// [`super::messages::LIST_LIMIT`] per partition), oldest first.
    async fn list_messages(&self, filter: &MessageFilter) -> Result<Vec<KeptMessage>, EngineError> {
        Ok(messages::list(&self.c, filter).await?)
    }

    /// An instance by id.
    async fn get_instance(&self, instance_id: &str) -> Result<InstanceView, EngineError> {
        let stored = store::load_instance(&self.c, instance_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(instance_id.to_string()))?;
        let wf = self
            .get_definition(&stored.instance.definition, Some(&stored.instance.version))
            .await?;
        let mut view = InstanceView::new(&stored.instance, &wf);
        view.start_at = stored.start_at;
        Ok(view)
    }

    /// Instances matching a filter, newest first (at most `filter.limit`, default 100).
    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceView>, EngineError> {
        let limit = filter.limit_or_default();
        super::listing::newest(self, filter, limit).await
    }

    /// Open tasks matching a filter, oldest first.
    async fn task_page(&self, filter: &TaskFilter) -> Result<TaskPage, EngineError> {
        let page = super::tasks::page(&self.c, filter).await?;
        if page.unreadable > 0 {
            tracing::warn!(
                unreadable = page.unreadable,
                "open tasks listed without their unreadable records"
            );
        }
        Ok(page)
    }

    /// The execution history: one record per finished attempt, then those in flight.
    async fn history(&self, instance_id: &str) -> Result<Vec<AttemptRecord>, EngineError> {
        let (inst, wf) = self.load(instance_id).await?;
        let finished = store::load_history(&self.c, instance_id).await?;
        Ok(history_with_running(&finished, &inst, &wf))
    }

    async fn create_schedule(
        &self,
        spec: crate::schedule::ScheduleSpec,
    ) -> Result<crate::schedule::ScheduleView, EngineError> {
        self.create_schedule_redis(spec).await
    }

    async fn list_schedules(&self) -> Result<Vec<crate::schedule::ScheduleView>, EngineError> {
        self.list_schedules_redis().await
    }

    async fn get_schedule(
        &self,
        name: &str,
    ) -> Result<crate::schedule::ScheduleDetail, EngineError> {
        self.get_schedule_redis(name).await
    }

    async fn pause_schedule(
        &self,
        name: &str,
    ) -> Result<crate::schedule::ScheduleView, EngineError> {
        self.set_schedule_paused_redis(name, true).await
    }

    async fn resume_schedule(
        &self,
        name: &str,
    ) -> Result<crate::schedule::ScheduleView, EngineError> {
        self.set_schedule_paused_redis(name, false).await
    }

    async fn delete_schedule(&self, name: &str) -> Result<(), EngineError> {
        self.delete_schedule_redis(name).await
    }

    async fn trigger_schedule(&self, name: &str) -> Result<crate::schedule::Firing, EngineError> {
        self.trigger_schedule_redis(name).await
    }

    /// Polls the instance's status (a `pending` one too) until `done` says so.
    async fn wait_for(
        &self,
        instance_id: &str,
        timeout: Duration,
        done: &StatusCheck,
    ) -> Result<InstanceView, EngineError> {
        self.wait_for_status(instance_id, timeout, done).await
    }
}

impl WeirClient {
    /// The id of a start the caller did not name. The first is a plain UUID v7, in the
    /// partition it hashes to; the next [`START_CHUNK`] - 1 of the same batch are drawn in
    /// that partition ([`crate::redis::keys::Keys::new_id_in`]), so that they are one script
    /// call: a batch of 100 was about 8 calls of 12 starts with the default 8 partitions,
    /// and each call costs Redis a share beyond its starts. Batches still spread over the
    /// partitions, as each begins where a fresh id falls. `drawing` is the batch's current
    /// partition and how many ids were drawn in it.
    fn generated_id(&self, drawing: &mut Option<(u16, usize)>) -> String {
        if let Some((part, drawn)) = drawing {
            if *drawn < START_CHUNK {
                if let Some(id) = self.c.keys.new_id_in(*part) {
                    *drawn += 1;
                    return id;
                }
            }
        }
        let id = uuid::Uuid::now_v7().to_string();
        *drawing = Some((self.c.keys.partition_of(&id), 1));
        id
    }

    /// Starts an instance and waits (up to `timeout`) until a coordinator created it: it is
    /// then running, waiting, or already finished. [`EngineError::WaitTimeout`] when no
    /// coordinator created it in time (it stays stored, pending).
    pub async fn start_workflow_created(
        &self,
        name: &str,
        options: StartOptions,
        timeout: Duration,
    ) -> Result<InstanceView, EngineError> {
        let view = self.start_workflow(name, options).await?;
        self.wait_created(&view.id, timeout).await
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
        let kept = store::load_history_range(&self.c, instance_id, offset, limit).await?;
        let mut page = HistoryPage::new(kept.records, offset, limit, kept.total, &inst, &wf);
        page.dropped = kept.dropped;
        Ok(page)
    }

    /// Waits until a coordinator created the instance (it is no longer `pending`): it is
    /// then running, waiting, or already finished (or it was canceled while pending).
    pub async fn wait_created(
        &self,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<InstanceView, EngineError> {
        self.wait_for_status(instance_id, timeout, &|s| s != InstanceStatus::Pending)
            .await
    }

    /// Polls the instance's status until `done` says so, or `timeout` passes.
    async fn wait_for_status(
        &self,
        instance_id: &str,
        timeout: Duration,
        done: &StatusCheck,
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
                .map_err(|e| self.redis_err(e))?;
            let status = match status {
                None => return Err(EngineError::NotFound(instance_id.to_string())),
                Some(s) => s.parse::<InstanceStatus>().map_err(|e| {
                    self.unexpected(format!("instance {instance_id:?} has status {s:?}: {e}"))
                })?,
            };
            if done(status) {
                return self.get_instance(instance_id).await;
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
            let mut conn = self.c.blocking().await?;
            conn.xread(&cmd).await.map_err(|e| self.redis_err(e))?
        } else {
            super::cluster_reads::xread(&cmd, &mut self.c.conn.clone())
                .await
                .map_err(|e| self.redis_err(e))?
        };
        let mut events = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(pos) = parts.iter().position(|p| p.events() == key.key) else {
                continue;
            };
            for entry in key.ids {
                ids[pos] = entry.id.clone();
                let text: Option<String> = entry.get(effects::EVENT_FIELD);
                events.extend(text.map(|t| effects::decode_events(&t)).unwrap_or_default());
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
            .map_err(|e| self.redis_err(e))?;
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
            .await?
            .ok_or_else(|| EngineError::NotFound(instance_id.to_string()))?;
        let inst = stored.instance;
        let wf = self
            .get_definition(&inst.definition, Some(&inst.version))
            .await?;
        Ok((inst, wf))
    }

    /// Checks a command against the current state with the pure core, changing nothing.
    async fn dry_run(&self, instance_id: &str, input: Input) -> Result<(), EngineError> {
        let stored = store::load_instance(&self.c, instance_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(instance_id.to_string()))?;
        if stored.pending {
            // Not created yet (or canceled before): only a cancel applies, and it is not
            // sent as a command.
            return Err(EngineError::Refused(core::Refusal::WrongStatus {
                status: stored.instance.status,
                action: action_of(&input).into(),
            }));
        }
        let mut inst = stored.instance;
        let wf = self
            .get_definition(&inst.definition, Some(&inst.version))
            .await?;
        let env = Env {
            now: Timestamp::now_system(),
            seed: 0,
        };
        match core::apply(&wf, &mut inst, input, env) {
            Ok(_) => Ok(()),
            Err(refusal) => Err(EngineError::Refused(refusal)),
        }
    }

    /// Sends a command to the instance's coordinator and waits for its verdict. The
    /// command carries a deadline by the Redis clock (now + the reply timeout,
    /// `send_command.lua`); a coordinator never applies it after that, so when no verdict
    /// came by then, nothing changed and nothing will.
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
        let wait_ms = self.reply_timeout.as_millis().max(1) as u64;
        let mut inv = scripts::SEND_COMMAND.prepare_invoke();
        inv.key(part.commands()).arg(bytes).arg(wait_ms);
        // Under replicated durability the command is on a replica before the wait for its
        // verdict starts (its WAIT goes in the same round trip), and the coordinator
        // publishes the verdict only once a replica holds the commit that decided it.
        let (_deadline, replicas): (i64, _) =
            durability::invoke(self.c.durability, &mut self.c.conn.clone(), &inv)
                .await
                .map_err(|e| self.redis_err(e))?;
        durability::require_replica(replicas, &part.commands(), &self.c.display_url)?;
        let mut conn = self.c.blocking().await?;
        // The wait starts after the deadline was set, and lasts a little longer: a verdict
        // committed by the deadline is on the list by the time it ends.
        let popped: Option<(String, Vec<u8>)> = redis::cmd("BLPOP")
            .arg(&reply_key)
            .arg((self.reply_timeout + REPLY_GRACE).as_secs_f64())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        let bytes = match popped {
            Some((_, bytes)) => bytes,
            None => {
                let last: Option<Vec<u8>> = redis::cmd("LPOP")
                    .arg(&reply_key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.redis_err(e))?;
                last.ok_or_else(|| {
                    EngineError::NotApplied(format!(
                        "nothing changed: no coordinator applied the command for instance \
                         {instance_id} within {:?}, and it expired unapplied (a coordinator \
                         discards a command past its deadline, so it will never be applied; \
                         send it again). Is `weir coordinator` running against {}?",
                        self.reply_timeout, self.c.display_url
                    ))
                })?
            }
        };
        let reply = wire::decode::<Reply>(&bytes).map_err(|e| {
            RedisError::Corrupt(format!("the reply to a command for {instance_id:?}: {e}"))
        })?;
        match reply {
            Reply::Applied => Ok(()),
            Reply::Refused {
                kind,
                message,
                refusal,
            } => Err(refused(instance_id, kind, message, refusal)),
        }
    }

    /// A redis-rs error of this client's Redis.
    fn redis_err(&self, e: redis::RedisError) -> EngineError {
        RedisError::from_redis(&self.c.display_url, e).into()
    }

    /// The same error again, for each start of a failed script call.
    fn copy_err(&self, e: &RedisError) -> EngineError {
        match e {
            RedisError::Unreachable { source, .. } => self.redis_err(source.clone()),
            RedisError::NotReplicated { url, key } => RedisError::NotReplicated {
                url: url.clone(),
                key: key.clone(),
            }
            .into(),
            RedisError::Config(m) => RedisError::Config(m.clone()).into(),
            RedisError::Corrupt(m) => RedisError::Corrupt(m.clone()).into(),
        }
    }

    /// A reply this client did not expect (see [`RedisError::unexpected`]).
    fn unexpected(&self, what: String) -> EngineError {
        RedisError::unexpected(&self.c.display_url, what).into()
    }
}

/// The error of a coordinator's refusal: the typed [`core::Refusal`] when it sent one (as
/// the LocalEngine returns it), else the variant of its kind. Only a coordinator older
/// than this client sends a core refusal without the typed form; that one stays
/// [`EngineError::Rejected`].
fn refused(
    instance_id: &str,
    kind: String,
    message: String,
    refusal: Option<core::Refusal>,
) -> EngineError {
    if let Some(refusal) = refusal {
        return EngineError::Refused(refusal);
    }
    match kind.as_str() {
        NOT_FOUND => EngineError::NotFound(instance_id.to_string()),
        ID_TAKEN => EngineError::IdTaken(instance_id.to_string()),
        BAD_REQUEST => EngineError::BadRequest(message),
        QUARANTINED => EngineError::Quarantined(message),
        _ => EngineError::Rejected { kind, message },
    }
}

/// Where a reader of the event streams is: the last id seen, per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventCursor {
    /// One stream id per partition.
    pub ids: Vec<String>,
}

/// How long past a command's deadline the client still waits for its verdict (a verdict
/// committed right at the deadline is then read, not mistaken for none).
const REPLY_GRACE: Duration = Duration::from_millis(250);

/// The most starts in one `start.lua` call (a larger batch of one partition is split).
const START_CHUNK: usize = 500;

/// `start.lua`'s answer for a start it stored.
const START_STORED: i64 = 0;
/// `start.lua`'s answer for a caller id the same start used already.
const START_SAME: i64 = 1;
/// `start.lua`'s answer for a caller id another start took.
const START_ID_TAKEN: i64 = 2;

/// What a refused command was, for the refusal of one on a pending instance.
fn action_of(input: &Input) -> &'static str {
    match input {
        Input::CompleteTask { .. } => "completing a task",
        Input::ReassignTask { .. } => "reassigning a task",
        Input::Cancel { .. } => "cancel",
        Input::Retry { .. } => "retry",
        _ => "this command",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Refusal;

    #[test]
    fn a_typed_refusal_on_the_reply_is_returned_as_it_came() {
        let refusal = Refusal::TaskNotOpen("approve".into());
        let e = refused(
            "i",
            "task_not_open".into(),
            refusal.to_string(),
            Some(refusal.clone()),
        );
        assert!(matches!(e, EngineError::Refused(r) if r == refusal));
    }

    #[test]
    fn the_coordinators_own_refusals_map_to_their_variants() {
        let e = |kind: &str| refused("i", kind.into(), "why".into(), None);
        assert!(matches!(e(NOT_FOUND), EngineError::NotFound(id) if id == "i"));
        assert!(matches!(e(ID_TAKEN), EngineError::IdTaken(id) if id == "i"));
        assert!(matches!(e(BAD_REQUEST), EngineError::BadRequest(m) if m == "why"));
        assert!(matches!(e(QUARANTINED), EngineError::Quarantined(m) if m == "why"));
    }

    #[test]
    fn an_untyped_refusal_of_an_older_coordinator_keeps_its_kind_and_message() {
        let e = refused("i", "forbidden".into(), "no".into(), None);
        assert_eq!(e.kind(), "forbidden");
        assert_eq!(e.to_string(), "no");
        assert!(matches!(e, EngineError::Rejected { .. }));
    }

    /// The reply as coordinators and clients before the typed refusal wrote it.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum OlderReply {
        Applied,
        Refused { kind: String, message: String },
    }

    #[test]
    fn replies_stay_readable_across_versions() {
        let old = OlderReply::Refused {
            kind: "forbidden".into(),
            message: "no".into(),
        };
        let read: Reply = wire::decode(&wire::encode(&old)).expect("an older reply decodes");
        assert_eq!(
            read,
            Reply::Refused {
                kind: "forbidden".into(),
                message: "no".into(),
                refusal: None
            }
        );
        let new = Reply::Refused {
            kind: "task_not_open".into(),
            message: "closed".into(),
            refusal: Some(Refusal::TaskNotOpen("approve".into())),
        };
        let read: OlderReply = wire::decode(&wire::encode(&new)).expect("an older client reads it");
        assert_eq!(
            read,
            OlderReply::Refused {
                kind: "task_not_open".into(),
                message: "closed".into()
            }
        );
        let again: Reply = wire::decode(&wire::encode(&new)).expect("a current client reads it");
        assert_eq!(again, new);
    }
}

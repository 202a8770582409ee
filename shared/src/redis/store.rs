//! Reading what the coordinator wrote: instances, definitions, tasks, history, and the
//! stored encoding (MessagePack, positional, for size) shared by writer and readers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use redis::aio::ConnectionLike;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::connect::Connections;
use super::keys::PartitionKeys;
use super::wire::{self, Command, CommandMessage};
use super::RedisError;
use crate::api::EngineError;
use crate::definition::{compile, Workflow};
use crate::model::{AttemptRecord, Definition, Instance, InstanceStatus, Task};
use crate::registry::{latest, RegistryError};
use crate::time::Timestamp;

/// Encodes a stored record (instance state, history entry, task): MessagePack arrays, the
/// smallest form (Redis memory per instance is a budget).
pub fn encode_record<T: Serialize>(v: &T) -> Vec<u8> {
    wire::plain_bytes(rmp_serde::to_vec(v))
}

/// Decodes a stored record.
pub fn decode_record<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RedisError> {
    super::wire::from_slice_bounded(bytes).map_err(|e| RedisError::Corrupt(e.to_string()))
}

/// Compiled definitions loaded from Redis, cached forever: a (name, version) never changes.
/// Which version is a name's latest is cached for [`LATEST_FRESH`]: a start without a
/// version then costs no read of the registry, and a version another process registers
/// is the latest for this one within that time (at once for versions registered here).
#[derive(Debug, Default)]
pub struct DefinitionCache {
    map: RwLock<HashMap<String, Arc<Workflow>>>,
    latest: RwLock<HashMap<String, (std::time::Instant, Arc<Workflow>)>>,
}

/// How long a name's latest version is taken from the cache.
pub const LATEST_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

impl DefinitionCache {
    /// An empty cache.
    pub fn new() -> DefinitionCache {
        DefinitionCache::default()
    }

    /// A version of a workflow, or its latest when `version` is `None`.
    pub async fn get(
        &self,
        c: &Connections,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<Workflow>, EngineError> {
        let unknown = || {
            EngineError::Registry(RegistryError::Unknown {
                name: name.to_string(),
                version: version.map(str::to_string),
            })
        };
        let version = match version {
            Some(v) => semver::Version::parse(v.trim())
                .map_err(|_| unknown())?
                .to_string(),
            None => {
                let fresh = self
                    .latest
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(name)
                    .filter(|(at, _)| at.elapsed() < LATEST_FRESH)
                    .map(|(_, wf)| wf.clone());
                if let Some(wf) = fresh {
                    return Ok(wf);
                }
                let versions = self.versions(c, name).await?;
                let wf = latest(&versions).ok_or_else(unknown)?;
                self.latest
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_string(), (std::time::Instant::now(), wf.clone()));
                return Ok(wf);
            }
        };
        let key = format!("{name}@{version}");
        if let Some(wf) = self.cached(&key) {
            return Ok(wf);
        }
        let json: Option<String> = redis::cmd("HGET")
            .arg(c.keys.definitions())
            .arg(&key)
            .query_async(&mut c.conn.clone())
            .await
            .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
        let json = json.ok_or_else(unknown)?;
        self.insert_json(&key, &json)
    }

    /// Every registered version of `name`.
    pub async fn versions(
        &self,
        c: &Connections,
        name: &str,
    ) -> Result<BTreeMap<semver::Version, Arc<Workflow>>, EngineError> {
        let all = self.all(c).await?;
        Ok(all
            .into_iter()
            .filter(|wf| &*wf.name == name)
            .map(|wf| (wf.semver.clone(), wf))
            .collect())
    }

    /// Every registered definition, compiled.
    pub async fn all(&self, c: &Connections) -> Result<Vec<Arc<Workflow>>, EngineError> {
        let keys: Vec<String> = redis::cmd("HKEYS")
            .arg(c.keys.definitions())
            .query_async(&mut c.conn.clone())
            .await
            .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
        let missing: Vec<&String> = keys.iter().filter(|k| self.cached(k).is_none()).collect();
        if !missing.is_empty() {
            let jsons: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(c.keys.definitions())
                .arg(&missing)
                .query_async(&mut c.conn.clone())
                .await
                .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
            for (k, json) in missing.iter().zip(jsons) {
                if let Some(json) = json {
                    // A stored definition that no longer compiles is skipped, not fatal.
                    if let Err(e) = self.insert_json(k, &json) {
                        tracing::warn!(definition = %k, error = %e, "stored definition unreadable");
                    }
                }
            }
        }
        let mut out: Vec<Arc<Workflow>> = keys.iter().filter_map(|k| self.cached(k)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.semver.cmp(&b.semver)));
        Ok(out)
    }

    fn cached(&self, key: &str) -> Option<Arc<Workflow>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    fn insert_json(&self, key: &str, json: &str) -> Result<Arc<Workflow>, EngineError> {
        // Unreadable JSON is a bad definition, not a Redis failure: the coordinator
        // quarantines the instances of a definition that cannot be loaded for good.
        let def: Definition = serde_json::from_str(json).map_err(|e| {
            RegistryError::Invalid(crate::definition::DefinitionError::Parse(format!(
                "stored definition {key}: {e}"
            )))
        })?;
        let wf = Arc::new(compile(def).map_err(RegistryError::from)?);
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), wf.clone());
        Ok(wf)
    }

    /// Puts a workflow just registered into the cache.
    pub fn remember(&self, wf: Arc<Workflow>) {
        self.latest
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&*wf.name);
        let key = format!("{}@{}", wf.name, wf.semver);
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, wf);
    }
}

/// An instance as stored, with its revision.
#[derive(Debug, Clone)]
pub struct StoredInstance {
    /// The state. For a start no coordinator created yet ([`StoredInstance::pending`]) it
    /// is built from the stored start: status `pending` (or `canceled` when it was canceled
    /// before), the initial data as context, and no step states.
    pub instance: Instance,
    /// Its revision (the `rev` field).
    pub rev: u64,
    /// No coordinator created it yet: the record holds a start (`lua/start.lua`), pending
    /// or canceled while pending. Nothing but that start and its cancel applies to it.
    pub pending: bool,
    /// A delayed start still pending: when it is due (the hash's `start_at`).
    pub start_at: Option<Timestamp>,
}

/// An instance's hash as a coordinator's turn reads it, field by field, undecoded: the
/// coordinator decides what an unusable record means (see its quarantine).
#[derive(Debug, Clone, Default)]
pub struct InstanceRecord {
    /// `state`: the instance (MessagePack); absent before a coordinator created it.
    pub state: Option<Vec<u8>>,
    /// `rev`: the revision commits are guarded by.
    pub rev: Option<u64>,
    /// `quarantined`: why the instance was set aside, if it was.
    pub quarantined: Option<String>,
    /// `status`.
    pub status: Option<String>,
    /// `created`: when the start was stored (ms).
    pub created: Option<i64>,
    /// `def`: the definition name.
    pub definition: Option<String>,
    /// `ver`: the definition version.
    pub version: Option<String>,
    /// `tenant`.
    pub tenant: Option<String>,
    /// `creator`.
    pub creator: Option<String>,
    /// `start`: a pending start's Start command (`lua/start.lua`).
    pub start: Option<Vec<u8>>,
}

/// The instance hash field that records a received signal id (`signal:ID`), written in the
/// commit that delivers it: a signal with that id is then a duplicate for the instance's
/// lifetime (its hash goes with it at retention).
pub fn signal_field(message_id: &str) -> String {
    format!("signal:{message_id}")
}

/// Which of the `(instance, signal id)` pairs of one partition were received already, in one
/// round trip, in the order of `pairs`.
pub async fn signals_received<C: ConnectionLike>(
    conn: &mut C,
    part: &PartitionKeys,
    pairs: &[(&str, &str)],
) -> Result<Vec<bool>, redis::RedisError> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for (instance, id) in pairs {
        pipe.cmd("HEXISTS")
            .arg(part.instance(instance))
            .arg(signal_field(id));
    }
    pipe.query_async(conn).await
}

/// Reads the hashes of instances of one partition in one round trip, in the order of `ids`
/// (all fields `None` for an id not stored).
pub async fn load_records<C: ConnectionLike>(
    conn: &mut C,
    part: &PartitionKeys,
    ids: &[&str],
) -> Result<Vec<InstanceRecord>, redis::RedisError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("HMGET").arg(part.instance(id)).arg(&[
            "state",
            "rev",
            "quarantined",
            "status",
            "created",
            "def",
            "ver",
            "tenant",
            "creator",
            "start",
        ]);
    }
    type Row = (
        Option<Vec<u8>>,
        Option<u64>,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<Vec<u8>>,
    );
    let rows: Vec<Row> = pipe.query_async(conn).await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                state,
                rev,
                quarantined,
                status,
                created,
                definition,
                version,
                tenant,
                creator,
                start,
            )| {
                InstanceRecord {
                    state,
                    rev,
                    quarantined,
                    status,
                    created,
                    definition,
                    version,
                    tenant,
                    creator,
                    start,
                }
            },
        )
        .collect())
}

/// Loads instances of one partition in one round trip; `None` for ids not found.
pub async fn load_instances(
    c: &Connections,
    part: &PartitionKeys,
    ids: &[&str],
) -> Result<Vec<Option<StoredInstance>>, RedisError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("HMGET").arg(part.instance(id)).arg(&[
            "state", "rev", "status", "start", "created", "finished", "reason", "start_at",
        ]);
    }
    type Row = (
        Option<Vec<u8>>,
        Option<u64>,
        Option<String>,
        Option<Vec<u8>>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let rows: Vec<Row> = pipe
        .query_async(&mut c.conn.clone())
        .await
        .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
    ids.iter()
        .zip(rows)
        .map(
            |(id, (state, rev, status, start, created, finished, reason, start_at))| {
                if let Some(bytes) = state {
                    return Ok(Some(StoredInstance {
                        instance: decode_record(&bytes)?,
                        rev: rev.unwrap_or(0),
                        pending: false,
                        start_at: None,
                    }));
                }
                let Some(start) = start else {
                    return Ok(None);
                };
                // Canceled while pending, or failed because the coordinator dead-lettered
                // its start: ended before it was created.
                let ended = status
                    .as_deref()
                    .and_then(|s| s.parse::<InstanceStatus>().ok())
                    .filter(|s| s.is_terminal());
                // Times are integers, or "" for none (`finished` of a live instance).
                let millis = |v: Option<String>| v.and_then(|t| t.parse::<i64>().ok()).unwrap_or(0);
                let record = PendingRecord {
                    id,
                    created: Timestamp(millis(created)),
                    ended: ended.map(|status| UnstartedEnd {
                        status,
                        at: Timestamp(millis(finished)),
                        reason,
                    }),
                };
                let instance = pending_instance(&record, &start)?;
                let start_at = (instance.status == InstanceStatus::Pending)
                    .then_some(start_at.map(Timestamp))
                    .flatten();
                Ok(Some(StoredInstance {
                    instance,
                    rev: rev.unwrap_or(0),
                    pending: true,
                    start_at,
                }))
            },
        )
        .collect()
}

/// The fields of a start no coordinator created yet.
struct PendingRecord<'a> {
    id: &'a str,
    created: Timestamp,
    /// How it ended before a coordinator created it, if it did.
    ended: Option<UnstartedEnd>,
}

/// How a start no coordinator created ended: canceled while pending
/// (`lua/cancel_pending.lua`), or failed because the coordinator dead-lettered its Start
/// command ([`super::effects::fail_unstarted`]).
#[derive(Debug, Clone, PartialEq)]
pub struct UnstartedEnd {
    /// [`InstanceStatus::Canceled`] or [`InstanceStatus::Failed`].
    pub status: InstanceStatus,
    /// When.
    pub at: Timestamp,
    /// Why, as the canceler or the coordinator gave it ("" or `None`: not said).
    pub reason: Option<String>,
}

/// The instance a pending start stands for, built from its stored Start command.
fn pending_instance(record: &PendingRecord<'_>, start: &[u8]) -> Result<Instance, RedisError> {
    let msg: CommandMessage =
        wire::decode(start).map_err(|e| RedisError::Corrupt(format!("pending start: {e}")))?;
    let Command::Start {
        definition,
        version,
        initial_data,
        tenant_id,
        created_by,
    } = msg.command
    else {
        return Err(RedisError::Corrupt(format!(
            "pending start of {:?} holds another command",
            record.id
        )));
    };
    let fields = StartFields {
        definition,
        version,
        initial_data,
        tenant_id,
        created_by,
    };
    Ok(unstarted_instance(
        record.id,
        fields,
        record.created,
        record.ended.clone(),
    ))
}

/// What a start names: the fields of [`Command::Start`].
#[derive(Debug, Clone)]
pub struct StartFields {
    /// Definition name.
    pub definition: String,
    /// Definition version (resolved).
    pub version: String,
    /// Initial context.
    pub initial_data: crate::model::Context,
    /// The tenant that owns the instance, if any.
    pub tenant_id: Option<String>,
    /// Who started it, if given.
    pub created_by: Option<String>,
}

/// The instance a start no coordinator created yet stands for: status `pending` (or how
/// it `ended`, with when and why: canceled first, or failed when its start was
/// dead-lettered), the initial data as its context, no step states, stored at `created`.
pub fn unstarted_instance(
    id: &str,
    start: StartFields,
    created: Timestamp,
    ended: Option<UnstartedEnd>,
) -> Instance {
    let (status, finished_at, error) = match ended {
        Some(end) => {
            let unsaid = match end.status {
                InstanceStatus::Canceled => "canceled before a coordinator created it",
                _ => "ended before a coordinator created it",
            };
            let reason = end
                .reason
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| unsaid.to_string());
            (end.status, Some(end.at), Some(reason))
        }
        None => (InstanceStatus::Pending, None, None),
    };
    Instance {
        id: Arc::from(id),
        definition: Arc::from(start.definition),
        version: Arc::from(start.version),
        status,
        context: Arc::new(start.initial_data),
        steps: Vec::new(),
        error,
        failed_step: None,
        tenant_id: start.tenant_id,
        created_by: start.created_by,
        created_at: created,
        updated_at: finished_at.unwrap_or(created),
        finished_at,
        revision: 0,
        next_token: 0,
    }
}

/// Loads one instance.
pub async fn load_instance(
    c: &Connections,
    id: &str,
) -> Result<Option<StoredInstance>, RedisError> {
    let part = c.keys.part_of(id);
    Ok(load_instances(c, &part, &[id]).await?.pop().flatten())
}

/// The finished attempts of an instance.
pub async fn load_history(c: &Connections, id: &str) -> Result<Vec<AttemptRecord>, RedisError> {
    let raw: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(c.keys.part_of(id).history(id))
        .arg(0)
        .arg(-1)
        .query_async(&mut c.conn.clone())
        .await
        .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
    raw.iter().map(|b| decode_record(b)).collect()
}

/// A window of an instance's kept history: see [`load_history_range`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRange {
    /// The records of the window, oldest first.
    pub records: Vec<AttemptRecord>,
    /// Finished records kept in all.
    pub total: usize,
    /// Older records dropped by the cap ([`crate::api::MAX_HISTORY_RECORDS`]).
    pub dropped: u64,
}

/// Up to `count` finished attempts of an instance from position `start` (oldest first), how
/// many it keeps in all, and how many older ones the cap dropped. One round trip.
pub async fn load_history_range(
    c: &Connections,
    id: &str,
    start: usize,
    count: usize,
) -> Result<HistoryRange, RedisError> {
    let part = c.keys.part_of(id);
    let key = part.history(id);
    let stop = (start + count).saturating_sub(1);
    let (raw, total, dropped): (Vec<Vec<u8>>, usize, Option<u64>) = redis::pipe()
        .cmd("LRANGE")
        .arg(&key)
        .arg(start)
        .arg(stop)
        .cmd("LLEN")
        .arg(&key)
        .cmd("HGET")
        .arg(part.instance(id))
        .arg(super::effects::HISTORY_DROPPED_FIELD)
        .query_async(&mut c.conn.clone())
        .await
        .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
    let records = if count == 0 {
        Vec::new()
    } else {
        raw.iter()
            .map(|b| decode_record(b))
            .collect::<Result<_, _>>()?
    };
    Ok(HistoryRange {
        records,
        total,
        dropped: dropped.unwrap_or(0),
    })
}

/// Every open task, over all partitions.
///
/// A record that does not decode is skipped (logged, and counted in the second value), so
/// one corrupt task does not hide every other one.
pub async fn load_tasks(c: &Connections) -> Result<(Vec<Task>, usize), RedisError> {
    let mut pipe = redis::pipe();
    for part in c.keys.all_parts() {
        pipe.cmd("HVALS").arg(part.tasks());
    }
    let parts: Vec<Vec<Vec<u8>>> = pipe
        .query_async(&mut c.conn.clone())
        .await
        .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
    let mut out = Vec::new();
    let mut unreadable = 0;
    for raw in parts.iter().flatten() {
        match decode_record::<Task>(raw) {
            Ok(task) => out.push(task),
            Err(e) => {
                unreadable += 1;
                tracing::warn!(error = %e, "unreadable task record skipped");
            }
        }
    }
    Ok((out, unreadable))
}

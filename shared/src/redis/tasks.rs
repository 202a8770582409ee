//! Open human tasks as stored: the partition hash `{NS:pN}:tasks` (field `ID|STEP` ->
//! the task, MessagePack) and its index `{NS:pN}:x:tasks`. The coordinator writes them
//! ([`super::effects`]); these are the reads the HTTP API makes.

use std::collections::HashMap;

use super::connect::Connections;
use super::store::decode_record;
use super::RedisError;
use crate::model::Task;

/// The field of an open task in its partition's tasks hash (and its index member):
/// `INSTANCE_ID|STEP`.
pub fn task_field(instance_id: &str, step: &str) -> String {
    format!("{instance_id}|{step}")
}

/// Why an open task could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TaskReadError {
    /// Redis failed: retry later.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The stored task does not decode.
    #[error("the stored task is unreadable: {0}")]
    Unreadable(#[source] RedisError),
}

/// The open task of `step` in instance `instance_id`, if there is one.
pub async fn open_task(
    c: &Connections,
    instance_id: &str,
    step: &str,
) -> Result<Option<Task>, TaskReadError> {
    let raw: Option<Vec<u8>> = redis::cmd("HGET")
        .arg(c.keys.part_of(instance_id).tasks())
        .arg(task_field(instance_id, step))
        .query_async(&mut c.conn.clone())
        .await?;
    raw.map(|bytes| decode_record(&bytes))
        .transpose()
        .map_err(TaskReadError::Unreadable)
}

/// The open tasks among `steps` of instance `instance_id`, in the order of `steps`; each
/// one that does not decode is an `Err` of its own, so one corrupt task hides no other.
pub async fn open_tasks(
    c: &Connections,
    instance_id: &str,
    steps: &[&str],
) -> Result<Vec<Result<Task, RedisError>>, redis::RedisError> {
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    let fields: Vec<String> = steps.iter().map(|s| task_field(instance_id, s)).collect();
    let raw: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
        .arg(c.keys.part_of(instance_id).tasks())
        .arg(&fields)
        .query_async(&mut c.conn.clone())
        .await?;
    Ok(raw
        .into_iter()
        .flatten()
        .map(|bytes| decode_record(&bytes))
        .collect())
}

/// The workflow (definition) name of each of the instances `ids` that is stored (its hash's
/// `def`), in one round trip.
pub async fn workflow_names(
    c: &Connections,
    ids: &[&str],
) -> Result<HashMap<String, String>, redis::RedisError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("HGET")
            .arg(c.keys.part_of(id).instance(id))
            .arg("def");
    }
    let names: Vec<Option<String>> = pipe.query_async(&mut c.conn.clone()).await?;
    Ok(ids
        .iter()
        .zip(names)
        .filter_map(|(id, n)| n.map(|n| (id.to_string(), n)))
        .collect())
}

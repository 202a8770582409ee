//! Open human tasks as stored: the partition hash `{NS:pN}:tasks` (field `ID|STEP` ->
//! the task, MessagePack), its index `{NS:pN}:x:tasks` (every open task by opening time),
//! and the audience indexes `{NS:pN}:x:tasks:SORT:WHO`. The coordinator writes them
//! ([`super::effects`]); these are the reads the client and the HTTP API make.
//!
//! # Audience indexes
//!
//! Each open task is a member (`ID|STEP`) of one sorted set per [`Audience`] it has (its
//! assignee and claimer, each candidate user, each candidate group; `anyone` when it names
//! no one; `all`), twice: scored by opening time (`c`) and by due time (`d`, tasks without
//! one last). The sets live in the partition of the task's instance, beside the task
//! itself, so a commit writes a task and its entries in one slot (Redis Cluster). A listing
//! of one user's tasks reads, in every partition, the sets of the audiences it covers
//! (for "all I may do": the user as assignee/claimer and as candidate, each of their groups,
//! and `anyone`) from the cursor on, merges them in order, and reads only the page's tasks.
//! A task record that does not decode is left out and counted, so one corrupt task hides
//! no other. When a task changes hands (reassigned, claimed, released) or closes, the core
//! sends the task as it was ([`crate::core::Effect::RetireTask`]), and its entries go.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::connect::Connections;
use super::store::decode_record;
use super::RedisError;
use crate::api::{TaskCursor, TaskFilter, TaskPage, TaskScope, TaskSort};
use crate::model::Task;

/// One group of people an open task is indexed for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Every open task.
    All,
    /// Tasks that name no one: anyone may act on them.
    Anyone,
    /// Tasks assigned to, or claimed by, this user ("mine").
    Mine(String),
    /// Tasks naming this user among their candidates.
    Candidate(String),
    /// Tasks open to the members of this group.
    Group(String),
}

impl Audience {
    /// The `WHO` part of the index key.
    fn key_part(&self) -> String {
        match self {
            Audience::All => "all".into(),
            Audience::Anyone => "anyone".into(),
            Audience::Mine(u) => format!("a:{u}"),
            Audience::Candidate(u) => format!("u:{u}"),
            Audience::Group(g) => format!("g:{g}"),
        }
    }

    /// The audiences a task is indexed for.
    pub fn of(task: &Task) -> Vec<Audience> {
        let mut out = vec![Audience::All];
        if task.open_to_anyone() {
            out.push(Audience::Anyone);
        }
        out.extend(task.assignee.iter().cloned().map(Audience::Mine));
        out.extend(task.claimed_by.iter().cloned().map(Audience::Mine));
        out.extend(task.candidates.iter().cloned().map(Audience::Candidate));
        out.extend(task.candidate_groups.iter().cloned().map(Audience::Group));
        let mut seen = HashSet::new();
        out.retain(|a| seen.insert(a.clone()));
        out
    }
}

/// The index keys (in `part`) of a task, with its score in each.
pub fn index_entries(part: &super::keys::PartitionKeys, task: &Task) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for who in Audience::of(task) {
        for sort in [TaskSort::Oldest, TaskSort::Due] {
            out.push((audience_key(part, sort, &who), sort.position(task).key_ms));
        }
    }
    out
}

/// The index key of an audience in one order. Every open task by opening time is the
/// partition's `x:tasks` (older than the audience indexes, so tasks opened before them are
/// listed too).
fn audience_key(part: &super::keys::PartitionKeys, sort: TaskSort, who: &Audience) -> String {
    match (sort, who) {
        (TaskSort::Oldest, Audience::All) => part.index_tasks(),
        _ => part.index_task_audience(sort_char(sort), &who.key_part()),
    }
}

fn sort_char(sort: TaskSort) -> char {
    match sort {
        TaskSort::Oldest => 'c',
        TaskSort::Due => 'd',
    }
}

/// The audiences a filter reads.
fn audiences(filter: &TaskFilter) -> Vec<Audience> {
    let Some(user) = filter.user.clone() else {
        return vec![match &filter.assignee {
            Some(a) => Audience::Mine(a.clone()),
            None => Audience::All,
        }];
    };
    let groups = filter.groups.iter().cloned().map(Audience::Group);
    match filter.scope.unwrap_or(TaskScope::MayDo) {
        TaskScope::Mine => vec![Audience::Mine(user)],
        TaskScope::Groups => groups.collect(),
        TaskScope::MayDo => [
            Audience::Mine(user.clone()),
            Audience::Candidate(user),
            Audience::Anyone,
        ]
        .into_iter()
        .chain(groups)
        .collect(),
    }
}

/// Index entries read per key per round.
const BATCH: usize = 100;
/// How far the tie allowance grows (x BATCH entries per key).
const MAX_WIDEN: usize = 256;
/// Index entries one page examines at most before it returns what it has (with a cursor).
pub const SCAN_BUDGET: usize = 5_000;

/// One page of open tasks under `filter` (see the module doc). Without a limit, every
/// match (within [`SCAN_BUDGET`] per round, looping until the listing is over).
pub async fn page(c: &Connections, filter: &TaskFilter) -> Result<TaskPage, RedisError> {
    let want = filter.limit.unwrap_or(usize::MAX);
    let keys: Vec<(u16, String)> = {
        let mut keys = Vec::new();
        for (p, part) in c.keys.all_parts().enumerate() {
            for who in audiences(filter) {
                keys.push((p as u16, audience_key(&part, filter.sort, &who)));
            }
        }
        keys
    };
    let mut after = filter.after.clone();
    let mut out = TaskPage::default();
    if keys.is_empty() {
        // No audience to read (groups asked for, and the user is in none).
        return Ok(out);
    }
    let mut examined = 0usize;
    // Grows when a round read nothing but entries tied with the cursor.
    let mut widen = 1usize;
    loop {
        // The next BATCH entries of every key after the cursor, merged in order.
        let mut pipe = redis::pipe();
        for (_, key) in &keys {
            let min = after
                .as_ref()
                .map_or("-inf".to_string(), |a| a.key_ms.to_string());
            pipe.cmd("ZRANGE")
                .arg(key)
                .arg(min)
                .arg("+inf")
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(BATCH + ties(&after, widen))
                .arg("WITHSCORES");
        }
        let replies: Vec<Vec<(String, f64)>> = pipe
            .query_async(&mut c.conn.clone())
            .await
            .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
        let mut merged: BTreeMap<TaskCursor, u16> = BTreeMap::new();
        // Past this position some key may hold entries not read this round.
        let mut horizon: Option<TaskCursor> = None;
        for ((p, _), entries) in keys.iter().zip(replies) {
            let full = entries.len() >= BATCH + ties(&after, widen);
            let mut last = None;
            for (member, score) in entries {
                let pos = TaskCursor {
                    key_ms: score as i64,
                    task: member,
                };
                last = Some(pos.clone());
                if after.as_ref().is_none_or(|a| pos > *a) {
                    merged.insert(pos, *p);
                }
            }
            if full {
                if let Some(last) = last {
                    if horizon.as_ref().is_none_or(|h| last < *h) {
                        horizon = Some(last);
                    }
                }
            }
        }
        let round: Vec<(TaskCursor, u16)> = merged
            .into_iter()
            .filter(|(pos, _)| horizon.as_ref().is_none_or(|h| pos <= h))
            .collect();
        if round.is_empty() {
            if horizon.is_none() || widen >= MAX_WIDEN {
                return Ok(out);
            }
            // Every entry read was at or before the cursor: read further past it.
            widen *= 4;
            continue;
        }
        widen = 1;
        examined += round.len();
        let tasks = read_tasks(c, &round).await?;
        for ((pos, _), task) in round.iter().zip(tasks) {
            match task {
                Some(Ok(task)) if filter.matches(&task) => {
                    if out.items.len() == want {
                        out.next = after.clone();
                        return Ok(out);
                    }
                    out.items.push(task);
                }
                Some(Err(e)) => {
                    out.unreadable += 1;
                    tracing::warn!(task = %pos.task, error = %e, "unreadable task record skipped");
                }
                _ => {}
            }
            after = Some(pos.clone());
        }
        if horizon.is_none() {
            // Every key was read to its end.
            return Ok(out);
        }
        if filter.limit.is_some() && examined >= SCAN_BUDGET {
            out.next = after;
            return Ok(out);
        }
    }
}

/// Extra entries to read past a cursor: those tied with it at its score come first in the
/// range and are skipped. Ties are rare (tasks opened in the same millisecond; tasks without
/// a due time are spread by their opening time), and a round that finds only ties reads
/// again with a larger allowance.
fn ties(after: &Option<TaskCursor>, widen: usize) -> usize {
    if after.is_some() {
        BATCH * widen
    } else {
        0
    }
}

/// The tasks at `positions` (field, partition), in order: `None` when gone since the index
/// was read, `Some(Err)` when unreadable.
async fn read_tasks(
    c: &Connections,
    positions: &[(TaskCursor, u16)],
) -> Result<Vec<Option<Result<Task, RedisError>>>, RedisError> {
    let mut pipe = redis::pipe();
    for (pos, p) in positions {
        pipe.cmd("HGET").arg(c.keys.part(*p).tasks()).arg(&pos.task);
    }
    let raw: Vec<Option<Vec<u8>>> = pipe
        .query_async(&mut c.conn.clone())
        .await
        .map_err(|e| RedisError::from_redis(&c.display_url, e))?;
    Ok(raw
        .into_iter()
        .map(|r| r.map(|bytes| decode_record::<Task>(&bytes)))
        .collect())
}

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

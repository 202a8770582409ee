//! A batch of writes for `commit.lua`: the Rust side of its little op language.
//!
//! The coordinator turns the effects of many transitions of one partition into one batch
//! and sends it as one script call (ARCHITECTURE.md invariant 3, and the way to get near Redis's
//! ceiling: one round trip for many transitions).

use std::collections::{HashMap, HashSet};

use redis::aio::ConnectionLike;

use super::scripts;

/// Writes for one partition, checked against its lease and the revisions of the instances.
#[derive(Debug, Default)]
pub struct Batch {
    keys: Vec<String>,
    key_index: HashMap<String, usize>,
    checks: Vec<(usize, String)>,
    /// The writes' arguments, one after another (fewer allocations than one buffer each).
    op_bytes: Vec<u8>,
    /// Where each argument in `op_bytes` ends.
    op_ends: Vec<usize>,
    writes: usize,
    /// Entries to acknowledge, per (stream key index, group): one XACK and one XDEL each.
    acks: Vec<(usize, String, Vec<String>)>,
    /// (key index, member) pairs already added with SADD in this batch.
    sadded: HashSet<(usize, String)>,
    /// The timers sorted set to read the due timers of after the writes, and how many.
    due_timers: Option<(usize, usize)>,
    /// The earliest deadline (ms, Redis clock) of the commands the batch applies.
    deadline_ms: Option<i64>,
    /// Command replies: (key, ttl ms, value). Written by the commit, or after it once a
    /// replica holds it ([`Batch::commit_replicated`]).
    replies: Vec<(String, u64, Vec<u8>)>,
}

/// Replies a replicated commit holds back until a replica has the commit (see
/// [`Batch::commit_replicated`]); [`HeldReplies::publish`] writes them.
#[derive(Debug, Default)]
pub struct HeldReplies(Vec<(String, u64, Vec<u8>)>);

impl HeldReplies {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds those of `other` (held by a later commit).
    pub fn extend(&mut self, other: HeldReplies) {
        self.0.extend(other.0);
    }

    /// Writes the replies (LPUSH then PEXPIRE each), in one pipeline. Call it only once
    /// `WAIT` has confirmed the commit that decided them.
    pub async fn publish<C: ConnectionLike>(&self, conn: &mut C) -> redis::RedisResult<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, ttl_ms, value) in &self.0 {
            pipe.cmd("LPUSH")
                .arg(key)
                .arg(value)
                .ignore()
                .cmd("PEXPIRE")
                .arg(key)
                .arg(*ttl_ms)
                .ignore();
        }
        pipe.query_async::<()>(conn).await
    }
}

/// What [`Batch::commit_replicated`] did: the commit's answer, how many replicas
/// confirmed it, and the replies it held back.
#[derive(Debug)]
pub struct ReplicatedCommit {
    /// The number of writes applied.
    pub applied: usize,
    /// The Redis clock and due timers read after the writes, if asked for.
    pub due: Option<DueTimers>,
    /// How many replicas `WAIT` counted (0: none confirmed within its time).
    pub replicas: i64,
    /// The replies, to publish once a replica holds the commit.
    pub replies: HeldReplies,
}

/// The Redis clock and the timers due by it, as read at the end of a commit (or by
/// `due_timers.lua`): ARCHITECTURE.md invariant 6, timers fire by the Redis clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueTimers {
    /// The Redis server time, milliseconds since the epoch.
    pub now_ms: i64,
    /// The due time of the earliest timer not returned, if any.
    pub next_due_ms: Option<i64>,
    /// Due timers: the member (a [`TimerMember`](super::timer::TimerMember)) and its due time (its score, ms), at most
    /// the limit asked for. The score lets a commit remove exactly this timer
    /// ([`Batch::zrem_if`]), not one rescheduled since under the same member.
    pub members: Vec<(String, i64)>,
}

impl DueTimers {
    /// Parses `{ now_ms, next_due_ms or -1, member1, due1, ... }` (the answer of
    /// `due_timers.lua`, and the tail of `commit.lua`'s).
    pub fn parse(values: &[redis::Value]) -> DueTimers {
        let int = |v: Option<&redis::Value>| match v {
            Some(redis::Value::Int(n)) => *n,
            _ => -1,
        };
        let next = int(values.get(1));
        DueTimers {
            now_ms: int(values.first()),
            next_due_ms: (next >= 0).then_some(next),
            members: values
                .get(2..)
                .unwrap_or_default()
                .chunks(2)
                .filter_map(|pair| match pair {
                    [redis::Value::BulkString(b), redis::Value::Int(due)] => {
                        String::from_utf8(b.clone()).ok().map(|m| (m, *due))
                    }
                    _ => None,
                })
                .collect(),
        }
    }
}

/// The [`CommitError::Conflict`] text of a batch refused because a command in it passed its
/// deadline.
pub const DEADLINE_PASSED: &str = "a command's deadline passed";

/// Why a batch was not applied. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The caller no longer holds the partition lease: it must stop writing there.
    #[error("the partition lease was lost")]
    LeaseLost,
    /// An instance changed since it was read, or a command the batch applies passed its
    /// deadline (then the text is [`DEADLINE_PASSED`]): read again and apply again (which
    /// discards the expired command).
    #[error("instance state changed concurrently ({0})")]
    Conflict(String),
    /// `commit.lua` refused the batch as it is: an op is malformed (`BADOP`) or a key holds
    /// another type than its op needs (`BADKEY`). Retrying the same inputs fails the same
    /// way: the caller must isolate the input that causes it.
    #[error("the batch was refused: {0}")]
    Rejected(String),
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl Batch {
    /// A batch guarded by `lease_key`.
    pub fn new(lease_key: String) -> Batch {
        let mut b = Batch::default();
        b.key_idx(&lease_key);
        b
    }

    /// No writes yet.
    pub fn is_empty(&self) -> bool {
        self.writes == 0 && self.acks.is_empty() && self.replies.is_empty()
    }

    /// How many writes (an acknowledgement of several entries of one stream counts once).
    pub fn len(&self) -> usize {
        self.writes + self.acks.len() + self.replies.len()
    }

    fn key_idx(&mut self, key: &str) -> usize {
        if let Some(idx) = self.key_index.get(key) {
            return *idx;
        }
        self.keys.push(key.to_string());
        let idx = self.keys.len();
        self.key_index.insert(key.to_string(), idx);
        idx
    }

    fn push_arg(&mut self, arg: &[u8]) {
        self.op_bytes.extend_from_slice(arg);
        self.op_ends.push(self.op_bytes.len());
    }

    fn op(&mut self, name: &str, key: &str, args: &[&[u8]]) {
        self.push_arg(name.as_bytes());
        let k = self.key_idx(key).to_string();
        self.push_arg(k.as_bytes());
        for a in args {
            self.push_arg(a);
        }
        self.writes += 1;
    }

    /// Requires the hash `key` to have field `rev` equal to `rev` (`None`: must not exist).
    pub fn check_revision(&mut self, key: &str, rev: Option<u64>) {
        let idx = self.key_idx(key);
        self.checks
            .push((idx, rev.map(|r| r.to_string()).unwrap_or_default()));
    }

    /// Requires the Redis clock not to be past `deadline_ms` when the batch is applied (the
    /// earliest of all such calls counts): a command is applied before its deadline or
    /// never (see `send_command.lua`).
    pub fn check_deadline(&mut self, deadline_ms: i64) {
        self.deadline_ms = Some(self.deadline_ms.map_or(deadline_ms, |d| d.min(deadline_ms)));
    }

    /// After the writes, read the Redis clock and up to `limit` timers of the sorted set
    /// `timers_key` due by it, in the same script call: the next turn needs no call of its
    /// own for them (see [`Batch::commit_then_due`]).
    pub fn then_due_timers(&mut self, timers_key: &str, limit: usize) {
        let idx = self.key_idx(timers_key);
        self.due_timers = Some((idx, limit.max(1)));
    }

    /// HSET key f v ...
    pub fn hset(&mut self, key: &str, fields: &[(&str, &[u8])]) {
        let n = fields.len().to_string();
        let mut args: Vec<&[u8]> = vec![n.as_bytes()];
        for (f, v) in fields {
            args.push(f.as_bytes());
            args.push(v);
        }
        self.op("HSET", key, &args);
    }

    /// HDEL key field
    pub fn hdel(&mut self, key: &str, field: &str) {
        self.op("HDEL", key, &[field.as_bytes()]);
    }

    /// RPUSH key value, then keeps the last `cap` entries of the list (0: all) and adds how
    /// many were dropped to `counter_field` of the hash `counter_key` (same slot).
    pub fn rpush_capped(
        &mut self,
        key: &str,
        cap: usize,
        counter_key: &str,
        counter_field: &str,
        value: &[u8],
    ) {
        let cap = cap.to_string();
        let h = self.key_idx(counter_key).to_string();
        self.op(
            "RPUSHCAP",
            key,
            &[
                cap.as_bytes(),
                h.as_bytes(),
                counter_field.as_bytes(),
                value,
            ],
        );
    }

    /// DEL key
    pub fn del(&mut self, key: &str) {
        self.op("DEL", key, &[]);
    }

    /// XADD key [MAXLEN ~ cap] * field value
    pub fn xadd(&mut self, key: &str, cap: usize, field: &str, value: &[u8]) {
        self.xadd_fields(key, cap, &[(field, value)]);
    }

    /// XADD key [MAXLEN ~ cap] * f1 v1 ... (cap 0: uncapped)
    pub fn xadd_fields(&mut self, key: &str, cap: usize, fields: &[(&str, &[u8])]) {
        let cap = cap.to_string();
        let n = fields.len().to_string();
        let mut args: Vec<&[u8]> = vec![cap.as_bytes(), n.as_bytes()];
        for (f, v) in fields {
            args.push(f.as_bytes());
            args.push(v);
        }
        self.op("XADD", key, &args);
    }

    /// ZADD key score member
    pub fn zadd(&mut self, key: &str, score: i64, member: &str) {
        let score = score.to_string();
        self.op("ZADD", key, &[score.as_bytes(), member.as_bytes()]);
    }

    /// ZREM key member
    pub fn zrem(&mut self, key: &str, member: &str) {
        self.op("ZREM", key, &[member.as_bytes()]);
    }

    /// ZREM key member, only if the member's score is still `score` (checked when the
    /// write runs, after the batch's earlier writes).
    pub fn zrem_if(&mut self, key: &str, score: i64, member: &str) {
        let score = score.to_string();
        self.op("ZREMIF", key, &[score.as_bytes(), member.as_bytes()]);
    }

    /// SADD key member (once per batch for a given member).
    pub fn sadd(&mut self, key: &str, member: &str) {
        let idx = self.key_idx(key);
        if self.sadded.insert((idx, member.to_string())) {
            self.op("SADD", key, &[member.as_bytes()]);
        }
    }

    /// XACK + XDEL of a handled stream entry. The entries of one stream and group are
    /// acknowledged together, with one XACK and one XDEL, before the other writes.
    pub fn ack(&mut self, stream: &str, group: &str, id: &str) {
        let idx = self.key_idx(stream);
        match self
            .acks
            .iter_mut()
            .find(|(k, g, _)| *k == idx && g == group)
        {
            Some((_, _, ids)) => ids.push(id.to_string()),
            None => self
                .acks
                .push((idx, group.to_string(), vec![id.to_string()])),
        }
    }

    /// LPUSH + PEXPIRE of a reply: in the commit, or after it under
    /// [`Batch::commit_replicated`].
    pub fn reply(&mut self, key: &str, ttl_ms: u64, value: &[u8]) {
        self.replies.push((key.to_string(), ttl_ms, value.to_vec()));
    }

    /// HINCRBY key field n
    pub fn hincr(&mut self, key: &str, field: &str, n: i64) {
        let n = n.to_string();
        self.op("HINCR", key, &[field.as_bytes(), n.as_bytes()]);
    }

    /// Sends the batch as one `commit.lua` call; returns the number of writes applied.
    pub async fn commit<C: ConnectionLike>(
        self,
        conn: &mut C,
        owner: &str,
    ) -> Result<usize, CommitError> {
        let (applied, _) = self.commit_then_due(conn, owner).await?;
        Ok(applied)
    }

    /// Sends the batch as one `commit.lua` call; returns the number of writes applied and,
    /// if [`Batch::then_due_timers`] was called, the Redis clock and the due timers read
    /// after the writes.
    pub async fn commit_then_due<C: ConnectionLike>(
        mut self,
        conn: &mut C,
        owner: &str,
    ) -> Result<(usize, Option<DueTimers>), CommitError> {
        for (key, ttl_ms, value) in std::mem::take(&mut self.replies) {
            let ttl = ttl_ms.to_string();
            self.op("REPLY", &key, &[ttl.as_bytes(), &value]);
        }
        let answer = self
            .invocation(owner)
            .invoke_async::<redis::Value>(conn)
            .await;
        parse_answer(answer)
    }

    /// Sends the batch as one `commit.lua` call without its replies, pipelined with a
    /// `WAIT 1 wait` (one round trip, on the partition's node: `WAIT` has no key and goes
    /// with the script's slot). The replies are returned held: a caller must see a verdict
    /// only once a replica holds the commit that decided it, or a failover could lose a
    /// commit whose reply was read. Publish them with [`HeldReplies::publish`] when
    /// [`ReplicatedCommit::replicas`] is at least 1.
    pub async fn commit_replicated<C: ConnectionLike>(
        mut self,
        conn: &mut C,
        owner: &str,
        wait: std::time::Duration,
    ) -> Result<ReplicatedCommit, CommitError> {
        let replies = HeldReplies(std::mem::take(&mut self.replies));
        let inv = self.invocation(owner);
        let mut loaded = false;
        loop {
            let mut pipe = redis::pipe();
            pipe.invoke_script(&inv)
                .cmd("WAIT")
                .arg(1)
                .arg(wait.as_millis() as u64);
            let answer: redis::RedisResult<(redis::Value, i64)> =
                pipe.ignore_errors().query_async(conn).await;
            let (value, replicas) = match answer {
                Ok(answer) => answer,
                Err(e) => return Err(CommitError::Redis(e)),
            };
            let script = match value {
                redis::Value::ServerError(e) => Err(redis::RedisError::from(e)),
                other => Ok(other),
            };
            if let Err(e) = &script {
                if !loaded && e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
                {
                    // The node does not have the script yet (a new or failed-over master).
                    inv.load_async(conn).await.map_err(CommitError::Redis)?;
                    loaded = true;
                    continue;
                }
            }
            let (applied, due) = parse_answer(script)?;
            return Ok(ReplicatedCommit {
                applied,
                due,
                replicas,
                replies,
            });
        }
    }

    /// The `commit.lua` call of the batch.
    fn invocation(&self, owner: &str) -> redis::ScriptInvocation<'static> {
        let mut inv = scripts::COMMIT.prepare_invoke();
        for k in &self.keys {
            inv.key(k);
        }
        let (timers_idx, limit) = self.due_timers.unwrap_or((0, 0));
        inv.arg(owner)
            .arg(timers_idx)
            .arg(limit)
            .arg(self.checks.len() + usize::from(self.deadline_ms.is_some()));
        if let Some(deadline) = self.deadline_ms {
            inv.arg(0).arg(deadline);
        }
        for (idx, rev) in &self.checks {
            inv.arg(*idx).arg(rev);
        }
        for (idx, group, ids) in &self.acks {
            inv.arg("ACK").arg(*idx).arg(group.as_str()).arg(ids.len());
            for id in ids {
                inv.arg(id.as_str());
            }
        }
        let mut start = 0;
        for &end in &self.op_ends {
            inv.arg(&self.op_bytes[start..end]);
            start = end;
        }
        inv
    }
}

/// `commit.lua`'s answer: the writes applied and the due timers, or why nothing was.
fn parse_answer(
    answer: redis::RedisResult<redis::Value>,
) -> Result<(usize, Option<DueTimers>), CommitError> {
    match answer {
        Ok(redis::Value::Int(n)) => Ok((n.max(0) as usize, None)),
        Ok(redis::Value::Array(values)) => {
            let applied = match values.first() {
                Some(redis::Value::Int(n)) => (*n).max(0) as usize,
                _ => 0,
            };
            Ok((
                applied,
                Some(DueTimers::parse(&values[1.min(values.len())..])),
            ))
        }
        Ok(other) => Err(CommitError::Redis(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "unexpected answer from commit.lua",
            format!("{other:?}"),
        )))),
        Err(e) => {
            // The script's error reply is `LEASE` or `REV <key>`; redis-rs splits it
            // into a code and a detail (or a generic kind and the text as detail), so
            // match those exactly: a key name may contain "LEASE" or "REV ".
            let code = e.code().unwrap_or_default();
            let detail = e.detail().unwrap_or_default().trim();
            let refused = ["BADOP", "BADKEY"]
                .iter()
                .any(|c| code == *c || detail.starts_with(&format!("{c} ")));
            if code == "LEASE" || detail == "LEASE" {
                Err(CommitError::LeaseLost)
            } else if refused {
                Err(CommitError::Rejected(
                    format!("{code} {detail}").trim().to_string(),
                ))
            } else if code == "DEADLINE" || detail == "DEADLINE" {
                Err(CommitError::Conflict(DEADLINE_PASSED.to_string()))
            } else if code == "REV" {
                Err(CommitError::Conflict(detail.to_string()))
            } else if let Some(key) = detail.strip_prefix("REV ") {
                Err(CommitError::Conflict(key.trim().to_string()))
            } else {
                Err(CommitError::Redis(e))
            }
        }
    }
}

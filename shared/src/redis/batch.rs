//! A batch of writes for `commit.lua`: the Rust side of its little op language.
//!
//! The coordinator turns the effects of many transitions of one partition into one batch
//! and sends it as one script call (DESIGN invariant 3, and the way to get near Redis's
//! ceiling: one round trip for many transitions).

use std::collections::HashMap;

use redis::aio::ConnectionLike;

use super::scripts;

/// Writes for one partition, checked against its lease and the revisions of the instances.
#[derive(Debug, Default)]
pub struct Batch {
    keys: Vec<String>,
    key_index: HashMap<String, usize>,
    checks: Vec<(usize, String)>,
    ops: Vec<Vec<u8>>,
    writes: usize,
}

/// Why a batch was not applied. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The caller no longer holds the partition lease: it must stop writing there.
    #[error("the partition lease was lost")]
    LeaseLost,
    /// An instance changed since it was read: reload and apply again.
    #[error("instance state changed concurrently ({0})")]
    Conflict(String),
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl Batch {
    /// A batch guarded by `lease_key`.
    pub fn new(lease_key: String) -> Batch {
        let mut b = Batch::default();
        b.key(&lease_key);
        b
    }

    /// No writes yet.
    pub fn is_empty(&self) -> bool {
        self.writes == 0
    }

    /// How many writes.
    pub fn len(&self) -> usize {
        self.writes
    }

    fn key(&mut self, key: &str) -> Vec<u8> {
        let next = self.keys.len() + 1;
        let idx = *self.key_index.entry(key.to_string()).or_insert_with(|| {
            self.keys.push(key.to_string());
            next
        });
        idx.to_string().into_bytes()
    }

    fn op(&mut self, name: &str, key: &str, args: &[&[u8]]) {
        self.ops.push(name.as_bytes().to_vec());
        let k = self.key(key);
        self.ops.push(k);
        self.ops.extend(args.iter().map(|a| a.to_vec()));
        self.writes += 1;
    }

    /// Requires the hash `key` to have field `rev` equal to `rev` (`None`: must not exist).
    pub fn check_revision(&mut self, key: &str, rev: Option<u64>) {
        let k = self.key(key);
        let idx = String::from_utf8_lossy(&k).parse().unwrap_or(0);
        self.checks
            .push((idx, rev.map(|r| r.to_string()).unwrap_or_default()));
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

    /// RPUSH key value
    pub fn rpush(&mut self, key: &str, value: &[u8]) {
        self.op("RPUSH", key, &[value]);
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

    /// SADD key member
    pub fn sadd(&mut self, key: &str, member: &str) {
        self.op("SADD", key, &[member.as_bytes()]);
    }

    /// XACK + XDEL of a handled stream entry.
    pub fn ack(&mut self, stream: &str, group: &str, id: &str) {
        self.op("ACK", stream, &[group.as_bytes(), id.as_bytes()]);
    }

    /// LPUSH + PEXPIRE of a reply.
    pub fn reply(&mut self, key: &str, ttl_ms: u64, value: &[u8]) {
        let ttl = ttl_ms.to_string();
        self.op("REPLY", key, &[ttl.as_bytes(), value]);
    }

    /// HINCRBY key field n
    pub fn hincr(&mut self, key: &str, field: &str, n: i64) {
        let n = n.to_string();
        self.op("HINCR", key, &[field.as_bytes(), n.as_bytes()]);
    }

    /// Sends the batch as one `commit.lua` call.
    pub async fn commit<C: ConnectionLike>(
        self,
        conn: &mut C,
        owner: &str,
    ) -> Result<usize, CommitError> {
        let mut inv = scripts::COMMIT.prepare_invoke();
        for k in &self.keys {
            inv.key(k);
        }
        inv.arg(owner).arg(self.checks.len());
        for (idx, rev) in &self.checks {
            inv.arg(*idx).arg(rev);
        }
        for op in &self.ops {
            inv.arg(op.as_slice());
        }
        match inv.invoke_async::<usize>(conn).await {
            Ok(n) => Ok(n),
            Err(e) => {
                // The script's error reply is `LEASE` or `REV <key>`; redis-rs splits it
                // into a code and a detail (or a generic kind and the text as detail), so
                // match those exactly: a key name may contain "LEASE" or "REV ".
                let code = e.code().unwrap_or_default();
                let detail = e.detail().unwrap_or_default().trim();
                if code == "LEASE" || detail == "LEASE" {
                    Err(CommitError::LeaseLost)
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
}

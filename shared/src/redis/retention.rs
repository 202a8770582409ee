//! Deleting finished instances past their retention (ARCHITECTURE.md invariant 7): an
//! instance's hash, its history and every index entry, in one `commit.lua` call guarded by
//! the partition lease.

use redis::aio::ConnectionLike;

use super::batch::{Batch, CommitError};
use super::keys::PartitionKeys;

/// Deletes up to `limit` instances of the partition that finished before `cutoff_ms`
/// (Redis clock), with their history and index entries, as lease holder `owner`. Returns
/// how many were deleted.
pub async fn delete_finished_before<C: ConnectionLike>(
    conn: &mut C,
    part: &PartitionKeys,
    cutoff_ms: i64,
    limit: usize,
    owner: &str,
) -> Result<usize, CommitError> {
    let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(part.index_finished())
        .arg("-inf")
        .arg(cutoff_ms)
        .arg("LIMIT")
        .arg(0)
        .arg(limit)
        .query_async(conn)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    // The fields that name the other indexes the instance is in.
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.cmd("HMGET")
            .arg(part.instance(id))
            .arg("status")
            .arg("def")
            .arg("tenant")
            .arg("creator");
    }
    type Row = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = pipe.query_async(conn).await?;
    let mut batch = Batch::new(part.lease());
    for (id, (status, def, tenant, creator)) in ids.iter().zip(rows) {
        batch.del(&part.instance(id));
        batch.del(&part.history(id));
        batch.zrem(&part.index_finished(), id);
        if let Some(s) = status {
            batch.zrem(&part.index_status(&s), id);
        }
        if let Some(d) = def {
            batch.zrem(&part.index_definition(&d), id);
        }
        if let Some(t) = tenant {
            batch.zrem(&part.index_tenant(&t), id);
        }
        if let Some(c) = creator {
            batch.zrem(&part.index_creator(&c), id);
        }
    }
    batch.commit(conn, owner).await?;
    Ok(ids.len())
}

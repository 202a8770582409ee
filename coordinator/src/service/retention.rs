//! Retention: finished instances are deleted, with their history and index entries, once
//! they are older than the configured retention (DESIGN invariant 7). Bounded: at most 100
//! per sweep and partition.

use weir::redis::batch::Batch;
use weir::redis::PartitionKeys;

use super::{Counters, Shared};

/// Deletes up to 100 finished instances whose retention has passed.
pub async fn sweep(shared: &Shared, part: &PartitionKeys) -> Result<(), String> {
    let now = shared
        .conns
        .server_time()
        .await
        .map_err(|e| e.to_string())?;
    let cutoff = now - shared.config.retention.as_millis() as i64;
    let mut conn = shared.conns.conn.clone();
    let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(part.index_finished())
        .arg("-inf")
        .arg(cutoff)
        .arg("LIMIT")
        .arg(0)
        .arg(100)
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if ids.is_empty() {
        return Ok(());
    }
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
    let rows: Vec<Row> = pipe
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut batch = Batch::new(part.lease());
    for (id, (status, def, tenant, creator)) in ids.iter().zip(rows) {
        batch.del(&part.instance(id));
        batch.del(&part.history(id));
        batch.zrem(&part.index_all(), id);
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
    batch
        .commit(&mut conn, &shared.config.id)
        .await
        .map_err(|e| e.to_string())?;
    Counters::add(&shared.counters.expired, ids.len() as u64);
    tracing::debug!(count = ids.len(), "expired finished instances");
    Ok(())
}

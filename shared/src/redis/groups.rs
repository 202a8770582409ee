//! Consumer groups: creating them where missing, and telling a missing one from other
//! failures. The one place that does this for coordinators (group `coordinators` on the
//! command and result streams) and workers (group `workers` on the step streams).

use redis::aio::ConnectionLike;

/// Creates consumer group `group` on `stream` (and the stream, `MKSTREAM`), reading from the
/// start (`0`), unless it exists. An existing group is recognised by Redis's error code
/// `BUSYGROUP`, never by its message text.
pub async fn ensure_group<C: ConnectionLike>(
    conn: &mut C,
    stream: &str,
    group: &str,
) -> Result<(), redis::RedisError> {
    let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e),
    }
}

/// [`ensure_group`] on each of `streams`.
pub async fn ensure_groups<C: ConnectionLike>(
    conn: &mut C,
    streams: &[String],
    group: &str,
) -> Result<(), redis::RedisError> {
    for stream in streams {
        ensure_group(conn, stream, group).await?;
    }
    Ok(())
}

/// Whether Redis answered that a stream or its consumer group is missing (error code
/// `NOGROUP`): Redis lost its data (FLUSHALL, a restart without persistence, an empty
/// replica promoted), and the group must be created again.
pub fn is_missing_group(e: &redis::RedisError) -> bool {
    e.code() == Some("NOGROUP")
}

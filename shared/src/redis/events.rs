//! What the live event feed reads besides the event streams: whose instance an event is
//! (its tenant), to show each subscriber only its own tenant's events.

use super::connect::Connections;

/// For each of the instances `ids`, in order: `None` when it is not stored (not yet, or
/// no more), else its tenant (`Some(None)` for an instance of no tenant). One round trip.
pub async fn tenants_of(
    c: &Connections,
    ids: &[&str],
) -> Result<Vec<Option<Option<String>>>, redis::RedisError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("HMGET")
            .arg(c.keys.part_of(id).instance(id))
            .arg("tenant")
            .arg("def");
    }
    let rows: Vec<(Option<String>, Option<String>)> = pipe.query_async(&mut c.conn.clone()).await?;
    // Every stored instance has `def`; `tenant` only when it has one.
    Ok(rows
        .into_iter()
        .map(|(tenant, def)| def.map(|_| tenant))
        .collect())
}

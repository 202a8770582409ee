//! Cursor pagination of instances over the per-partition creation-time indexes: the one
//! instance listing, used by `weir list` ([`super::WeirClient::list_instances`]) and by
//! `GET /api/v1/instances`.
//!
//! # The cursor
//!
//! Instances are listed newest first, ordered by (creation time in ms, id), both descending:
//! the order of the `x:*` sorted sets (score = creation time; equal scores in reverse
//! lexical order of the id). A [`Cursor`] is the position of the last instance a page
//! returned (the HTTP API gives it to clients as opaque text). The next page holds the
//! instances strictly after that position. Instances started after the first page have
//! newer positions, so they never shift later pages: walking the pages returns every
//! instance that existed at the start exactly once (one whose status changes between pages
//! may of course leave or enter a `status` filter).
//!
//! # Bounded work
//!
//! Each partition reads its most selective index (creator, tenant, workflow, status) in
//! batches and filters on the rest, stopping once it has `limit + 1` matches or has read
//! [`SCAN_BUDGET`] entries. A page then returns only positions every index read has read
//! past, so a page may hold fewer than `limit` items with a `next` cursor to go on; the
//! listing is over only when `next` is `None`.
//!
//! # Which indexes
//!
//! A start is kept cheap by writing one index member: a pending start is in the pending
//! status index only, and joins the indexes of its workflow, tenant and creator when it
//! leaves `pending` (see `lua/start.lua`). So a listing by one of those also reads the
//! pending index (usually short: starts no coordinator has created yet, and delayed
//! ones), unless its status filter rules pending instances out. There is no index of all
//! instances: each instance is in exactly one status index, and a listing without a filter
//! reads them all. An instance whose status changes while a page is read may be seen in
//! two of them; a page holds it once.

use super::client::WeirClient;
use super::keys::PartitionKeys;
use super::store;
use crate::api::{EngineError, InstanceFilter, InstanceView};
use crate::engine::Engine;
use crate::model::InstanceStatus;

/// Index entries one read takes at most.
const BATCH: usize = 200;
/// Index entries one read takes at least (a filter may reject many).
const MIN_BATCH: usize = 20;
/// Index entries one page reads from one index at most.
pub const SCAN_BUDGET: usize = 2_000;

/// A position in the listing order: (creation time in ms, id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// Creation time (ms), the index score.
    pub created_ms: i64,
    /// The instance id.
    pub id: String,
}

/// One page of instances, and where the next begins.
#[derive(Debug)]
pub struct Page {
    /// Matching instances, newest first.
    pub items: Vec<InstanceView>,
    /// Where to go on, or `None` when the listing is over.
    pub next: Option<Cursor>,
}

/// What one partition found.
struct Found<T> {
    /// Matches, in listing order.
    matches: Vec<(Cursor, T)>,
    /// The last position read, when entries below it were not read.
    floor: Option<Cursor>,
}

/// The page of instances matching `filter` (its `limit` is ignored) after `after`.
pub async fn page(
    client: &WeirClient,
    filter: &InstanceFilter,
    limit: usize,
    after: Option<&Cursor>,
) -> Result<Page, EngineError> {
    let reads: Vec<(PartitionKeys, String)> = client
        .connections()
        .keys
        .all_parts()
        .flat_map(|part| {
            indexes(&part, filter)
                .into_iter()
                .map(move |key| (part.clone(), key))
        })
        .collect();
    // The indexes are read concurrently (one multiplexed connection carries them all).
    let found = futures_util::future::try_join_all(
        reads
            .iter()
            .map(|(part, key)| scan(client, part, key, filter, limit, after)),
    )
    .await?;
    let (picked, next) = merge(found, limit);
    let mut items = Vec::with_capacity(picked.len());
    for (_, (inst, start_at)) in picked {
        let wf = client
            .get_definition(&inst.definition, Some(&inst.version))
            .await?;
        let mut view = InstanceView::new(&inst, &wf);
        view.start_at = start_at;
        items.push(view);
    }
    Ok(Page { items, next })
}

/// Up to `limit` instances matching `filter` (its `limit` is ignored), newest first: the
/// pages from the start, until `limit` or the end.
pub async fn newest(
    client: &WeirClient,
    filter: &InstanceFilter,
    limit: usize,
) -> Result<Vec<InstanceView>, EngineError> {
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    while out.len() < limit {
        let next = page(client, filter, limit - out.len(), after.as_ref()).await?;
        out.extend(next.items);
        match next.next {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    Ok(out)
}

/// Merges what the indexes gave into one page of at most `limit`, and the cursor to go on
/// from. Only positions every index read has read past are safe to return: below the
/// highest `floor` an index may hold entries not read yet. A position found in two
/// indexes (its status changed between their reads) is kept once.
fn merge<T>(found: Vec<Found<T>>, limit: usize) -> (Vec<(Cursor, T)>, Option<Cursor>) {
    let cut = found.iter().filter_map(|f| f.floor.clone()).max();
    let mut all: Vec<(Cursor, T)> = found.into_iter().flat_map(|f| f.matches).collect();
    all.sort_by(|a, b| b.0.cmp(&a.0));
    all.dedup_by(|a, b| a.0 == b.0);
    let mut more = false;
    let mut items = Vec::new();
    for (pos, item) in all {
        if items.len() == limit || cut.as_ref().is_some_and(|cut| pos < *cut) {
            more = true;
            break;
        }
        items.push((pos, item));
    }
    let next = if items.len() == limit && (more || cut.is_some()) {
        items.last().map(|(pos, _)| pos.clone())
    } else if cut.is_some() {
        // Fewer than `limit`: everything at or above the cut is returned.
        cut
    } else {
        None
    };
    (items, next)
}

/// The indexes of one partition that together hold every instance matching `filter`: its
/// most selective index, and the pending index beside an origin index (see the module
/// doc).
fn indexes(part: &PartitionKeys, filter: &InstanceFilter) -> Vec<String> {
    let pending = || part.index_status(InstanceStatus::Pending.as_str());
    let origin = if let Some(u) = &filter.created_by {
        Some(part.index_creator(u))
    } else if let Some(t) = &filter.tenant_id {
        Some(part.index_tenant(t))
    } else {
        filter.definition.as_ref().map(|d| part.index_definition(d))
    };
    match (filter.status, origin) {
        (Some(InstanceStatus::Pending), _) => vec![pending()],
        (Some(_), Some(origin)) => vec![origin],
        (Some(s), None) => vec![part.index_status(s.as_str())],
        (None, Some(origin)) => vec![origin, pending()],
        (None, None) => InstanceStatus::ALL
            .iter()
            .map(|s| part.index_status(s.as_str()))
            .collect(),
    }
}

/// Reads index `key` of one partition from the cursor down until `limit + 1` matches, the
/// end, or the budget.
async fn scan(
    client: &WeirClient,
    part: &PartitionKeys,
    key: &str,
    filter: &InstanceFilter,
    limit: usize,
    after: Option<&Cursor>,
) -> Result<Found<(crate::model::Instance, Option<crate::time::Timestamp>)>, EngineError> {
    let c = client.connections();
    // A page of a few reads no more than it needs from each index (a listing without a
    // filter reads every status index of every partition).
    let batch_len = (limit + 1).clamp(MIN_BATCH, BATCH);
    let mut max = filter
        .created_before
        .map_or(i64::MAX, |t| t.millis().saturating_sub(1));
    if let Some(a) = after {
        max = max.min(a.created_ms);
    }
    let max = if max == i64::MAX {
        "+inf".to_string()
    } else {
        max.to_string()
    };
    let min = filter
        .created_after
        .map_or_else(|| "-inf".to_string(), |t| t.millis().to_string());
    let mut matches = Vec::new();
    let mut offset = 0;
    loop {
        let batch: Vec<(String, f64)> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(key)
            .arg(&max)
            .arg(&min)
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(offset)
            .arg(batch_len)
            .query_async(&mut c.conn.clone())
            .await
            .map_err(|e| super::RedisError::from_redis(&c.display_url, e))?;
        offset += batch.len();
        let positions: Vec<Cursor> = batch
            .into_iter()
            .map(|(id, score)| Cursor {
                created_ms: score as i64,
                id,
            })
            .collect();
        let last = positions.last().cloned();
        let fresh: Vec<&Cursor> = positions
            .iter()
            .filter(|p| after.is_none_or(|a| *p < a))
            .collect();
        let ids: Vec<&str> = fresh.iter().map(|p| p.id.as_str()).collect();
        let loaded = store::load_instances(c, part, &ids).await?;
        for (pos, stored) in fresh.into_iter().zip(loaded) {
            // An id in the index whose instance expired in between is skipped.
            if let Some(s) = stored {
                if filter.matches(&s.instance) {
                    matches.push((pos.clone(), (s.instance, s.start_at)));
                }
            }
        }
        let Some(last) = last else {
            return Ok(Found {
                matches,
                floor: None,
            });
        };
        if positions.len() < batch_len {
            return Ok(Found {
                matches,
                floor: None,
            });
        }
        if matches.len() > limit || offset >= SCAN_BUDGET {
            return Ok(Found {
                matches,
                floor: Some(last),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64, id: &str) -> Cursor {
        Cursor {
            created_ms: ms,
            id: id.into(),
        }
    }

    /// Pages out of partitions with the given contents (positions, newest first) and read
    /// budgets, walked to the end: every position comes exactly once, newest first.
    fn walk(parts: &[Vec<Cursor>], budget: usize, limit: usize) -> Vec<Cursor> {
        let mut out: Vec<Cursor> = Vec::new();
        let mut after: Option<Cursor> = None;
        for _ in 0..1000 {
            let found = parts
                .iter()
                .map(|entries| {
                    let fresh: Vec<&Cursor> = entries
                        .iter()
                        .filter(|p| after.as_ref().is_none_or(|a| *p < a))
                        .collect();
                    let read: Vec<&Cursor> = fresh.iter().take(budget).copied().collect();
                    Found {
                        matches: read.iter().map(|p| ((*p).clone(), ())).collect(),
                        floor: (fresh.len() > read.len()).then(|| read[read.len() - 1].clone()),
                    }
                })
                .collect();
            let (items, next) = merge(found, limit);
            assert!(items.len() <= limit);
            out.extend(items.into_iter().map(|(p, ())| p));
            match next {
                Some(n) => after = Some(n),
                None => return out,
            }
        }
        panic!("the walk never ended");
    }

    /// Walks with every read budget up to `budgets` and page limit up to `limits` give
    /// `expected`.
    fn assert_every_walk_gives(
        parts: &[Vec<Cursor>],
        expected: &[Cursor],
        budgets: usize,
        limits: usize,
    ) {
        for budget in 1..=budgets {
            for limit in 1..=limits {
                assert_eq!(
                    walk(parts, budget, limit),
                    expected,
                    "budget {budget}, limit {limit}"
                );
            }
        }
    }

    #[test]
    fn merged_pages_return_every_position_once_newest_first() {
        let parts = vec![
            vec![at(9, "a"), at(7, "c"), at(7, "b"), at(3, "x"), at(1, "y")],
            vec![at(8, "d"), at(7, "e"), at(2, "f")],
            vec![],
            vec![at(10, "g"), at(6, "h"), at(5, "i"), at(4, "j"), at(0, "k")],
        ];
        let mut expected: Vec<Cursor> = parts.iter().flatten().cloned().collect();
        expected.sort_by(|a, b| b.cmp(a));
        assert_every_walk_gives(&parts, &expected, 6, 14);
    }

    #[test]
    fn a_position_two_indexes_hold_is_listed_once() {
        // An instance whose status changed between the reads of two status indexes.
        let parts = vec![
            vec![at(9, "a"), at(5, "moved"), at(1, "b")],
            vec![at(8, "c"), at(5, "moved")],
        ];
        let expected = vec![at(9, "a"), at(8, "c"), at(5, "moved"), at(1, "b")];
        assert_every_walk_gives(&parts, &expected, 4, 5);
    }

    #[test]
    fn indexes_read_pending_beside_an_origin_index_unless_the_status_rules_it_out() {
        let part = crate::redis::keys::Keys::new("ns", 1).part(0);
        let pending = part.index_status("pending");
        let by = |definition: Option<&str>, status: Option<InstanceStatus>| InstanceFilter {
            definition: definition.map(str::to_string),
            status,
            ..InstanceFilter::default()
        };
        assert_eq!(
            indexes(&part, &by(Some("w"), None)),
            vec![part.index_definition("w"), pending.clone()]
        );
        assert_eq!(
            indexes(&part, &by(Some("w"), Some(InstanceStatus::Completed))),
            vec![part.index_definition("w")]
        );
        assert_eq!(
            indexes(&part, &by(Some("w"), Some(InstanceStatus::Pending))),
            vec![pending.clone()]
        );
        assert_eq!(
            indexes(&part, &by(None, Some(InstanceStatus::Failed))),
            vec![part.index_status("failed")]
        );
        let all = indexes(&part, &by(None, None));
        assert_eq!(all.len(), InstanceStatus::ALL.len());
        assert!(all.contains(&pending));
    }

    #[test]
    fn cursor_order_is_time_then_id() {
        let a = Cursor {
            created_ms: 1,
            id: "b".into(),
        };
        let b = Cursor {
            created_ms: 2,
            id: "a".into(),
        };
        assert!(a < b);
    }
}

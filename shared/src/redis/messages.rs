//! Correlated messages on the Redis engine: the correlation store, `send_message`,
//! `list_messages`, and the hops between partitions (ARCHITECTURE.md, "Messages across
//! partitions").
//!
//! **Where things live.** A message (tenant, name, key) belongs to its *correlation
//! partition*, `partition_of(route)` (see [`route_of`]), whose keys carry that partition's
//! hash tag: the route's waiters (a sorted set by the time each wait began, oldest first),
//! its kept messages (a sorted set by the time sent, with their bodies in a hash and an
//! expiry index), and a *seen* key per (route, message id) that lives for the message's time
//! to live and says where the message is (`k` kept, `d:WAITER` handed to that waiter, `x`
//! expired). An instance lives in its own partition, usually another one (another master on
//! a cluster): no script touches both (invariant 12).
//!
//! **Hops.** Whatever crosses partitions is written to the deciding partition's *outbox*
//! stream in the same atomic script as the decision, then relayed: at once by whoever wrote
//! it (the sender, the coordinator that committed), and otherwise by the partition's lease
//! holder, which relays entries older than [`LEFTOVER_AGE_MS`] (a writer killed mid-relay
//! loses nothing). Relaying is applying the hop at its target, then deleting the outbox
//! entry; a relay may therefore be applied twice, and every hop is idempotent at its target:
//! - **deliver** (correlation partition -> instance partition): a [`Command::Deliver`] on
//!   the instance partition's command stream. Its coordinator applies it once per message id
//!   and instance (the `signal:ID` field, as for signals), and only while the waiter's step
//!   still waits under the token named in the waiter; otherwise it refuses the message and,
//!   in the same commit, writes a **return** hop.
//! - **subscribe** / **unsubscribe** (instance partition -> correlation partition), written
//!   by `commit.lua` when an event step with a `correlation` begins or ends its wait. The
//!   waiter is `TOKEN|STEP|INSTANCE`: a replayed unsubscribe never removes a later wait
//!   (another token), and a replayed subscribe of a wait that ended can register a *ghost*
//!   waiter. A ghost is harmless: a message handed to it is refused by the instance (no
//!   step waits under that token) and returned, so nothing is lost, only delayed by a
//!   round trip.
//! - **return** (instance partition -> correlation partition): taken back only while the
//!   seen key says the message was handed to that very waiter, then given to the next
//!   waiter or kept (first in line: kept messages are ordered by the time sent), unless it
//!   expired meanwhile (dropped and counted). A replayed return does nothing.
//!
//! So a message inside its time to live is never lost, and an instance receives it at most
//! once; and since one waiter is chosen at a time, and the seen key follows the message, no
//! two instances receive it (ARCHITECTURE.md invariant 14).
//!
//! **What `Delivered` means.** `send_message` answers [`Sent::Delivered`] once the message
//! is handed to the oldest waiter's partition (stored in the outbox in the same script that
//! chose the waiter): that partition's coordinator applies it. If the instance stopped
//! waiting in that instant (a timeout, a cancel), it refuses and the message goes to the
//! next waiter or is kept, as if sent a moment later.
//!
//! **Message ids** are idempotency keys per (tenant, name, key): the same id sent again on
//! the same route within its time to live is a duplicate. (The LocalEngine remembers ids per
//! tenant alone; on Redis the id lives on the route's partition, so the same id on another
//! route is another message.)

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::streams::StreamRangeReply;

use super::batch::Batch;
use super::connect::Connections;
use super::durability;
use super::keys::PartitionKeys;
use super::scripts;
use super::wire::{self, Command, CommandMessage, MessageBody, MessageRoute};
use super::RedisError;
use crate::model::{KeptMessage, MessageFilter};
use crate::time::Timestamp;

/// The lease holder relays outbox entries older than this (ms); younger ones are being
/// relayed by their writer.
pub const LEFTOVER_AGE_MS: i64 = 1_000;

/// At most this many outbox entries are relayed per call.
pub const RELAY_BATCH: usize = 512;

/// At most this many kept messages are listed per partition.
pub const LIST_LIMIT: usize = 10_000;

/// The counter fields of `…:stats` for messages.
pub mod counter {
    /// Messages (and signals) an instance received.
    pub const DELIVERED: &str = "msg_delivered";
    /// Messages kept because no instance waited.
    pub const KEPT: &str = "msg_kept";
    /// Kept messages dropped when their time to live ran out.
    pub const EXPIRED: &str = "msg_expired";
    /// Sends refused as duplicates.
    pub const DUPLICATES: &str = "msg_duplicates";
}

/// The route of a message: `-|NAME|KEY` without a tenant, `tLEN:TENANT|NAME|KEY` with one
/// (the length makes it unambiguous whatever the tenant holds; names have no `|`).
pub fn route_of(tenant: Option<&str>, name: &str, key: &str) -> String {
    match tenant {
        None => format!("-|{name}|{key}"),
        Some(t) => format!("t{}:{t}|{name}|{key}", t.len()),
    }
}

/// The field of a message in its partition's kept bodies and expiry index: `ROUTE\nID`
/// (ids have no control characters, so the last newline splits it).
pub fn field_of(route: &str, id: &str) -> String {
    format!("{route}\n{id}")
}

/// A waiter: an event step of an instance waiting under a token (`TOKEN|STEP|INSTANCE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    /// The token of the wait (the step's activation).
    pub token: u64,
    /// The step.
    pub step: String,
    /// The instance.
    pub instance: String,
}

impl Waiter {
    /// The member in a route's waiters.
    pub fn encode(&self) -> String {
        format!("{}|{}|{}", self.token, self.step, self.instance)
    }

    /// Reads a member; `None` when it is not one.
    pub fn parse(member: &str) -> Option<Waiter> {
        let mut parts = member.splitn(3, '|');
        let token = parts.next()?.parse().ok()?;
        let step = parts.next()?.to_string();
        let instance = parts.next()?.to_string();
        Some(Waiter {
            token,
            step,
            instance,
        })
    }
}

/// What became of a sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Handed to the oldest waiter's partition (see the module doc).
    Delivered {
        /// The instance.
        instance: String,
    },
    /// Kept for an instance that waits later.
    Kept,
    /// The id was sent on this route within its time to live: nothing done.
    Duplicate,
}

fn redis_err(c: &Connections, e: redis::RedisError) -> RedisError {
    RedisError::from_redis(&c.display_url, e)
}

/// The keys of a route's correlation partition.
fn correlation_part(c: &Connections, route: &str) -> PartitionKeys {
    c.keys.part(c.keys.correlation_partition(route))
}

/// Sends a message (checked by the caller) with time to live `ttl`: one script call on its
/// correlation partition, then, when a waiter was chosen, the relay of the deliver hop.
pub async fn send(c: &Connections, body: &MessageBody, ttl: Duration) -> Result<Sent, RedisError> {
    let route = route_of(body.tenant_id.as_deref(), &body.name, &body.key);
    let part = correlation_part(c, &route);
    let field = field_of(&route, &body.id);
    let bytes = wire::encode(body);
    let ttl_ms = ttl.as_millis().clamp(1, i64::MAX as u128) as i64;
    let mut inv = scripts::SEND_MESSAGE.prepare_invoke();
    inv.key(part.seen(&field))
        .key(part.waiters(&route))
        .key(part.kept(&route))
        .key(part.kept_bodies())
        .key(part.kept_expiry())
        .key(part.stats())
        .key(part.outbox())
        .arg(&field)
        .arg(ttl_ms)
        .arg(&bytes);
    let (answer, replicas): (Vec<redis::Value>, _) =
        durability::invoke(c.durability, &mut c.conn.clone(), &inv)
            .await
            .map_err(|e| redis_err(c, e))?;
    let text = |i: usize| -> Option<String> {
        answer
            .get(i)
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
    };
    let unexpected = |what: &str| {
        RedisError::unexpected(
            &c.display_url,
            format!("send_message.lua answered {what}: {answer:?}"),
        )
    };
    let sent = match text(0).as_deref() {
        Some("dup") => return Ok(Sent::Duplicate),
        Some("kept") => Sent::Kept,
        Some("delivered") => {
            let (Some(member), Some(entry)) = (text(2), text(3)) else {
                return Err(unexpected("a delivery without its waiter"));
            };
            let now: i64 = answer
                .get(1)
                .and_then(|v| redis::from_redis_value_ref(v).ok())
                .unwrap_or(0);
            let Some(waiter) = Waiter::parse(&member) else {
                return Err(unexpected("a waiter that does not parse"));
            };
            durability::require_replica(replicas, &part.outbox(), &c.display_url)?;
            let hop = Deliver {
                waiter,
                body: body.clone(),
                sent_ms: now,
                expires_ms: now.saturating_add(ttl_ms),
            };
            // Stored in the outbox: the lease holder relays it if this relay fails.
            if let Err(e) = relay_delivers(c, &part, vec![(entry, hop.clone())]).await {
                tracing::warn!(error = %e, "a message's delivery is left for the lease holder to relay");
            }
            return Ok(Sent::Delivered {
                instance: hop.waiter.instance,
            });
        }
        _ => return Err(unexpected("something else")),
    };
    durability::require_replica(replicas, &part.kept_bodies(), &c.display_url)?;
    Ok(sent)
}

/// Kept, unexpired messages passing `filter`, oldest first (at most [`LIST_LIMIT`] per
/// partition).
pub async fn list(c: &Connections, filter: &MessageFilter) -> Result<Vec<KeptMessage>, RedisError> {
    let now = c.server_time().await?;
    let parts: Vec<PartitionKeys> = c.keys.all_parts().collect();
    let mut pipe = redis::pipe();
    for part in &parts {
        pipe.cmd("ZRANGE")
            .arg(part.kept_expiry())
            .arg(format!("({now}"))
            .arg("+inf")
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(LIST_LIMIT)
            .arg("WITHSCORES");
    }
    let expiring: Vec<Vec<(String, i64)>> = pipe
        .query_async(&mut c.conn.clone())
        .await
        .map_err(|e| redis_err(c, e))?;
    let mut pipe = redis::pipe();
    let mut asked = Vec::new();
    for (part, fields) in parts.iter().zip(&expiring) {
        for (field, expires) in fields {
            let Some((route, _)) = field.rsplit_once('\n') else {
                continue;
            };
            pipe.cmd("HGET").arg(part.kept_bodies()).arg(field);
            pipe.cmd("ZSCORE").arg(part.kept(route)).arg(field);
            asked.push(*expires);
        }
    }
    if asked.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<redis::Value> = pipe
        .query_async(&mut c.conn.clone())
        .await
        .map_err(|e| redis_err(c, e))?;
    let mut out = Vec::new();
    for (pair, expires) in values.chunks(2).zip(asked) {
        let [body, sent] = pair else { continue };
        let Ok(Some(bytes)) = redis::from_redis_value_ref::<Option<Vec<u8>>>(body) else {
            continue;
        };
        let Ok(Some(sent)) = redis::from_redis_value_ref::<Option<f64>>(sent) else {
            continue;
        };
        let Ok(body) = wire::decode::<MessageBody>(&bytes) else {
            tracing::warn!("a kept message does not decode; not listed");
            continue;
        };
        let kept = KeptMessage {
            id: body.id,
            name: body.name,
            key: body.key,
            data: body.data,
            tenant_id: body.tenant_id,
            sent_at: Timestamp(sent as i64),
            expires_at: Timestamp(expires),
        };
        if filter.matches(&kept) {
            out.push(kept);
        }
    }
    out.sort_by(|a, b| a.sent_at.cmp(&b.sent_at).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// Writes, into a commit of the instance partition `part`, the hop that subscribes `waiter`
/// to `route` (its wait began at `since_ms`).
pub fn write_subscribe(
    b: &mut Batch,
    part: &PartitionKeys,
    route: &MessageRoute,
    waiter: &Waiter,
    since_ms: i64,
) {
    let w = waiter.encode();
    let m = wire::encode(route);
    let s = since_ms.to_string();
    b.xadd_fields(
        &part.outbox(),
        0,
        &[
            ("k", b"sub"),
            ("w", w.as_bytes()),
            ("m", &m),
            ("s", s.as_bytes()),
        ],
    );
}

/// Writes, into a commit of the instance partition `part`, the hop that removes `waiter`
/// from `route`'s waiters.
pub fn write_unsubscribe(
    b: &mut Batch,
    part: &PartitionKeys,
    route: &MessageRoute,
    waiter: &Waiter,
) {
    let w = waiter.encode();
    let m = wire::encode(route);
    b.xadd_fields(
        &part.outbox(),
        0,
        &[("k", b"unsub"), ("w", w.as_bytes()), ("m", &m)],
    );
}

/// Writes, into a commit of the instance partition `part`, the hop that returns a message
/// `waiter` refused to its correlation partition.
pub fn write_return(
    b: &mut Batch,
    part: &PartitionKeys,
    body: &MessageBody,
    waiter: &str,
    sent_ms: i64,
    expires_ms: i64,
) {
    let m = wire::encode(body);
    let s = sent_ms.to_string();
    let x = expires_ms.to_string();
    b.xadd_fields(
        &part.outbox(),
        0,
        &[
            ("k", b"ret"),
            ("w", waiter.as_bytes()),
            ("m", &m),
            ("s", s.as_bytes()),
            ("x", x.as_bytes()),
        ],
    );
}

/// Counts a message received by an instance of `part` (in its commit).
pub fn count_delivered(b: &mut Batch, part: &PartitionKeys) {
    b.hincr(&part.stats(), counter::DELIVERED, 1);
}

/// A message handed to a waiter, on its way to the waiter's partition.
#[derive(Debug, Clone)]
pub struct Deliver {
    /// The waiter chosen.
    pub waiter: Waiter,
    /// The message.
    pub body: MessageBody,
    /// When it was sent (ms).
    pub sent_ms: i64,
    /// When it expires (ms).
    pub expires_ms: i64,
}

/// One outbox entry.
#[derive(Debug, Clone)]
pub enum Hop {
    /// A message handed to a waiter.
    Deliver(Deliver),
    /// A waiter joins a route.
    Subscribe {
        /// The route.
        route: MessageRoute,
        /// The waiter (encoded).
        waiter: String,
        /// When its wait began (ms).
        since_ms: i64,
    },
    /// A waiter leaves a route.
    Unsubscribe {
        /// The route.
        route: MessageRoute,
        /// The waiter (encoded).
        waiter: String,
    },
    /// A message its waiter refused.
    Return {
        /// The message.
        body: MessageBody,
        /// The waiter that refused it (encoded).
        waiter: String,
        /// When it was sent (ms).
        sent_ms: i64,
        /// When it expires (ms).
        expires_ms: i64,
    },
    /// An entry that cannot be read (dropped with a warning).
    Broken(String),
}

fn decode_hop(entry: &redis::streams::StreamId) -> Hop {
    let text = |k: &str| entry.get::<String>(k);
    let num = |k: &str| text(k).and_then(|v| v.parse::<i64>().ok());
    let bytes: Option<Vec<u8>> = entry.get("m");
    let (Some(kind), Some(waiter), Some(bytes)) = (text("k"), text("w"), bytes) else {
        return Hop::Broken("an outbox entry without its fields".into());
    };
    let body = || wire::decode::<MessageBody>(&bytes).map_err(|e| e.to_string());
    let route = || wire::decode::<MessageRoute>(&bytes).map_err(|e| e.to_string());
    let read = || -> Result<Hop, String> {
        Ok(match kind.as_str() {
            "deliver" => Hop::Deliver(Deliver {
                waiter: Waiter::parse(&waiter).ok_or("a waiter that does not parse")?,
                body: body()?,
                sent_ms: num("s").unwrap_or(0),
                expires_ms: num("x").unwrap_or(0),
            }),
            "sub" => Hop::Subscribe {
                route: route()?,
                waiter,
                since_ms: num("s").unwrap_or(0),
            },
            "unsub" => Hop::Unsubscribe {
                route: route()?,
                waiter,
            },
            "ret" => Hop::Return {
                body: body()?,
                waiter,
                sent_ms: num("s").unwrap_or(0),
                expires_ms: num("x").unwrap_or(0),
            },
            other => return Err(format!("an outbox entry of unknown kind {other:?}")),
        })
    };
    read().unwrap_or_else(Hop::Broken)
}

/// Reads up to `count` entries of `part`'s outbox, oldest first: all of them, or only
/// those written at or before `until_ms` (Redis clock).
pub async fn read_outbox<C: ConnectionLike>(
    conn: &mut C,
    part: &PartitionKeys,
    until_ms: Option<i64>,
    count: usize,
) -> Result<Vec<(String, Hop)>, redis::RedisError> {
    let end = until_ms.map_or_else(|| "+".to_string(), |ms| ms.max(0).to_string());
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(part.outbox())
        .arg("-")
        .arg(end)
        .arg("COUNT")
        .arg(count.max(1))
        .query_async(conn)
        .await?;
    Ok(reply
        .ids
        .iter()
        .map(|e| (e.id.clone(), decode_hop(e)))
        .collect())
}

/// What a relay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// Outbox entries relayed (and deleted).
    pub hops: usize,
    /// Outbox entries left for a later relay (their target failed).
    pub left: usize,
}

/// Relays `hops` read from `source`'s outbox: applies each at its target, then deletes
/// the entries applied. A subscription or return that hands a message on relays that
/// deliver hop too. Idempotent (see the module doc): a hop relayed twice changes nothing
/// more.
pub async fn relay(
    c: &Connections,
    source: &PartitionKeys,
    hops: Vec<(String, Hop)>,
) -> Result<Relayed, RedisError> {
    // A subscription and its unsubscription in the same relay cancel out (a ghost waiter
    // would be the only trace of applying both, in whatever order they reach the target).
    let mut gone: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (_, hop) in &hops {
        if let Hop::Unsubscribe { waiter, .. } = hop {
            gone.insert(waiter.clone());
        }
    }
    let mut delivers = Vec::new();
    let mut targets = Vec::new();
    let mut done: Vec<String> = Vec::new();
    for (id, hop) in hops {
        match hop {
            Hop::Deliver(d) => delivers.push((id, d)),
            Hop::Subscribe { waiter, .. } if gone.contains(&waiter) => done.push(id),
            Hop::Broken(why) => {
                tracing::warn!(partition = source.partition, entry = %id, %why, "dropping an unreadable outbox entry");
                done.push(id);
            }
            other => targets.push((id, other)),
        }
    }
    let mut relayed = Relayed::default();
    if !delivers.is_empty() {
        let r = relay_delivers(c, source, delivers).await?;
        relayed.hops += r.hops;
        relayed.left += r.left;
    }
    let applied = futures_util::future::join_all(
        targets
            .into_iter()
            .map(|(id, hop)| async move { (id, apply_hop(c, hop).await) }),
    )
    .await;
    let mut follow: Vec<(PartitionKeys, String, Deliver)> = Vec::new();
    let mut written: Vec<String> = Vec::new();
    for (id, result) in applied {
        match result {
            Ok((target, next)) => {
                done.push(id);
                written.push(target);
                follow.extend(next);
            }
            Err(e) => {
                tracing::warn!(partition = source.partition, entry = %id, error = %e, "a hop could not be relayed yet");
                relayed.left += 1;
            }
        }
    }
    relayed.hops += done.len();
    // Under replicated durability a hop leaves its outbox only once a replica holds what
    // it wrote at its target (else a failover could lose both).
    confirm(c, &written).await?;
    delete_entries(c, source, &done).await?;
    // The messages those hops handed on, each from its own partition's outbox.
    let mut by_part: Vec<(PartitionKeys, Vec<(String, Deliver)>)> = Vec::new();
    for (part, id, d) in follow {
        match by_part
            .iter_mut()
            .find(|(p, _)| p.partition == part.partition)
        {
            Some((_, v)) => v.push((id, d)),
            None => by_part.push((part, vec![(id, d)])),
        }
    }
    for (part, list) in by_part {
        if let Err(e) = relay_delivers(c, &part, list).await {
            tracing::warn!(partition = part.partition, error = %e, "deliveries left for the lease holder to relay");
        }
    }
    Ok(relayed)
}

/// Applies one hop at its correlation partition; returns a key of that partition (for
/// [`confirm`]) and the deliver hop it wrote there, if any (with that partition and the
/// entry id).
async fn apply_hop(
    c: &Connections,
    hop: Hop,
) -> Result<(String, Option<(PartitionKeys, String, Deliver)>), redis::RedisError> {
    let target = match &hop {
        Hop::Subscribe { route, .. } | Hop::Unsubscribe { route, .. } => {
            route_of(route.tenant_id.as_deref(), &route.name, &route.key)
        }
        Hop::Return { body, .. } => route_of(body.tenant_id.as_deref(), &body.name, &body.key),
        Hop::Deliver(_) | Hop::Broken(_) => String::new(),
    };
    let target = correlation_part(c, &target).outbox();
    Ok((target, apply_hop_at(c, hop).await?))
}

async fn apply_hop_at(
    c: &Connections,
    hop: Hop,
) -> Result<Option<(PartitionKeys, String, Deliver)>, redis::RedisError> {
    let mut conn = c.conn.clone();
    match hop {
        Hop::Subscribe {
            route,
            waiter,
            since_ms,
        } => {
            let r = route_of(route.tenant_id.as_deref(), &route.name, &route.key);
            let part = correlation_part(c, &r);
            let answer: Vec<redis::Value> = scripts::SUBSCRIBE
                .key(part.waiters(&r))
                .key(part.kept(&r))
                .key(part.kept_bodies())
                .key(part.kept_expiry())
                .key(part.stats())
                .key(part.outbox())
                .arg(&waiter)
                .arg(since_ms)
                .arg(part.seen_prefix())
                .invoke_async(&mut conn)
                .await?;
            let text = |i: usize| {
                answer
                    .get(i)
                    .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
            };
            if text(0).as_deref() != Some("delivered") {
                return Ok(None);
            }
            let bytes: Option<Vec<u8>> = answer
                .get(2)
                .and_then(|v| redis::from_redis_value_ref(v).ok());
            let num = |i: usize| text(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) as i64;
            let (Some(entry), Some(bytes), Some(w)) = (text(1), bytes, Waiter::parse(&waiter))
            else {
                return Ok(None);
            };
            let Ok(body) = wire::decode::<MessageBody>(&bytes) else {
                // Left in the outbox: the lease holder's relay drops it with a warning.
                return Ok(None);
            };
            Ok(Some((
                part,
                entry,
                Deliver {
                    waiter: w,
                    body,
                    sent_ms: num(3),
                    expires_ms: num(4),
                },
            )))
        }
        Hop::Unsubscribe { route, waiter } => {
            let r = route_of(route.tenant_id.as_deref(), &route.name, &route.key);
            let part = correlation_part(c, &r);
            let _: i64 = redis::cmd("ZREM")
                .arg(part.waiters(&r))
                .arg(&waiter)
                .query_async(&mut conn)
                .await?;
            Ok(None)
        }
        Hop::Return {
            body,
            waiter,
            sent_ms,
            expires_ms,
        } => {
            let r = route_of(body.tenant_id.as_deref(), &body.name, &body.key);
            let part = correlation_part(c, &r);
            let field = field_of(&r, &body.id);
            let bytes = wire::encode(&body);
            let answer: Vec<String> = scripts::RETURN_MESSAGE
                .key(part.seen(&field))
                .key(part.waiters(&r))
                .key(part.kept(&r))
                .key(part.kept_bodies())
                .key(part.kept_expiry())
                .key(part.stats())
                .key(part.outbox())
                .arg(&waiter)
                .arg(&field)
                .arg(&bytes)
                .arg(sent_ms)
                .arg(expires_ms)
                .invoke_async(&mut conn)
                .await?;
            match answer.as_slice() {
                [kind, entry, next] if kind == "delivered" => {
                    let Some(w) = Waiter::parse(next) else {
                        return Ok(None);
                    };
                    Ok(Some((
                        part,
                        entry.clone(),
                        Deliver {
                            waiter: w,
                            body,
                            sent_ms,
                            expires_ms,
                        },
                    )))
                }
                _ => Ok(None),
            }
        }
        Hop::Deliver(_) | Hop::Broken(_) => Ok(None),
    }
}

/// Relays deliver hops of `source`'s outbox: a Deliver command on each waiter's partition's
/// command stream, then the entries deleted.
async fn relay_delivers(
    c: &Connections,
    source: &PartitionKeys,
    delivers: Vec<(String, Deliver)>,
) -> Result<Relayed, RedisError> {
    let mut pipe = redis::pipe();
    for (_, d) in &delivers {
        let msg = CommandMessage {
            instance_id: d.waiter.instance.clone(),
            reply_to: None,
            command: Command::Deliver {
                message: d.body.clone(),
                waiter: d.waiter.encode(),
                sent_ms: d.sent_ms,
                expires_ms: d.expires_ms,
            },
        };
        pipe.cmd("XADD")
            .arg(c.keys.part_of(&d.waiter.instance).commands())
            .arg("*")
            .arg(wire::FIELD)
            .arg(wire::encode(&msg));
    }
    let targets: Vec<String> = delivers
        .iter()
        .map(|(_, d)| c.keys.part_of(&d.waiter.instance).commands())
        .collect();
    let ids: Vec<String> = delivers.into_iter().map(|(id, _)| id).collect();
    pipe.query_async::<()>(&mut c.conn.clone())
        .await
        .map_err(|e| redis_err(c, e))?;
    confirm(c, &targets).await?;
    delete_entries(c, source, &ids).await?;
    Ok(Relayed {
        hops: ids.len(),
        left: 0,
    })
}

/// Under [`durability::Durability::Replicated`], waits until a replica of each key's
/// master holds what was written there (once per key); at once otherwise.
async fn confirm(c: &Connections, keys: &[String]) -> Result<(), RedisError> {
    if c.durability == durability::Durability::Local {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        if seen.insert(key.as_str()) {
            durability::confirm(c.durability, &mut c.conn.clone(), key, &c.display_url).await?;
        }
    }
    Ok(())
}

/// Deletes relayed entries from `part`'s outbox.
async fn delete_entries(
    c: &Connections,
    part: &PartitionKeys,
    ids: &[String],
) -> Result<(), RedisError> {
    if ids.is_empty() {
        return Ok(());
    }
    redis::cmd("XDEL")
        .arg(part.outbox())
        .arg(ids)
        .query_async::<()>(&mut c.conn.clone())
        .await
        .map_err(|e| redis_err(c, e))
}

/// Relays what `part`'s outbox holds: every entry (`leftovers_only` false: right after a
/// commit that wrote hops) or only those older than [`LEFTOVER_AGE_MS`] by the Redis clock
/// (the lease holder's sweep). Returns what it relayed.
pub async fn relay_outbox(
    c: &Connections,
    part: &PartitionKeys,
    leftovers_only: bool,
) -> Result<Relayed, RedisError> {
    let until = if leftovers_only {
        Some(c.server_time().await? - LEFTOVER_AGE_MS)
    } else {
        None
    };
    let hops = read_outbox(&mut c.conn.clone(), part, until, RELAY_BATCH)
        .await
        .map_err(|e| redis_err(c, e))?;
    if hops.is_empty() {
        return Ok(Relayed::default());
    }
    // Right after a commit, deliveries younger than the leftover age are their writer's
    // (measured against the newest entry, which is no later than now: a delivery left
    // here is relayed by a later sweep).
    let hops = if leftovers_only {
        hops
    } else {
        let newest = hops.iter().map(|(id, _)| entry_ms(id)).max().unwrap_or(0);
        hops.into_iter()
            .filter(|(id, hop)| {
                !matches!(hop, Hop::Deliver(_)) || entry_ms(id) <= newest - LEFTOVER_AGE_MS
            })
            .collect()
    };
    relay(c, part, hops).await
}

/// The time part of a stream entry id (ms).
fn entry_ms(id: &str) -> i64 {
    id.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}

/// Drops the kept messages of `part` whose time to live ran out (at most `limit`), counted
/// as expired. Returns how many.
pub async fn expire(
    c: &Connections,
    part: &PartitionKeys,
    limit: usize,
) -> Result<u64, RedisError> {
    scripts::EXPIRE_MESSAGES
        .key(part.kept_expiry())
        .key(part.kept_bodies())
        .key(part.stats())
        .arg(part.kept_prefix())
        .arg(limit.max(1))
        .invoke_async(&mut c.conn.clone())
        .await
        .map_err(|e| redis_err(c, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_unambiguous_and_waiters_round_trip() {
        assert_ne!(
            route_of(Some("a|b"), "n", "k"),
            route_of(Some("a"), "b", "n|k")
        );
        assert_ne!(route_of(None, "n", "k"), route_of(Some("-"), "n", "k"));
        let w = Waiter {
            token: 7,
            step: "wait_payment".into(),
            instance: "order|42".into(),
        };
        assert_eq!(Waiter::parse(&w.encode()), Some(w));
        assert_eq!(Waiter::parse("x|s|i"), None);
        let field = field_of(&route_of(None, "n", "key\nwith newline"), "id-1");
        assert_eq!(field.rsplit_once('\n').map(|(_, id)| id), Some("id-1"));
        assert_eq!(entry_ms("1700000000123-4"), 1_700_000_000_123);
    }
}

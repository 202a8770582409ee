//! Every Redis key Weir uses, named in one place.
//!
//! Keys of one partition share the hash tag `{NS:pN}`, so every script touches one slot
//! (the layout Redis Cluster needs; reads over several partitions go per slot on a
//! cluster: see [`crate::redis::cluster_reads`]); global keys start with `NS:`. See the
//! module doc of [`crate::redis`] for what each key holds.

/// The number of partitions a namespace gets when it is first used (unless the first
/// process is configured with another count): stored in `NS:meta`, fixed from then on.
/// On a three-master cluster with the usual even slot split, 8 partition tags reached all
/// three masters for each of 2,000 random namespace names (the busiest master holding about
/// 1.5 times the mean share); more masters want more partitions.
pub const DEFAULT_PARTITIONS: u16 = 8;

/// The consumer group of coordinators on the command and result streams. Each coordinator
/// reads as its own consumer, named by its id; the lease holder takes over the entries other
/// consumers left pending (`claim.lua`).
pub const COORDINATOR_GROUP: &str = "coordinators";
/// The consumer group of workers on step streams.
pub const WORKER_GROUP: &str = "workers";

/// Up to how many partitions [`Keys::new_id_in`] draws an id in a given partition (it
/// costs about one hash step per partition).
pub const MAX_STEERED_PARTITIONS: u16 = 256;

/// FNV-1a's 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a (64 bit) over `bytes`, continued from the hash `h`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Key names of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    ns: String,
    partitions: u16,
}

impl Keys {
    /// Keys for namespace `ns` with `partitions` partitions (at least 1).
    pub fn new(ns: &str, partitions: u16) -> Keys {
        Keys {
            ns: ns.to_string(),
            partitions: partitions.max(1),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// How many partitions.
    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    /// The partition of an instance: FNV-1a (64 bit) of the id's bytes, modulo the count.
    pub fn partition_of(&self, instance_id: &str) -> u16 {
        (fnv1a(FNV_OFFSET, instance_id.as_bytes()) % u64::from(self.partitions)) as u16
    }

    /// A new instance id in partition `target`: a UUID v7 (as [`uuid::Uuid::now_v7`] makes
    /// it) whose last two random bytes are changed until the id hashes to `target`.
    ///
    /// A client that generates the ids of a batch of starts draws them in one partition, so
    /// that the batch is one script call instead of one per partition (what each call costs
    /// Redis, beyond its starts, is then paid once). The id keeps its version, its time and
    /// 58 of its 74 random bits. Only the 16 bits are searched, each candidate a two-byte step
    /// of the hash, so it costs about `partitions` hash steps: `None` with more than
    /// [`MAX_STEERED_PARTITIONS`] partitions (or `target` out of range), where the caller
    /// lets ids fall where they hash.
    pub fn new_id_in(&self, target: u16) -> Option<String> {
        if self.partitions > MAX_STEERED_PARTITIONS || target >= self.partitions {
            return None;
        }
        let parts = u64::from(self.partitions);
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        // With 256 partitions or fewer, 65,536 candidates all miss with a probability
        // under e^-256; the loop still gives up rather than spin.
        for _ in 0..4 {
            let mut bytes = *uuid::Uuid::now_v7().as_bytes();
            let hex = uuid::Uuid::from_bytes(bytes)
                .hyphenated()
                .encode_lower(&mut text)
                .len();
            // The last four hex digits are the last two bytes; the prefix is hashed once.
            let prefix = fnv1a(FNV_OFFSET, &text[..hex - 4]);
            let original = u16::from_be_bytes([bytes[14], bytes[15]]);
            for k in 0..=u16::MAX {
                let candidate = original ^ k;
                let mut digits = [0u8; 4];
                for (i, d) in digits.iter_mut().enumerate() {
                    let nibble = (candidate >> (12 - 4 * i)) & 0xf;
                    *d = b"0123456789abcdef"[usize::from(nibble)];
                }
                if fnv1a(prefix, &digits) % parts == u64::from(target) {
                    [bytes[14], bytes[15]] = candidate.to_be_bytes();
                    return Some(uuid::Uuid::from_bytes(bytes).to_string());
                }
            }
        }
        None
    }

    /// `NS:meta`: a hash with `partitions` (fixed when the namespace is first used).
    pub fn meta(&self) -> String {
        format!("{}:meta", self.ns)
    }

    /// `NS:defs`: a hash `name@version` -> definition JSON.
    pub fn definitions(&self) -> String {
        format!("{}:defs", self.ns)
    }

    /// `NS:coordinators`: a sorted set of coordinator ids scored by their last heartbeat (ms).
    pub fn coordinators(&self) -> String {
        format!("{}:coordinators", self.ns)
    }

    /// `NS:workers`: a sorted set of worker ids scored by their last heartbeat (ms).
    pub fn workers(&self) -> String {
        format!("{}:workers", self.ns)
    }

    /// The keys of partition `p`.
    pub fn part(&self, p: u16) -> PartitionKeys {
        PartitionKeys {
            tag: format!("{{{}:p{p}}}", self.ns),
            partition: p,
        }
    }

    /// The correlation partition of messages for (tenant, name, key): FNV-1a (64 bit) of
    /// the route ([`route_of`]), modulo the count. Its waiting list and kept messages live
    /// there ([`PartitionKeys::waiters`], [`PartitionKeys::kept`]).
    pub fn correlation_partition(&self, route: &str) -> u16 {
        self.partition_of(route)
    }

    /// The keys of an instance's partition.
    pub fn part_of(&self, instance_id: &str) -> PartitionKeys {
        self.part(self.partition_of(instance_id))
    }

    /// Every partition's keys.
    pub fn all_parts(&self) -> impl Iterator<Item = PartitionKeys> + '_ {
        (0..self.partitions).map(|p| self.part(p))
    }
}

/// Key names inside one partition; all share its hash tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKeys {
    tag: String,
    /// The partition number.
    pub partition: u16,
}

impl PartitionKeys {
    /// The hash tag, `{NS:pN}`.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// `…:reply:ID`: a list the coordinator pushes a command's outcome to. It lives in the
    /// partition's slot, so the commit that applies the command can write it.
    pub fn reply(&self, request_id: &str) -> String {
        format!("{}:reply:{request_id}", self.tag)
    }

    /// `…:lease`: the id of the coordinator that owns the partition (with a TTL).
    pub fn lease(&self) -> String {
        format!("{}:lease", self.tag)
    }

    /// `…:commands`: stream of client commands (start, complete task, cancel, retry).
    pub fn commands(&self) -> String {
        format!("{}:commands", self.tag)
    }

    /// `…:results`: stream of step results from workers.
    pub fn results(&self) -> String {
        format!("{}:results", self.tag)
    }

    /// `…:q:QUEUE`: stream of step attempts for workers of a queue.
    pub fn queue(&self, queue: &str) -> String {
        format!("{}:q:{queue}", self.tag)
    }

    /// `…:queues`: a set of the queue names used in this partition.
    pub fn queues(&self) -> String {
        format!("{}:queues", self.tag)
    }

    /// `…:timers`: sorted set of timers, member a [`TimerMember`](super::timer::TimerMember)
    /// (`id|step|kind`, parsed from the right: ids may contain `|`), score = due time (ms,
    /// Redis clock).
    pub fn timers(&self) -> String {
        format!("{}:timers", self.tag)
    }

    /// `…:starts:due`: sorted set of delayed starts not due yet, member the instance id,
    /// score its start time (ms, Redis clock); their Start commands go to the command
    /// stream when due (`lua/release_starts.lua`).
    pub fn due_starts(&self) -> String {
        format!("{}:starts:due", self.tag)
    }

    /// `…:sched:h:NAME`: hash of a schedule (its spec as JSON, next slot, pause flag,
    /// counters, last instance). A schedule lives in partition `partition_of(NAME)`.
    pub fn schedule(&self, name: &str) -> String {
        format!("{}:sched:h:{name}", self.tag)
    }

    /// `…:sched:log:NAME`: list of a schedule's last firings (JSON, newest first).
    pub fn schedule_log(&self, name: &str) -> String {
        format!("{}:sched:log:{name}", self.tag)
    }

    /// `…:sched:due`: sorted set of the partition's active schedules by next slot (ms).
    pub fn schedules_due(&self) -> String {
        format!("{}:sched:due", self.tag)
    }

    /// `…:sched:all`: sorted set of the partition's schedule names by creation time (ms).
    pub fn schedules_all(&self) -> String {
        format!("{}:sched:all", self.tag)
    }

    /// `…:events`: capped stream of events (field `e`: the event as JSON).
    pub fn events(&self) -> String {
        format!("{}:events", self.tag)
    }

    /// `…:dlq`: stream of dead letters (field `m`: the message, `source`, `error`, ...).
    pub fn dlq(&self) -> String {
        format!("{}:dlq", self.tag)
    }

    /// `…:tasks`: hash `id|step` -> open task (MessagePack).
    pub fn tasks(&self) -> String {
        format!("{}:tasks", self.tag)
    }

    /// `…:stats`: hash of counters (stale results dropped, dead letters, ...).
    pub fn stats(&self) -> String {
        format!("{}:stats", self.tag)
    }

    /// `…:outbox`: stream of hops to other partitions (a message handed to a waiter, a
    /// subscription, an unsubscription, a message returned by an instance), written in the
    /// same script as the decision and relayed by the writer at once, or by the lease holder
    /// when left over (see [`super::messages`]). Fields: `k` the kind, `w` the waiter, `m`
    /// the message or route (MessagePack), `s` / `x` times (ms).
    pub fn outbox(&self) -> String {
        format!("{}:outbox", self.tag)
    }

    /// `…:m:w:ROUTE`: sorted set of the waiters on a route (member
    /// `TOKEN|STEP|INSTANCE`, score the time the wait began, ms): oldest first.
    pub fn waiters(&self, route: &str) -> String {
        format!("{}:m:w:{route}", self.tag)
    }

    /// `…:m:k:ROUTE`: sorted set of the messages kept for a route (member
    /// `ROUTE\nID`, score the time sent, ms): oldest first.
    pub fn kept(&self, route: &str) -> String {
        format!("{}:m:k:{route}", self.tag)
    }

    /// The prefix of [`Self::kept`] keys (scripts append the route).
    pub fn kept_prefix(&self) -> String {
        self.kept("")
    }

    /// `…:m:msgs`: hash `ROUTE\nID` -> a kept message (MessagePack
    /// [`super::wire::MessageBody`]).
    pub fn kept_bodies(&self) -> String {
        format!("{}:m:msgs", self.tag)
    }

    /// `…:m:exp`: sorted set of kept messages (`ROUTE\nID`) by expiry (ms, Redis clock).
    pub fn kept_expiry(&self) -> String {
        format!("{}:m:exp", self.tag)
    }

    /// `…:m:seen:ROUTE\nID`: a sent message id, alive for the message's time to live (a
    /// send of the same id on the same route meanwhile is a duplicate); its value is where
    /// the message is: `k` kept, `d:WAITER` handed to that waiter, `x` expired.
    pub fn seen(&self, field: &str) -> String {
        format!("{}:m:seen:{field}", self.tag)
    }

    /// The prefix of [`Self::seen`] keys (scripts append the field).
    pub fn seen_prefix(&self) -> String {
        self.seen("")
    }

    /// `…:i:ID`: hash of an instance: `state` (MessagePack), `rev`, `status`, `def`,
    /// `tenant`, `creator`, `created`, `finished`.
    pub fn instance(&self, id: &str) -> String {
        format!("{}:i:{id}", self.tag)
    }

    /// `…:h:ID`: list of the instance's finished attempts (MessagePack each).
    pub fn history(&self, id: &str) -> String {
        format!("{}:h:{id}", self.tag)
    }

    /// `…:x:status:STATUS`: ids by creation time, per status. Each instance is in exactly
    /// one: together they are the index of all instances (there is no other).
    pub fn index_status(&self, status: &str) -> String {
        format!("{}:x:status:{status}", self.tag)
    }

    /// `…:x:def:NAME`: ids by creation time, per definition.
    pub fn index_definition(&self, name: &str) -> String {
        format!("{}:x:def:{name}", self.tag)
    }

    /// `…:x:tenant:T`: ids by creation time, per tenant.
    pub fn index_tenant(&self, tenant: &str) -> String {
        format!("{}:x:tenant:{tenant}", self.tag)
    }

    /// `…:x:creator:U`: ids by creation time, per creator.
    pub fn index_creator(&self, creator: &str) -> String {
        format!("{}:x:creator:{creator}", self.tag)
    }

    /// `…:x:finished`: ids of finished instances by finish time (ms), for retention.
    pub fn index_finished(&self) -> String {
        format!("{}:x:finished", self.tag)
    }

    /// `…:x:tasks`: open tasks, member `id|step`, by creation time (ms).
    pub fn index_tasks(&self) -> String {
        format!("{}:x:tasks", self.tag)
    }

    /// `…:x:tasks:SORT:WHO`: the open tasks of one audience (see
    /// [`super::tasks::Audience`]), member `id|step`, by creation time (`SORT` = `c`) or due
    /// time (`d`, ms; none sorts last). In the partition's slot, like every key of it: an
    /// audience's tasks are spread over the partitions of their instances, and a listing
    /// reads each partition's set and merges them.
    pub fn index_task_audience(&self, sort: char, who: &str) -> String {
        format!("{}:x:tasks:{sort}:{who}", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_share_one_hash_tag() {
        let k = Keys::new("weir", 8);
        let p = k.part_of("order-42");
        for key in [
            p.instance("order-42"),
            p.history("order-42"),
            p.timers(),
            p.queue("default"),
            p.results(),
            p.commands(),
            p.events(),
            p.reply("req-1"),
        ] {
            assert!(
                key.starts_with(&format!("{{weir:p{}}}", p.partition)),
                "{key}"
            );
        }
    }

    #[test]
    fn an_id_drawn_in_a_partition_hashes_to_it_and_stays_a_uuid_v7() {
        for parts in [1u16, 3, 8, 100, 256] {
            let k = Keys::new("weir", parts);
            let mut seen = std::collections::HashSet::new();
            for target in 0..parts.min(20) {
                for _ in 0..20 {
                    let id = k.new_id_in(target).expect("an id in range");
                    assert_eq!(k.partition_of(&id), target, "{id} with {parts} partitions");
                    let u = uuid::Uuid::parse_str(&id).expect("a UUID");
                    assert_eq!(u.get_version_num(), 7, "{id}");
                    assert!(seen.insert(id), "ids are unique");
                }
            }
        }
        assert_eq!(Keys::new("weir", 8).new_id_in(8), None, "out of range");
        assert_eq!(
            Keys::new("weir", MAX_STEERED_PARTITIONS + 1).new_id_in(0),
            None
        );
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        let k = Keys::new("weir", 8);
        assert_eq!(k.partition_of("abc"), k.partition_of("abc"));
        let spread: std::collections::HashSet<u16> = (0..100)
            .map(|i| k.partition_of(&format!("id-{i}")))
            .collect();
        assert!(spread.len() >= 6 && spread.iter().all(|p| *p < 8));
        // FNV-1a of the empty string is the offset basis.
        assert_eq!(
            u64::from(Keys::new("x", 65535).partition_of("")),
            0xcbf2_9ce4_8422_2325 % 65535
        );
    }
}

//! A private Redis Cluster for one test: six real `redis-server` processes (three masters,
//! three replicas) on free loopback ports, joined by `redis-cli --cluster create`.
//!
//! Design notes:
//! - Each node is a [`RedisServer`] (its own port, temporary directory and log, killed on
//!   drop), started with `cluster-enabled yes`, a short `cluster-node-timeout` (so a killed
//!   master's replica is promoted within a few seconds) and no persistence. The cluster bus
//!   port is a second free port (`cluster-port`), not port + 10000, which may not exist.
//! - The node's `nodes.conf` lives in its directory, so [`RedisCluster::restart`] brings a
//!   killed node back into the cluster it knew (as a replica of whoever took its slots).
//! - Waits are bounded: [`READY`] for the cluster to come up, [`FAILOVER`] for a promotion.
//!   Errors quote the nodes' `CLUSTER INFO` or logs so a failing test explains itself.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::redis_server::{free_port, RedisServer};
use crate::wait::wait_until;

/// How long [`RedisCluster::start`] waits for every node to report `cluster_state:ok`.
pub const READY: Duration = Duration::from_secs(30);
/// How long a wait for a replica's promotion (or a node's rejoining) lasts.
pub const FAILOVER: Duration = Duration::from_secs(30);
/// The `cluster-node-timeout` of the nodes, in ms: how long a master may be silent before
/// it is considered failed and its replica promoted.
pub const NODE_TIMEOUT_MS: u64 = 2000;
/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// How many nodes a cluster has: three masters, each with one replica.
const NODES: usize = 6;

/// Settings of a [`RedisCluster`] to start; made by [`RedisCluster::builder`].
#[derive(Debug, Clone, Default)]
pub struct RedisClusterBuilder {
    password: Option<String>,
}

impl RedisClusterBuilder {
    /// Protects every node with a password (`requirepass`; replicas authenticate to their
    /// masters with `masterauth`). [`RedisCluster::urls`] then carry it.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Starts six nodes, joins them into three masters with one replica each, and waits
    /// (up to [`READY`]) until every node reports `cluster_state:ok`, knows all six nodes,
    /// and every replica is in sync with its master.
    pub fn start(self) -> anyhow::Result<RedisCluster> {
        let mut nodes = Vec::with_capacity(NODES);
        for _ in 0..NODES {
            let mut builder = RedisServer::builder()
                .config("cluster-enabled", "yes")
                .config("cluster-node-timeout", NODE_TIMEOUT_MS.to_string())
                .config("cluster-port", free_port()?.to_string())
                // A replica of a killed master takes over even when it lost touch long ago:
                // tests kill masters right after writing.
                .config("cluster-replica-validity-factor", "0")
                .config("appendonly", "no");
            if let Some(password) = &self.password {
                builder = builder
                    .password(password.clone())
                    .config("masterauth", password.clone());
            }
            nodes.push(builder.start()?);
        }
        let cluster = RedisCluster {
            nodes,
            password: self.password,
        };
        cluster.create()?;
        cluster.wait_healthy(READY)?;
        Ok(cluster)
    }
}

/// Six `redis-server` processes forming one Redis Cluster (three masters, three replicas),
/// owned by one test. Dropping it kills every node.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    password: Option<String>,
}

impl RedisCluster {
    /// Starts a cluster with the default settings (no password); same as
    /// `RedisCluster::builder().start()`.
    pub fn start() -> anyhow::Result<RedisCluster> {
        Self::builder().start()
    }

    /// Settings for a cluster to start.
    pub fn builder() -> RedisClusterBuilder {
        RedisClusterBuilder::default()
    }

    /// How many nodes (6).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i` (0..6), to kill, restart or connect to directly.
    pub fn node(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// The URL of node `i`, with the password if any.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// The URLs of every node, comma-separated: the seed list Weir's `--redis` takes.
    pub fn urls(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A redis-rs cluster client over every node (connects lazily).
    pub fn client(&self) -> anyhow::Result<redis::cluster::ClusterClient> {
        redis::cluster::ClusterClient::new(
            (0..self.nodes.len())
                .map(|i| self.url(i))
                .collect::<Vec<String>>(),
        )
        .context("building a cluster client")
    }

    /// Kills node `i` with SIGKILL, as a crash would.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].kill()
    }

    /// Brings node `i` back on its port with its `nodes.conf`, and waits (up to
    /// [`FAILOVER`]) until the cluster is whole again.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].restart()?;
        self.wait_healthy(FAILOVER)
    }

    /// The index of the node that serves `slot` as master, as the live nodes see it (the
    /// answer of the first live node that has one).
    pub fn master_of_slot(&mut self, slot: u16) -> anyhow::Result<usize> {
        let mut last = anyhow!("no node is running");
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_running() {
                continue;
            }
            match self.query_slot_master(i, slot) {
                Ok(port) => return self.index_of_port(port),
                Err(e) => last = e,
            }
        }
        Err(last.context(format!("finding the master of slot {slot}")))
    }

    /// The slot of a key (`CLUSTER KEYSLOT`), asked of a live node.
    pub fn slot_of(&mut self, key: &str) -> anyhow::Result<u16> {
        let i = self.live_node()?;
        Ok(redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.nodes[i].connection()?)?)
    }

    /// Kills the master of `slot` with SIGKILL and waits (up to [`FAILOVER`]) until a
    /// replica has been promoted in its place and every live node reports
    /// `cluster_state:ok`. Returns the index of the killed node and that of the new master.
    pub fn kill_master_of_slot(&mut self, slot: u16) -> anyhow::Result<(usize, usize)> {
        let old = self.master_of_slot(slot)?;
        self.kill(old)?;
        let mut promoted = None;
        let what = format!("a replica promoted for slot {slot} after node {old} was killed");
        wait_until(FAILOVER, &what, || {
            promoted = self.master_of_slot(slot).ok().filter(|m| *m != old);
            promoted.is_some() && self.live_nodes_ok()
        })
        .map_err(|e| anyhow!("{e}\n{}", self.describe()))?;
        Ok((old, promoted.unwrap_or(old)))
    }

    /// Moves `slot`, with every key in it, from its master to master node `to`, as
    /// `redis-cli --cluster reshard` does: `SETSLOT IMPORTING` on the target, `MIGRATING`
    /// on the source, `MIGRATE` of the keys, then `SETSLOT NODE` everywhere.
    pub fn migrate_slot(&mut self, slot: u16, to: usize) -> anyhow::Result<()> {
        let from = self.master_of_slot(slot)?;
        if from == to {
            return Ok(());
        }
        self.begin_slot_migration(slot, to)?;
        self.finish_slot_migration(slot, to)
    }

    /// The first half of [`Self::migrate_slot`]: marks `slot` as importing on node `to` and
    /// migrating on its master, so clients get `ASK` redirections for keys already moved.
    pub fn begin_slot_migration(&mut self, slot: u16, to: usize) -> anyhow::Result<()> {
        let from = self.master_of_slot(slot)?;
        let (from_id, to_id) = (self.node_id(from)?, self.node_id(to)?);
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("IMPORTING")
            .arg(&from_id)
            .query(&mut self.nodes[to].connection()?)
            .context("CLUSTER SETSLOT IMPORTING on the target")?;
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("MIGRATING")
            .arg(&to_id)
            .query(&mut self.nodes[from].connection()?)
            .context("CLUSTER SETSLOT MIGRATING on the source")?;
        Ok(())
    }

    /// The second half of [`Self::migrate_slot`]: moves the keys of `slot` still on its
    /// source (which [`Self::begin_slot_migration`] marked) to node `to`, then assigns the
    /// slot to `to` on every master.
    pub fn finish_slot_migration(&mut self, slot: u16, to: usize) -> anyhow::Result<()> {
        let from = self.migrating_source(slot)?;
        let to_id = self.node_id(to)?;
        let to_port = self.nodes[to].port();
        while self.move_slot_keys(slot, to, 100)? > 0 {}
        // The target first, then the source, then the others (as redis-cli does), so the
        // slot never has no owner.
        let mut order = vec![to, from];
        order.extend((0..self.nodes.len()).filter(|i| *i != to && *i != from));
        for i in order {
            if !self.nodes[i].is_running() || !self.is_master(i)? {
                continue;
            }
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&to_id)
                .query(&mut self.nodes[i].connection()?)
                .with_context(|| format!("CLUSTER SETSLOT NODE on node {i}"))?;
        }
        let what = format!("every live node sees slot {slot} on node {to}");
        wait_until(FAILOVER, &what, || {
            (0..self.nodes.len()).all(|i| {
                !self.nodes[i].is_running()
                    || self
                        .query_slot_master(i, slot)
                        .is_ok_and(|port| port == to_port)
            })
        })
    }

    /// Moves up to `limit` of the keys of `slot` that are still on its source to node `to`
    /// (`MIGRATE`), leaving the slot migrating: clients get `ASK` for the keys moved, and
    /// `TRYAGAIN` for a command over keys on both sides, until
    /// [`Self::finish_slot_migration`]. Call [`Self::begin_slot_migration`] first. Returns
    /// how many keys moved (0 once none is left on the source).
    pub fn move_slot_keys(&mut self, slot: u16, to: usize, limit: usize) -> anyhow::Result<usize> {
        let from = self.migrating_source(slot)?;
        let to_port = self.nodes[to].port();
        let mut source = self.nodes[from].connection()?;
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(limit.max(1))
            .query(&mut source)?;
        if keys.is_empty() {
            return Ok(0);
        }
        let mut migrate = redis::cmd("MIGRATE");
        migrate
            .arg("127.0.0.1")
            .arg(to_port)
            .arg("")
            .arg(0)
            .arg(5000);
        if let Some(password) = &self.password {
            migrate.arg("AUTH").arg(password);
        }
        migrate.arg("KEYS").arg(&keys);
        // `OK`, or `NOKEY` when every key given was deleted in the meantime.
        let _: redis::Value = migrate
            .query(&mut source)
            .with_context(|| format!("MIGRATE of {} keys of slot {slot}", keys.len()))?;
        Ok(keys.len())
    }

    /// How many keys `slot` holds on its master (`CLUSTER COUNTKEYSINSLOT`).
    pub fn keys_in_slot(&mut self, slot: u16) -> anyhow::Result<u64> {
        let master = self.master_of_slot(slot)?;
        Ok(redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(slot)
            .query(&mut self.nodes[master].connection()?)?)
    }

    /// How many error replies of `kind` (`MOVED`, `ASK`, `TRYAGAIN`, ...) the live nodes
    /// have sent since they started (`INFO errorstats`, summed): how a test checks that its
    /// clients met a redirection.
    pub fn error_replies(&mut self, kind: &str) -> anyhow::Result<u64> {
        let prefix = format!("errorstat_{kind}:count=");
        let mut total = 0;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_running() {
                continue;
            }
            let stats: String = redis::cmd("INFO")
                .arg("errorstats")
                .query(&mut self.nodes[i].connection()?)
                .with_context(|| format!("INFO errorstats of node {i}"))?;
            for line in stats.lines() {
                if let Some(count) = line.strip_prefix(&prefix) {
                    total += count
                        .trim()
                        .parse::<u64>()
                        .with_context(|| format!("node {i}'s {line:?}"))?;
                }
            }
        }
        Ok(total)
    }

    /// The nodes that serve slots as masters now (in node order), as the live nodes see it.
    pub fn masters(&mut self) -> anyhow::Result<Vec<usize>> {
        let mut masters = Vec::new();
        for slot in (0..SLOTS).step_by(512) {
            let m = self.master_of_slot(slot)?;
            if !masters.contains(&m) {
                masters.push(m);
            }
        }
        masters.sort_unstable();
        Ok(masters)
    }

    /// Whether every live node reports `cluster_state:ok`.
    pub fn live_nodes_ok(&mut self) -> bool {
        (0..self.nodes.len()).all(|i| {
            !self.nodes[i].is_running()
                || self
                    .cluster_info(i)
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
        })
    }

    /// `redis-cli --cluster create` over the six nodes, with one replica per master.
    fn create(&self) -> anyhow::Result<()> {
        let mut cli = Command::new("redis-cli");
        if let Some(password) = &self.password {
            cli.arg("-a").arg(password).arg("--no-auth-warning");
        }
        cli.arg("--cluster").arg("create");
        for node in &self.nodes {
            cli.arg(format!("127.0.0.1:{}", node.port()));
        }
        cli.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = cli
            .stdin(Stdio::null())
            .output()
            .context("running redis-cli --cluster create (is redis-cli installed? apt-get install redis-tools)")?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Waits until every live node reports `cluster_state:ok` and knows every node, and
    /// every live replica's link to its master is up.
    fn wait_healthy(&self, deadline: Duration) -> anyhow::Result<()> {
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        wait_until(deadline, "every cluster node is ok and in sync", || {
            self.nodes.iter().all(|node| {
                let Ok(mut con) = node.connection() else {
                    // A killed node does not answer; it is not waited for.
                    return true;
                };
                let info: String = match redis::cmd("CLUSTER").arg("INFO").query(&mut con) {
                    Ok(info) => info,
                    Err(_) => return false,
                };
                if !(info.contains("cluster_state:ok") && info.contains(&known)) {
                    return false;
                }
                let replication: String =
                    match redis::cmd("INFO").arg("replication").query(&mut con) {
                        Ok(r) => r,
                        Err(_) => return false,
                    };
                !replication.contains("role:slave") || replication.contains("master_link_status:up")
            })
        })
        .map_err(|e| anyhow!("{e}\n{}", self.describe()))
    }

    /// `CLUSTER INFO` and the last log lines of every node, for error messages.
    fn describe(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let info = node
                .connection()
                .and_then(|mut c| Ok(redis::cmd("CLUSTER").arg("NODES").query::<String>(&mut c)?))
                .unwrap_or_else(|e| format!("(no answer: {e})"));
            out.push_str(&format!(
                "--- node {i} (port {}) CLUSTER NODES:\n{info}\n--- its log:\n{}\n",
                node.port(),
                node.log_tail(8)
            ));
        }
        out
    }

    fn cluster_info(&self, i: usize) -> anyhow::Result<String> {
        Ok(redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut self.nodes[i].connection()?)?)
    }

    /// The port of the master of `slot` in node `i`'s view (`CLUSTER SLOTS`).
    fn query_slot_master(&self, i: usize, slot: u16) -> anyhow::Result<u16> {
        // Each entry: [start, end, [host, port, id, ...] (the master), replicas...].
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut self.nodes[i].connection()?)?;
        for entry in slots {
            let redis::Value::Array(parts) = entry else {
                continue;
            };
            let int = |v: Option<&redis::Value>| match v {
                Some(redis::Value::Int(n)) => Some(*n),
                _ => None,
            };
            let (Some(start), Some(end)) = (int(parts.first()), int(parts.get(1))) else {
                continue;
            };
            if !(start..=end).contains(&i64::from(slot)) {
                continue;
            }
            if let Some(redis::Value::Array(master)) = parts.get(2) {
                if let Some(port) = int(master.get(1)) {
                    return u16::try_from(port).context("a port out of range in CLUSTER SLOTS");
                }
            }
        }
        bail!("node {i} knows no master for slot {slot}")
    }

    fn index_of_port(&self, port: u16) -> anyhow::Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .ok_or_else(|| anyhow!("port {port} is not a node of this cluster"))
    }

    fn live_node(&mut self) -> anyhow::Result<usize> {
        (0..self.nodes.len())
            .find(|i| self.nodes[*i].is_running())
            .ok_or_else(|| anyhow!("no node of the cluster is running"))
    }

    /// Node `i`'s cluster id (`CLUSTER MYID`).
    fn node_id(&self, i: usize) -> anyhow::Result<String> {
        Ok(redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.nodes[i].connection()?)?)
    }

    fn is_master(&self, i: usize) -> anyhow::Result<bool> {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.nodes[i].connection()?)?;
        Ok(info.contains("role:master"))
    }

    /// The node that has `slot` marked as migrating (`[slot->-id]` in `CLUSTER NODES`).
    fn migrating_source(&mut self, slot: u16) -> anyhow::Result<usize> {
        let marker = format!("[{slot}->-");
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_running() {
                continue;
            }
            let nodes: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut self.nodes[i].connection()?)?;
            if nodes
                .lines()
                .any(|line| line.contains("myself") && line.contains(&marker))
            {
                return Ok(i);
            }
        }
        bail!("no node has slot {slot} migrating: call begin_slot_migration first")
    }
}

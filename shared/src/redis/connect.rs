//! Connections to Redis: one multiplexed, self-reconnecting connection for ordinary
//! commands, and connections without a response timeout for blocking reads, to one
//! server, a Redis Cluster, or a Sentinel-watched primary (see [`super::topology`] for the
//! URL forms).
//!
//! redis-rs times async requests out after 500 ms by default; a blocking `XREADGROUP …
//! BLOCK` or `BLPOP` on such a connection fails, and any command sharing its socket waits
//! behind it. So blocking commands get connections of their own, pooled on every topology
//! (deadpool-redis on one server; a pool of cluster or primary connections, which follow
//! `MOVED`/`ASK` or a failover like the shared one, on a cluster or with Sentinel). A
//! loop that blocks all its life (a coordinator's partition reader) takes a
//! [`Connections::dedicated`] one instead.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::{AsyncConnectionConfig, IntoConnectionInfo};

use super::cluster_healing::HealingCluster;
use super::cluster_reads::ClusterReader;
use super::connection::{RedisConnection, SentinelConnection};
use super::durability::Durability;
use super::keys::{Keys, DEFAULT_PARTITIONS};
use super::sentinel::SentinelTarget;
use super::topology::{RedisMode, Topology};
use super::RedisError;

/// How long connecting to one server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://…` for TLS; several
    /// comma-separated seed URLs of one Redis Cluster; or
    /// `redis+sentinel://[user:password@]host:port[,host:port…]/MASTER_NAME` (see
    /// [`super::topology`]).
    pub url: String,
    /// The key prefix; several environments can share one Redis.
    pub namespace: String,
    /// The response timeout of ordinary commands.
    pub response_timeout: Duration,
    /// At most this many blocking connections (one per blocking reader).
    pub blocking_pool_size: usize,
    /// Certificates for a `rediss://` URL, when the system's roots do not do.
    pub tls: TlsFiles,
    /// One server or a cluster: detected by default.
    pub mode: RedisMode,
    /// The partition count this process expects. `None` takes what the namespace has
    /// (or gives a new namespace [`DEFAULT_PARTITIONS`]); `Some(n)` gives a new namespace
    /// `n` and refuses to connect to one that has another count.
    pub partitions: Option<u16>,
    /// When a write is acknowledged: on the master (default), or once a replica has it
    /// too (see [`super::durability`]).
    pub durability: Durability,
}

/// PEM files for TLS (`rediss://`): the CA that signed the server's certificate, when it is
/// a private one, and a client certificate and key when the server asks for them
/// (`tls-auth-clients yes`). Without a CA file the system's (webpki) roots are used;
/// `rediss://host:port/#insecure` skips verification (for tests only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate(s) to trust.
    pub ca_file: Option<std::path::PathBuf>,
    /// The client certificate, for mutual TLS.
    pub cert_file: Option<std::path::PathBuf>,
    /// The client certificate's private key, for mutual TLS.
    pub key_file: Option<std::path::PathBuf>,
}

impl TlsFiles {
    /// Whether any file is named.
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.cert_file.is_none() && self.key_file.is_none()
    }

    /// Reads the files into what redis-rs takes; errors name the file and what to fix.
    fn load(&self) -> Result<redis::TlsCertificates, RedisError> {
        let read = |what: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                RedisError::Config(format!(
                    "cannot read the Redis TLS {what} {}: {e}",
                    path.display()
                ))
            })
        };
        let root_cert = match &self.ca_file {
            Some(path) => Some(read("CA file", path)?),
            None => None,
        };
        let client_tls = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read("client certificate", cert)?,
                client_key: read("client key", key)?,
            }),
            (None, None) => None,
            _ => {
                return Err(RedisError::Config(
                    "a Redis TLS client certificate needs its key, and a key its certificate: \
                     give both files or neither"
                        .into(),
                ))
            }
        };
        Ok(redis::TlsCertificates {
            client_tls,
            root_cert,
        })
    }
}

impl RedisConfig {
    /// A config with defaults: 5 s response timeout, 32 blocking connections, the
    /// topology detected, the namespace's partition count taken as it is.
    pub fn new(url: impl Into<String>, namespace: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            namespace: namespace.into(),
            response_timeout: Duration::from_secs(5),
            blocking_pool_size: 32,
            tls: TlsFiles::default(),
            mode: RedisMode::Detect,
            partitions: None,
            durability: Durability::Local,
        }
    }

    /// The same, forcing one server or a cluster instead of detecting it.
    pub fn with_mode(mut self, mode: RedisMode) -> RedisConfig {
        self.mode = mode;
        self
    }

    /// The same, expecting `partitions` partitions (see [`RedisConfig::partitions`]).
    pub fn with_partitions(mut self, partitions: u16) -> RedisConfig {
        self.partitions = Some(partitions);
        self
    }

    /// The same, acknowledging writes as `durability` says.
    pub fn with_durability(mut self, durability: Durability) -> RedisConfig {
        self.durability = durability;
        self
    }

    /// The same, with certificates for a `rediss://` URL.
    pub fn with_tls(mut self, tls: TlsFiles) -> RedisConfig {
        self.tls = tls;
        self
    }
}

/// The redis-rs client for a config: its URL (the first seed's, of several; the first
/// sentinel's, for Sentinel), and its TLS files for `rediss://`. Readiness probes use it;
/// [`Connections::connect`] makes every connection Weir works with from the same URL and
/// certificates.
pub fn client(config: &RedisConfig) -> Result<redis::Client, RedisError> {
    let display_url = mask_password(&config.url);
    match Topology::parse(&config.url, &display_url)? {
        Topology::Seeds(seeds) => seed_client(&seeds[0], &config.tls),
        Topology::Sentinel(url) => {
            let (host, port) = url.sentinels[0].clone();
            let scheme = if url.tls { "rediss" } else { "redis" };
            let auth = match (&url.sentinel_username, &url.sentinel_password) {
                (user, Some(password)) => format!(
                    "{}:{}@",
                    user.as_deref().unwrap_or(""),
                    percent_encode(password)
                ),
                _ => String::new(),
            };
            let fragment = if url.insecure { "#insecure" } else { "" };
            seed_client(
                &format!("{scheme}://{auth}{host}:{port}/{fragment}"),
                &config.tls,
            )
        }
    }
}

/// The redis-rs client for one server's URL, with the TLS files for `rediss://`.
fn seed_client(url: &str, tls: &TlsFiles) -> Result<redis::Client, RedisError> {
    let display_url = mask_password(url);
    let bad_url = |e: redis::RedisError| {
        RedisError::Config(format!(
            "invalid Redis URL {display_url}: {e} (expected redis://[user:password@]host:port or rediss://...)"
        ))
    };
    if tls.is_empty() {
        return redis::Client::open(url).map_err(bad_url);
    }
    if !url.starts_with("rediss://") {
        return Err(RedisError::Config(format!(
            "TLS certificate files were given but the Redis URL {display_url} is not \
             rediss://: use rediss://host:port, or drop the TLS files"
        )));
    }
    redis::Client::build_with_tls(url, tls.load()?).map_err(bad_url)
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URL userinfo).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Live connections to one namespace.
#[derive(Clone)]
pub struct Connections {
    /// Ordinary commands, on one server, a cluster or the Sentinel-named primary;
    /// reconnects (and follows redirections and failovers) by itself.
    pub conn: RedisConnection,
    /// Key names (with the namespace's partition count).
    pub keys: Keys,
    /// The URL with any password masked, for messages.
    pub display_url: String,
    /// When a write is acknowledged (the config's).
    pub durability: Durability,
    link: Link,
}

/// How to make more connections of the same kind as [`Connections::conn`].
#[derive(Clone)]
enum Link {
    /// One server: its client, and a pool of connections for blocking commands.
    Single {
        client: Box<redis::Client>,
        blocking: deadpool_redis::Pool,
    },
    /// A Redis Cluster: a client whose connections have no response timeout (over the
    /// seeds given), and what it takes to make one over the nodes the cluster has now.
    Cluster(Box<ClusterLink>),
    /// Sentinel: new connections are siblings of the shared one; blocking ones are pooled.
    Sentinel(SentinelConnection, Arc<BlockingPool>),
}

/// What a cluster's blocking readers connect with.
#[derive(Clone)]
struct ClusterLink {
    /// A client over the seeds given, whose connections have no response timeout.
    blocking: ClusterClient,
    /// The settings (TLS files, timeouts) for a client over the nodes of now.
    config: RedisConfig,
    /// The first seed, whose credentials and TLS settings every node gets.
    seed: redis::ConnectionInfo,
    /// Idle blocking connections.
    pool: Arc<BlockingPool>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("url", &self.display_url)
            .field("mode", &self.conn.mode())
            .field("keys", &self.keys)
            .finish()
    }
}

/// A connection for blocking commands, from [`Connections::blocking`]: pooled on every
/// topology, and back to its pool when dropped (unless a command on it failed or was
/// abandoned half-way, which leaves its socket in an unknown state: it is closed then).
/// Send commands with `cmd.query_async(&mut conn)`, and multi-stream blocking `XREAD`s
/// with [`BlockingConnection::xread`], which on a cluster reads each partition slot on a
/// socket of its own (see [`super::cluster_reads`]).
pub struct BlockingConnection {
    conn: RedisConnection,
    /// An ordinary connection, for what a cluster read asks besides its blocking reads.
    shared: RedisConnection,
    /// On a cluster, the per-slot blocking reads (made at the first multi-slot read).
    reader: Option<ClusterReader>,
    /// On a cluster, what the reader's lanes connect with.
    lanes: Option<Box<ClusterLink>>,
    /// Whether it may go back to its pool: false while a command runs, and after one failed.
    reusable: bool,
    /// Where it goes back to when dropped (cluster and Sentinel).
    home: Option<Arc<BlockingPool>>,
    /// Keeps a pooled connection out of the pool while `conn` (a clone sharing its
    /// socket) is in use (one server).
    _pooled: Option<deadpool_redis::Connection>,
}

/// The idle blocking connections of a cluster or Sentinel link, each with its cluster
/// reader (whose reads may still be in flight: the next user takes them up).
struct BlockingPool {
    idle: std::sync::Mutex<Vec<(RedisConnection, Option<ClusterReader>)>>,
    max: usize,
}

impl BlockingPool {
    fn new(max: usize) -> Arc<BlockingPool> {
        Arc::new(BlockingPool {
            idle: std::sync::Mutex::new(Vec::new()),
            max: max.max(1),
        })
    }

    fn take(&self) -> Option<(RedisConnection, Option<ClusterReader>)> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }
}

impl Drop for BlockingConnection {
    fn drop(&mut self) {
        let Some(home) = self.home.take() else {
            return;
        };
        if !self.reusable {
            return;
        }
        let mut idle = home.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < home.max {
            idle.push((self.conn.clone(), self.reader.take()));
        }
    }
}

impl BlockingConnection {
    /// Which kind of topology it talks to (see [`RedisConnection::mode`]).
    pub fn mode(&self) -> &'static str {
        self.conn.mode()
    }

    /// Runs an `XREAD [COUNT n] [BLOCK ms] STREAMS key... id...` over any number of
    /// streams, answered as one `XREAD` on one server would be: on a cluster a blocking
    /// read waits on every partition slot at once (see [`super::cluster_reads`]).
    pub async fn xread<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        self.reusable = false;
        let result = match (&mut self.reader, &self.lanes) {
            (Some(reader), _) => reader.xread(cmd, &mut self.shared).await,
            (None, Some(link)) => {
                let client = cluster_client_now(&self.shared, link).await;
                let reader = self.reader.insert(ClusterReader::new(client));
                reader.xread(cmd, &mut self.shared).await
            }
            (None, None) => super::cluster_reads::xread(cmd, &mut self.conn).await,
        };
        self.reusable = result.is_ok();
        result
    }
}

impl ConnectionLike for BlockingConnection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            self.reusable = false;
            let result = self.conn.req_packed_command(cmd).await;
            self.reusable = result.is_ok();
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            self.reusable = false;
            let result = self.conn.req_packed_commands(pipeline, offset, count).await;
            self.reusable = result.is_ok();
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// Settings of connections for blocking commands: no response timeout.
fn blocking_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_response_timeout(None)
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
}

impl Connections {
    /// Connects (to one server, a cluster, or the primary the sentinels name), checks
    /// Redis answers, and reads (or fixes, on first use) the namespace's partition count;
    /// refuses a namespace whose count differs from [`RedisConfig::partitions`].
    pub async fn connect(config: &RedisConfig) -> Result<Connections, RedisError> {
        let display_url = mask_password(&config.url);
        if config.namespace.is_empty()
            || config
                .namespace
                .bytes()
                .any(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
        {
            return Err(RedisError::Config(format!(
                "invalid namespace {:?}: use letters, digits, '_', '-' or '.'",
                config.namespace
            )));
        }
        if config.partitions == Some(0) {
            return Err(RedisError::Config(
                "the partition count must be at least 1".into(),
            ));
        }
        let unreachable = |e: redis::RedisError| RedisError::from_redis(&display_url, e);
        let (mut conn, link) = match Topology::parse(&config.url, &display_url)? {
            Topology::Sentinel(url) => {
                let certs = if config.tls.is_empty() {
                    None
                } else if url.tls {
                    Some(config.tls.load()?)
                } else {
                    return Err(RedisError::Config(format!(
                        "TLS certificate files were given but the Redis URL {display_url} is \
                         not rediss+sentinel://: use rediss+sentinel://..., or drop the TLS files"
                    )));
                };
                let target = SentinelTarget { url, certs };
                let ordinary = AsyncConnectionConfig::new()
                    .set_response_timeout(Some(config.response_timeout))
                    .set_connection_timeout(Some(CONNECT_TIMEOUT));
                let conn = SentinelConnection::connect(target, ordinary)
                    .await
                    .map_err(unreachable)?;
                (
                    RedisConnection::Sentinel(conn.clone()),
                    Link::Sentinel(conn, BlockingPool::new(config.blocking_pool_size)),
                )
            }
            Topology::Seeds(seeds) => {
                let cluster = match config.mode {
                    RedisMode::Cluster => true,
                    RedisMode::Single => false,
                    RedisMode::Detect => is_cluster(&seeds, &config.tls, &display_url).await?,
                };
                if cluster {
                    connect_cluster(config, &seeds, &display_url).await?
                } else {
                    if seeds.len() > 1 {
                        return Err(RedisError::Config(format!(
                            "several Redis URLs were given ({display_url}) but the server is \
                             not a Redis Cluster node: give one URL for one server"
                        )));
                    }
                    connect_single(config, &seeds[0], &display_url).await?
                }
            }
        };
        let partitions = namespace_partitions(&mut conn, config, &display_url).await?;
        Ok(Connections {
            conn,
            keys: Keys::new(&config.namespace, partitions),
            display_url,
            durability: config.durability,
            link,
        })
    }

    /// A connection for a blocking command, from a pool: one server's deadpool pool; on a
    /// cluster or with Sentinel an idle one of this link's, or a new one when none is idle.
    pub async fn blocking(&self) -> Result<BlockingConnection, RedisError> {
        let mut blocking = BlockingConnection {
            conn: self.conn.clone(),
            shared: self.conn.clone(),
            reader: None,
            lanes: None,
            reusable: true,
            home: None,
            _pooled: None,
        };
        match &self.link {
            Link::Single { blocking: pool, .. } => {
                let pooled = pool
                    .get()
                    .await
                    .map_err(|e| RedisError::from_pool(&self.display_url, e))?;
                blocking.conn = RedisConnection::Direct((*pooled).clone());
                blocking._pooled = Some(pooled);
            }
            Link::Cluster(link) => {
                blocking.lanes = Some(link.clone());
                blocking.home = Some(link.pool.clone());
                match link.pool.take() {
                    Some((conn, reader)) => {
                        blocking.conn = conn;
                        blocking.reader = reader;
                    }
                    None => blocking.conn = self.dedicated().await?,
                }
            }
            Link::Sentinel(_, pool) => {
                blocking.home = Some(pool.clone());
                blocking.conn = match pool.take() {
                    Some((conn, _)) => conn,
                    None => self.dedicated().await?,
                };
            }
        }
        Ok(blocking)
    }

    /// A connection of its own, with no response timeout, for a loop that issues blocking
    /// reads all its life: unlike a pooled one it costs no health check per use. On a
    /// cluster it routes each read to the node that owns the keys' slot and follows
    /// `MOVED`/`ASK`; with Sentinel it follows the primary.
    pub async fn dedicated(&self) -> Result<RedisConnection, RedisError> {
        let result = match &self.link {
            Link::Single { client, .. } => client
                .get_multiplexed_async_connection_with_config(&blocking_config())
                .await
                .map(RedisConnection::Direct),
            Link::Cluster(link) => {
                HealingCluster::connect(cluster_client_now(&self.conn, link).await)
                    .await
                    .map(RedisConnection::Cluster)
            }
            Link::Sentinel(shared, _) => shared
                .sibling(blocking_config())
                .await
                .map(RedisConnection::Sentinel),
        };
        result.map_err(|e| RedisError::from_redis(&self.display_url, e))
    }

    /// The Redis server's clock, in milliseconds (ARCHITECTURE.md invariant 6: time is Redis
    /// time). On a cluster, any node answers: their clocks are the machines' clocks, which
    /// the deployment keeps in sync (NTP), as it does for one server's failover.
    pub async fn server_time(&self) -> Result<i64, RedisError> {
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| RedisError::from_redis(&self.display_url, e))?;
        Ok(secs * 1000 + micros / 1000)
    }
}

/// Whether the first seed that answers is a Redis Cluster node: `CLUSTER INFO` answers
/// on one, and is refused (`cluster support disabled`) by a server without cluster mode.
/// It is not a `@dangerous` command, so an ACL user confined to its namespace may run it;
/// a server that refuses it anyway is taken as one server (force cluster mode then).
async fn is_cluster(
    seeds: &[String],
    tls: &TlsFiles,
    display_url: &str,
) -> Result<bool, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(Some(CONNECT_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT));
    let mut last = None;
    for seed in seeds {
        let client = seed_client(seed, tls)?;
        let info: Result<String, _> = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async::<String>(&mut conn)
                .await
        }
        .await;
        match info {
            Ok(_) => return Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
                ) =>
            {
                return Ok(false)
            }
            Err(e) => last = Some(e),
        }
    }
    let source =
        last.unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no seed answered")));
    Err(RedisError::from_redis(display_url, source))
}

/// One server: a self-reconnecting connection and a pool for blocking commands.
async fn connect_single(
    config: &RedisConfig,
    url: &str,
    display_url: &str,
) -> Result<(RedisConnection, Link), RedisError> {
    let client = seed_client(url, &config.tls)?;
    let manager_config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(config.response_timeout))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2));
    let conn = ConnectionManager::new_with_config(client.clone(), manager_config)
        .await
        .map_err(|e| RedisError::from_redis(display_url, e))?;
    // From the client's connection info, which carries the TLS settings the URL lacks.
    let manager = deadpool_redis::Manager::new_with_config(
        client.get_connection_info().clone(),
        blocking_config(),
    )
    .map_err(|e| RedisError::Config(e.to_string()))?;
    let blocking = deadpool_redis::Pool::builder(manager)
        .max_size(config.blocking_pool_size.max(1))
        .build()
        .map_err(|e| RedisError::Config(e.to_string()))?;
    Ok((
        RedisConnection::Single(conn),
        Link::Single {
            client: Box::new(client),
            blocking,
        },
    ))
}

/// A Redis Cluster: a connection for ordinary commands (with the response timeout) and a
/// client for blocking readers' own connections (without one).
async fn connect_cluster(
    config: &RedisConfig,
    seeds: &[String],
    display_url: &str,
) -> Result<(RedisConnection, Link), RedisError> {
    let bad_url = |e: redis::RedisError| {
        RedisError::Config(format!(
            "invalid Redis Cluster URLs {display_url}: {e} (expected \
             redis://[user:password@]host:port[,redis://host2:port...])"
        ))
    };
    let infos = seeds
        .iter()
        .map(|s| s.as_str().into_connection_info())
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad_url)?;
    let seed = infos[0].clone();
    let ordinary = cluster_client(config, infos.clone(), Some(config.response_timeout))?;
    let blocking = cluster_client(config, infos, None)?;
    let conn = HealingCluster::connect(ordinary)
        .await
        .map_err(|e| RedisError::from_redis(display_url, e))?;
    Ok((
        RedisConnection::Cluster(conn),
        Link::Cluster(Box::new(ClusterLink {
            blocking,
            config: config.clone(),
            seed,
            pool: BlockingPool::new(config.blocking_pool_size),
        })),
    ))
}

/// A cluster client over the given nodes. Credentials and TLS come from the first node's
/// URL (and the TLS files); a command is retried on another node for a few seconds at
/// most while a failover or a slot migration settles.
fn cluster_client(
    config: &RedisConfig,
    nodes: Vec<redis::ConnectionInfo>,
    response_timeout: Option<Duration>,
) -> Result<ClusterClient, RedisError> {
    let display_url = mask_password(&config.url);
    let all_tls = nodes
        .iter()
        .all(|n| matches!(n.addr(), redis::ConnectionAddr::TcpTls { .. }));
    if !config.tls.is_empty() && !all_tls {
        return Err(RedisError::Config(format!(
            "TLS certificate files were given but not every Redis URL of {display_url} is \
             rediss://: use rediss://host:port for each seed, or drop the TLS files"
        )));
    }
    let mut builder = ClusterClient::builder(nodes)
        .connection_timeout(CONNECT_TIMEOUT)
        .retries(8)
        .min_retry_wait(50)
        .max_retry_wait(1000);
    if let Some(timeout) = response_timeout {
        builder = builder.response_timeout(timeout);
    }
    if !config.tls.is_empty() {
        builder = builder.certs(config.tls.load()?);
    }
    builder.build().map_err(|e| {
        RedisError::Config(format!(
            "invalid Redis Cluster settings for {display_url}: {e}"
        ))
    })
}

/// A client without a response timeout over the nodes the cluster has now (asked through
/// `conn`), so that a new blocking connection connects even when the nodes first given are
/// gone (a failed-over master); over the seeds given when the cluster does not say.
async fn cluster_client_now(conn: &RedisConnection, link: &ClusterLink) -> ClusterClient {
    let current = match current_nodes(conn, &link.seed).await {
        Some(nodes) => cluster_client(&link.config, nodes, None).ok(),
        None => None,
    };
    current.unwrap_or_else(|| link.blocking.clone())
}

/// Every node the cluster has now (`CLUSTER SLOTS`, asked through `conn`), each with the
/// seed's credentials and TLS settings; `None` if the cluster does not answer.
async fn current_nodes(
    conn: &RedisConnection,
    seed: &redis::ConnectionInfo,
) -> Option<Vec<redis::ConnectionInfo>> {
    let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn.clone())
        .await
        .ok()?;
    let mut nodes: Vec<(String, u16)> = Vec::new();
    for entry in slots {
        let redis::Value::Array(parts) = entry else {
            continue;
        };
        // [start, end, master, replica...], each node [host, port, id, ...].
        for node in parts.into_iter().skip(2) {
            let redis::Value::Array(fields) = node else {
                continue;
            };
            let host = match fields.first() {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(redis::Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            let Some(redis::Value::Int(port)) = fields.get(1) else {
                continue;
            };
            let Ok(port) = u16::try_from(*port) else {
                continue;
            };
            if !host.is_empty() && !nodes.contains(&(host.clone(), port)) {
                nodes.push((host, port));
            }
        }
    }
    if nodes.is_empty() {
        return None;
    }
    Some(
        nodes
            .into_iter()
            .map(|(host, port)| {
                let addr = match seed.addr() {
                    redis::ConnectionAddr::TcpTls {
                        insecure,
                        tls_params,
                        ..
                    } => redis::ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure: *insecure,
                        tls_params: tls_params.clone(),
                    },
                    _ => redis::ConnectionAddr::Tcp(host, port),
                };
                seed.clone().set_addr(addr)
            })
            .collect(),
    )
}

/// The namespace's partition count, fixed atomically (`HSETNX`) by the first process that
/// uses the namespace; refuses a count other than the configured one.
async fn namespace_partitions(
    conn: &mut RedisConnection,
    config: &RedisConfig,
    display_url: &str,
) -> Result<u16, RedisError> {
    let wanted = config.partitions.unwrap_or(DEFAULT_PARTITIONS);
    let meta = Keys::new(&config.namespace, wanted).meta();
    let (_, stored): ((), Option<String>) = redis::pipe()
        .cmd("HSETNX")
        .arg(&meta)
        .arg("partitions")
        .arg(wanted)
        .ignore()
        .cmd("HSETNX")
        .arg(&meta)
        .arg("created_by")
        .arg(concat!("weir ", env!("CARGO_PKG_VERSION")))
        .cmd("HGET")
        .arg(&meta)
        .arg("partitions")
        .query_async(conn)
        .await
        .map_err(|e| RedisError::from_redis(display_url, e))?;
    let stored = match stored {
        None => wanted,
        Some(text) => match text.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(RedisError::Config(format!(
                    "the namespace {:?} has a damaged partition count {text:?} in {meta} on \
                     {display_url}: set the field `partitions` of {meta} to the count it was \
                     created with",
                    config.namespace
                )))
            }
        },
    };
    match config.partitions {
        Some(configured) if configured != stored => Err(RedisError::Config(format!(
            "the namespace {:?} on {display_url} has {stored} partitions (fixed in {meta} when \
             it was first used), but this process is configured with {configured}: configure \
             {stored} (or leave the count unset to take the namespace's), or use a new \
             namespace for {configured} partitions; a namespace's count cannot change while \
             it holds instances, since it decides which partition each instance is in",
            config.namespace
        ))),
        _ => Ok(stored),
    }
}

/// `redis://user:secret@host` -> `redis://user:***@host`, for logs and errors; a password
/// given as a query parameter (`redis+unix:///run/redis.sock?pass=secret`, `password=`,
/// `sentinel_password=`)
/// is masked too.
///
/// Several comma-separated URLs (cluster seeds) are masked each.
pub fn mask_password(url: &str) -> String {
    if url.matches("://").count() > 1 {
        // Split before each `,` that starts another URL (a Sentinel URL's host list has
        // commas too, but only one scheme).
        let mut urls: Vec<String> = Vec::new();
        for piece in url.split(',') {
            match urls.last_mut() {
                Some(last) if !piece.contains("://") => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => urls.push(piece.to_string()),
            }
        }
        return urls
            .iter()
            .map(|u| mask_one(u))
            .collect::<Vec<_>>()
            .join(",");
    }
    mask_one(url)
}

/// [`mask_password`] for one URL.
fn mask_one(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let (before_query, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let mut out = format!("{}://", &url[..scheme_end]);
    match before_query.rfind('@') {
        Some(at) => {
            let creds = &before_query[..at];
            match creds.find(':') {
                Some(colon) => out.push_str(&format!("{}:***", &creds[..colon])),
                None => out.push_str("***"),
            }
            out.push('@');
            out.push_str(&before_query[at + 1..]);
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        let (query, fragment) = match query.find('#') {
            Some(h) => (&query[..h], Some(&query[h..])),
            None => (query, None),
        };
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _))
                    if name.eq_ignore_ascii_case("pass")
                        || name.to_ascii_lowercase().ends_with("password") =>
                {
                    format!("{name}=***")
                }
                _ => param.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
        if let Some(fragment) = fragment {
            out.push_str(fragment);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::mask_password;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            mask_password("redis://app:s3cret@127.0.0.1:6379/0"),
            "redis://app:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            mask_password("rediss://:s3cret@host:6380"),
            "rediss://:***@host:6380"
        );
        assert_eq!(mask_password("redis://127.0.0.1"), "redis://127.0.0.1");
        assert_eq!(
            mask_password("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(
            mask_password("unix:///tmp/r.sock?user=app&password=s3cret"),
            "unix:///tmp/r.sock?user=app&password=***"
        );
        assert_eq!(
            mask_password("rediss://u:s3cret@h:6380/0?protocol=resp3#insecure"),
            "rediss://u:***@h:6380/0?protocol=resp3#insecure"
        );
        assert_eq!(
            mask_password("redis://:s3cret@a:1,redis://u:s3cret@b:2"),
            "redis://:***@a:1,redis://u:***@b:2"
        );
        assert_eq!(
            mask_password("redis+sentinel://u:s3cret@a:1,b:2/m?sentinel_password=s3cret"),
            "redis+sentinel://u:***@a:1,b:2/m?sentinel_password=***"
        );
    }
}

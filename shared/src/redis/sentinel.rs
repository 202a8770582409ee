//! Redis Sentinel: the primary that the sentinels name, found again after a failover.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, Pipeline, RedisError, RedisFuture,
    TlsCertificates, TlsMode, Value,
};

use super::topology::SentinelUrl;

/// What a Sentinel connection needs to (re)build its client: the parsed URL and the TLS
/// certificates, if any.
#[derive(Clone)]
pub(crate) struct SentinelTarget {
    /// The parsed `redis+sentinel://` URL.
    pub url: SentinelUrl,
    /// Certificates for TLS to the sentinels and the servers.
    pub certs: Option<TlsCertificates>,
}

impl SentinelTarget {
    /// A client that asks the sentinels for the primary.
    fn client(&self) -> Result<SentinelClient, RedisError> {
        let url = &self.url;
        let addrs = url.sentinels.iter().map(|(host, port)| {
            if url.tls {
                ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: url.insecure,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(host.clone(), *port)
            }
        });
        let mut builder =
            SentinelClientBuilder::new(addrs, &url.master_name, SentinelServerType::Master)?;
        if url.tls {
            let mode = if url.insecure {
                TlsMode::Insecure
            } else {
                TlsMode::Secure
            };
            builder = builder
                .set_client_to_redis_tls_mode(mode)
                .set_client_to_sentinel_tls_mode(mode);
            if let Some(certs) = &self.certs {
                builder = builder
                    .set_client_to_redis_certificates(certs.clone())
                    .set_client_to_sentinel_certificates(certs.clone());
            }
        }
        if let Some(user) = &url.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = &url.password {
            builder = builder.set_client_to_redis_password(password);
        }
        if url.db != 0 {
            builder = builder.set_client_to_redis_db(url.db);
        }
        if let Some(user) = &url.sentinel_username {
            builder = builder.set_client_to_sentinel_username(user);
        }
        if let Some(password) = &url.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        builder.build()
    }
}

/// A connection to the primary that Redis Sentinel names, which follows a failover.
///
/// It holds one multiplexed connection to the current primary. A request that fails in a
/// way that says the primary is gone or demoted (the connection dropped or refused, a
/// timeout, `READONLY` from a former primary that came back as a replica) drops that
/// connection and is returned as an error; the next request asks the sentinels for the
/// primary again (checking with `ROLE` that it is one) and connects to it. Requests are
/// never retried here: whether one was applied is unknown, and the callers' own retries
/// know whether a repeat is safe.
#[derive(Clone)]
pub struct SentinelConnection {
    shared: Arc<SentinelShared>,
}

struct SentinelShared {
    target: SentinelTarget,
    /// The sentinels; locked while asking them, so that concurrent failing requests
    /// resolve the primary once.
    sentinels: tokio::sync::Mutex<SentinelClient>,
    config: AsyncConnectionConfig,
    /// The connection to the current primary, with a generation number so that a late
    /// failure of an old connection does not drop a new one.
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
}

impl SentinelConnection {
    /// Asks the sentinels for the primary and connects to it.
    pub(crate) async fn connect(
        target: SentinelTarget,
        config: AsyncConnectionConfig,
    ) -> Result<SentinelConnection, RedisError> {
        let sentinels = target.client()?;
        let conn = SentinelConnection {
            shared: Arc::new(SentinelShared {
                target,
                sentinels: tokio::sync::Mutex::new(sentinels),
                config,
                current: Mutex::new(None),
                generation: AtomicU64::new(0),
            }),
        };
        conn.current().await?;
        Ok(conn)
    }

    /// Another connection to the same primary, with its own socket and settings (for a
    /// blocking reader): it shares the sentinels, not the connection.
    pub(crate) async fn sibling(
        &self,
        config: AsyncConnectionConfig,
    ) -> Result<SentinelConnection, RedisError> {
        SentinelConnection::connect(self.shared.target.clone(), config).await
    }

    /// The connection to the current primary, made if there is none.
    async fn current(&self) -> Result<(u64, MultiplexedConnection), RedisError> {
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        let mut sentinels = self.shared.sentinels.lock().await;
        // Another request may have connected while this one waited for the lock.
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        let conn = sentinels
            .async_get_client()
            .await?
            .get_multiplexed_async_connection_with_config(&self.shared.config)
            .await?;
        let generation = self.shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut current) = self.shared.current.lock() {
            *current = Some((generation, conn.clone()));
        }
        Ok((generation, conn))
    }

    fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        self.shared.current.lock().ok().and_then(|c| c.clone())
    }

    /// Drops the connection of `generation`, if it is still the current one.
    fn forget(&self, generation: u64) {
        if let Ok(mut current) = self.shared.current.lock() {
            if current.as_ref().is_some_and(|(g, _)| *g == generation) {
                tracing::warn!("lost the Redis primary; asking the sentinels for it again");
                *current = None;
            }
        }
    }
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.current().await?;
            let result = conn.req_packed_command(cmd).await;
            let lost = match &result {
                Ok(value) => is_read_only(value),
                Err(e) => primary_lost(e),
            };
            if lost {
                self.forget(generation);
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.current().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            let lost = match &result {
                Ok(values) => values.iter().any(is_read_only),
                Err(e) => primary_lost(e),
            };
            if lost {
                self.forget(generation);
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.cached().map(|(_, c)| c.get_db()).unwrap_or(0)
    }
}

/// Whether an error says the primary this connection talks to is gone or no longer the
/// primary.
fn primary_lost(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || e.is_timeout()
        || e.kind() == ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

/// Whether a reply is a `READONLY` error: the server was demoted to a replica.
fn is_read_only(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if e.kind() == Some(redis::ServerErrorKind::ReadOnly))
}

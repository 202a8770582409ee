//! Connections to Redis: one multiplexed, self-reconnecting connection for ordinary
//! commands, and a pool of connections without a response timeout for blocking reads.
//!
//! redis-rs times async requests out after 500 ms by default; a blocking `XREADGROUP …
//! BLOCK` or `BLPOP` on such a connection fails, and any command sharing its socket waits
//! behind it. So blocking commands get their own pooled connections (deadpool-redis).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncConnectionConfig;

use super::keys::{Keys, DEFAULT_PARTITIONS};
use super::RedisError;

/// Where and how to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://…` for TLS.
    pub url: String,
    /// The key prefix; several environments can share one Redis.
    pub namespace: String,
    /// The response timeout of ordinary commands.
    pub response_timeout: Duration,
    /// At most this many blocking connections (one per blocking reader).
    pub blocking_pool_size: usize,
    /// Certificates for a `rediss://` URL, when the system's roots do not do.
    pub tls: TlsFiles,
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
    /// A config with defaults: 5 s response timeout, 32 blocking connections.
    pub fn new(url: impl Into<String>, namespace: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            namespace: namespace.into(),
            response_timeout: Duration::from_secs(5),
            blocking_pool_size: 32,
            tls: TlsFiles::default(),
        }
    }

    /// The same, with certificates for a `rediss://` URL.
    pub fn with_tls(mut self, tls: TlsFiles) -> RedisConfig {
        self.tls = tls;
        self
    }
}

/// The redis-rs client for a config: its URL, and its TLS files for `rediss://`. Every
/// connection Weir makes (commands, blocking reads, readiness probes) comes from one, so
/// all of them use the same certificates.
pub fn client(config: &RedisConfig) -> Result<redis::Client, RedisError> {
    let display_url = mask_password(&config.url);
    let bad_url = |e: redis::RedisError| {
        RedisError::Config(format!(
            "invalid Redis URL {display_url}: {e} (expected redis://[user:password@]host:port or rediss://...)"
        ))
    };
    if config.tls.is_empty() {
        return redis::Client::open(config.url.as_str()).map_err(bad_url);
    }
    if !config.url.starts_with("rediss://") {
        return Err(RedisError::Config(format!(
            "TLS certificate files were given but the Redis URL {display_url} is not \
             rediss://: use rediss://host:port, or drop the TLS files"
        )));
    }
    redis::Client::build_with_tls(config.url.as_str(), config.tls.load()?).map_err(bad_url)
}

/// Live connections to one namespace.
#[derive(Clone)]
pub struct Connections {
    /// Ordinary commands; reconnects with backoff by itself.
    pub conn: ConnectionManager,
    /// Connections for blocking commands.
    pub blocking: deadpool_redis::Pool,
    /// Key names (with the namespace's partition count).
    pub keys: Keys,
    /// The URL with any password masked, for messages.
    pub display_url: String,
    client: redis::Client,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("url", &self.display_url)
            .field("keys", &self.keys)
            .finish()
    }
}

impl Connections {
    /// Connects, checks Redis answers, and reads (or fixes, on first use) the namespace's
    /// partition count.
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
        let client = client(config)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let mut conn = ConnectionManager::new_with_config(client.clone(), manager_config)
            .await
            .map_err(|e| RedisError::from_redis(&display_url, e))?;
        let blocking_config = AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(Duration::from_secs(5)));
        // From the client's connection info, which carries the TLS settings the URL lacks.
        let manager = deadpool_redis::Manager::new_with_config(
            client.get_connection_info().clone(),
            blocking_config,
        )
        .map_err(|e| RedisError::Config(e.to_string()))?;
        let blocking = deadpool_redis::Pool::builder(manager)
            .max_size(config.blocking_pool_size.max(1))
            .build()
            .map_err(|e| RedisError::Config(e.to_string()))?;

        let meta = Keys::new(&config.namespace, DEFAULT_PARTITIONS).meta();
        let (_, partitions): ((), Option<u16>) = redis::pipe()
            .cmd("HSETNX")
            .arg(&meta)
            .arg("partitions")
            .arg(DEFAULT_PARTITIONS)
            .ignore()
            .cmd("HSETNX")
            .arg(&meta)
            .arg("created_by")
            .arg(concat!("weir ", env!("CARGO_PKG_VERSION")))
            .cmd("HGET")
            .arg(&meta)
            .arg("partitions")
            .query_async(&mut conn)
            .await
            .map_err(|e| RedisError::from_redis(&display_url, e))?;
        let partitions = partitions.unwrap_or(DEFAULT_PARTITIONS);
        Ok(Connections {
            conn,
            blocking,
            keys: Keys::new(&config.namespace, partitions),
            display_url,
            client,
        })
    }

    /// A connection for a blocking command.
    pub async fn blocking(&self) -> Result<deadpool_redis::Connection, RedisError> {
        self.blocking
            .get()
            .await
            .map_err(|e| RedisError::from_pool(&self.display_url, e))
    }

    /// A connection of its own, with no response timeout, for a loop that issues blocking
    /// reads all its life: unlike a pooled one it costs no health check per use.
    pub async fn dedicated(&self) -> Result<redis::aio::MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(Duration::from_secs(5)));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| RedisError::from_redis(&self.display_url, e))
    }

    /// The Redis server's clock, in milliseconds (ARCHITECTURE.md invariant 6: time is Redis time).
    pub async fn server_time(&self) -> Result<i64, RedisError> {
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| RedisError::from_redis(&self.display_url, e))?;
        Ok(secs * 1000 + micros / 1000)
    }
}

/// `redis://user:secret@host` -> `redis://user:***@host`, for logs and errors; a password
/// given as a query parameter (`redis+unix:///run/redis.sock?pass=secret`, `password=`)
/// is masked too.
pub fn mask_password(url: &str) -> String {
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
                        || name.eq_ignore_ascii_case("password") =>
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
    }
}

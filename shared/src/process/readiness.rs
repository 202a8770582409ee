//! Readiness checks for `/readyz`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::redis::connect::{client, mask_password};
use crate::redis::health::{connect_and_ping, coordinator_heartbeat};
use crate::redis::keys::Keys;
use crate::redis::{RedisConfig, RedisError};

/// What a readiness check returns: `Ok` when ready, else why not.
pub type ReadyFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A readiness check, called on every `GET /readyz`.
pub type Readiness = Arc<dyn Fn() -> ReadyFuture + Send + Sync>;

/// How long Redis has to answer a readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Ready when Redis answers `PING` within a second (a fresh connection per probe, so a
/// wrong password or an unreachable host shows), connecting as the worker does (its TLS
/// files included). For workers.
///
/// `/readyz` answers anyone, so its reasons never name the Redis host or user; the log
/// line of a failed probe does.
pub fn redis_readiness(redis: &RedisConfig) -> Result<Readiness, RedisError> {
    let probe = Probe::new(redis)?;
    Ok(Arc::new(move || {
        let probe = probe.clone();
        Box::pin(async move { probe.ping().await.map(|_| ()) })
    }))
}

/// Ready when Redis answers within a second and the coordinator `id` heartbeated (which
/// its lease loop does every `lease / 3`, together with renewing and taking leases) less
/// than `lease` ago by the Redis clock. For coordinators.
pub fn coordinator_readiness(
    redis: &RedisConfig,
    id: &str,
    lease: Duration,
) -> Result<Readiness, RedisError> {
    let probe = Probe::new(redis)?;
    let key = Keys::new(&redis.namespace, 1).coordinators();
    let id: Arc<str> = Arc::from(id);
    let lease_ms = lease.as_millis().max(1000) as i64;
    Ok(Arc::new(move || {
        let (probe, key, id) = (probe.clone(), key.clone(), id.clone());
        Box::pin(async move {
            let mut conn = probe.ping().await?;
            let checked = tokio::time::timeout(PROBE_TIMEOUT, async {
                let beat = coordinator_heartbeat(&mut conn, &key, &id)
                    .await
                    .map_err(|e| format!("Redis failed: {e}"))?;
                match beat.age_ms() {
                    None => Err(format!(
                        "coordinator {id} has not joined yet (no heartbeat in {key})"
                    )),
                    Some(age) if age > lease_ms => Err(format!(
                        "coordinator {id} last heartbeat {age} ms ago: its lease loop is stuck or failing"
                    )),
                    Some(_) => Ok(()),
                }
            })
            .await;
            checked.unwrap_or_else(|_| Err("Redis did not answer within 1 s".into()))
        })
    }))
}

#[derive(Clone)]
struct Probe {
    client: redis::Client,
    display_url: Arc<str>,
}

impl Probe {
    fn new(redis: &RedisConfig) -> Result<Probe, RedisError> {
        let display_url = mask_password(&redis.url);
        let client = client(redis)?;
        Ok(Probe {
            client,
            display_url: Arc::from(display_url),
        })
    }

    /// Connects and pings within [`PROBE_TIMEOUT`]; returns the connection.
    async fn ping(&self) -> Result<redis::aio::MultiplexedConnection, String> {
        let attempt = connect_and_ping(&self.client, PROBE_TIMEOUT);
        match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => {
                tracing::warn!(redis = %self.display_url, error = %e, "readiness probe failed");
                Err(format!("Redis failed ({})", e.category()))
            }
            Err(_) => {
                tracing::warn!(redis = %self.display_url, "readiness probe: no answer to PING within 1 s");
                Err("Redis did not answer PING within 1 s".into())
            }
        }
    }
}

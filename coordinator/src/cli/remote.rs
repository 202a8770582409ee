//! What the commands that talk to Redis share: connecting (with an error that names the
//! URL), turning engine errors into one line that says what to do, parsing durations and
//! printing JSON.

use anyhow::anyhow;
use serde::Serialize;
use weir::api::EngineError;
use weir::redis::{Connections, RedisConfig, RedisError, WeirClient};

use super::printer::out;
use super::Global;

/// The Redis config of the global flags.
pub(crate) fn config(global: &Global) -> RedisConfig {
    global
        .mode
        .apply(RedisConfig::new(&global.redis, &global.namespace).with_tls(global.tls.files()))
}

/// Connects to the namespace, or fails with one line naming the URL.
pub(crate) async fn connections(global: &Global) -> anyhow::Result<Connections> {
    Connections::connect(&config(global))
        .await
        .map_err(|e| redis_error(global, e))
}

/// A client of the namespace.
pub(crate) async fn client(global: &Global) -> anyhow::Result<WeirClient> {
    Ok(WeirClient::from_connections(connections(global).await?))
}

/// A Redis error as one line with what to do.
pub(crate) fn redis_error(global: &Global, e: RedisError) -> anyhow::Error {
    let url = weir::redis::connect::mask_password(&global.redis);
    match e {
        RedisError::Unreachable { source, .. } => anyhow!(
            "Redis at {url} is unreachable or failed ({source}): check that redis-server runs \
             there, or pass --redis URL (or set WEIR_REDIS_URL)"
        ),
        RedisError::Config(m) => anyhow!("{m}"),
        RedisError::Corrupt(m) => anyhow!("Redis at {url}: {m}"),
        e @ RedisError::NotReplicated { .. } => anyhow!("{e}"),
    }
}

/// An engine error as one line with what to do.
pub(crate) fn engine_error(global: &Global, e: EngineError) -> anyhow::Error {
    let url = weir::redis::connect::mask_password(&global.redis);
    match e {
        EngineError::NotFound(id) => anyhow!(
            "no instance {id:?} in namespace {:?} at {url}: check the id (`weir list` shows the \
             instances)",
            global.namespace
        ),
        EngineError::Registry(weir::registry::RegistryError::Unknown { .. }) => anyhow!(
            "{e} in namespace {:?}: register it first with `weir definition register FILE` \
             (`weir definition list` shows what is registered)",
            global.namespace
        ),
        EngineError::Refused(r) => anyhow!("refused ({}): {r}; nothing changed", r.kind()),
        EngineError::Rejected { kind, message } => {
            anyhow!("refused ({kind}): {message}; nothing changed")
        }
        EngineError::Redis(e) => redis_error(global, e),
        other => anyhow!("{other}"),
    }
}

/// Parses a duration like `30s`, `5m`, `1h30m` or `500ms` (its error says what to write).
pub(crate) use weir::model::definition::duration::parse as parse_duration;

/// Prints a value as one JSON document (pretty) on stdout.
pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    out(&serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints a value as one JSON line on stdout.
pub(crate) fn print_json_line<T: Serialize>(value: &T) -> anyhow::Result<()> {
    out(&serde_json::to_string(value)?);
    Ok(())
}

/// A timestamp as text for tables (RFC 3339), or `-`.
pub(crate) fn when(t: Option<weir::Timestamp>) -> String {
    t.map_or_else(
        || "-".to_string(),
        |t| {
            serde_json::to_value(t)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| t.millis().to_string())
        },
    )
}

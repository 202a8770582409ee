//! The Redis TLS flags, shared by `weir-worker` and every `weir` command that talks to
//! Redis, so that both spell them alike.

use std::path::PathBuf;

use crate::redis::TlsFiles;

/// Certificates for a `rediss://` URL whose server certificate a private CA signed, or
/// that asks clients for a certificate (mutual TLS).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RedisTlsArgs {
    /// PEM file of the CA that signed the Redis server's certificate (rediss:// only;
    /// without it the system's roots are used).
    #[arg(long, global = true, env = "WEIR_REDIS_CA_FILE", value_name = "FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// PEM client certificate, for a Redis that requires one (`tls-auth-clients yes`).
    #[arg(long, global = true, env = "WEIR_REDIS_CERT_FILE", value_name = "FILE")]
    pub redis_cert_file: Option<PathBuf>,
    /// PEM private key of --redis-cert-file.
    #[arg(long, global = true, env = "WEIR_REDIS_KEY_FILE", value_name = "FILE")]
    pub redis_key_file: Option<PathBuf>,
}

impl RedisTlsArgs {
    /// The files, for [`RedisConfig::with_tls`](crate::redis::RedisConfig::with_tls).
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            ca_file: self.redis_ca_file.clone(),
            cert_file: self.redis_cert_file.clone(),
            key_file: self.redis_key_file.clone(),
        }
    }
}

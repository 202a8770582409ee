//! The flags that say how a process uses Redis beyond where it is: one server or a cluster,
//! the partition count of the namespace, and when a write counts as done. Shared by `weir-worker` and every `weir`
//! command that talks to Redis, so that both spell them alike.

use crate::redis::{Durability, RedisConfig, RedisMode};

/// `--redis-mode`, `--partitions` and `--durability`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RedisModeArgs {
    /// One Redis server or a Redis Cluster: `detect` asks the first seed that answers
    /// (`INFO cluster`); `single` and `cluster` force it. A redis+sentinel:// URL always
    /// means Sentinel.
    #[arg(
        long,
        global = true,
        env = "WEIR_REDIS_MODE",
        value_enum,
        default_value_t = RedisModeArg::Detect,
        value_name = "MODE"
    )]
    pub redis_mode: RedisModeArg,
    /// The namespace's partition count: given to the namespace when it is first used, and
    /// checked against the stored count afterwards (a process with another count refuses to
    /// start). Unset: the namespace's count (or the default for a new namespace).
    #[arg(
        long,
        global = true,
        env = "WEIR_PARTITIONS",
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub partitions: Option<u16>,
    /// When a write is acknowledged: `local` once the master has it (a failover may lose
    /// it), `replicated` once a replica has it too (`WAIT 1`; a call fails, its write
    /// done, when no replica confirms it within 1 s).
    #[arg(
        long,
        global = true,
        env = "WEIR_DURABILITY",
        default_value = "local",
        value_name = "local|replicated",
        value_parser = parse_durability
    )]
    pub durability: Durability,
}

fn parse_durability(text: &str) -> Result<Durability, String> {
    text.parse()
}

/// The values of `--redis-mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RedisModeArg {
    /// Ask the first seed that answers.
    #[default]
    Detect,
    /// One server, even if it has cluster mode on.
    Single,
    /// A Redis Cluster, without asking.
    Cluster,
}

impl RedisModeArgs {
    /// `config` with the mode, the partition count and the durability of the flags.
    pub fn apply(&self, config: RedisConfig) -> RedisConfig {
        let mode = match self.redis_mode {
            RedisModeArg::Detect => RedisMode::Detect,
            RedisModeArg::Single => RedisMode::Single,
            RedisModeArg::Cluster => RedisMode::Cluster,
        };
        let config = config.with_mode(mode).with_durability(self.durability);
        match self.partitions {
            Some(n) => config.with_partitions(n),
            None => config,
        }
    }
}

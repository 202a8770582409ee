//! Turning a turn's inputs into one commit: decode the inputs ([`decode`]), take the
//! instances they touch from the cache ([`cache`]) or load them ([`load`]), apply each input
//! with the pure core ([`turn`]), and collect the writes ([`write`]); how effects map onto
//! keys is [`weir::redis::effects`], the one place that knows it.
//!
//! A partition loop keeps the instances it wrote in an [`InstanceCache`] while it holds the
//! lease, so a hot instance is not read back and decoded every turn. The cache is only a
//! copy: every write is still guarded by the instance's revision in `commit.lua`, and so is
//! every instance a turn decided from without changing it (an input dropped as stale, a
//! command refused), so a copy that went stale (an instance deleted by retention, or
//! changed by anyone else) fails the commit with a conflict, and the loop drops the whole
//! cache and reads Redis again.
//!
//! **Quarantine.** One bad record must not stop a partition. An instance whose stored state
//! does not decode, or whose definition can no longer be loaded (missing, or no longer
//! compiling), is set aside in the turn that meets it, and the rest of the turn goes on:
//! - its hash gets `quarantined` (the reason) and status `failed`, and its index entries
//!   move to `failed` and `finished` (so `weir list --status failed` shows it, and retention
//!   deletes it like any failed instance);
//! - a state that decodes keeps everything, with `error` saying `quarantined: <reason>`; an
//!   undecodable state is never destroyed: its bytes move to the field `corrupt_state`, and
//!   `state` gets a minimal failed record (id, definition, version, tenant, creator,
//!   creation time from the hash; empty context) so `weir status` shows the reason;
//! - from then on, results for it are dead-lettered with the reason (`weir dlq` lists them),
//!   commands are refused with kind `quarantined`, and its timers are dropped.
//!
//! A Redis failure while loading is not a bad record: the turn fails and is retried.

mod cache;
mod decode;
mod load;
mod turn;
mod write;

pub use cache::{Cached, InstanceCache};
pub use decode::{decode_entry, start_of, Inbound};
pub use load::LoadError;
pub use turn::{build, Built};

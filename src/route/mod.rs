//! Route state: the pure state machine (`table`), the immutable published
//! view (`snapshot`) and the JSON it serves (`encode`). No IO, no threads,
//! no clock: time comes in as `now_ms`.

pub mod encode;
pub mod kv;
pub mod lists;
pub mod snapshot;
pub mod table;

/// Identifies one accepted connection for the whole life of the process.
pub type ConnId = u64;

/// The write bit of a QueueData's perm (`namesrv-behaviour.md` §8).
pub const PERM_WRITE: i32 = 2;
pub const PERM_READ: i32 = 4;

/// Java's default broker expiry when the registration does not give one.
pub const BROKER_TIMEOUT_DEFAULT_MS: u64 = 120_000;

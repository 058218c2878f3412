//! rocketns: a RocketMQ NameServer. See ARCHITECTURE.md for the map.

pub mod acl;
pub mod clock;
pub mod config;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod persist;
pub mod preflight;
pub mod protocol;
pub mod route;
pub mod server;
pub mod shard;
pub mod writer;

//! The remoting protocol: bytes in, commands out, and back. No IO, no clock.

pub mod body;
pub mod client;
pub mod codes;
pub mod frame;
pub mod header;
pub mod json;
pub mod properties;

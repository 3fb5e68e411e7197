//! Shared pieces of the `evid` daemon and the `evictl` client: the log output and a minimal
//! MI-over-HTTP client.

pub mod logger;
pub mod mi_client;
pub mod notify;
pub mod signals;

//! # evi-host: the evid host
//!
//! Loads modules through the checked ABI ([`loader`]), owns the event registry and the
//! subscriptions ([`registry`]), runs the raise path ([`dispatch`]): one shared event, one job per
//! subscriber into its module's bounded queue, never blocking the raiser), and executes MI
//! requests ([`mi`]) for the MI transport modules. [`config`] turns a parsed script into a running
//! [`Host`].

pub mod alloc;
pub mod clock;
pub mod config;
pub mod dispatch;
pub mod event;
mod hold;
mod host;
mod host_api;
pub mod latency;

pub mod loader;
mod members;
pub mod mi;
pub mod modparam;
pub mod module;
pub mod policy;
pub mod registry;
pub(crate) mod reload;
mod script_host;
pub mod thresholds;

pub use dispatch::Raised;
pub use event::{ParamRef, ValueRef};
pub use host::{Host, SubscribeError, Subscribed, CORE_EVENTS, DEFAULT_QUEUE_SIZE};

/// `evid 0.1.0 (x86_64/linux) abi 1.0`.
pub fn version_string() -> String {
    format!(
        "evid {} ({}/{}) abi {}.{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
        evi_abi::EVI_ABI_MAJOR,
        evi_abi::EVI_ABI_MINOR
    )
}

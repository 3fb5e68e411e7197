//! Modparams, read once at `init` (the host has already checked types and ranges).

use evi_sdk::Params;
use std::time::Duration;

pub const DEFAULT_TIMEOUT_MS: i64 = 1000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: i64 = 1000;
pub const DEFAULT_QUEUE_SIZE: i64 = 16384;

/// The module's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Send requests with ids and wait for replies.
    pub reliable: bool,
    /// Reliable: from queueing to reply. Both modes: an event not started within it fails.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Adds the event name as the first param under this key.
    pub event_param: Option<String>,
    pub queue_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            reliable: false,
            timeout: ms(DEFAULT_TIMEOUT_MS),
            connect_timeout: ms(DEFAULT_CONNECT_TIMEOUT_MS),
            event_param: None,
            queue_size: DEFAULT_QUEUE_SIZE as usize,
        }
    }
}

impl Config {
    pub fn from_params(p: &Params) -> Config {
        let int = |name: &str, default: i64| match p.get(name) {
            Some(_) => p.int(name),
            None => default,
        };
        Config {
            reliable: int("reliable_mode", 0) != 0,
            timeout: ms(int("timeout", DEFAULT_TIMEOUT_MS)),
            connect_timeout: ms(int("connect_timeout", DEFAULT_CONNECT_TIMEOUT_MS)),
            event_param: p
                .str("event_param")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            queue_size: usize::try_from(int("queue_size", DEFAULT_QUEUE_SIZE))
                .unwrap_or(1)
                .max(1),
        }
    }
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(1).max(1))
}

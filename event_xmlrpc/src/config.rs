//! Modparams, read once at `init` (the host has already checked types and ranges).

use crate::payload::NamedParams;
use evi_sdk::Params;
use std::time::Duration;

pub const DEFAULT_CONNECT_TIMEOUT_MS: i64 = 1000;
pub const DEFAULT_TIMEOUT_MS: i64 = 5000;
pub const DEFAULT_RETRIES: i64 = 2;
pub const DEFAULT_QUEUE_SIZE: i64 = 4096;

/// The module's settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub named: NamedParams,
    pub connect_timeout: Duration,
    /// For one request: writing it and reading the whole response.
    pub timeout: Duration,
    /// Extra attempts after a connect or I/O failure, an HTTP 5xx, or a timeout.
    pub retries: u32,
    /// Events waiting per destination; more are dropped and counted.
    pub queue_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            named: NamedParams::NameElement,
            connect_timeout: ms(DEFAULT_CONNECT_TIMEOUT_MS),
            timeout: ms(DEFAULT_TIMEOUT_MS),
            retries: DEFAULT_RETRIES as u32,
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
            named: if int("use_struct_param", 0) != 0 {
                NamedParams::Struct
            } else {
                NamedParams::NameElement
            },
            connect_timeout: ms(int("connect_timeout", DEFAULT_CONNECT_TIMEOUT_MS)),
            timeout: ms(int("timeout", DEFAULT_TIMEOUT_MS)),
            retries: u32::try_from(int("retries", DEFAULT_RETRIES)).unwrap_or(0),
            queue_size: usize::try_from(int("queue_size", DEFAULT_QUEUE_SIZE))
                .unwrap_or(1)
                .max(1),
        }
    }
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(1).max(1))
}

//! Modparams.

use crate::state::Timing;
use evi_sdk::Params;
use std::time::Duration;

pub const DEFAULT_FAILOVER_TIMEOUT: i64 = 30;
pub const DEFAULT_MEMBER_TIMEOUT_MS: i64 = 5000;

/// Read the modparams declared in lib.rs (the host has checked their types and ranges).
pub fn timing(p: &Params) -> Timing {
    let int = |name: &str, default: i64| match p.get(name) {
        None => default,
        Some(_) => p.int(name),
    };
    let rest = int("failover_timeout", DEFAULT_FAILOVER_TIMEOUT).max(0) as u64;
    let answer = int("member_timeout", DEFAULT_MEMBER_TIMEOUT_MS).max(0) as u64;
    Timing {
        rest: Duration::from_secs(rest),
        answer: (answer > 0).then(|| Duration::from_millis(answer)),
    }
}

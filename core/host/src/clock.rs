//! A coarse wall clock for the raise path: expiry checks need seconds, not a syscall per event.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub fn unix_now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Seconds updated by the host's timer thread (every 100 ms), read lock-free by raisers.
pub struct Clock {
    secs: AtomicI64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            secs: AtomicI64::new(unix_now()),
        }
    }
}

impl Clock {
    pub fn now(&self) -> i64 {
        self.secs.load(Ordering::Relaxed)
    }

    /// Microsecond timestamp of a raise (vDSO clock_gettime: no syscall).
    pub fn now_us(&self) -> i64 {
        unix_now_us()
    }

    pub fn tick(&self) {
        self.secs.store(unix_now(), Ordering::Relaxed);
    }
}

//! A coarse wall clock for the raise path: expiry checks need seconds, not a syscall per event.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds since the Unix epoch, from the kernel's coarse clock (updated every tick, read
/// without a syscall): for once-a-second log limits on paths that run per failed event.
pub fn unix_now() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; CLOCK_REALTIME_COARSE exists on every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    ts.tv_sec
}

/// Microseconds since the Unix epoch. Read twice per delivery (raise, outcome): straight from
/// vDSO `clock_gettime`, without `SystemTime`'s checked subtraction.
pub fn unix_now_us() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000
}

/// A module thread's outcome clock (see `FLUSH_CLOCK`).
#[derive(Clone, Copy)]
enum FlushClock {
    /// Not flushing: every outcome reads the clock.
    Off,
    /// Flushing; no outcome reported yet.
    Armed,
    /// Flushing; the time the first outcome read.
    At(i64),
}

thread_local! {
    /// While a module thread flushes, the outcomes its transport reports were all decided by
    /// the same write (a flatstore file's, a `sendmmsg`): the first reads the clock and the rest
    /// reuse it. A clock read per outcome was ~3% of flatstore's thread.
    static FLUSH_CLOCK: Cell<FlushClock> = const { Cell::new(FlushClock::Off) };
}

/// Run `flush` with outcome times shared (see `FLUSH_CLOCK`).
pub(crate) fn sharing_outcome_time(flush: impl FnOnce()) {
    FLUSH_CLOCK.set(FlushClock::Armed);
    flush();
    FLUSH_CLOCK.set(FlushClock::Off);
}

/// The time of an outcome being reported: shared within a flush, else read now.
pub(crate) fn outcome_now_us() -> i64 {
    match FLUSH_CLOCK.get() {
        FlushClock::Off => unix_now_us(),
        FlushClock::At(now) => now,
        FlushClock::Armed => {
            let now = unix_now_us();
            FLUSH_CLOCK.set(FlushClock::At(now));
            now
        }
    }
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

//! Delivery latency: from the raise to the transport's outcome (its `raise` returning for a
//! synchronous transport, its `delivery_status` for an async one), one histogram per module.
//!
//! An async outcome arrives with only the delivery ticket the host handed to `raise`, so the
//! ticket carries the raise time: the subscriber id in the low bits, the raise time (16 µs units,
//! wrapping every ~36 minutes) above it. Modules treat tickets as opaque.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the buckets, in µs (Prometheus `le`); a last bucket takes the rest.
pub const BOUNDS_US: [u64; 16] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    1_000_000, 5_000_000,
];

/// Subscriber ids fit below this (2^36; ids count subscriptions ever made).
const SUB_BITS: u32 = 36;
const SUB_MASK: u64 = (1 << SUB_BITS) - 1;
/// Raise time in 16 µs units, 27 bits: bit 63 stays free for member deliveries.
const TIME_SHIFT_US: u32 = 4;
const TIME_MASK: u64 = (1 << 27) - 1;

/// The delivery ticket for a raise of subscriber `sub` made at `raised_at_us`.
pub(crate) fn ticket(sub: u64, raised_at_us: i64) -> u64 {
    let t = (raised_at_us.max(0) as u64 >> TIME_SHIFT_US) & TIME_MASK;
    (sub & SUB_MASK) | (t << SUB_BITS)
}

/// The subscriber id of a ticket.
pub(crate) fn ticket_sub(ticket: u64) -> u64 {
    ticket & SUB_MASK
}

/// µs from the raise time in `ticket` to `now_us` (exact to 16 µs, for waits under ~36 min).
pub(crate) fn ticket_age_us(ticket: u64, now_us: i64) -> u64 {
    let then = (ticket >> SUB_BITS) & TIME_MASK;
    let now = (now_us.max(0) as u64 >> TIME_SHIFT_US) & TIME_MASK;
    (now.wrapping_sub(then) & TIME_MASK) << TIME_SHIFT_US
}

/// A fixed-bucket histogram, updated lock-free from any thread. The count is the buckets' sum
/// (one atomic add fewer per outcome).
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

/// A copy of a histogram: cumulative counts per bound (the last is `+Inf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub cumulative: Vec<u64>,
    pub sum_us: u64,
    pub count: u64,
}

impl Histogram {
    pub fn record(&self, us: u64) {
        let i = BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        Snapshot {
            cumulative,
            sum_us: self.sum_us.load(Ordering::Relaxed),
            count: total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_carry_the_subscriber_and_the_raise_time() {
        let t = ticket(12345, 1_790_000_000_123_456);
        assert_eq!(ticket_sub(t), 12345);
        assert_eq!(t >> 63, 0, "bit 63 marks member deliveries");
        let age = ticket_age_us(t, 1_790_000_000_123_456 + 5_000);
        assert!((4_984..=5_016).contains(&age), "{age}");
        // Across the wrap of the 27-bit time field.
        let wrap_us = (TIME_MASK as i64 + 1) << TIME_SHIFT_US;
        let t = ticket(7, wrap_us - 100);
        assert!(ticket_age_us(t, wrap_us + 900) <= 1_016);
    }

    #[test]
    fn buckets_are_cumulative_and_le_inclusive() {
        let h = Histogram::default();
        for us in [5, 10, 11, 2_000, 9_000_000] {
            h.record(us);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.sum_us, 9_002_026);
        assert_eq!(s.cumulative[0], 2, "5 and 10 are <= 10");
        assert_eq!(s.cumulative[1], 3);
        assert_eq!(s.cumulative[7], 4, "2000 <= 2500");
        assert_eq!(s.cumulative[BOUNDS_US.len() - 1], 4);
        assert_eq!(s.cumulative[BOUNDS_US.len()], 5, "+Inf");
    }
}

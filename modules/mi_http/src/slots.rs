//! The MI call slots: at most `threads` MI calls run at once; other connections wait.
//!
//! Why atomics before the mutex: every request takes and gives back a slot, from connection
//! threads on every CPU. A mutex cost two atomic writes on one shared word per take and per give;
//! a counter costs one each, and the mutex is taken only when a caller must wait or be woken.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex, PoisonError};

pub struct Slots {
    max: usize,
    running: AtomicUsize,
    /// Callers asleep on `freed` (only they need a wake-up: a notify is a system call).
    waiting: AtomicUsize,
    lock: Mutex<()>,
    freed: Condvar,
}

/// A slot, given back on drop.
#[must_use = "the slot is given back when this is dropped"]
pub struct Slot<'a>(&'a Slots);

impl Slots {
    /// At most `max` slots (at least 1).
    pub fn new(max: usize) -> Self {
        Slots {
            max: max.max(1),
            running: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            lock: Mutex::new(()),
            freed: Condvar::new(),
        }
    }

    /// Take a slot, waiting for one if all are taken.
    pub fn take(&self) -> Slot<'_> {
        if self.try_take() {
            return Slot(self);
        }
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        // Counted before the retry: a slot given back after the retry sees the waiter and must
        // take the lock to notify, which it can only do once this thread sleeps on `freed`.
        self.waiting.fetch_add(1, SeqCst);
        while !self.try_take() {
            guard = self
                .freed
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
        self.waiting.fetch_sub(1, SeqCst);
        Slot(self)
    }

    fn try_take(&self) -> bool {
        self.running
            .fetch_update(SeqCst, SeqCst, |n| (n < self.max).then_some(n + 1))
            .is_ok()
    }

    #[cfg(test)]
    fn running(&self) -> usize {
        self.running.load(SeqCst)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let s = self.0;
        s.running.fetch_sub(1, SeqCst);
        if s.waiting.load(SeqCst) > 0 {
            let _guard = s.lock.lock().unwrap_or_else(PoisonError::into_inner);
            s.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn never_more_than_max_run_and_every_waiter_gets_a_slot() {
        let slots = Arc::new(Slots::new(2));
        let (peak, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (slots, peak, done) = (slots.clone(), peak.clone(), done.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let _slot = slots.take();
                        peak.fetch_max(slots.running(), SeqCst);
                        if done.load(SeqCst) % 64 == 0 {
                            std::thread::yield_now();
                        }
                        done.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap_or_else(|_| panic!("a thread panicked"));
        }
        assert_eq!(done.load(SeqCst), 16_000);
        assert!((1..=2).contains(&peak.load(SeqCst)), "{peak:?}");
        assert_eq!(slots.running(), 0);
    }
}

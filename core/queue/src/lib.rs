//! # evi-queue: a bounded MPSC queue whose memory follows its backlog
//!
//! evid bounds every queue (a module's job queue, a transport's worker queue) so that a slow
//! destination costs counted drops, never unbounded memory. A preallocated bounded channel
//! (crossbeam's or std's `sync_channel`) allocates and touches every slot up front: 65,536 slots
//! per queue kept ~27 MB resident in an idle daemon. This is an unbounded (linked blocks)
//! channel plus a count of queued messages: an idle queue holds one block, a full one its
//! messages.
//!
//! The bound is exact for [`Sender::try_send`] and the waiting sends; [`Sender::send_always`]
//! may exceed it (control messages that must get through a full queue).
//!
//! ```
//! let (tx, rx) = evi_queue::bounded::<u32>(2);
//! assert!(tx.try_send(1).is_ok() && tx.try_send(2).is_ok());
//! assert_eq!(tx.try_send(3), Err(3));
//! assert_eq!(rx.recv(), Some(1));
//! assert!(tx.try_send(3).is_ok());
//! ```

use crossbeam_channel as cb;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

pub use cb::{RecvTimeoutError, TryRecvError};

/// How long a sender that found the queue full spins for room: a consumer that is only briefly
/// behind (a flatstore writer between two `write`s) frees a slot within microseconds.
const SPIN_FOR_ROOM: Duration = Duration::from_micros(20);
/// Then it naps this long at a time, and tries again once `wake_at` slots are free...
const NAP: Duration = Duration::from_micros(50);
/// ...for up to this long, before it sleeps until the receiver wakes it.
///
/// Why not sleep at once: a sleeping sender is woken by the receiver, and the scheduler wakes a
/// thread on the waker's CPU. A raiser paced by a module's full queue was pulled onto the
/// module thread's core at each wake-up; the two then shared one CPU, and the loop -> flatstore
/// rate stayed at ~1.3M instead of ~2.5M events/s for a whole run. Why not spin all along: a
/// raiser paced by a syscall-bound sender (UDP) then spins all the time, a third busy thread
/// beside the sender and its receiver on 2 CPUs (perf: 26% of the samples, half of them in the
/// spin). A nap ends on a timer, on the sender's own CPU, and costs no CPU meanwhile; retrying
/// only once `wake_at` slots are free lets it queue a run of messages.
const NAP_FOR: Duration = Duration::from_millis(2);

struct Count {
    queued: AtomicUsize,
    /// Senders waiting for room; the receiver wakes them when enough room is free.
    waiting: AtomicUsize,
    /// Free room at which waiting senders are woken: `min(256, cap / 8)`, at least 1. Waking
    /// them at every message taken cost a futex syscall per message whenever a producer
    /// outran its consumer (a module paced by its queue), and woke them for one slot each; at
    /// 64 a UDP sender thread still woke the raiser ~16k times per million events. Not more:
    /// a sender waits at most `evi_raise_wait` (100 ms), and a consumer of 10k events/s frees
    /// 256 slots in 26 ms.
    wake_at: usize,
    cap: usize,
    /// Live receivers: a sender waiting for room gives up when none is left.
    receivers: AtomicUsize,
    room: Mutex<()>,
    freed: Condvar,
    /// A receiver is in [`Receiver::doze`]; [`Sender::wake`] unparks `dozer`.
    dozing: AtomicBool,
    /// Set by [`Sender::wake`]: a doze that starts after it returns at once.
    urgent: AtomicBool,
    /// The thread that dozes (set by each doze; a reload starts a new thread on the same queue).
    dozer: Mutex<Option<Thread>>,
}

/// The sending side. Clone it for more producers.
pub struct Sender<T> {
    tx: cb::Sender<T>,
    count: Arc<Count>,
    cap: usize,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
            count: self.count.clone(),
            cap: self.cap,
        }
    }
}

/// The receiving side. Clones share the queue (each message goes to one of them).
pub struct Receiver<T> {
    rx: cb::Receiver<T>,
    count: Arc<Count>,
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.count.receivers.fetch_add(1, Ordering::SeqCst);
        Receiver {
            rx: self.rx.clone(),
            count: self.count.clone(),
        }
    }
}

/// A queue of at most `cap` messages (at least 1).
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = cb::unbounded();
    let cap = cap.max(1);
    let count = Arc::new(Count {
        queued: AtomicUsize::new(0),
        waiting: AtomicUsize::new(0),
        wake_at: (cap / 8).clamp(1, 256),
        cap,
        receivers: AtomicUsize::new(1),
        room: Mutex::new(()),
        freed: Condvar::new(),
        dozing: AtomicBool::new(false),
        urgent: AtomicBool::new(false),
        dozer: Mutex::new(None),
    });
    (
        Sender {
            tx,
            count: count.clone(),
            cap,
        },
        Receiver { rx, count },
    )
}

impl<T> Sender<T> {
    /// Queue `msg` if there is room; `Err` gives it back (full, or every receiver is gone).
    pub fn try_send(&self, msg: T) -> Result<(), T> {
        if self.count.queued.fetch_add(1, Ordering::SeqCst) >= self.cap {
            self.count.queued.fetch_sub(1, Ordering::SeqCst);
            // A dozing receiver would leave the queue full until its doze ends.
            self.wake();
            return Err(msg);
        }
        self.tx.send(msg).map_err(|e| {
            self.count.queued.fetch_sub(1, Ordering::SeqCst);
            e.into_inner()
        })
    }

    /// Queue `msg`, waiting up to `limit` for room.
    pub fn send_timeout(&self, msg: T, limit: Duration) -> Result<(), T> {
        self.send_until(msg, Some(Instant::now() + limit))
    }

    /// Queue `msg`, waiting as long as the queue is full; `Err` only if every receiver is gone.
    pub fn send(&self, msg: T) -> Result<(), T> {
        self.send_until(msg, None)
    }

    fn send_until(&self, msg: T, deadline: Option<Instant>) -> Result<(), T> {
        let mut msg = match self.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(m) => m,
        };
        // Spin, then nap, for room before sleeping (see `NAP_FOR`); the clock is read every 64
        // spins (it costs more than one). A queue with no receiver left ends the wait.
        let start = Instant::now();
        let spin_end = deadline.map_or(start + SPIN_FOR_ROOM, |d| d.min(start + SPIN_FOR_ROOM));
        'spin: loop {
            for _ in 0..64 {
                if self.count.receivers.load(Ordering::Relaxed) == 0 {
                    break 'spin;
                }
                if self.count.queued.load(Ordering::Relaxed) < self.cap {
                    msg = match self.try_send(msg) {
                        Ok(()) => return Ok(()),
                        Err(m) => m,
                    };
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= spin_end {
                break;
            }
        }
        let nap_end = deadline.map_or(start + NAP_FOR, |d| d.min(start + NAP_FOR));
        let roomy = self.cap.saturating_sub(self.count.wake_at);
        while self.count.receivers.load(Ordering::Relaxed) > 0 && Instant::now() < nap_end {
            // The last nap ends at the deadline, not past it.
            std::thread::sleep(NAP.min(nap_end.saturating_duration_since(Instant::now())));
            if self.count.queued.load(Ordering::Relaxed) <= roomy {
                msg = match self.try_send(msg) {
                    Ok(()) => return Ok(()),
                    Err(m) => m,
                };
            }
        }
        let c = &self.count;
        c.waiting.fetch_add(1, Ordering::SeqCst);
        let mut guard = lock(&c.room);
        let result = loop {
            // Checked under the lock the receiver takes to notify: no wake-up is missed.
            msg = match self.try_send(msg) {
                Ok(()) => break Ok(()),
                Err(m) => m,
            };
            if c.receivers.load(Ordering::SeqCst) == 0 {
                break Err(msg);
            }
            // Bounded waits also let a sender notice that the receivers are gone.
            let mut wait = Duration::from_millis(100);
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    break Err(msg);
                }
                wait = wait.min(d - now);
            }
            guard = c
                .freed
                .wait_timeout(guard, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        };
        drop(guard);
        c.waiting.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Queue `msg` whatever the count (stop and retire messages must get through a full
    /// queue), and [`wake`](Self::wake) a dozing receiver. `Err` only if every receiver is gone.
    pub fn send_always(&self, msg: T) -> Result<(), T> {
        self.count.queued.fetch_add(1, Ordering::SeqCst);
        let sent = self.tx.send(msg).map_err(|e| {
            self.count.queued.fetch_sub(1, Ordering::SeqCst);
            e.into_inner()
        });
        self.wake();
        sent
    }

    /// End a receiver's [`doze`](Receiver::doze) now (or the next one, if none is under way):
    /// for messages that must not wait out a doze. Ordinary sends never wake a dozing
    /// receiver; a receiver blocked in `recv` is woken by any send.
    pub fn wake(&self) {
        let c = &self.count;
        c.urgent.store(true, Ordering::SeqCst);
        if c.dozing.load(Ordering::SeqCst) {
            if let Some(t) = lock(&c.dozer).as_ref() {
                t.unpark();
            }
        }
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.count.queued.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }
}

impl<T> Receiver<T> {
    /// The next message, waiting for one; `None` once every sender is gone and the queue is
    /// empty.
    pub fn recv(&self) -> Option<T> {
        let m = self.rx.recv().ok()?;
        self.taken();
        Some(m)
    }

    /// Sleep for up to `limit` without being woken by the messages sent meanwhile (only by
    /// [`Sender::wake`], [`Sender::send_always`] and a sender finding the queue full): a
    /// consumer of a stream then takes in one batch what arrived while it slept, and the
    /// senders make no system call to wake it. May return early.
    pub fn doze(&self, limit: Duration) {
        let c = &self.count;
        {
            let mut dozer = lock(&c.dozer);
            let me = std::thread::current();
            if dozer.as_ref().is_none_or(|t| t.id() != me.id()) {
                *dozer = Some(me);
            }
        }
        // With `wake`'s store-then-load, either it sees `dozing` and unparks, or this sees
        // `urgent`: no wake-up is lost.
        c.dozing.store(true, Ordering::SeqCst);
        if !c.urgent.swap(false, Ordering::SeqCst) {
            std::thread::park_timeout(limit);
        }
        c.dozing.store(false, Ordering::SeqCst);
        c.urgent.store(false, Ordering::SeqCst);
    }

    /// The next message if one is queued.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let m = self.rx.try_recv()?;
        self.taken();
        Ok(m)
    }

    /// The next message, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let m = self.rx.recv_timeout(timeout)?;
        self.taken();
        Ok(m)
    }

    fn taken(&self) {
        let c = &self.count;
        let before = c.queued.fetch_sub(1, Ordering::SeqCst);
        // A sender waits only when the queue is full, so the room it waits for grows one by one
        // from 0 and passes `wake_at` exactly once (and a sender that checked before that sees
        // the room under the lock). An emptied queue wakes too, for senders of `send_always`
        // overfills.
        let room = c.cap.saturating_sub(before.saturating_sub(1));
        if (room == c.wake_at || before == 1) && c.waiting.load(Ordering::SeqCst) > 0 {
            let _g = lock(&c.room);
            c.freed.notify_all();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let c = &self.count;
        c.receivers.fetch_sub(1, Ordering::SeqCst);
        let _g = c.room.lock().unwrap_or_else(|p| p.into_inner());
        c.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_refuses_and_a_receive_makes_room() {
        let (tx, rx) = bounded(3);
        for i in 0..3 {
            assert_eq!(tx.try_send(i), Ok(()));
        }
        assert_eq!(tx.try_send(9), Err(9));
        assert_eq!(tx.len(), 3);
        assert_eq!(rx.try_recv(), Ok(0));
        assert_eq!(tx.try_send(3), Ok(()));
        assert_eq!(
            (1..4).map(|_| rx.recv()).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3)]
        );
        assert!(tx.is_empty());
    }

    #[test]
    fn a_waiting_sender_gets_in_when_the_receiver_takes_one() {
        let (tx, rx) = bounded(1);
        assert_eq!(tx.try_send(1), Ok(()));
        let t = std::thread::spawn(move || tx.send_timeout(2, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(rx.recv(), Some(1));
        assert_eq!(t.join().ok(), Some(Ok(())));
        assert_eq!(rx.recv(), Some(2));
    }

    #[test]
    fn a_bounded_wait_gives_the_message_back() {
        let (tx, _rx) = bounded(1);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.send_timeout(2, Duration::from_millis(20)), Err(2));
        assert_eq!(tx.send_always(3), Ok(()), "control messages get through");
        assert_eq!(tx.len(), 2);
    }

    #[test]
    fn senders_gone_ends_the_receiver_after_the_backlog() {
        let (tx, rx) = bounded(4);
        assert_eq!(tx.try_send(1), Ok(()));
        drop(tx);
        assert_eq!(rx.recv(), Some(1));
        assert_eq!(rx.recv(), None);
    }

    #[test]
    fn a_doze_ignores_sends_and_ends_at_a_wake() {
        let (tx, rx) = bounded::<u8>(64);
        let t0 = Instant::now();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(
                tx.try_send(1),
                Ok(()),
                "an ordinary send does not end the doze"
            );
            std::thread::sleep(Duration::from_millis(80));
            tx.wake();
            tx
        });
        rx.doze(Duration::from_secs(5));
        let woke = t0.elapsed();
        assert!(
            woke >= Duration::from_millis(90) && woke < Duration::from_secs(4),
            "{woke:?}"
        );
        let tx = sender.join().unwrap_or_else(|_| panic!("sender panicked"));
        assert_eq!(rx.try_recv(), Ok(1));
        // A wake before the doze: the doze returns at once.
        tx.wake();
        let t1 = Instant::now();
        rx.doze(Duration::from_secs(5));
        assert!(t1.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn a_sender_finding_the_queue_full_ends_a_doze() {
        let (tx, rx) = bounded::<u8>(1);
        assert_eq!(tx.try_send(1), Ok(()));
        let t0 = Instant::now();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send_timeout(2, Duration::from_secs(10))
        });
        rx.doze(Duration::from_secs(5));
        assert!(t0.elapsed() < Duration::from_secs(4));
        assert_eq!(rx.recv(), Some(1));
        assert_eq!(sender.join().ok(), Some(Ok(())));
        assert_eq!(rx.recv(), Some(2));
    }

    #[test]
    fn a_short_deadline_ends_the_naps_and_a_gone_receiver_ends_the_wait() {
        let (tx, rx) = bounded(64);
        for i in 0..64 {
            assert_eq!(tx.try_send(i), Ok(()));
        }
        // Shorter than the naps: refused, and not after the naps' 2 ms plus the 100 ms of a
        // condvar wait (the bound is loose: this checks that the wait ends, not its speed).
        let t0 = Instant::now();
        assert_eq!(tx.send_timeout(99, Duration::from_micros(300)), Err(99));
        assert!(
            t0.elapsed() < Duration::from_millis(100),
            "{:?}",
            t0.elapsed()
        );
        // A sender napping or sleeping for room gives up once the receiver is gone.
        let t = std::thread::spawn(move || tx.send(100));
        std::thread::sleep(Duration::from_millis(1));
        drop(rx);
        assert_eq!(t.join().ok(), Some(Err(100)));
    }

    #[test]
    fn receivers_gone_fails_sends() {
        let (tx, rx) = bounded::<u8>(4);
        drop(rx);
        assert_eq!(tx.try_send(1), Err(1));
        assert_eq!(tx.send(2), Err(2));
    }
}

//! A module's own thread: a named thread fed by a bounded queue, joined when stopped or dropped.
//!
//! ## Thread rules (from the ABI)
//! - The host calls a module on one host-owned thread per instance, one call at a time, and a
//!   transport's `raise` **must not block**. Blocking I/O (a TCP peer, a broker, a slow disk)
//!   belongs on the module's own thread: `raise` hands the event over with [`Worker::try_send`]
//!   (never waits; a full queue is an error the host counts), answers [`Raised::Pending`], and
//!   the worker reports the outcome with [`Host::delivery_status`], exactly once per delivery.
//! - Every thread a module starts must be **joined before `destroy` returns**: the host unloads
//!   the library after `destroy` (on a dev reload), and a thread still running its code would
//!   crash the daemon. Keep workers in the module struct and call [`Worker::stop`] in
//!   [`Module::destroy`] (dropping the struct also joins them, as a safety net).
//! - A module needing async I/O owns its runtime on such a thread and shuts it down the same
//!   way; it cannot use the host's (each `.so` has its own copy of every crate).
//! - [`Host`] is `Copy + Send + Sync` and may be used from a worker until `destroy` returns;
//!   `log::info!` and friends work from any module thread.
//! - Do not register thread-locals with destructors on host threads; on a worker they are fine
//!   (the thread exits before the library is unloaded).
//!
//! ```
//! use evi_sdk::worker::Worker;
//! use std::sync::mpsc;
//!
//! // A worker for closures: `post` them, they run in order on the worker's thread.
//! let mut jobs = Worker::jobs("demo-jobs", 64)?;
//! let (tx, rx) = mpsc::channel();
//! jobs.post(move || tx.send(6 * 7).unwrap_or(())).map_err(|_| "queue full")?;
//! assert_eq!(rx.recv().ok(), Some(42));
//! jobs.stop(); // runs what is queued, then joins
//!
//! // A worker with its own loop over typed messages.
//! let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
//! let t = total.clone();
//! let mut summer = Worker::spawn("demo-sum", 16, move |inbox| {
//!     while let Some(n) = inbox.recv() {
//!         t.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
//!     }
//! })?;
//! for n in 1..=10 {
//!     summer.send(n).map_err(|_| "worker gone")?;
//! }
//! summer.stop();
//! assert_eq!(total.load(std::sync::atomic::Ordering::Relaxed), 55);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Raised::Pending`]: crate::Raised::Pending
//! [`Host::delivery_status`]: crate::Host::delivery_status
//! [`Host`]: crate::Host
//! [`Module::destroy`]: crate::Module::destroy

use evi_queue::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

/// A boxed closure, the message type of [`Worker::jobs`].
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// A named thread with a bounded queue of `M`. Stopping (or dropping) it closes the queue, lets
/// the thread finish what is queued, and joins it.
pub struct Worker<M: Send + 'static> {
    name: String,
    tx: Option<Sender<M>>,
    thread: Option<JoinHandle<()>>,
}

/// The receiving end, handed to the worker's body. Every receive returns `None` once the
/// [`Worker`] is stopped and the queue is empty: that is the body's signal to return.
pub struct Inbox<M> {
    rx: Receiver<M>,
}

/// What [`Inbox::recv_timeout`] got.
#[derive(Debug, PartialEq, Eq)]
pub enum Recv<M> {
    /// A message.
    Msg(M),
    /// Nothing within the timeout; the worker is still running.
    Timeout,
    /// The worker was stopped and the queue is empty: return from the body.
    Stopped,
}

impl<M> Inbox<M> {
    /// Wait for the next message; `None` when stopped and drained.
    pub fn recv(&self) -> Option<M> {
        self.rx.recv()
    }

    /// Wait at most `timeout` for the next message (for bodies that also poll a socket or a
    /// timer).
    pub fn recv_timeout(&self, timeout: Duration) -> Recv<M> {
        match self.rx.recv_timeout(timeout) {
            Ok(m) => Recv::Msg(m),
            Err(RecvTimeoutError::Timeout) => Recv::Timeout,
            Err(RecvTimeoutError::Disconnected) => Recv::Stopped,
        }
    }

    /// The next message if one is queued, without waiting.
    pub fn try_recv(&self) -> Recv<M> {
        match self.rx.try_recv() {
            Ok(m) => Recv::Msg(m),
            Err(TryRecvError::Empty) => Recv::Timeout,
            Err(TryRecvError::Disconnected) => Recv::Stopped,
        }
    }
}

impl<M: Send + 'static> Worker<M> {
    /// Start thread `name` running `body` with a queue of `capacity` messages (at least 1).
    /// `body` returns when [`Inbox`] says the worker stopped (or earlier, if it wants to).
    pub fn spawn(
        name: &str,
        capacity: usize,
        body: impl FnOnce(Inbox<M>) + Send + 'static,
    ) -> std::io::Result<Self> {
        // Memory follows the backlog: a large capacity costs nothing while the queue is short.
        let (tx, rx) = evi_queue::bounded(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || body(Inbox { rx }))?;
        Ok(Worker {
            name: name.to_string(),
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queue `msg` without waiting: for `raise`, which must not block. Gives the message back
    /// when the queue is full or the worker has stopped.
    pub fn try_send(&self, msg: M) -> Result<(), M> {
        match &self.tx {
            Some(tx) => tx.try_send(msg),
            None => Err(msg),
        }
    }

    /// Queue `msg`, waiting while the queue is full (not from `raise`). Gives it back when the
    /// worker has stopped.
    pub fn send(&self, msg: M) -> Result<(), M> {
        match &self.tx {
            Some(tx) => tx.send(msg),
            None => Err(msg),
        }
    }

    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the thread is still running (false after [`Worker::stop`] or if the body
    /// returned or panicked).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Close the queue without waiting: the body sees every message queued before, then `None`,
    /// and ends on its own. Join it later with [`Worker::stop`] (or drop) in `destroy`; for a
    /// worker no longer needed while others keep running (its last socket was freed).
    pub fn close(&mut self) {
        drop(self.tx.take());
    }

    /// Close the queue and join the thread: the body sees every message queued before, then
    /// `None`. Call it from `destroy`. Idempotent. A panic in the body is logged, not re-raised.
    pub fn stop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("worker thread {} panicked", self.name);
            }
        }
    }
}

impl Worker<Job> {
    /// A worker that runs posted closures in order.
    pub fn jobs(name: &str, capacity: usize) -> std::io::Result<Self> {
        Self::spawn(name, capacity, |inbox: Inbox<Job>| {
            while let Some(job) = inbox.recv() {
                job();
            }
        })
    }

    /// Queue a closure without waiting; gives it back when the queue is full or stopped.
    pub fn post(&self, job: impl FnOnce() + Send + 'static) -> Result<(), Job> {
        self.try_send(Box::new(job))
    }
}

impl<M: Send + 'static> Drop for Worker<M> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<M: Send + 'static> std::fmt::Debug for Worker<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field("running", &self.is_running())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::sync::Arc;

    #[test]
    fn stop_drains_the_queue_then_joins() {
        let n = Arc::new(AtomicUsize::new(0));
        let mut w = Worker::jobs("t-drain", 1000).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..100 {
            let n = n.clone();
            assert!(w
                .post(move || {
                    n.fetch_add(1, Ordering::Relaxed);
                })
                .is_ok());
        }
        w.stop();
        assert_eq!(n.load(Ordering::Relaxed), 100);
        assert!(!w.is_running());
        assert!(w.post(|| ()).is_err(), "a stopped worker takes nothing");
        w.stop();
    }

    #[test]
    fn try_send_never_blocks_on_a_full_queue() {
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let w = Worker::spawn("t-full", 2, move |inbox: Inbox<u32>| {
            let _ = gate_rx.recv();
            while inbox.recv().is_some() {}
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let mut accepted = 0;
        for i in 0..10 {
            if w.try_send(i).is_ok() {
                accepted += 1;
            }
        }
        assert!(accepted <= 3, "accepted {accepted} with capacity 2");
        let _ = gate_tx.send(());
        drop(w); // joins
    }

    #[test]
    fn a_panicking_body_is_joined_and_reported() {
        let mut w = Worker::spawn("t-panic", 1, |_inbox: Inbox<()>| panic!("worker boom"))
            .unwrap_or_else(|e| panic!("{e}"));
        w.stop();
        assert!(!w.is_running());
    }

    #[test]
    fn recv_timeout_reports_stop() {
        let (tx, rx) = mpsc::channel();
        let mut w = Worker::spawn("t-timeout", 1, move |inbox: Inbox<()>| loop {
            match inbox.recv_timeout(Duration::from_millis(5)) {
                Recv::Msg(()) | Recv::Timeout => {}
                Recv::Stopped => {
                    let _ = tx.send("stopped");
                    return;
                }
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
        w.stop();
        assert_eq!(rx.recv().ok(), Some("stopped"));
    }
}

//! One broker: the state shared between the module thread (which only enqueues) and the broker's
//! task on the module's runtime (which connects, publishes and collects confirms).

use crate::buffer::{Buffer, Dropped, Limits, Message, Refused};
use crate::tls::Domain;
use crate::uri::BrokerKey;
use evi_sdk::json::{json, Value};
use evi_sdk::{Delivery, Host};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

/// How [`Broker::enqueue`] took an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Made {
    /// There was room.
    Room,
    /// The buffer was full: its oldest events were dropped (and reported failed).
    ByDroppingOldest,
}

/// Why [`Broker::enqueue`] refused an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its body (bytes) is larger than `buffer_bytes`.
    TooBig(usize),
    /// The buffer is full and `buffer_full_drop` is "newest".
    Full,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooBig(n) => write!(
                f,
                "event of {n} bytes is larger than the rabbitmq buffer (buffer_bytes)"
            ),
            Refusal::Full => {
                f.write_str("rabbitmq buffer full: the newest event is refused (buffer_full_drop)")
            }
        }
    }
}

/// Where delivery outcomes go: the host's `delivery_status`, or a recorder in unit tests.
/// Called exactly once per accepted event, from the module thread or the runtime thread.
pub type Sink = Arc<dyn Fn(Delivery, Result<(), &str>) + Send + Sync>;

/// At most one "buffer full" line per this interval (pub for the unit tests): during an outage every raise drops one.
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Counters, all monotonic except `connected`.
#[derive(Default)]
pub struct Counters {
    pub confirmed: AtomicU64,
    /// Nacked, returned (mandatory), refused by the broker, or failed at shutdown.
    pub failed: AtomicU64,
    pub returned: AtomicU64,
    /// Dropped because the buffer was full.
    pub dropped: AtomicU64,
    /// Events handed to a new channel again after a connection loss (possible duplicates).
    pub resent: AtomicU64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
}

/// Rate limit of the "buffer full" line: drops not logged yet, and when the last line was
/// written.
#[derive(Default)]
pub struct DropLog {
    pending: u64,
    since: Option<Instant>,
}

impl DropLog {
    /// Count `n` more drops.
    pub fn add(&mut self, n: u64) {
        self.pending += n;
    }

    /// The line due at `now`, if any: how many were dropped and since when (`None` for the
    /// first line). At most one per [`DROP_LOG_INTERVAL`].
    pub fn due(&mut self, now: Instant) -> Option<(u64, Option<Duration>)> {
        if self.pending == 0 {
            return None;
        }
        let since = self.since.map(|t| now.saturating_duration_since(t));
        if since.is_some_and(|d| d < DROP_LOG_INTERVAL) {
            return None;
        }
        self.since = Some(now);
        Some((std::mem::take(&mut self.pending), since))
    }
}

pub struct Broker {
    pub key: BrokerKey,
    buffer: Mutex<Buffer>,
    /// The task's waker while it is parked; whoever has news for it takes and wakes it.
    waiter: Mutex<Option<Waker>>,
    /// The task is parked waiting for new events (not only for confirms, a timer or a
    /// reconnect): only then does a raise wake it, so raises while the broker is down, blocked
    /// or busy cost no cross-thread wake-up.
    wants_events: AtomicBool,
    pub counters: Counters,
    pub connected: AtomicBool,
    /// The last connect attempt failed (cleared by the next that succeeds): new events are
    /// held by the daemon from then on (see [`Broker::note_hold`]).
    pub unreachable: AtomicBool,
    /// The broker has blocked the connection (resource alarm): publishes wait in lapin.
    pub blocked: AtomicBool,
    /// No socket uses this broker any more: finish the buffer, then close.
    pub retired: AtomicBool,
    /// The module is stopping: drain until the deadline, then fail the rest.
    pub stopping: AtomicBool,
    last_error: Mutex<String>,
    drop_log: Mutex<DropLog>,
    sink: Sink,
    /// The daemon, for ending the holds of [`Broker::note_hold`]; `None` in unit tests.
    host: Option<Host>,
    /// Sockets whose new events the daemon holds while this broker is unreachable (drop-oldest
    /// buffers only): a delivery of each, and the socket's flag to clear when released.
    holds: Mutex<Vec<(Delivery, Arc<AtomicBool>)>>,
    /// The TLS domain of `key.tls_domain`, resolved when the broker was created.
    pub tls: Option<Domain>,
    /// A handle on the current connection's TCP socket: lapin cannot close a connection whose
    /// close frame the broker does not read (blocked), so a stop shuts the socket down.
    socket: Mutex<Option<std::net::TcpStream>>,
}

impl Broker {
    pub fn new(key: BrokerKey, tls: Option<Domain>, limits: Limits, sink: Sink) -> Broker {
        Broker {
            tls,
            socket: Mutex::new(None),
            key,
            buffer: Mutex::new(Buffer::new(limits)),
            waiter: Mutex::new(None),
            wants_events: AtomicBool::new(false),
            counters: Counters::default(),
            connected: AtomicBool::new(false),
            unreachable: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            last_error: Mutex::new(String::new()),
            drop_log: Mutex::new(DropLog::default()),
            sink,
            host: None,
            holds: Mutex::new(Vec::new()),
        }
    }

    /// Let this broker end the daemon's holds (see [`Broker::note_hold`]).
    pub fn with_host(mut self, host: Option<Host>) -> Broker {
        self.host = host;
        self
    }

    /// The daemon now holds the new events of the socket of `delivery` (its `flag` set) until
    /// this broker connects again. Called from `raise`.
    pub fn note_hold(&self, delivery: Delivery, flag: Arc<AtomicBool>) {
        self.holds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((delivery, flag));
        // Connected meanwhile: the task may have released before this hold was noted.
        if self.connected.load(Ordering::SeqCst) {
            self.release_holds();
        }
    }

    /// End every hold: the daemon hands the held events to `raise`, in raise order (they push
    /// this buffer's oldest out if it is still full, as drop-oldest would have).
    pub fn release_holds(&self) {
        let held = std::mem::take(&mut *self.holds.lock().unwrap_or_else(|p| p.into_inner()));
        for (delivery, flag) in held {
            flag.store(false, Ordering::SeqCst);
            if let Some(h) = &self.host {
                h.release(delivery);
            }
        }
    }

    /// Keep a handle on the connection's socket (called by the connector, on lapin's thread).
    pub fn set_socket(&self, s: Option<std::net::TcpStream>) {
        *self.socket.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// Shut the current connection's socket down: lapin's I/O thread sees the error and ends.
    pub fn cut(&self) {
        if let Some(s) = self.socket.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The buffer; held only for short, non-blocking operations.
    pub fn buffer(&self) -> MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accept an event (module thread). Never waits on the network. `Err` when the buffer
    /// refuses it: larger than the whole buffer, or full under `buffer_full_drop = "newest"`
    /// (counted as dropped).
    pub fn enqueue(&self, m: Message) -> Result<Made, Refusal> {
        let pushed = self.buffer().push(m);
        match pushed {
            Ok(dropped) => {
                let made = if dropped.is_empty() {
                    Made::Room
                } else {
                    self.dropped(dropped);
                    Made::ByDroppingOldest
                };
                // Relaxed first: the common case (task busy or waiting on the broker) stays a
                // plain load. The buffer's mutex orders this after the task's own store.
                if self.wants_events.load(Ordering::Relaxed)
                    && self.wants_events.swap(false, Ordering::AcqRel)
                {
                    self.wake_task();
                }
                Ok(made)
            }
            Err(Refused::TooBig(m)) => Err(Refusal::TooBig(m.body.len())),
            Err(Refused::Full(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                Err(Refusal::Full)
            }
        }
    }

    fn dropped(&self, dropped: Dropped) {
        let n = dropped.len() as u64;
        let before = self.counters.dropped.fetch_add(n, Ordering::Relaxed);
        let line = {
            let mut log = self.drop_log.lock().unwrap_or_else(|p| p.into_inner());
            log.add(n);
            // While the broker is down every raise drops one: the clock is read on the first
            // drop and every 1,024th (the task's periodic `log_drops` writes the rest).
            before
                .is_multiple_of(1024)
                .then(|| log.due(Instant::now()))
                .flatten()
        };
        self.write_drop_line(line);
        for old in dropped {
            if let Some(d) = old.delivery {
                (self.sink)(d, Err("dropped: rabbitmq buffer full"));
            }
        }
    }

    /// Log the drops not logged yet, if the last line is old enough. The task calls this
    /// periodically, so the last drops of a burst are logged too.
    pub fn log_drops(&self) {
        let line = self
            .drop_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .due(Instant::now());
        self.write_drop_line(line);
    }

    fn write_drop_line(&self, line: Option<(u64, Option<Duration>)>) {
        let Some((n, since)) = line else {
            return;
        };
        let during = since
            .map(|d| format!(" in the last {} ms", d.as_millis()))
            .unwrap_or_default();
        log::warn!(
            "rabbitmq {}: buffer full, dropped the {n} oldest event(s){during}",
            self.key.label()
        );
    }

    /// Wake the task if it is parked.
    pub fn wake_task(&self) {
        let w = self.waiter.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Park the task (before it returns `Pending`): `stop`, `retire` and, when `want_events`,
    /// the next raise will wake `waker`. Returns whether unsent events are already waiting
    /// (then the task must not sleep: their raise may have come before the flag was set).
    pub fn park(&self, waker: &Waker, want_events: bool) -> bool {
        {
            let mut w = self.waiter.lock().unwrap_or_else(|p| p.into_inner());
            match &mut *w {
                Some(old) => old.clone_from(waker),
                None => *w = Some(waker.clone()),
            }
        }
        self.wants_events.store(want_events, Ordering::Release);
        want_events && self.buffer().unsent() > 0
    }

    /// Report the outcome of a message that has left the buffer.
    pub fn report(&self, m: &Message, result: Result<(), &str>) {
        let c = if result.is_ok() {
            &self.counters.confirmed
        } else {
            &self.counters.failed
        };
        c.fetch_add(1, Ordering::Relaxed);
        match (m.delivery, result) {
            (Some(d), r) => (self.sink)(d, r),
            (None, Err(why)) => log::warn!(
                "rabbitmq {}: rabbitmq_publish to '{}' failed: {why}",
                self.key.label(),
                m.target.routing_key
            ),
            (None, Ok(())) => {}
        }
    }

    /// Remember the latest error and log it when it changes (a broker that stays down is
    /// logged once, not at every attempt).
    pub fn set_error(&self, err: &str) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        if *last != err {
            log::warn!("rabbitmq {}: {err}", self.key.label());
            *last = err.to_string();
        }
    }

    pub fn clear_error(&self) {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Ask the task to stop (module `destroy`).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.wake_task();
    }

    /// No socket uses this broker any more.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.wake_task();
    }

    /// The MI view (`event_rabbitmq:status`).
    pub fn status(&self) -> Value {
        let (buffered, in_flight, bytes) = {
            let b = self.buffer();
            (b.len(), b.in_flight(), b.bytes())
        };
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "broker": self.key.label(),
            "connected": self.connected.load(Ordering::Relaxed),
            "blocked": self.blocked.load(Ordering::Relaxed),
            "buffered": buffered,
            "in_flight": in_flight,
            "buffered_bytes": bytes,
            "confirmed": n(&c.confirmed),
            "failed": n(&c.failed),
            "returned": n(&c.returned),
            "dropped": n(&c.dropped),
            "resent": n(&c.resent),
            "connects": n(&c.connects),
            "connect_failures": n(&c.connect_failures),
            "last_error": self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        })
    }
}

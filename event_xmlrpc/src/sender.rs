//! One sender thread per destination, fed by a bounded queue.
//!
//! A destination is a server (`host:port` as written, plus its resolved address); every
//! subscriber socket that names it shares its thread and its keep-alive connection. The
//! module thread only builds the body and `try_send`s it, so a slow or dead server fills its
//! own queue (then drops, counted) and never delays the raiser or another destination.

use crate::config::Config;
use crate::http::{self, Conn, HttpError};
use crate::uri::Dest;
use evi_sdk::queue::{Receiver, Sender};
use evi_sdk::Delivery;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where a worker reports the outcome of each job (the host's `delivery_status` in the module).
pub type Report = Arc<dyn Fn(Delivery, Result<(), &str>) + Send + Sync>;

/// One event for one destination.
pub struct Job {
    pub delivery: Delivery,
    /// The full request: head and body.
    pub request: Vec<u8>,
}

/// Counters of one destination, read by the `event_xmlrpc:stats` MI command.
#[derive(Default, Debug)]
pub struct Stats {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub retries: AtomicU64,
    pub connections: AtomicU64,
    /// The last connection attempt failed (cleared by the next that succeeds).
    pub down: AtomicBool,
    /// No socket uses this destination any more: what is queued is tried once, without
    /// retries, and after a failure the rest fails at once, so the thread ends soon.
    pub closing: AtomicBool,
    pub queued: AtomicU64,
}

/// A destination's queue, shared by the sockets that name it.
pub struct Route {
    tx: Sender<Job>,
    pub stats: Arc<Stats>,
    /// `host:port`, for messages.
    pub name: String,
    capacity: usize,
}

impl Route {
    /// Whether the destination is unreachable now (its last connection attempt failed).
    pub fn is_down(&self) -> bool {
        self.stats.down.load(Ordering::Relaxed)
    }

    /// Refuse an event before it is built when the queue is full (a dead or slow destination
    /// then costs a raise one load and a count, not a payload).
    pub fn check_room(&self) -> Result<(), String> {
        if self.tx.len() < self.capacity {
            return Ok(());
        }
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        Err(self.full())
    }

    fn full(&self) -> String {
        format!(
            "xmlrpc:{}: queue full ({} events waiting), event dropped",
            self.name, self.capacity
        )
    }

    /// Queue `job`; never blocks. A full queue drops the event and counts it.
    pub fn send(&self, job: Job) -> Result<(), String> {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.try_send(job).map_err(|_| {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            if self.tx.len() >= self.capacity {
                self.full()
            } else {
                format!("xmlrpc:{}: sender stopped, event dropped", self.name)
            }
        })
    }
}

/// Identity of a destination: the resolved address and the `Host:` it is addressed by.
type Key = (SocketAddr, String);

struct Entry {
    route: Arc<Route>,
    thread: JoinHandle<()>,
}

/// Every destination's thread, started on first use and joined in [`Senders::stop`].
pub struct Senders {
    cfg: Arc<Config>,
    report: Report,
    stopping: Arc<AtomicBool>,
    routes: HashMap<Key, Entry>,
    /// Threads of destinations whose last socket was freed: they finish their queue and exit.
    retired: Vec<JoinHandle<()>>,
}

impl Senders {
    pub fn new(cfg: Config, report: Report) -> Senders {
        Senders {
            cfg: Arc::new(cfg),
            report,
            stopping: Arc::new(AtomicBool::new(false)),
            routes: HashMap::new(),
            retired: Vec::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The queue of `dest`'s server, starting its thread if it has none.
    pub fn route(&mut self, dest: &Dest) -> Result<Arc<Route>, String> {
        let key = (dest.addr, dest.authority().to_ascii_lowercase());
        if let Some(e) = self.routes.get(&key) {
            return Ok(e.route.clone());
        }
        let (tx, rx) = evi_sdk::queue::bounded(self.cfg.queue_size);
        let route = Arc::new(Route {
            tx,
            stats: Arc::new(Stats::default()),
            name: dest.authority(),
            capacity: self.cfg.queue_size,
        });
        let worker = Worker {
            addr: dest.addr,
            name: route.name.clone(),
            cfg: self.cfg.clone(),
            stats: route.stats.clone(),
            report: self.report.clone(),
            stopping: self.stopping.clone(),
            conn: None,
        };
        let thread = std::thread::Builder::new()
            .name("evid-xmlrpc".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| format!("xmlrpc:{}: cannot start sender thread: {e}", route.name))?;
        self.routes.insert(
            key,
            Entry {
                route: route.clone(),
                thread,
            },
        );
        self.reap();
        Ok(route)
    }

    /// A socket let go of its route: when no socket uses it any more, its thread finishes what
    /// is queued and exits (joined later, never waited for here).
    pub fn release(&mut self, route: Arc<Route>) {
        drop(route);
        let idle: Vec<Key> = self
            .routes
            .iter()
            .filter(|(_, e)| Arc::strong_count(&e.route) == 1)
            .map(|(k, _)| k.clone())
            .collect();
        for k in idle {
            if let Some(e) = self.routes.remove(&k) {
                e.route.stats.closing.store(true, Ordering::Release);
                drop(e.route);
                self.retired.push(e.thread);
            }
        }
        self.reap();
    }

    fn reap(&mut self) {
        let (done, running): (Vec<_>, Vec<_>) =
            self.retired.drain(..).partition(|t| t.is_finished());
        self.retired = running;
        for t in done {
            let _ = t.join();
        }
    }

    /// Stop: every queued event is still attempted once (no retries, no backoff) and reported,
    /// then every thread is joined.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        let entries: Vec<Entry> = self.routes.drain().map(|(_, e)| e).collect();
        let mut threads = std::mem::take(&mut self.retired);
        for e in entries {
            drop(e.route);
            threads.push(e.thread);
        }
        for t in threads {
            let _ = t.join();
        }
    }

    /// `(destination, counters)` for every live destination.
    pub fn stats(&self) -> Vec<(String, Arc<Stats>)> {
        let mut v: Vec<_> = self
            .routes
            .values()
            .map(|e| (e.route.name.clone(), e.route.stats.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// The state of one destination's thread.
struct Worker {
    addr: SocketAddr,
    name: String,
    cfg: Arc<Config>,
    stats: Arc<Stats>,
    report: Report,
    stopping: Arc<AtomicBool>,
    conn: Option<Conn>,
}

impl Worker {
    /// The module is stopping, or no socket uses this destination any more.
    fn ending(&self) -> bool {
        self.stopping.load(Ordering::Acquire) || self.stats.closing.load(Ordering::Acquire)
    }

    /// Until every sender is gone and the queue is empty.
    fn run(mut self, rx: Receiver<Job>) {
        // Once stopping (or closing), a server that failed is not tried again for the rest of
        // the queue.
        let mut dead_at_stop: Option<String> = None;
        while let Some(job) = rx.recv() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            let result = match &dead_at_stop {
                Some(why) => Err(format!(
                    "not sent: the server failed while this sender was ending: {why}"
                )),
                None => self.deliver(&job),
            };
            match result {
                Ok(()) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    (self.report)(job.delivery, Ok(()));
                }
                Err(why) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    if self.ending() && dead_at_stop.is_none() {
                        dead_at_stop = Some(why.clone());
                    }
                    (self.report)(job.delivery, Err(&format!("xmlrpc:{}: {why}", self.name)));
                }
            }
        }
    }

    /// Attempts with exponential backoff; faults and HTTP 4xx are final (the server answered).
    fn deliver(&mut self, job: &Job) -> Result<(), String> {
        let mut attempt = 0;
        loop {
            let err = match self.attempt(&job.request) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let retryable = match &err {
                Attempt::Http(HttpError::Io { .. }) => true,
                Attempt::Http(HttpError::Status(code, _)) => *code >= 500,
                Attempt::Http(HttpError::Protocol(_)) | Attempt::Fault(_) => false,
            };
            if !retryable || attempt >= self.cfg.retries || self.ending() {
                let tries = if attempt > 0 {
                    format!(" (after {} attempts)", attempt + 1)
                } else {
                    String::new()
                };
                return Err(format!("{err}{tries}"));
            }
            self.backoff(attempt);
            attempt += 1;
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// 100 ms, 200 ms, 400 ms ... capped at 5 s; cut short when the module stops.
    fn backoff(&self, attempt: u32) {
        let total = Duration::from_millis(100u64 << attempt.min(6)).min(Duration::from_secs(5));
        let step = Duration::from_millis(20);
        let mut slept = Duration::ZERO;
        while slept < total && !self.ending() {
            std::thread::sleep(step);
            slept += step;
        }
    }

    /// One attempt: reuse the connection, or connect. A reused connection the server had
    /// already closed is replaced once, at no attempt's cost (the request never reached it).
    fn attempt(&mut self, request: &[u8]) -> Result<(), Attempt> {
        for _ in 0..2 {
            if self.conn.is_none() {
                let conn = Conn::connect(self.addr, self.cfg.connect_timeout);
                self.stats.down.store(conn.is_err(), Ordering::Relaxed);
                self.conn = Some(conn?);
                self.stats.connections.fetch_add(1, Ordering::Relaxed);
            }
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            match conn.exchange(request, self.cfg.timeout) {
                Ok(resp) => {
                    if !resp.keep_alive {
                        self.conn = None;
                    }
                    return match http::fault(&resp.body) {
                        Some(f) => Err(Attempt::Fault(f)),
                        None => Ok(()),
                    };
                }
                Err(HttpError::Io { stale: true, .. }) => self.conn = None,
                Err(e) => {
                    // After any other failure the connection's state is unknown.
                    self.conn = None;
                    return Err(e.into());
                }
            }
        }
        Err(Attempt::Http(HttpError::Io {
            what: "server closed the connection twice before answering".into(),
            stale: false,
        }))
    }
}

/// Why one attempt failed.
enum Attempt {
    Http(HttpError),
    Fault(String),
}

impl From<HttpError> for Attempt {
    fn from(e: HttpError) -> Self {
        Attempt::Http(e)
    }
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Http(e) => write!(f, "{e}"),
            Attempt::Fault(s) => f.write_str(s),
        }
    }
}

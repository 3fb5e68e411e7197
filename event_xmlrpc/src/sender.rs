//! The sender thread of one destination (an XML-RPC server).
//!
//! A destination is a server (`host:port` as written, plus its resolved address); every
//! subscriber socket that names it shares its thread and its keep-alive connection
//! ([`evi_sdk::destination`]: the queue, the counters, the thread's start and end). Here is
//! the thread's body: one request at a time, retries with backoff, a stale keep-alive
//! connection replaced once.

use crate::config::Config;
use crate::http::{self, Conn, HttpError};
use crate::uri::Dest;
use evi_sdk::destination::{Report, Stats, ThreadBody};
use evi_sdk::queue::Receiver;
use evi_sdk::Delivery;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One event for one destination.
pub struct Job {
    pub delivery: Delivery,
    /// The full request: head and body.
    pub request: Vec<u8>,
}

/// Identity of a destination: the resolved address and the `Host:` it is addressed by.
pub type Key = (SocketAddr, String);

/// `dest`'s key, and the body of its thread.
pub fn destination(dest: &Dest, cfg: &Arc<Config>, report: &Report) -> (Key, impl ThreadBody<Job>) {
    let key = (dest.addr, dest.authority().to_ascii_lowercase());
    let (addr, name, cfg, report) = (dest.addr, dest.authority(), cfg.clone(), report.clone());
    let body = move |rx, stats, stopping| {
        Worker {
            addr,
            name,
            cfg,
            stats,
            report,
            stopping,
            conn: None,
        }
        .run(rx)
    };
    (key, body)
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

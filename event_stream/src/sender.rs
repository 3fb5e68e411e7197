//! The sender thread of one destination address.
//!
//! Every `tcp:` socket that resolves to the same address shares its thread and its one
//! persistent connection (OpenSIPS's model), but each address has its own thread, so a slow,
//! dead or stalled consumer never delays another one or the raiser ([`evi_sdk::destination`]:
//! the queue, the counters, the thread's start and end). The thread batches whole
//! JSON objects into one output buffer and writes without blocking; it reads replies in the
//! same loop (reliable mode) and reconnects with backoff.

use crate::config::Config;
use crate::conn::{Conn, Frame};
use crate::payload;
use crate::uri::Dest;
use evi_sdk::destination::{Report, Stats, ThreadBody};
use evi_sdk::queue::{Receiver, RecvTimeoutError, TryRecvError};
use evi_sdk::Delivery;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stop taking jobs while this many bytes wait to be written (the consumer is not reading).
const MAX_OUT: usize = 256 * 1024;
/// How long an idle thread sleeps before looking at its connection again.
const IDLE_TICK: Duration = Duration::from_millis(250);
/// How long to wait on the socket while output or replies are outstanding, before looking at
/// the queue again.
const BUSY_TICK: Duration = Duration::from_millis(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One event for one destination: the JSON object without an id.
pub struct Job {
    pub delivery: Delivery,
    pub payload: Vec<u8>,
    pub queued_at: Instant,
}

/// `dest`'s key (its address), and the body of its thread.
pub fn destination(
    dest: &Dest,
    cfg: &Arc<Config>,
    report: &Report,
) -> (SocketAddr, impl ThreadBody<Job>) {
    let (addr, name, cfg, report) = (dest.addr, dest.authority(), cfg.clone(), report.clone());
    // The stop flag is not read: at stop this thread still writes what is queued and waits
    // for the replies, within the timeout.
    let body = move |rx, stats, _stopping| {
        Worker {
            addr,
            name,
            cfg,
            stats,
            report,
            conn: Conn::default(),
            replies: Vec::new(),
            pending: BTreeMap::new(),
            next_id: 1,
            backoff: BACKOFF_MIN,
            retry_at: None,
            last_error: String::new(),
        }
        .run(rx)
    };
    (dest.addr, body)
}

/// The state of one destination's thread.
struct Worker {
    addr: SocketAddr,
    name: String,
    cfg: Arc<Config>,
    stats: Arc<Stats>,
    report: Report,
    conn: Conn,
    /// Reply bytes not parsed yet (reliable mode).
    replies: Vec<u8>,
    /// Written requests waiting for a reply: id → (delivery, deadline).
    pending: BTreeMap<u64, (Delivery, Instant)>,
    next_id: u64,
    backoff: Duration,
    /// While set and in the future, events fail at once instead of waiting for a connection.
    retry_at: Option<Instant>,
    last_error: String,
}

impl Worker {
    /// Until every sender is gone and nothing is queued, unwritten or awaiting a reply.
    fn run(mut self, rx: Receiver<Job>) {
        let mut open = true;
        loop {
            if open && self.conn.is_empty() && self.pending.is_empty() {
                match rx.recv_timeout(IDLE_TICK) {
                    Ok(job) => self.accept(job),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
            }
            while open && self.conn.unwritten() < MAX_OUT {
                match rx.try_recv() {
                    Ok(job) => self.accept(job),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            if !open && self.conn.is_empty() && self.pending.is_empty() {
                return;
            }
            self.expire(Instant::now());
            if !self.conn.is_empty() && self.conn.stream.is_none() {
                self.connect();
            }
            self.io();
        }
    }

    fn ok(&self, d: Delivery) {
        self.stats.delivered.fetch_add(1, Ordering::Relaxed);
        (self.report)(d, Ok(()));
    }

    fn fail(&self, d: Delivery, why: &str) {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        (self.report)(d, Err(&format!("tcp:{}: {why}", self.name)));
    }

    /// Take one job into the output buffer, or fail it now.
    fn accept(&mut self, job: Job) {
        self.stats.queued.fetch_sub(1, Ordering::Relaxed);
        let now = Instant::now();
        let deadline = job.queued_at + self.cfg.timeout;
        if deadline <= now {
            return self.fail(job.delivery, &self.not_sent());
        }
        if self.conn.stream.is_none() {
            if let Some(at) = self.retry_at.filter(|&at| at > now) {
                let why = format!(
                    "not connected ({}); next attempt in {} ms, event dropped",
                    self.last_error,
                    (at - now).as_millis()
                );
                return self.fail(job.delivery, &why);
            }
        }
        let id = if self.cfg.reliable {
            self.next_id += 1;
            self.next_id - 1
        } else {
            0
        };
        let payload = job.payload;
        self.conn.push(
            |out| {
                if id > 0 {
                    payload::with_id(out, id, &payload)
                } else {
                    out.extend_from_slice(&payload)
                }
            },
            (job.delivery, id, deadline),
        );
    }

    fn not_sent(&self) -> String {
        format!(
            "not sent within timeout ({} ms)",
            self.cfg.timeout.as_millis()
        )
    }

    fn connect(&mut self) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|at| at > now) {
            let why = format!("not connected ({}), event dropped", self.last_error);
            for f in self.conn.take_all() {
                self.fail(f.delivery, &why);
            }
            return;
        }
        match self.conn.connect(self.addr, self.cfg.connect_timeout) {
            Ok(()) => {
                self.stats.connections.fetch_add(1, Ordering::Relaxed);
                self.stats.down.store(false, Ordering::Relaxed);
                self.retry_at = None;
                self.backoff = BACKOFF_MIN;
            }
            Err(e) => {
                self.stats.down.store(true, Ordering::Relaxed);
                self.last_error = format!("connect: {e}");
                self.retry_at = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                let why = self.last_error.clone();
                for f in self.conn.take_all() {
                    self.fail(f.delivery, &why);
                }
            }
        }
    }

    /// One round of socket I/O: replies and EOF first, then output.
    fn io(&mut self) {
        if self.conn.stream.is_none() {
            return;
        }
        let busy = self.conn.unwritten() > 0 || !self.pending.is_empty();
        let ready = self
            .conn
            .poll(if busy { BUSY_TICK } else { Duration::ZERO });
        if ready.readable || ready.hangup {
            match self.conn.read(&mut self.replies) {
                Ok(0) => return self.closed("closed by the consumer"),
                Ok(_) => self.handle_replies(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return self.closed(&format!("read: {e}")),
            }
        }
        if ready.writable {
            match self.conn.write() {
                Ok(done) => self.written(done),
                Err(e) => self.closed(&format!("write: {e}")),
            }
        }
    }

    fn written(&mut self, done: Vec<Frame>) {
        for f in done {
            if self.cfg.reliable {
                self.pending.insert(f.id, (f.delivery, f.deadline));
            } else {
                // Notification mode: handed to the kernel is all a sender can know.
                self.ok(f.delivery);
            }
        }
    }

    fn closed(&mut self, why: &str) {
        self.conn.close();
        self.replies.clear();
        let pending = std::mem::take(&mut self.pending);
        for (_, (d, _)) in pending {
            self.fail(d, &format!("connection lost before the reply ({why})"));
        }
        log::debug!("tcp:{}: {why}", self.name);
    }

    /// Reliable mode: replies are back-to-back JSON objects with a numeric `id`.
    fn handle_replies(&mut self) {
        if !self.cfg.reliable {
            // Replies are ignored in notification mode; only EOF matters.
            self.replies.clear();
            return;
        }
        let mut values = Vec::new();
        let mut it =
            serde_json::Deserializer::from_slice(&self.replies).into_iter::<serde_json::Value>();
        let mut broken = None;
        for v in it.by_ref() {
            match v {
                Ok(v) => values.push(v),
                Err(e) if e.is_eof() => break,
                Err(e) => {
                    broken = Some(e.to_string());
                    break;
                }
            }
        }
        let used = it.byte_offset();
        self.replies.drain(..used);
        for v in values {
            self.reply(&v);
        }
        if let Some(e) = broken {
            // No way to find the next object in a broken stream: start a new connection.
            self.closed(&format!("unparseable reply: {e}"));
        }
    }

    fn reply(&mut self, v: &serde_json::Value) {
        // Unlike OpenSIPS, an object without a numeric id is skipped, not fatal (§6 item 14).
        let Some(id) = v.get("id").and_then(serde_json::Value::as_u64) else {
            log::debug!("tcp:{}: reply without a numeric id ignored: {v}", self.name);
            return;
        };
        let Some((d, _)) = self.pending.remove(&id) else {
            return;
        };
        match v.get("error") {
            None => self.ok(d),
            Some(e) => {
                let msg = e
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map_or_else(|| e.to_string(), str::to_string);
                let code = e.get("code").map_or_else(String::new, |c| format!(" {c}"));
                self.fail(d, &format!("error reply{code}: {msg}"));
            }
        }
    }

    /// Fail what ran out of time: unsent events (whole, so the stream stays intact) and
    /// requests whose reply is late (their late reply will be ignored).
    fn expire(&mut self, now: Instant) {
        for f in self.conn.expire_unstarted(now) {
            self.fail(f.delivery, &self.not_sent());
        }
        let late: Vec<u64> = self
            .pending
            .iter()
            .take_while(|(_, (_, deadline))| *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some((d, _)) = self.pending.remove(&id) {
                let why = format!(
                    "no reply within timeout ({} ms)",
                    self.cfg.timeout.as_millis()
                );
                self.fail(d, &why);
            }
        }
    }
}

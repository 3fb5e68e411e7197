//! One NATS server: its connection, owned by one worker thread that publishes, answers the
//! server's PINGs, matches acks to deliveries and reports each delivery's outcome.
//!
//! Outcomes: a plain subject's event is delivered once the server answered the PING sent after
//! it (the server processed it); a subject bound to a JetStream stream gets a reply inbox, and
//! the stream's ack (`{"stream":..,"seq":..}`) or error decides. While the server cannot be
//! reached, events fail at once (no buffering) and a reconnect is tried at most once a second.

use crate::proto::{pub_op, Conn, Op};
use evi_sdk::json::Value;
use evi_sdk::log;
use evi_sdk::worker::{Inbox, Recv};
use evi_sdk::{Delivery, Host};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// When a subject is published with JetStream acks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, evi_sdk::serde::Deserialize)]
#[serde(crate = "evi_sdk::serde", rename_all = "lowercase")]
pub enum JetStream {
    /// Ask the server (`$JS.API.STREAM.NAMES`) whether a stream captures the subject; re-asked
    /// every 10 s.
    Auto,
    /// Always wait for a stream's ack (an event to a subject without a stream fails on timeout).
    Always,
    /// Never: plain publish, delivered once the server has it.
    Never,
}

/// Per-server settings, from the modparams.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The client name sent in CONNECT.
    pub client_name: String,
    /// How long to wait for a PONG or an ack before failing the event.
    pub ack_timeout: Duration,
    /// When to use JetStream acks.
    pub jetstream: JetStream,
}

/// One event to publish.
pub struct Publish {
    /// The subject.
    pub subject: String,
    /// The JSON-RPC payload.
    pub payload: Vec<u8>,
    /// Whose outcome to report.
    pub delivery: Delivery,
}

/// Counters shown by MI `nats_status`.
#[derive(Default, Debug)]
pub struct Stats {
    /// Connected right now.
    pub connected: AtomicBool,
    /// Events written to the server.
    pub published: AtomicU64,
    /// Events confirmed (PONG or JetStream ack).
    pub delivered: AtomicU64,
    /// Events that failed.
    pub failed: AtomicU64,
    /// Successful connects (1 + reconnects).
    pub connects: AtomicU64,
}

const JS_CACHE: Duration = Duration::from_secs(10);
const API_TIMEOUT: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_secs(1);

/// The worker thread's body for `server`.
pub fn run(
    server: String,
    host: Host,
    settings: Settings,
    stats: Arc<Stats>,
    inbox: Inbox<Publish>,
) {
    let mut s = Server {
        server,
        host,
        settings,
        stats,
        conn: None,
        prefix: String::new(),
        next_id: 0,
        flushes: VecDeque::new(),
        acks: BTreeMap::new(),
        js: HashMap::new(),
        api_reply: None,
        retry_at: None,
        last_error: String::new(),
    };
    loop {
        let idle = s.flushes.is_empty() && s.acks.is_empty();
        let first = if idle {
            inbox.recv_timeout(Duration::from_millis(100))
        } else {
            inbox.try_recv()
        };
        let mut batch = Vec::new();
        let mut stopping = false;
        match first {
            Recv::Msg(m) => {
                batch.push(m);
                while batch.len() < 256 {
                    match inbox.try_recv() {
                        Recv::Msg(m) => batch.push(m),
                        Recv::Timeout => break,
                        Recv::Stopped => {
                            stopping = true;
                            break;
                        }
                    }
                }
            }
            Recv::Timeout => {}
            Recv::Stopped => stopping = true,
        }
        if !batch.is_empty() {
            s.publish(batch);
        }
        if stopping {
            s.shutdown();
            return;
        }
        s.pump(if idle {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(20)
        });
        s.expire();
    }
}

struct Server {
    server: String,
    host: Host,
    settings: Settings,
    stats: Arc<Stats>,
    conn: Option<Conn>,
    /// This connection's inbox prefix: `PREFIX.a.ID` for acks, `PREFIX.api.ID` for API replies.
    prefix: String,
    next_id: u64,
    /// Plain publishes waiting for the PONG of the PING sent after them, oldest first.
    flushes: VecDeque<(Instant, Vec<Delivery>)>,
    /// JetStream publishes waiting for their ack, by id (so oldest first).
    acks: BTreeMap<u64, (Instant, Delivery)>,
    /// Subject → (bound to a stream, when asked).
    js: HashMap<String, (bool, Instant)>,
    /// The reply to the pending API request: (id, reply once it came).
    api_reply: Option<(u64, Option<Vec<u8>>)>,
    retry_at: Option<Instant>,
    last_error: String,
}

impl Server {
    fn report(&self, d: Delivery, r: Result<(), &str>) {
        let counter = if r.is_ok() {
            &self.stats.delivered
        } else {
            &self.stats.failed
        };
        counter.fetch_add(1, Relaxed);
        self.host.delivery_status(d, r);
    }

    fn connected(&mut self) -> Result<(), String> {
        if self.conn.is_some() {
            return Ok(());
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return Err(self.last_error.clone());
        }
        let timeout = self.settings.ack_timeout.min(Duration::from_secs(5));
        match Conn::connect(&self.server, &self.settings.client_name, timeout) {
            Ok(mut c) => {
                self.prefix = inbox_prefix();
                c.send(format!("SUB {}.> 1\r\n", self.prefix).as_bytes())
                    .map_err(|e| format!("nats {}: {e}", self.server))?;
                self.conn = Some(c);
                self.retry_at = None;
                self.js.clear();
                self.stats.connected.store(true, Relaxed);
                if self.stats.connects.fetch_add(1, Relaxed) > 0 {
                    log::info!("nats {}: reconnected", self.server);
                }
                Ok(())
            }
            Err(e) => {
                let msg = format!("nats {}: cannot connect: {e}", self.server);
                if msg != self.last_error {
                    log::warn!("{msg}; retrying at most once a second");
                }
                self.last_error = msg.clone();
                self.retry_at = Some(Instant::now() + RETRY);
                Err(msg)
            }
        }
    }

    fn publish(&mut self, batch: Vec<Publish>) {
        if let Err(e) = self.connected() {
            for p in batch {
                self.report(p.delivery, Err(&e));
            }
            return;
        }
        let mut out = Vec::new();
        let mut plain = Vec::new();
        let now = Instant::now();
        for p in batch {
            if self.uses_jetstream(&p.subject) {
                self.next_id += 1;
                let reply = format!("{}.a.{}", self.prefix, self.next_id);
                pub_op(&mut out, &p.subject, Some(&reply), &p.payload);
                self.acks.insert(self.next_id, (now, p.delivery));
            } else {
                pub_op(&mut out, &p.subject, None, &p.payload);
                plain.push(p.delivery);
            }
            self.stats.published.fetch_add(1, Relaxed);
        }
        if !plain.is_empty() {
            out.extend_from_slice(b"PING\r\n");
            self.flushes.push_back((now, plain));
        }
        self.send(&out);
    }

    fn send(&mut self, bytes: &[u8]) {
        let r = match &mut self.conn {
            Some(c) => c.send(bytes),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "not connected",
            )),
        };
        if let Err(e) = r {
            self.lost(&e.to_string());
        }
    }

    /// Whether `subject` is published with JetStream acks (may ask the server, up to 1 s).
    fn uses_jetstream(&mut self, subject: &str) -> bool {
        match self.settings.jetstream {
            JetStream::Always => return true,
            JetStream::Never => return false,
            JetStream::Auto => {}
        }
        if let Some((bound, at)) = self.js.get(subject) {
            if at.elapsed() < JS_CACHE {
                return *bound;
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        let mut out = Vec::new();
        let query = evi_sdk::json::json!({ "subject": subject }).to_string();
        pub_op(
            &mut out,
            "$JS.API.STREAM.NAMES",
            Some(&format!("{}.api.{id}", self.prefix)),
            query.as_bytes(),
        );
        self.api_reply = Some((id, None));
        self.send(&out);
        let end = Instant::now() + API_TIMEOUT;
        while self.conn.is_some() && Instant::now() < end {
            if let Some((_, Some(_))) = &self.api_reply {
                break;
            }
            self.pump(Duration::from_millis(20));
        }
        let bound = match self.api_reply.take() {
            Some((_, Some(reply))) => evi_sdk::json::from_slice::<Value>(&reply)
                .ok()
                .and_then(|v| v["streams"].as_array().map(|s| !s.is_empty()))
                .unwrap_or(false),
            // No JetStream on this server (nobody answers the API): plain publish.
            _ => false,
        };
        if self.conn.is_some() {
            self.js.insert(subject.to_string(), (bound, Instant::now()));
        }
        bound
    }

    /// Read what the server sent within `wait` and act on it.
    fn pump(&mut self, wait: Duration) {
        let Some(c) = &mut self.conn else { return };
        match c.poll(wait) {
            Ok(ops) => {
                for op in ops {
                    self.handle(op);
                }
            }
            Err(e) => self.lost(&e.to_string()),
        }
    }

    fn handle(&mut self, op: Op) {
        match op {
            Op::Ping => self.send(b"PONG\r\n"),
            Op::Pong => {
                if let Some((_, ds)) = self.flushes.pop_front() {
                    for d in ds {
                        self.report(d, Ok(()));
                    }
                }
            }
            Op::Msg { subject, payload } => {
                let Some(rest) = subject
                    .strip_prefix(self.prefix.as_str())
                    .and_then(|r| r.strip_prefix('.'))
                else {
                    return;
                };
                if let Some(id) = rest.strip_prefix("a.").and_then(|i| i.parse().ok()) {
                    if let Some((_, d)) = self.acks.remove(&id) {
                        let r = ack_result(&payload);
                        self.report(d, r.as_ref().map(|_| ()).map_err(String::as_str));
                    }
                } else if let Some(id) = rest
                    .strip_prefix("api.")
                    .and_then(|i| i.parse::<u64>().ok())
                {
                    if let Some((want, reply)) = &mut self.api_reply {
                        if *want == id {
                            *reply = Some(payload);
                        }
                    }
                }
            }
            Op::Err(e) => log::warn!("nats {}: server error: {e}", self.server),
            Op::Info(_) | Op::Ok => {}
        }
    }

    /// Fail what waited too long. A missing PONG means the connection is stuck: drop it.
    fn expire(&mut self) {
        let limit = self.settings.ack_timeout;
        if self
            .flushes
            .front()
            .is_some_and(|(at, _)| at.elapsed() > limit)
        {
            self.lost(&format!("no PONG within {} ms", limit.as_millis()));
        }
        while let Some((&id, &(at, d))) = self.acks.iter().next() {
            if at.elapsed() <= limit {
                break;
            }
            self.acks.remove(&id);
            let why = format!(
                "nats {}: no JetStream ack within {} ms",
                self.server,
                limit.as_millis()
            );
            self.report(d, Err(&why));
        }
    }

    /// The connection is gone: fail everything in flight, reconnect on the next publish.
    fn lost(&mut self, why: &str) {
        let msg = format!("nats {}: connection lost: {why}", self.server);
        if self.conn.take().is_some() {
            self.stats.connected.store(false, Relaxed);
            log::warn!("{msg}");
        }
        // Also when it was already gone: a batch built meanwhile has nowhere to go.
        self.fail_all(&msg);
        self.api_reply = None;
    }

    fn fail_all(&mut self, why: &str) {
        for (_, ds) in std::mem::take(&mut self.flushes) {
            for d in ds {
                self.report(d, Err(why));
            }
        }
        for (_, (_, d)) in std::mem::take(&mut self.acks) {
            self.report(d, Err(why));
        }
    }

    /// The module stops: wait (up to the ack timeout) for what is in flight, then fail the rest.
    fn shutdown(&mut self) {
        let end = Instant::now() + self.settings.ack_timeout;
        while self.conn.is_some()
            && !(self.flushes.is_empty() && self.acks.is_empty())
            && Instant::now() < end
        {
            self.pump(Duration::from_millis(20));
        }
        let why = format!("nats {}: stopped before the server confirmed", self.server);
        self.fail_all(&why);
        self.conn = None;
        self.stats.connected.store(false, Relaxed);
    }
}

/// A JetStream publish ack: `{"stream":"S","seq":N}`, or `{"error":{"code":..,"description":..}}`.
pub fn ack_result(payload: &[u8]) -> Result<(), String> {
    let v: Value = evi_sdk::json::from_slice(payload).map_err(|e| {
        format!(
            "bad JetStream ack {:?}: {e}",
            String::from_utf8_lossy(payload)
        )
    })?;
    if let Some(e) = v.get("error") {
        let what = e["description"].as_str().unwrap_or("no description");
        return Err(format!(
            "JetStream refused the event: {what} ({})",
            e["code"]
        ));
    }
    if v.get("stream").is_some() {
        Ok(())
    } else {
        Err(format!(
            "bad JetStream ack {:?}",
            String::from_utf8_lossy(payload)
        ))
    }
}

/// A connection's unique inbox prefix (NATS's `_INBOX.` convention).
fn inbox_prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "_INBOX.evid{}x{nanos:x}x{}",
        std::process::id(),
        N.fetch_add(1, Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_and_errors() {
        assert_eq!(ack_result(br#"{"stream":"S","seq":3}"#), Ok(()));
        assert_eq!(
            ack_result(br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#),
            Err("JetStream refused the event: maximum messages exceeded (503)".into())
        );
        assert!(ack_result(b"+OK").is_err());
    }
}

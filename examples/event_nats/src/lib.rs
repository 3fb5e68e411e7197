//! # event_nats: the `nats:` transport
//!
//! `nats:HOST:PORT/SUBJECT` publishes each event's JSON-RPC payload (the one the daemon builds
//! for every JSON transport) to SUBJECT on the NATS server at HOST:PORT. When a JetStream
//! stream captures the subject, the publish carries a reply inbox and the event counts as
//! delivered only once the stream acked it; otherwise once the server has processed it.
//!
//! An example of a third-party module: its own crate outside the evid workspace, depending
//! only on `evi-sdk`. Layout: [`uri`] parses sockets, [`proto`] speaks the NATS text protocol,
//! [`server`] is the worker thread that owns one server's connection, and this file declares
//! the module.
//!
//! Threads: `raise` never touches the network. It queues the event to the server's worker
//! ([`evi_sdk::worker::Worker`], one thread per server) and answers `Pending`; the worker
//! reports every event's outcome with `Host::delivery_status`. `destroy` stops and joins every
//! worker (each first waits, up to `ack_timeout_ms`, for what is in flight).

pub mod proto;
pub mod server;
pub mod uri;

use evi_sdk::worker::Worker;
use evi_sdk::{
    export_module, json, param, Delivery, Event, Host, MiError, MiParams, MiResult, Module, Params,
    Raised, Transport,
};
use server::{JetStream, Publish, Settings, Stats};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use uri::NatsUri;

/// The modparams (see `export_module!` below for their specs and docs).
#[derive(Debug, evi_sdk::serde::Deserialize)]
#[serde(crate = "evi_sdk::serde")]
pub struct Config {
    /// Events queued per server before `raise` fails.
    pub queue_size: u32,
    /// How long to wait for the server's confirmation of an event.
    pub ack_timeout_ms: u32,
    /// `auto`, `always` or `never`.
    pub jetstream: JetStream,
    /// The client name the server shows for evid's connections.
    pub client_name: String,
}

/// A subscriber's socket.
pub struct Socket {
    uri: NatsUri,
    server: String,
}

/// One server's worker and counters.
struct ServerEntry {
    worker: Worker<Publish>,
    stats: Arc<Stats>,
    sockets: usize,
}

/// The module instance.
pub struct EventNats {
    host: Host,
    cfg: Config,
    servers: HashMap<String, ServerEntry>,
    /// Workers whose last socket was freed: closed, joined once finished or at `destroy`.
    closing: Vec<Worker<Publish>>,
}

impl EventNats {
    fn settings(&self) -> Settings {
        Settings {
            client_name: self.cfg.client_name.clone(),
            ack_timeout: Duration::from_millis(self.cfg.ack_timeout_ms.into()),
            jetstream: self.cfg.jetstream,
        }
    }

    fn status(&self) -> json::Value {
        let mut servers: Vec<_> = self.servers.iter().collect();
        servers.sort_by(|a, b| a.0.cmp(b.0));
        let list: Vec<json::Value> = servers
            .into_iter()
            .map(|(name, e)| {
                json::json!({
                    "server": name,
                    "connected": e.stats.connected.load(Relaxed),
                    "sockets": e.sockets,
                    "published": e.stats.published.load(Relaxed),
                    "delivered": e.stats.delivered.load(Relaxed),
                    "failed": e.stats.failed.load(Relaxed),
                    "connects": e.stats.connects.load(Relaxed),
                })
            })
            .collect();
        json::json!({ "Servers": list })
    }
}

impl Module for EventNats {
    fn init(host: Host, params: &Params) -> Result<Self, String> {
        Ok(EventNats {
            host,
            cfg: params.parse()?,
            servers: HashMap::new(),
            closing: Vec::new(),
        })
    }

    fn destroy(&mut self) {
        for (_, mut e) in self.servers.drain() {
            e.worker.stop();
        }
        for mut w in self.closing.drain(..) {
            w.stop();
        }
    }

    fn mi_command(&mut self, name: &str, _params: &MiParams) -> MiResult {
        match name {
            "nats_status" => Ok(self.status()),
            _ => Err(MiError::new(-32601, "Method not found").with_data(name.to_string())),
        }
    }
}

impl Transport for EventNats {
    type Socket = Socket;

    fn parse(&mut self, _proto: &str, body: &str) -> Result<Socket, String> {
        let uri = NatsUri::parse(body)?;
        let server = uri.server();
        if !self.servers.contains_key(&server) {
            let stats = Arc::new(Stats::default());
            let (host, settings, st) = (self.host, self.settings(), stats.clone());
            let name = server.clone();
            let worker = Worker::spawn(
                &format!("nats {server}"),
                self.cfg.queue_size as usize,
                move |inbox| server::run(name, host, settings, st, inbox),
            )
            .map_err(|e| format!("nats:{body}: cannot start a thread: {e}"))?;
            self.servers.insert(
                server.clone(),
                ServerEntry {
                    worker,
                    stats,
                    sockets: 0,
                },
            );
        }
        if let Some(e) = self.servers.get_mut(&server) {
            e.sockets += 1;
        }
        Ok(Socket { uri, server })
    }

    fn matches(&self, a: &Socket, b: &Socket) -> bool {
        a.uri == b.uri
    }

    fn print(&self, socket: &Socket, out: &mut String) {
        out.push_str(&socket.uri.to_string());
    }

    fn destinations(&self, socket: &Socket, out: &mut Vec<String>) {
        // The server connects by name; the MI allowlist checks the name as written.
        let host = &socket.uri.host;
        if host.contains(':') {
            out.push(format!("[{host}]:{}", socket.uri.port));
        } else {
            out.push(format!("{host}:{}", socket.uri.port));
        }
    }

    fn raise(
        &mut self,
        socket: &mut Socket,
        event: &Event<'_>,
        delivery: Delivery,
    ) -> Result<Raised, String> {
        let entry = self
            .servers
            .get(&socket.server)
            .ok_or_else(|| format!("nats {}: no worker", socket.server))?;
        let msg = Publish {
            subject: socket.uri.subject.clone(),
            payload: event.json().to_vec(),
            delivery,
        };
        match entry.worker.try_send(msg) {
            Ok(()) => Ok(Raised::Pending),
            Err(_) => Err(format!(
                "nats {}: queue full ({} events waiting for the server)",
                socket.server, self.cfg.queue_size
            )),
        }
    }

    fn free(&mut self, socket: &mut Socket) {
        let last = match self.servers.get_mut(&socket.server) {
            Some(e) => {
                e.sockets -= 1;
                e.sockets == 0
            }
            None => false,
        };
        if let Some(mut e) = last.then(|| self.servers.remove(&socket.server)).flatten() {
            // Don't wait here (this is the module thread): close now, join when finished.
            e.worker.close();
            self.closing.push(e.worker);
        }
        self.closing.retain(Worker::is_running);
    }
}

export_module! {
    module: EventNats,
    name: "event_nats",
    doc: "nats: transport: publishes each event's JSON-RPC payload to a NATS subject (JetStream acks when a stream captures it).",
    params: [
        param::int("queue_size", 10000, 1, 1_000_000,
            "Events queued per server; when full, raise fails for that subscriber"),
        param::int("ack_timeout_ms", 5000, 100, 600_000,
            "How long an event waits for the server's PONG or the stream's ack before it fails"),
        param::str("jetstream", "auto",
            "auto (ask the server whether a stream captures the subject), always or never"),
        param::str("client_name", "evid", "The connection name the NATS server shows"),
    ],
    events: [],
    mi: [
        "nats_status" [[]] "Each server: connected, sockets, published, delivered, failed",
    ],
    transports: ["nats" (evi_sdk::EXPIRES | evi_sdk::JSON | evi_sdk::ASYNC)],
}

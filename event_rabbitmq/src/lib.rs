//! # event_rabbitmq: the `rabbitmq:` transport
//!
//! Publishes the shared JSON-RPC notification of each event to a RabbitMQ exchange (AMQP 0-9-1,
//! lapin) with publisher confirms: a raise only enqueues to the broker's bounded buffer and
//! answers `Pending`; the broker's confirm (or a nack, a return, a drop) is reported later with
//! `delivery_status`. See README.md for the socket grammar, params and differences.
//!
//! Layout: [`uri`] parses sockets, [`config`] reads modparams, [`buffer`] holds unconfirmed
//! events, [`broker`] is the state shared with the runtime, [`connection`] is the broker task
//! (connect, reconnect), [`session`] publishes and collects confirms on one connection,
//! the SDK's [`Runtime`] owns the module's thread; this file declares the module and forwards SDK
//! calls.

pub mod broker;
pub mod buffer;
pub mod config;
pub mod connection;
pub mod server_id;
pub mod session;
pub mod tls;
pub mod uri;

#[cfg(test)]
mod tests;

use broker::{Broker, Made, Refusal, Sink};
use buffer::{Limits, Message, Target};
use config::Config;
use evi_sdk::json::Value;
use evi_sdk::runtime::Runtime;
use evi_sdk::{
    export_module, param, Delivery, Event, Host, MiError, MiParams, MiResult, Module, Params,
    Raised, Transport,
};
use server_id::ServerId;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use uri::{BrokerKey, RabbitUri};

/// How long the daemon fails a subscriber's events itself when the buffer is full and the
/// broker unreachable (`buffer_full_drop = "newest"`); the next event probes again.
const SUSPEND_WHEN_FULL: std::time::Duration = std::time::Duration::from_millis(100);

/// A subscriber socket. Its broker is attached at the first raise, so sockets parsed only to be
/// matched or listed never open a connection.
pub struct Socket {
    pub uri: RabbitUri,
    target: Arc<Target>,
    broker: Option<Arc<Broker>>,
    /// The daemon holds this socket's new events (see [`Broker::note_hold`]).
    held: Arc<AtomicBool>,
}

/// The module instance.
pub struct EventRabbitmq {
    cfg: Config,
    /// For `Host::suspend` (`buffer_full_drop = "newest"`); `None` in unit tests.
    host: Option<Host>,
    tls: tls::Domains,
    sink: Sink,
    runtime: Runtime,
    /// Live brokers and how many sockets use each.
    brokers: BTreeMap<BrokerKey, (Arc<Broker>, usize)>,
    /// Brokers without sockets whose task is still sending what they buffered.
    retired: Vec<Arc<Broker>>,
    /// `server_id`s for `rabbitmq_publish()`, by id; each broker opened at its first publish.
    servers: BTreeMap<String, (ServerId, Option<Arc<Broker>>)>,
}

impl EventRabbitmq {
    /// Ask the daemon to hold `socket`'s new events while its broker is unreachable (its last
    /// connect failed, or the buffer filled while it was not connected) and the buffer keeps the
    /// newest: every further event would only wait in the buffer and push an older one out. The
    /// daemon keeps the newest itself until the broker is back: the same result, without a
    /// hand-over to this thread, a JSON body and a copy per event.
    fn hold_while_down(
        &self,
        socket: &Socket,
        broker: &Broker,
        made: Made,
        delivery: Delivery,
        body_len: usize,
    ) {
        let down = broker.unreachable.load(Ordering::Acquire)
            || (made == Made::ByDroppingOldest && !broker.connected.load(Ordering::Acquire));
        if !down || socket.held.load(Ordering::Acquire) {
            return;
        }
        // A buffer's worth per socket: a socket that gets all the traffic keeps as many of its
        // newest as the shared buffer would have (the hold starts with the buffer nearly
        // empty); memory stays within one buffer per socket.
        let Some(kept) = broker.buffer().newest_kept(body_len) else {
            return;
        };
        if socket.held.swap(true, Ordering::AcqRel) {
            return;
        }
        let max = u32::try_from(kept).unwrap_or(u32::MAX);
        if self.host.is_some_and(|h| h.hold(delivery, max)) {
            broker.note_hold(delivery, socket.held.clone());
        } else {
            socket.held.store(false, Ordering::Release);
        }
    }
    /// Start the runtime; `sink` receives every delivery outcome.
    pub fn new(cfg: Config, tls: tls::Domains, sink: Sink) -> Result<EventRabbitmq, String> {
        Ok(EventRabbitmq {
            cfg,
            host: None,
            tls,
            servers: BTreeMap::new(),
            sink,
            runtime: Runtime::start("rabbitmq")?,
            brokers: BTreeMap::new(),
            retired: Vec::new(),
        })
    }

    /// Add `server_id`s; each must name a declared TLS domain, if any, and be unique.
    pub fn add_servers(&mut self, servers: Vec<ServerId>) -> Result<(), String> {
        for s in servers {
            if let Some(d) = s.key.tls_domain.as_deref() {
                if !self.tls.contains_key(d) {
                    return Err(format!(
                        "modparam server_id [{}]: unknown tls_domain '{d}'",
                        s.id
                    ));
                }
            }
            if self.servers.contains_key(&s.id) {
                return Err(format!("modparam server_id [{}] is declared twice", s.id));
            }
            self.servers.insert(s.id.clone(), (s, None));
        }
        Ok(())
    }

    /// `rabbitmq_publish(server_id, routing_key, body[, content_type])`: queue one message on
    /// the server's broker. Never waits on the network: the broker's confirm (or a failure,
    /// logged and counted) comes later.
    pub fn publish(
        &mut self,
        server: &str,
        routing_key: &str,
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<(), String> {
        let broker = match self.servers.get(server) {
            None => return Err(format!("unknown server_id '{server}'")),
            Some((_, Some(b))) => b.clone(),
            Some((sid, None)) => {
                let mut cfg = self.cfg.clone();
                cfg.heartbeat = sid.heartbeat.unwrap_or(cfg.heartbeat);
                cfg.frame_max = sid.frame_max.unwrap_or(cfg.frame_max);
                let key = sid.key.clone();
                let b = self.broker_for(&key, cfg);
                if let Some(entry) = self.servers.get_mut(server) {
                    entry.1 = Some(b.clone());
                }
                b
            }
        };
        let Some((sid, _)) = self.servers.get(server) else {
            return Err(format!("unknown server_id '{server}'"));
        };
        broker
            .enqueue(Message {
                delivery: None,
                target: Arc::new(Target {
                    exchange: sid.exchange.clone(),
                    routing_key: routing_key.to_string(),
                    persistent: sid.persistent,
                    mandatory: sid.mandatory,
                    content_type: content_type.map(str::to_string),
                }),
                body: Arc::from(body),
                sends: 0,
            })
            .map(|_| ())
            .map_err(|why| why.to_string())
    }

    /// The broker of `key`, shared by every socket and server with that key (`cfg` is used
    /// when it is opened here).
    fn broker_for(&mut self, key: &BrokerKey, cfg: Config) -> Arc<Broker> {
        let key = key.clone();
        if let Some((b, users)) = self.brokers.get_mut(&key) {
            *users += 1;
            return b.clone();
        }
        let limits = Limits {
            events: self.cfg.buffer_events,
            bytes: self.cfg.buffer_bytes,
            full_drop: self.cfg.full_drop,
        };
        let tls = key
            .tls_domain
            .as_ref()
            .and_then(|d| self.tls.get(d))
            .cloned();
        let b =
            Arc::new(Broker::new(key.clone(), tls, limits, self.sink.clone()).with_host(self.host));
        let task = connection::run(b.clone(), cfg, self.runtime.handle().clone());
        self.runtime.spawn(task);
        self.brokers.insert(key, (b.clone(), 1));
        b
    }

    /// Every live broker's counters (MI `event_rabbitmq:status`).
    pub fn status(&self) -> Value {
        Value::Array(self.brokers.values().map(|(b, _)| b.status()).collect())
    }

    /// Stop every broker: publish what is buffered until `drain_timeout`, fail the rest, close
    /// the connections and join every thread.
    pub fn shutdown(&mut self) {
        let all: Vec<Arc<Broker>> = std::mem::take(&mut self.brokers)
            .into_values()
            .map(|(b, _)| b)
            .chain(self.retired.drain(..))
            .collect();
        for b in &all {
            b.stop();
        }
        // Each task gives up at drain_timeout; closing and joining lapin adds at most ~10 s.
        let limit = self.cfg.drain_timeout + std::time::Duration::from_secs(15);
        self.runtime.shutdown(limit);
        // A task stopped by the runtime's end could not report: every event gets its one status.
        for b in &all {
            for m in b.buffer().drain() {
                b.report(&m, Err("not confirmed by the broker before shutdown"));
            }
        }
    }
}

impl Module for EventRabbitmq {
    fn init(host: Host, params: &Params) -> Result<Self, String> {
        let cfg = Config::from_params(params)?;
        let tls = tls::domains(params.all("tls_domain").filter_map(|v| match v {
            evi_sdk::ParamValue::Str(s) => Some(s.as_str()),
            _ => None,
        }))?;
        let servers = params
            .all("server_id")
            .filter_map(|v| match v {
                evi_sdk::ParamValue::Str(s) => Some(ServerId::parse(s)),
                _ => None,
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sink: Sink =
            Arc::new(move |d: Delivery, r: Result<(), &str>| host.delivery_status(d, r));
        let mut m = EventRabbitmq::new(cfg, tls, sink)?;
        m.host = Some(host);
        m.add_servers(servers)?;
        Ok(m)
    }

    fn destroy(&mut self) {
        self.shutdown();
    }

    fn mi_command(&mut self, name: &str, _params: &MiParams) -> MiResult {
        match name {
            "event_rabbitmq:status" => Ok(self.status()),
            _ => Err(MiError::new(-32601, "Method not found").with_data(name.to_string())),
        }
    }

    fn script_function(&mut self, name: &str, args: &[evi_sdk::Value<'_>]) -> Result<bool, String> {
        if name != "rabbitmq_publish" {
            return Err(format!("no script function {name}"));
        }
        let text = |i: usize, what: &str| -> Result<String, String> {
            match args.get(i) {
                Some(evi_sdk::Value::Str(s)) => Ok(String::from_utf8_lossy(s).into_owned()),
                Some(evi_sdk::Value::Int(n)) => Ok(n.to_string()),
                _ => Err(format!("{what} (argument {}) is missing or null", i + 1)),
            }
        };
        let server = text(0, "server_id")?;
        let key = text(1, "routing key")?;
        let body = match args.get(2) {
            Some(evi_sdk::Value::Str(s)) => s.to_vec(),
            Some(evi_sdk::Value::Int(n)) => n.to_string().into_bytes(),
            _ => return Err("body (argument 3) is missing or null".into()),
        };
        let content_type = match args.get(3) {
            None | Some(evi_sdk::Value::Null) => None,
            Some(_) => Some(text(3, "content type")?),
        };
        self.publish(&server, &key, &body, content_type.as_deref())?;
        Ok(true)
    }
}

impl Transport for EventRabbitmq {
    type Socket = Socket;

    fn parse(&mut self, _proto: &str, body: &str) -> Result<Socket, String> {
        let uri = RabbitUri::parse(body)?;
        if let Some(d) = uri
            .tls_domain
            .as_deref()
            .filter(|d| !self.tls.contains_key(*d))
        {
            return Err(format!(
                "rabbitmq socket '{body}': unknown tls_domain '{d}' (declare it with modparam(\"event_rabbitmq\", \"tls_domain\", \"[{d}] ca_list=FILE\"))"
            ));
        }
        let target = Arc::new(Target {
            exchange: uri.exchange.clone(),
            routing_key: uri.routing_key.clone(),
            persistent: uri.persistent,
            mandatory: uri.mandatory,
            content_type: Some("application/json".into()),
        });
        Ok(Socket {
            uri,
            target,
            broker: None,
            held: Arc::default(),
        })
    }

    fn matches(&self, a: &Socket, b: &Socket) -> bool {
        a.uri.same_destination(&b.uri)
    }

    fn print(&self, socket: &Socket, out: &mut String) {
        socket.uri.print(out);
    }

    fn raise(
        &mut self,
        socket: &mut Socket,
        event: &Event<'_>,
        delivery: Delivery,
    ) -> Result<Raised, String> {
        let broker = match &socket.broker {
            Some(b) => b.clone(),
            None => {
                let b = self.broker_for(&socket.uri.broker(), self.cfg.clone());
                socket.broker = Some(b.clone());
                b
            }
        };
        let queued = broker.enqueue(Message {
            delivery: Some(delivery),
            target: socket.target.clone(),
            body: Arc::from(event.json()),
            sends: 0,
        });
        match queued {
            Ok(made) => {
                self.hold_while_down(socket, &broker, made, delivery, event.json().len());
                Ok(Raised::Pending)
            }
            Err(why) => {
                // A full buffer refusing the newest while the broker is unreachable: the daemon
                // fails the next events itself instead of building each one for nothing.
                if why == Refusal::Full && !broker.connected.load(Ordering::Acquire) {
                    if let Some(h) = &self.host {
                        h.suspend(delivery, SUSPEND_WHEN_FULL);
                    }
                }
                Err(why.to_string())
            }
        }
    }

    fn free(&mut self, socket: &mut Socket) {
        let Some(b) = socket.broker.take() else {
            return;
        };
        if let Some((_, users)) = self.brokers.get_mut(&b.key) {
            *users -= 1;
            if *users == 0 {
                self.brokers.remove(&b.key);
                // The task sends what is buffered, then closes the connection and ends; its
                // clone of the broker goes with it.
                b.retire();
                self.retired.retain(|r| Arc::strong_count(r) > 1);
                self.retired.push(b);
            }
        }
    }
}

export_module! {
    module: EventRabbitmq,
    name: "event_rabbitmq",
    doc: "rabbitmq: transport: publishes each event's JSON-RPC notification to RabbitMQ, with publisher confirms.",
    params: [
        param::int("heartbeat", config::DEFAULT_HEARTBEAT, 0, 65535,
            "AMQP heartbeat in seconds, serviced while idle; 0 disables it"),
        param::int("connect_timeout", config::DEFAULT_CONNECT_TIMEOUT_MS, 1, 600_000,
            "TCP connect timeout in ms"),
        param::int("timeout", config::DEFAULT_TIMEOUT_MS, 0, 600_000,
            "Bound in ms on each broker RPC (login, channel open, confirm.select); 0 = none"),
        param::int("frame_max", config::DEFAULT_FRAME_MAX, config::FRAME_MAX_RANGE.0, config::FRAME_MAX_RANGE.1,
            "Largest AMQP frame in bytes proposed to the broker"),
        param::int("buffer_events", config::DEFAULT_BUFFER_EVENTS, 1, 100_000_000,
            "Most unconfirmed events held per broker; when full the oldest is dropped"),
        param::int("buffer_bytes", config::DEFAULT_BUFFER_BYTES, 1024, 68_719_476_736,
            "Most body bytes of unconfirmed events held per broker; when full the oldest is dropped"),
        param::int("reconnect_min", config::DEFAULT_RECONNECT_MIN_MS, 1, 3_600_000,
            "First reconnect delay in ms; doubled after each failure"),
        param::int("reconnect_max", config::DEFAULT_RECONNECT_MAX_MS, 1, 3_600_000,
            "Cap of the reconnect delay in ms"),
        param::int("drain_timeout", config::DEFAULT_DRAIN_TIMEOUT_MS, 0, 600_000,
            "At shutdown, how long in ms to keep publishing buffered events before failing them"),
        param::int("publish_window", config::DEFAULT_PUBLISH_WINDOW, 1, 65_535,
            "Most publishes sent and not yet confirmed per broker; raise it for a distant broker (window / round trip bounds the rate)"),
        param::repeatable(param::str_unset("tls_domain",
            "A TLS client domain for sockets with tls_domain=NAME: '[NAME] ca_list=FILE; certificate=FILE; private_key=FILE; server_name=HOST; verify_cert=0 or 1'")),
        param::int("use_tls", 0, 0, 1,
            "Accepted for OpenSIPS configs; TLS is on for every socket that names a tls_domain"),
        param::str("buffer_full_drop", "oldest",
            "What a full buffer drops: oldest (keeps the newest events) or newest (refuses new events; while the broker is down the daemon fails them without building them)"),
        param::repeatable(param::str_unset("server_id",
            "A named broker for rabbitmq_publish(): '[ID] uri=amqp://user:pass@host:port/vhost; exchange=X; heartbeat=N; frames=N; mandatory; non-persistent; tls_domain=D'")),
    ],
    events: [],
    mi: [
        "event_rabbitmq:status" [[]]
            "Per broker: connection state, buffered and in-flight events, confirmed, failed, returned, dropped, resent, connects",
    ],
    transports: ["rabbitmq" (evi_sdk::EXPIRES | evi_sdk::JSON | evi_sdk::ASYNC)],
    functions: [
        "rabbitmq_publish" (3..=4)
            "rabbitmq_publish(server_id, routing_key, body[, content_type]): queue one message on a server_id broker (confirmed, resent after a reconnect)",
    ],
}

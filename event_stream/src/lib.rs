//! # event_stream: events as JSON-RPC over TCP
//!
//! The `tcp:` transport of OpenSIPS 3.x's `event_stream`: each event is one JSON-RPC object
//! written back to back (no framing) on a persistent connection per consumer address, as a
//! notification, or in reliable mode as a request whose reply decides the delivery status.
//! Unlike OpenSIPS each consumer has its own thread and bounded queue, reconnects back off,
//! and a timeout never cuts an object in half. See README.md.
//!
//! - [`uri`] parses and matches subscriber sockets;
//! - [`payload`] builds the JSON object;
//! - [`sender`] owns one thread and queue per consumer, [`conn`] its connection and buffer.
//!
//! This file declares the module and wires those to the SDK traits.

pub mod config;
pub mod conn;
pub mod payload;
pub mod sender;
pub mod uri;

#[cfg(test)]
mod readme_tests;
#[cfg(test)]
mod tests;

use config::Config;
use evi_sdk::destination::{Destinations, Report, Route};
use evi_sdk::{
    export_module, param, Delivery, Event, Host, MiError, MiParams, MiResult, Module, Params,
    Raised, Transport,
};
use sender::Job;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use uri::Dest;

/// The module instance.
pub struct EventStream {
    cfg: Arc<Config>,
    report: Report,
    destinations: Destinations<SocketAddr, Job>,
    /// The daemon (unset in unit tests): told when a destination is down, so it stops handing
    /// us events for it for a while.
    host: Option<Host>,
}

/// A subscriber socket: where to send, and (after the first raise) its consumer's queue.
pub struct Socket {
    pub dest: Dest,
    route: Option<Arc<Route<Job>>>,
}

impl EventStream {
    /// Separate from `init` so tests can run with their own reporter instead of a host.
    pub fn new(cfg: Config, report: Report) -> EventStream {
        EventStream {
            destinations: Destinations::new("tcp", "evid-stream", cfg.queue_size),
            cfg: Arc::new(cfg),
            report,
            host: None,
        }
    }
}

impl Module for EventStream {
    fn init(host: Host, params: &Params) -> Result<Self, String> {
        // `Host` stays valid until `destroy` returns, and `destroy` joins every sender thread.
        let report: Report = Arc::new(move |d, r| host.delivery_status(d, r));
        let mut module = EventStream::new(Config::from_params(params), report);
        module.host = Some(host);
        Ok(module)
    }

    fn destroy(&mut self) {
        self.destinations.stop();
    }

    fn mi_command(&mut self, name: &str, _params: &MiParams) -> MiResult {
        match name {
            "event_stream:stats" => self.destinations.mi_stats(false),
            _ => Err(MiError::new(-32601, "Method not found").with_data(name.to_string())),
        }
    }
}

impl Transport for EventStream {
    type Socket = Socket;

    fn parse(&mut self, _proto: &str, body: &str) -> Result<Socket, String> {
        Ok(Socket {
            dest: Dest::parse(body)?,
            route: None,
        })
    }

    fn matches(&self, a: &Socket, b: &Socket) -> bool {
        a.dest.same_subscription(&b.dest)
    }

    fn print(&self, socket: &Socket, out: &mut String) {
        socket.dest.print(out);
    }

    fn destinations(&self, socket: &Socket, out: &mut Vec<String>) {
        // The address resolved at subscribe time is the one every connection uses.
        out.push(socket.dest.addr.to_string());
    }

    fn raise(
        &mut self,
        socket: &mut Socket,
        event: &Event<'_>,
        delivery: Delivery,
    ) -> Result<Raised, String> {
        let dest = &socket.dest;
        if socket.route.is_none() {
            let (key, body) = sender::destination(dest, &self.cfg, &self.report);
            socket.route = Some(self.destinations.route(key, &dest.authority(), body)?);
        }
        let Some(route) = &socket.route else {
            return Err("tcp: no route".into());
        };
        route.admit(self.host, delivery)?;
        let cfg = &self.cfg;
        let payload = payload::notification(
            event,
            socket.dest.method.as_deref(),
            cfg.event_param.as_deref(),
        );
        route.send(Job {
            delivery,
            payload,
            queued_at: Instant::now(),
        })?;
        Ok(Raised::Pending)
    }

    fn free(&mut self, socket: &mut Socket) {
        if let Some(r) = socket.route.take() {
            self.destinations.release(r);
        }
    }
}

export_module! {
    module: EventStream,
    name: "event_stream",
    doc: "tcp: transport: JSON-RPC objects back to back on one persistent TCP connection per consumer, notifications or reliable requests.",
    params: [
        param::int("reliable_mode", 0, 0, 1,
            "1 = send requests with ids and report each reply (error member = failed); 0 = notifications"),
        param::int("timeout", config::DEFAULT_TIMEOUT_MS, 1, 600_000,
            "Milliseconds from queueing to the reply (reliable mode); an event not yet written by then fails, in both modes"),
        param::str_unset("event_param",
            "If set, the event name is added as the first param, under this name (object params) or first (array params)"),
        param::int("connect_timeout", config::DEFAULT_CONNECT_TIMEOUT_MS, 1, 600_000,
            "Milliseconds to wait for a TCP connection to a consumer"),
        param::int("queue_size", config::DEFAULT_QUEUE_SIZE, 1, 10_000_000,
            "Events waiting per consumer address; when full, new events for it are dropped and counted"),
    ],
    events: [],
    mi: [
        "event_stream:stats" [[]]
            "Per-consumer counters: queued, delivered, failed, dropped, connections",
    ],
    transports: ["tcp" (evi_sdk::EXPIRES | evi_sdk::JSON | evi_sdk::ASYNC)],
}

//! # event_xmlrpc: events as XML-RPC calls
//!
//! The `xmlrpc:` transport of OpenSIPS's `event_xmlrpc`: each event becomes one XML-RPC
//! `methodCall` POSTed to `host:port[/path]`, first param the event name, then the event's
//! params, in OpenSIPS's byte layout. Unlike OpenSIPS the values are XML-escaped, connections
//! are kept alive per server, the response is read (a fault or HTTP error is a failed
//! delivery), and each server has its own thread and bounded queue. See README.md.
//!
//! - [`uri`] parses and matches subscriber sockets;
//! - [`payload`] builds the XML body, [`http`] the request and reads the response;
//! - [`sender`] owns one thread and queue per destination, with retries and counters.
//!
//! This file declares the module and wires those to the SDK traits.

pub mod config;
pub mod http;
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
use sender::{Job, Key};
use std::sync::Arc;
use uri::Dest;

/// The module instance.
pub struct EventXmlrpc {
    cfg: Arc<Config>,
    report: Report,
    destinations: Destinations<Key, Job>,
    /// The daemon (unset in unit tests): told when a destination is down, so it stops handing
    /// us events for it for a while.
    host: Option<Host>,
}

/// A subscriber socket: where to send, and (after the first raise) its destination's queue.
pub struct Socket {
    pub dest: Dest,
    route: Option<Arc<Route<Job>>>,
}

impl EventXmlrpc {
    /// Separate from `init` so tests can run with their own reporter instead of a host.
    pub fn new(cfg: Config, report: Report) -> EventXmlrpc {
        EventXmlrpc {
            destinations: Destinations::new("xmlrpc", "evid-xmlrpc", cfg.queue_size),
            cfg: Arc::new(cfg),
            report,
            host: None,
        }
    }
}

impl Module for EventXmlrpc {
    fn init(host: Host, params: &Params) -> Result<Self, String> {
        // `Host` stays valid until `destroy` returns, and `destroy` joins every sender thread.
        let report: Report = Arc::new(move |d, r| host.delivery_status(d, r));
        let mut module = EventXmlrpc::new(Config::from_params(params), report);
        module.host = Some(host);
        Ok(module)
    }

    fn destroy(&mut self) {
        self.destinations.stop();
    }

    fn mi_command(&mut self, name: &str, _params: &MiParams) -> MiResult {
        match name {
            "event_xmlrpc:stats" => self.destinations.mi_stats(true),
            _ => Err(MiError::new(-32601, "Method not found").with_data(name.to_string())),
        }
    }
}

impl Transport for EventXmlrpc {
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
            return Err("xmlrpc: no route".into());
        };
        route.admit(self.host, delivery)?;
        let body = payload::body(&dest.method, event, self.cfg.named);
        let mut request = http::head(&dest.path, &dest.authority(), body.len());
        request.extend_from_slice(&body);
        route.send(Job { delivery, request })?;
        Ok(Raised::Pending)
    }

    fn free(&mut self, socket: &mut Socket) {
        if let Some(r) = socket.route.take() {
            self.destinations.release(r);
        }
    }
}

export_module! {
    module: EventXmlrpc,
    name: "event_xmlrpc",
    doc: "xmlrpc: transport: each event is an XML-RPC call to an HTTP server, kept-alive connections, one sender thread per server.",
    params: [
        param::int("use_struct_param", 0, 0, 1,
            "1 = wrap each named param in <value><struct><member> (OpenSIPS's option); 0 = a <name> element inside <param>"),
        param::int("connect_timeout", config::DEFAULT_CONNECT_TIMEOUT_MS, 1, 600_000,
            "Milliseconds to wait for a TCP connection to a server"),
        param::int("timeout", config::DEFAULT_TIMEOUT_MS, 1, 600_000,
            "Milliseconds for one request: writing it and reading the whole response"),
        param::int("retries", config::DEFAULT_RETRIES, 0, 100,
            "Extra attempts after a connect/I/O error, timeout or HTTP 5xx, with backoff from 100 ms doubling to 5 s"),
        param::int("queue_size", config::DEFAULT_QUEUE_SIZE, 1, 10_000_000,
            "Events waiting per server; when full, new events for it are dropped and counted"),
    ],
    events: [],
    mi: [
        "event_xmlrpc:stats" [[]]
            "Per-server counters: queued, delivered, failed, dropped, retries, connections",
    ],
    transports: ["xmlrpc" (evi_sdk::EXPIRES | evi_sdk::ASYNC)],
}

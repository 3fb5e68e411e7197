//! # event_route: the `route:` transport
//!
//! `route:NAME` delivers an event to the script's `event_route[NAME]` block. Declaring
//! `event_route[E_X]` subscribes `route:E_X` to `E_X` (the host does it at start-up, as
//! OpenSIPS does). Routes run on a pool of script workers fed by a bounded queue, so a raiser
//! never runs a route inline and never waits: a full queue drops the event for this socket,
//! and the host counts and logs it.

mod pool;

use evi_sdk::{export_module, param, Delivery, Event, Host, Module, Params, Raised, Transport};
use pool::Pool;

/// The module instance.
pub struct EventRoute {
    host: Host,
    pool: Pool,
}

/// A parsed `route:` socket: the name of an `event_route` block.
pub struct Socket {
    route: String,
}

impl Module for EventRoute {
    fn init(host: Host, params: &Params) -> Result<Self, String> {
        let workers = usize::try_from(params.int("workers")).unwrap_or(1).max(1);
        let queue = usize::try_from(params.int("queue_size"))
            .unwrap_or(1)
            .max(1);
        let pool = Pool::start(host, workers, queue)?;
        Ok(EventRoute { host, pool })
    }

    fn destroy(&mut self) {
        // Runs every route already queued, then joins the workers.
        self.pool.stop();
    }
}

impl Transport for EventRoute {
    type Socket = Socket;

    fn parse(&mut self, _proto: &str, body: &str) -> Result<Socket, String> {
        let route = body.trim();
        if route.is_empty() {
            return Err(
                "empty route name (expected route:NAME of an event_route[NAME] block)".into(),
            );
        }
        if !self.host.has_event_route(route) {
            return Err(format!("the script has no event_route[{route}] block"));
        }
        Ok(Socket {
            route: route.to_string(),
        })
    }

    fn matches(&self, a: &Socket, b: &Socket) -> bool {
        a.route == b.route
    }

    fn print(&self, s: &Socket, out: &mut String) {
        out.push_str(&s.route);
    }

    fn raise(&mut self, s: &mut Socket, event: &Event<'_>, _d: Delivery) -> Result<Raised, String> {
        self.pool.submit(&s.route, event.to_owned())?;
        Ok(Raised::Done)
    }
}

export_module! {
    module: EventRoute,
    name: "event_route",
    doc: "Runs the script's event_route[NAME] blocks for events subscribed to route:NAME.",
    params: [
        param::int("workers", 2, 1, 64, "Script worker threads that run event routes"),
        param::int("queue_size", 65536, 16, 16_777_216, "Events waiting for a worker; beyond it they are dropped and counted"),
    ],
    events: [],
    mi: [],
    transports: ["route" (0)],
}

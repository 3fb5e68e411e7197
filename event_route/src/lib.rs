//! # event_route: the `route:` transport
//!
//! `route:NAME` delivers an event to the script's `event_route[NAME]` block. Declaring
//! `event_route[E_X]` subscribes `route:E_X` to `E_X` (the host does it at start-up, as
//! OpenSIPS does). Routes run on a pool of script workers fed by a bounded queue, so a raiser
//! never runs a route inline: a full queue holds this module's thread for a bounded time (so
//! the raisers feel the backpressure), then fails the event for this socket, and the host
//! counts and logs it.
//!
//! `route:NAME;sync` runs the route inline in the transport's `raise`, on this module's thread
//! (one at a time, in delivery order) instead of on a worker: what the 2.x
//! `event_route[E_X, sync]` form asks for, and the socket the host subscribes for such a block.
//! The raiser still never waits (it only queued the event for this module); a slow sync route
//! fills this module's queue and the host counts the drops. `route:NAME;async` is the default
//! and prints as `NAME`.

mod pool;

use evi_sdk::{export_module, param, Delivery, Event, Host, Module, Params, Raised, Transport};
use pool::Pool;

/// The module instance.
pub struct EventRoute {
    host: Host,
    pool: Pool,
}

/// A parsed `route:` socket: the name of an `event_route` block and how it runs.
pub struct Socket {
    route: std::sync::Arc<str>,
    sync: bool,
}

/// The syntax of a `route:` body, without asking the host whether the route exists: the route
/// name (trimmed) and whether it runs `;sync`.
pub fn parse_body(body: &str) -> Result<(&str, bool), String> {
    let (route, mode) = match body.rsplit_once(';') {
        Some((r, m)) => (r.trim(), Some(m.trim())),
        None => (body.trim(), None),
    };
    let sync = match mode {
        None | Some("async") => false,
        Some("sync") => true,
        Some(m) => {
            return Err(format!(
                "unknown mode {m:?} (expected route:NAME, route:NAME;sync or route:NAME;async)"
            ))
        }
    };
    if route.is_empty() {
        return Err("empty route name (expected route:NAME of an event_route[NAME] block)".into());
    }
    Ok((route, sync))
}

/// The print form of a `route:` body, which [`parse_body`] reads back: `NAME`, or `NAME;sync`
/// (and `NAME;async` for a name with a `;` in it, which would otherwise read as a mode).
pub fn print_body(route: &str, sync: bool, out: &mut String) {
    out.push_str(route);
    if sync {
        out.push_str(";sync");
    } else if route.contains(';') {
        out.push_str(";async");
    }
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
        let (route, sync) = parse_body(body)?;
        if !self.host.has_event_route(route) {
            return Err(format!("the script has no event_route[{route}] block"));
        }
        Ok(Socket {
            route: route.into(),
            sync,
        })
    }

    fn matches(&self, a: &Socket, b: &Socket) -> bool {
        a.route == b.route && a.sync == b.sync
    }

    fn print(&self, s: &Socket, out: &mut String) {
        print_body(&s.route, s.sync, out);
    }

    fn raise(&mut self, s: &mut Socket, event: &Event<'_>, _d: Delivery) -> Result<Raised, String> {
        if s.sync {
            // A failing route is a script error, not a failed delivery: logged like the
            // workers log it, with the location in the config.
            if let Err(why) = self.host.run_event_route(&s.route, event) {
                log::error!(
                    "event_route[{}] failed for {}: {why}",
                    s.route,
                    event.name()
                );
            }
        } else {
            self.pool.submit(&s.route, event.to_owned())?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(route: &str, sync: bool) -> String {
        let mut s = String::new();
        print_body(route, sync, &mut s);
        s
    }

    #[test]
    fn bodies_parse_and_print_back() {
        assert_eq!(parse_body("E_X"), Ok(("E_X", false)));
        assert_eq!(parse_body(" E_X ; sync "), Ok(("E_X", true)));
        assert_eq!(parse_body("E_X;async"), Ok(("E_X", false)));
        assert!(parse_body("E_X;later").is_err());
        assert!(parse_body(" ;sync").is_err());
        assert_eq!(printed("E_X", false), "E_X");
        assert_eq!(printed("E_X", true), "E_X;sync");
        // Found by fuzz/ (uris): `a;b;async` printed as `a;b`, which reads as route `a`, mode `b`.
        for (body, route, sync) in [("a;b;async", "a;b", false), ("a;b;sync", "a;b", true)] {
            assert_eq!(parse_body(body), Ok((route, sync)));
            assert_eq!(parse_body(&printed(route, sync)), Ok((route, sync)));
        }
    }
}

#[cfg(test)]
mod readme_tests {
    use evi_sdk::abi::EviModuleDecl;

    extern "C" {
        /// Written by `export_module!` above; linked into this test binary.
        static evi_module: EviModuleDecl;
    }

    #[test]
    fn readme_matches_the_export_table() {
        // SAFETY: immutable static data defined in this crate.
        let decl = unsafe { &*std::ptr::addr_of!(evi_module) };
        evi_sdk::testing::check_readme(decl, include_str!("../README.md"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

//! # event_datagram: events as UDP or unix datagrams
//!
//! The `udp:` and `unix:` transports of OpenSIPS's `event_datagram`: each event is sent as one
//! datagram holding the shared JSON-RPC notification the host builds (no terminator).
//!
//! - [`uri`] parses and matches subscriber sockets (names are resolved once, at subscribe time);
//! - [`sender`] owns the non-blocking sockets and does one `sendto` per event.
//!
//! This file only wires them to the SDK's [`Module`] and [`Transport`] traits.

pub mod sender;
pub mod uri;

#[cfg(test)]
mod tests;

use evi_sdk::{export_module, Delivery, Event, Host, Module, Params, Raised, Transport};
use sender::{Sender, Target};
use uri::Dest;

/// The module instance: the shared sockets. Subscriber state lives in each [`Target`].
pub struct Datagram {
    sender: Sender,
}

impl Datagram {
    /// Open the sockets. Separate from `init` so tests can run without a host.
    pub fn new() -> Result<Datagram, String> {
        Ok(Datagram {
            sender: Sender::new()?,
        })
    }

    #[cfg(test)]
    pub(crate) fn without_ipv6(self) -> Datagram {
        Datagram {
            sender: self.sender.without_ipv6(),
        }
    }
}

impl Module for Datagram {
    fn init(_host: Host, _params: &Params) -> Result<Self, String> {
        Datagram::new()
    }
}

impl Transport for Datagram {
    type Socket = Target;

    fn parse(&mut self, proto: &str, body: &str) -> Result<Target, String> {
        self.sender.target(Dest::parse(proto, body)?)
    }

    fn matches(&self, a: &Target, b: &Target) -> bool {
        a.dest().same_destination(b.dest())
    }

    fn print(&self, socket: &Target, out: &mut String) {
        socket.dest().print(out);
    }

    fn raise(
        &mut self,
        socket: &mut Target,
        event: &Event<'_>,
        _delivery: Delivery,
    ) -> Result<Raised, String> {
        self.sender.send(socket, event.json())?;
        Ok(Raised::Done)
    }
}

export_module! {
    module: Datagram,
    name: "event_datagram",
    doc: "Sends each event as one JSON-RPC datagram to udp:host:port or unix:/path subscribers.",
    params: [],
    events: [],
    mi: [],
    transports: [
        "udp" (evi_sdk::EXPIRES | evi_sdk::JSON),
        "unix" (evi_sdk::EXPIRES | evi_sdk::JSON),
    ],
}

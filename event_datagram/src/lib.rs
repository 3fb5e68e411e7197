//! # event_datagram: events as UDP or unix datagrams
//!
//! The `udp:` and `unix:` transports of OpenSIPS's `event_datagram`: each event is sent as one
//! datagram holding the shared JSON-RPC notification the host builds (no terminator).
//!
//! - [`uri`] parses and matches subscriber sockets (names are resolved once, at subscribe time);
//! - [`sender`] owns the non-blocking sockets and the batch: `raise` queues the datagram, and
//!   the batch goes out with one `sendmmsg` per kernel socket when it is full and at every
//!   `flush` (the host flushes after each batch of raises it takes off the module's queue).
//!
//! This file only wires them to the SDK's [`Module`] and [`Transport`] traits. A queued event's
//! raise answers [`Raised::Pending`]; its outcome goes to [`Host::delivery_status`] once the
//! kernel has taken or refused it, so the host counts each event exactly once, as before.

pub mod sender;
pub mod uri;

#[cfg(test)]
mod tests;

use evi_sdk::{export_module, Delivery, Event, Host, Module, Params, Raised, Transport};
use sender::{Sender, Sent, Target};
use uri::Dest;

/// The module instance: the shared sockets and the batch. Subscriber state lives in each
/// [`Target`].
pub struct Datagram {
    host: Host,
    sender: Sender,
}

impl Datagram {
    /// Open the sockets; outcomes of batched sends go to `host`.
    pub fn new(host: Host) -> Result<Datagram, String> {
        Ok(Datagram {
            host,
            sender: Sender::new()?,
        })
    }

    #[cfg(test)]
    pub(crate) fn without_ipv6(self) -> Datagram {
        Datagram {
            host: self.host,
            sender: self.sender.without_ipv6(),
        }
    }
}

/// Reports one batched send's outcome to the host.
fn reporter(host: Host) -> impl FnMut(Delivery, Result<(), &str>) {
    move |delivery, result| host.delivery_status(delivery, result)
}

impl Module for Datagram {
    fn init(host: Host, _params: &Params) -> Result<Self, String> {
        Datagram::new(host)
    }

    fn flush(&mut self) {
        self.sender.flush(&mut reporter(self.host));
    }

    fn destroy(&mut self) {
        self.sender.flush(&mut reporter(self.host));
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

    fn destinations(&self, socket: &Target, out: &mut Vec<String>) {
        // The address resolved at subscribe time is the one every datagram goes to; a unix
        // socket reaches no network peer.
        if let Dest::Udp { addr, .. } = socket.dest() {
            out.push(addr.to_string());
        }
    }

    fn raise(
        &mut self,
        socket: &mut Target,
        event: &Event<'_>,
        delivery: Delivery,
    ) -> Result<Raised, String> {
        let sent = self
            .sender
            .send(socket, event.json(), delivery, &mut reporter(self.host))?;
        Ok(match sent {
            Sent::Queued => Raised::Pending,
            Sent::Now => Raised::Done,
        })
    }

    fn free(&mut self, socket: &mut Target) {
        self.sender.release(socket, &mut reporter(self.host));
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
